"""Generated paths against the sandbox: a path the API routes answers in the API's own way
(its ``{"errors": [...]}`` body when it fails), any other path or method the way a plain web
server does (a text 404/405). The client relies on this to tell "absent" from "wrong URL"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Match

from reconciler.providers.miniappcenter.sandbox import SandboxConfig, create_app
from reconciler.providers.miniappcenter.sandbox.routes import ROUTES
from tests.fixtures_sandbox import TEST_TOKEN

SEGMENTS = st.sampled_from(
    ["api", "v1", "v2", "miniapps", "com.example.shop", "versions", "7", "abc", "locations",
     "attributes", "COUNTRY", "compatibility", "delete", "upload", "gxobject", "objects",
     "send_to_review", "approve", "x"]
)  # fmt: skip
# Mostly the right root (so routed paths come up often), and the roots wrong URLs produce.
ROOTS = st.sampled_from(["/api/v1", "/api/v1", "/api/v1", "/v1", "/api/v1/v1", "/x/api/v1", ""])
TAILS = st.lists(SEGMENTS, max_size=5).map(lambda parts: "".join("/" + p for p in parts))
PATHS = st.builds(
    lambda root, app, tail: root + app + tail,
    ROOTS,
    st.sampled_from(["/miniapps/com.example.shop", "/miniapps", ""]),
    TAILS,
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    db = tmp_path_factory.mktemp("routes") / "sandbox.db"
    app = create_app(SandboxConfig(db_path=Path(db), token=TEST_TOKEN))
    yield app
    app.state.store.close()


def _routing(method: str, path: str) -> Match:
    scope = {"type": "http", "method": method, "path": path}
    best = Match.NONE
    for route in ROUTES:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return match
        if match is Match.PARTIAL:  # the path is routed, the method is not
            best = match
    return best


def _send(app: Starlette, method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
            return await c.request(method, path, headers={"APIKey-Auth": TEST_TOKEN})

    return asyncio.run(go())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=METHODS, path=PATHS)
def test_only_routed_paths_answer_with_the_api_error_body(
    sandbox: Starlette, method: str, path: str
) -> None:
    response = _send(sandbox, method, path)
    routing = _routing(method, path)
    event(f"routing {routing.name}")
    if routing is Match.NONE:
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/plain")
    elif routing is Match.PARTIAL:
        assert response.status_code == 405
        assert response.headers["content-type"].startswith("text/plain")
    elif response.status_code >= 400:
        body = response.json()
        assert set(body) == {"errors"} and body["errors"]
