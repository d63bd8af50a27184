"""The sandbox and the reconciler against the OpenAPI description written from the docs.

Three directions: the description covers exactly the sandbox's documented routes; every
request the reconciler sends while applying (and changing, and deleting) the demo fleet is
valid under it; and every JSON body it forbids, generated, is refused by the sandbox with the
API's error shape and no change to the stored data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.providers.miniappcenter.manifest import load_manifests
from reconciler.providers.miniappcenter.model import Location, MiniApp
from reconciler.providers.miniappcenter.sandbox.routes import PREFIX, ROUTES
from tests.fixtures_pipeline import Mac
from tests.fixtures_sandbox import RunningSandbox
from tests.openapi_spec import (
    JSON,
    Operation,
    by_id,
    operation,
    operations,
    response_validator,
    spec,
)

REPO = Path(__file__).resolve().parent.parent
FLEET = REPO / "manifests"
APP_ID = "com.example.strict"

# One valid body per JSON write operation: the start point of every generated invalid body.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "create_miniapp": {
        "id": "com.example.other", "name": "Other", "superapp_id": "com.example.super",
        "type": "Web", "description": "d", "keywords": "a b",
        "icon": "gxupload:" + "a" * 32, "organization_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    },
    "update_miniapp": {
        "name": "Renamed", "superapp_id": "com.example.super", "type": "native",
        "card": "gxupload:" + "b" * 32,
    },
    "set_attribute": {"field": "COUNTRY", "value": "Uruguay"},
    "create_location": {"name": "North", "geo_point": "POINT(3 4)"},
    "update_location": {"name": "South", "geo_point": "POINT(-56.2 -34.9)"},
    "create_version": {
        "code": "9.9.9", "platform_id": "iOS", "main_name": "start", "main_type": "Menu",
        "integrated_security": True, "metadata": "gxupload:" + "c" * 32,
        "service_url": "https://example.com/",
    },
    "update_version": {"platform_id": "Android", "main_name": "other", "main_type": "panel"},
    "add_compatibility": {"superapp_version": 7},
    "delete_compatibility": {"superapp_version": 1},
}  # fmt: skip
JSON_OPERATIONS = sorted(VALID_BODIES)


def _spec_routes() -> set[tuple[str, str]]:
    return {(o.method, o.template) for o in operations()}


def _sandbox_routes() -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in ROUTES:
        path = getattr(route, "path", "")
        if path == PREFIX + "/objects/{hex}":
            continue  # where the sandbox serves uploaded files: URLs it answers, not API
        template = (
            path.removeprefix(PREFIX)
            .replace("{app_id}", "{id}")
            .replace("{location_id:int}", "{location_id}")
            .replace("{version_id:int}", "{version_id}")
        )
        routes.update((m, template) for m in getattr(route, "methods", ()) if m != "HEAD")
    return routes


def test_the_description_covers_exactly_the_sandbox_routes() -> None:
    assert _spec_routes() == _sandbox_routes()
    # 21 documented endpoints plus the upload object endpoint (api-notes).
    assert len(_spec_routes()) == 22
    assert sorted(JSON_OPERATIONS) == sorted(
        o.operation_id for o in operations() if JSON in o.body_types
    )


def test_the_description_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    validate(spec())  # raises, naming the first problem


def test_the_docs_samples_are_valid_under_the_description() -> None:
    """Written from the docs: their cURL bodies are what it must accept."""
    from tests import test_sandbox_contract as docs

    samples = {
        "create_miniapp": docs.DOCS_CREATE_MINIAPP,
        "update_miniapp": docs.DOCS_UPDATE_MINIAPP,
        "set_attribute": docs.DOCS_ATTRIBUTE,
        "create_location": docs.DOCS_LOCATION,
        "update_location": docs.DOCS_LOCATION,
        "create_version": docs.DOCS_VERSION,  # no code: the server assigns one
        "update_version": docs.DOCS_VERSION,
        "add_compatibility": docs.DOCS_COMPATIBILITY,
        "delete_compatibility": docs.DOCS_COMPATIBILITY,
    }
    for operation_id, raw in samples.items():
        errors = [e.message for e in by_id(operation_id).validator().iter_errors(json.loads(raw))]
        assert errors == [], operation_id


def test_the_valid_bodies_are_valid() -> None:
    for operation_id, body in VALID_BODIES.items():
        errors = [e.message for e in by_id(operation_id).validator().iter_errors(body)]
        assert errors == [], operation_id


# --- the reconciler's own requests ------------------------------------------------------------


def _check_request(request: httpx.Request, problems: list[str], seen: set[str]) -> None:
    path = request.url.path.removeprefix("/api/v1")
    op = operation(request.method, path)
    if op is None:
        problems.append(f"{request.method} {path}: not a documented operation")
        return
    seen.add(op.operation_id)
    content = request.read()
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    where = f"{request.method} {path}"
    if request.headers.get("apikey-auth") in (None, ""):
        problems.append(f"{where}: no APIKey-Auth header")
    if not op.body_types:
        if content:
            problems.append(f"{where}: a body sent to an operation that takes none")
        return
    if media_type not in op.body_types:
        problems.append(f"{where}: Content-Type {media_type!r}, expected {op.body_types}")
        return
    if op.body_schema is None:
        if op.operation_id == "upload_object" and not request.headers.get("x-gx-filename"):
            problems.append(f"{where}: no x-gx-filename header")
        return
    body = json.loads(content)
    for error in op.validator().iter_errors(body):
        problems.append(f"{where}: {error.message} at {list(error.absolute_path)}")


def _changed_fleet(apps: list[MiniApp]) -> list[MiniApp]:
    """The fleet with an update, a removal or a deletion for every kind of record."""
    changed: list[MiniApp] = []
    for app in apps:
        spec_ = app.spec
        if app.id == "com.genexus.verdant.teatime":
            spec_ = spec_.model_copy(update={"ensure": "absent"})
        elif app.id == "com.genexus.verdant.sweetcorner":
            assert spec_.locations and spec_.versions and spec_.attributes
            first = spec_.locations[0]
            version = spec_.versions[0]
            spec_ = spec_.model_copy(
                update={
                    "name": "Sweet Corner",
                    "attributes": {"COUNTRY": "Chile"},  # one changed, one removed
                    "locations": (Location(name=first.name, geo_point="POINT(-56.3 -34.8)"),),
                    "versions": (
                        version.model_copy(update={"main_name": "Start", "compatibility": (1,)}),
                        *spec_.versions[1:],
                    ),
                }
            )
        changed.append(app.model_copy(update={"spec": spec_}))
    return changed


async def test_every_request_of_a_fleet_apply_is_documented(mac: Mac) -> None:
    fleet = [item.app for item in load_manifests([FLEET / "cafe", FLEET / "payments"], {})]
    await mac.apply(fleet)
    await mac.apply(_changed_fleet(fleet))
    problems: list[str] = []
    seen: set[str] = set()
    for transport in mac.transports:
        for request in transport.requests:
            _check_request(request, problems, seen)
    assert problems == []
    # Every operation the reconciler has a use for was exercised (not the bundle uploads,
    # which it does not use, nor the reviewer's rejected step).
    unused = {"upload_miniapp", "upload_version", "rejected"}
    assert seen == {o.operation_id for o in operations()} - unused


def test_a_request_outside_the_description_is_caught() -> None:
    """The check above can fail: each kind of bad request is reported."""
    base = "http://127.0.0.1/api/v1"
    headers = {"APIKey-Auth": "t", "Content-Type": JSON}
    bad = [
        httpx.Request("PATCH", f"{base}/miniapps/com.a.b", headers=headers, content=b"{}"),
        httpx.Request(
            "PUT", f"{base}/miniapps/com.a.b", headers=headers, content=b'{"name": null}'
        ),
        httpx.Request(
            "PUT", f"{base}/miniapps/com.a.b/locations/1", headers=headers,
            content=b'{"name": "a"}',
        ),
        httpx.Request("POST", f"{base}/miniapps/com.a.b/versions/1/ready", headers=headers,
                      content=b"{}"),
        httpx.Request("POST", f"{base}/miniapps/com.a.b/attributes",
                      headers={"APIKey-Auth": "t"}, content=b'{"field": "A", "value": "b"}'),
    ]  # fmt: skip
    for request in bad:
        problems: list[str] = []
        _check_request(request, problems, set())
        assert problems, request


# --- generated invalid bodies -----------------------------------------------------------------

# Any character, lone surrogates included (JSON can spell them as escapes); any integer size.
TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
# Values a store or driver chokes on, drawn often rather than hoped for.
HOSTILE = st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "", " ", 2**31, 2**63, 2**64, -(2**63) - 1, 1e308]
)
JSON_VALUES = st.recursive(
    HOSTILE
    | st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**31 - 2, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def invalid_bodies(draw: st.DrawFn, operation_id: str) -> Any:
    """A body the description forbids: the valid one with members dropped, retyped or added."""
    body: dict[str, Any] = dict(VALID_BODIES[operation_id])
    schema = spec()["components"]["schemas"]
    ref = by_id(operation_id).body_schema
    assert ref is not None
    known = list(schema[ref["$ref"].rsplit("/", 1)[1]]["properties"])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "set", "add"]))
        if kind == "drop" and body:
            del body[draw(st.sampled_from(sorted(body)))]
        elif kind == "set":
            body[draw(st.sampled_from(known))] = draw(JSON_VALUES)
        else:
            body[draw(TEXT.filter(bool))] = draw(JSON_VALUES)
    return body


@pytest.fixture
def prepared(sandbox_server: RunningSandbox) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """One app with a location, a version and a compatibility: every write has a target."""
    with sandbox_server.client() as client:
        client.post("/miniapps", json={**VALID_BODIES["create_miniapp"], "id": APP_ID})
        location = client.post(f"/miniapps/{APP_ID}/locations", json={"name": "C",
                               "geo_point": "POINT(1 2)"}).json()["data"]["id"]  # fmt: skip
        version = client.post(
            f"/miniapps/{APP_ID}/versions", json=VALID_BODIES["update_version"]
        ).json()["data"]["id"]
        client.post(
            f"/miniapps/{APP_ID}/versions/{version}/compatibility", json={"superapp_version": 1}
        )
        app = f"/miniapps/{APP_ID}"
        paths = {
            "create_miniapp": "/miniapps",
            "update_miniapp": app,
            "set_attribute": f"{app}/attributes",
            "create_location": f"{app}/locations",
            "update_location": f"{app}/locations/{location}",
            "create_version": f"{app}/versions",
            "update_version": f"{app}/versions/{version}",
            "add_compatibility": f"{app}/versions/{version}/compatibility",
            "delete_compatibility": f"{app}/versions/{version}/compatibility/delete",
        }
        yield client, paths


def _assert_refused(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) == {"errors"} and body["errors"]
    for error in body["errors"]:
        assert set(error) == {"code", "message"}
        assert type(error["code"]) is int and isinstance(error["message"], str)


@pytest.mark.parametrize("operation_id", JSON_OPERATIONS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_every_body_the_description_forbids_is_refused_and_changes_nothing(
    prepared: tuple[httpx.Client, dict[str, str]],
    sandbox_server: RunningSandbox,
    operation_id: str,
    data: st.DataObject,
) -> None:
    client, paths = prepared
    op: Operation = by_id(operation_id)
    body = data.draw(invalid_bodies(operation_id).filter(lambda b: not op.validator().is_valid(b)))
    before = sandbox_server.store.dump()
    _assert_refused(_send(client, op.method, paths[operation_id], body))
    assert sandbox_server.store.dump() == before


def _send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    # ensure_ascii: a lone surrogate travels as a \ud800 escape (it has no UTF-8 form)
    content = json.dumps(body).encode("ascii")
    return client.request(method, path, content=content, headers={"Content-Type": JSON})


@pytest.mark.parametrize("operation_id", JSON_OPERATIONS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_body_makes_the_sandbox_fail(
    prepared: tuple[httpx.Client, dict[str, str]], operation_id: str, data: st.DataObject
) -> None:
    """Valid or not under the description, a body gets a 2xx or a 4xx error list, never a
    5xx (the strings and integers the description allows include some a store cannot take)."""
    client, paths = prepared
    op = by_id(operation_id)
    body = data.draw(invalid_bodies(operation_id))
    response = _send(client, op.method, paths[operation_id], body)
    if response.status_code >= 300:
        _assert_refused(response)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "/versions/{big}", None),
        ("PUT", "/versions/{big}", VALID_BODIES["update_version"]),
        ("POST", "/versions/{big}/ready", None),
        ("POST", "/versions/{big}/compatibility", {"superapp_version": 1}),
        ("PUT", "/locations/{big}", VALID_BODIES["update_location"]),
        ("DELETE", "/locations/{big}", None),
    ],
)
def test_an_id_too_large_to_exist_is_not_found(
    prepared: tuple[httpx.Client, dict[str, str]],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    client, _ = prepared
    path = f"/miniapps/{APP_ID}" + suffix.format(big=2**64)
    response = client.request(method, path, json=body)
    assert response.status_code == 404, response.text
    _assert_refused(response)


@pytest.mark.parametrize("operation_id", JSON_OPERATIONS)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(
        st.binary(max_size=40),
        JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.sampled_from([JSON, None, "text/plain", "application/x-www-form-urlencoded"]),
)
def test_bodies_that_are_not_json_objects_are_refused(
    prepared: tuple[httpx.Client, dict[str, str]],
    sandbox_server: RunningSandbox,
    operation_id: str,
    raw: bytes,
    content_type: str | None,
) -> None:
    client, paths = prepared
    op = by_id(operation_id)
    headers = {} if content_type is None else {"Content-Type": content_type}
    if content_type != JSON:  # the right body with the wrong type is refused too
        raw = json.dumps(VALID_BODIES[operation_id]).encode()
    before = sandbox_server.store.dump()
    _assert_refused(client.request(op.method, paths[operation_id], content=raw, headers=headers))
    assert sandbox_server.store.dump() == before


@pytest.mark.parametrize("operation_id", JSON_OPERATIONS)
def test_the_valid_bodies_are_accepted(
    prepared: tuple[httpx.Client, dict[str, str]], operation_id: str
) -> None:
    """The other direction, so the refusals above are not a sandbox refusing everything."""
    client, paths = prepared
    op = by_id(operation_id)
    response = client.request(op.method, paths[operation_id], json=VALID_BODIES[operation_id])
    assert response.status_code in (201, 204), response.text


@pytest.mark.parametrize("operation_id", JSON_OPERATIONS)
def test_a_lone_surrogate_is_refused_everywhere(
    prepared: tuple[httpx.Client, dict[str, str]],
    sandbox_server: RunningSandbox,
    operation_id: str,
) -> None:
    client, paths = prepared
    op = by_id(operation_id)
    body = dict(VALID_BODIES[operation_id])
    # the first text member; the compatibility bodies have none: a key then carries it
    texts = [k for k, v in body.items() if isinstance(v, str)]
    body[texts[0] if texts else "\ud800"] = "\ud800"
    before = sandbox_server.store.dump()
    response = _send(client, op.method, paths[operation_id], body)
    assert response.status_code == 400, response.text
    _assert_refused(response)
    assert sandbox_server.store.dump() == before


@pytest.mark.parametrize("value", [2**31, 2**63, 2**64])
def test_a_superapp_version_beyond_int_is_refused(
    prepared: tuple[httpx.Client, dict[str, str]], sandbox_server: RunningSandbox, value: int
) -> None:
    client, paths = prepared
    before = sandbox_server.store.dump()
    for operation_id in ("add_compatibility", "delete_compatibility"):
        response = client.post(paths[operation_id], json={"superapp_version": value})
        assert response.status_code == 400, response.text
        _assert_refused(response)
    assert sandbox_server.store.dump() == before


STEP_OPERATIONS = ["send_to_review", "in_review", "rejected", "ready"]


@pytest.mark.parametrize("operation_id", STEP_OPERATIONS)
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(min_size=1, max_size=64), content_type=st.sampled_from([JSON, None]))
def test_status_steps_refuse_any_body(
    prepared: tuple[httpx.Client, dict[str, str]],
    sandbox_server: RunningSandbox,
    operation_id: str,
    raw: bytes,
    content_type: str | None,
) -> None:
    """The steps are documented without a body: a body is refused before the state machine
    runs, whatever the version's status (send_to_review would be legal here)."""
    client, paths = prepared
    path = paths["update_version"] + "/" + operation_id
    assert by_id(operation_id).body_types == ()
    headers = {} if content_type is None else {"Content-Type": content_type}
    before = sandbox_server.store.dump()
    response = client.post(path, content=raw, headers=headers)
    assert response.status_code == 400, response.text
    _assert_refused(response)
    assert sandbox_server.store.dump() == before


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filename=st.sampled_from([None, ""]), raw=st.binary(max_size=16))
def test_an_upload_object_without_name_or_bytes_is_refused(
    prepared: tuple[httpx.Client, dict[str, str]],
    sandbox_server: RunningSandbox,
    filename: str | None,
    raw: bytes,
) -> None:
    client, _ = prepared
    headers = {} if filename is None else {"x-gx-filename": filename}
    before = sandbox_server.store.dump()
    response = client.post("/gxobject", content=raw, headers=headers)
    assert response.status_code == 400, response.text
    _assert_refused(response)
    assert sandbox_server.store.dump() == before


def test_the_sandbox_answers_as_described(
    prepared: tuple[httpx.Client, dict[str, str]],
) -> None:
    """Reads and creates answer the documented shapes; errors answer the error list."""
    client, paths = prepared
    answers = [
        ("get_miniapp", 200, client.get(f"/miniapps/{APP_ID}")),
        ("list_locations", 200, client.get(f"/miniapps/{APP_ID}/locations")),
        ("get_version", 200, client.get(paths["update_version"])),
        ("create_location", 201, client.post(paths["create_location"],
                                             json=VALID_BODIES["create_location"])),
        ("create_version", 201, client.post(paths["create_version"],
                                            json=VALID_BODIES["create_version"])),
        ("get_miniapp", 404, client.get("/miniapps/com.example.nothing")),
        ("update_miniapp", 400, client.put(paths["update_miniapp"], json={})),
    ]  # fmt: skip
    for operation_id, status, response in answers:
        assert response.status_code == status, (operation_id, response.text)
        errors = list(response_validator(operation_id, status).iter_errors(response.json()))
        assert errors == [], (operation_id, [e.message for e in errors])
