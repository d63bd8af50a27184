"""The Mini App Center sandbox with its assumptions beyond the docs dropped serves what a
lenient server would: unknown JSON fields ignored (and listed for tests), review steps
accepted from any status. `sandbox serve --drop-assumption NAME` sets each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli.main import main
from tests.fixtures_sandbox import RunningSandbox
from tests.test_sandbox_contract import APP_ID, MINIMAL_APP, assert_error, make_app, make_version


def test_unknown_fields_are_ignored_and_listed_when_refusing_is_dropped(
    sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:
    server = sandbox_server_factory(refuse_unknown_fields=False)
    with server.client() as client:
        created = client.post("/miniapps", json={**MINIMAL_APP, "colour": "blue"})
        assert created.status_code == 201, created.text
        answered = client.get(f"/miniapps/{APP_ID}").json()["data"]
        assert "colour" not in answered and answered["name"] == MINIMAL_APP["name"]
        # Known fields are still checked.
        assert_error(client.post("/miniapps", json={**MINIMAL_APP, "name": 3}), 400)
    assert server.store.ignored_fields == ["colour"]


def test_unknown_fields_are_refused_by_default(
    sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:
    server = sandbox_server_factory()
    with server.client() as client:
        assert_error(client.post("/miniapps", json={**MINIMAL_APP, "colour": "blue"}), 400)
    assert server.store.ignored_fields == []


@pytest.mark.parametrize("flow", [True, False], ids=["flow-enforced", "flow-dropped"])
def test_a_step_from_the_wrong_status(
    sandbox_server_factory: Callable[..., RunningSandbox], flow: bool
) -> None:
    server = sandbox_server_factory(review_flow=flow)
    with server.client() as client:
        make_app(client)
        version: dict[str, Any] = make_version(client)
        ready = client.post(f"/miniapps/{APP_ID}/versions/{version['id']}/ready")
        if flow:
            assert_error(ready, 400)
            assert server.store.version_status(APP_ID, version["id"]) == "pending"
        else:
            assert ready.status_code == 204, ready.text
            assert server.store.version_status(APP_ID, version["id"]) == "ready"
            sent = client.post(f"/miniapps/{APP_ID}/versions/{version['id']}/send_to_review")
            assert isinstance(sent, httpx.Response) and sent.status_code == 204
            assert server.store.version_status(APP_ID, version["id"]) == "waiting_for_review"


def test_the_flags_set_the_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import reconciler.providers.miniappcenter.sandbox as mac_sandbox

    configs: list[Any] = []
    monkeypatch.setattr(mac_sandbox, "serve", lambda config, **_: configs.append(config))
    argv = ["sandbox", "serve", "--db", str(tmp_path / "s.db"), "--token", "t0ken-for-tests"]
    assert main(argv) == 0
    assert main([*argv, "--drop-assumption", "refuse-unknown-fields",
                 "--drop-assumption", "review-flow"]) == 0  # fmt: skip
    assert [(c.refuse_unknown_fields, c.review_flow) for c in configs] == [
        (True, True), (False, False)
    ]
