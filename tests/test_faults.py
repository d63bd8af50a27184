"""Faults at scale: a read that fails after the retries stops only its own app; what a run
learnt by reading is kept; a damaged review status in the state is named as damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ApiError
from reconciler.state import AppRecord, mac_records
from tests.fixtures_pipeline import Fault, Mac
from tests.test_apply import APP, OTHER, app


async def test_a_failed_app_read_makes_only_that_app_stuck(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    # Every read of OTHER fails, whatever the retries: 503 each time.
    mac.faults.append(Fault("GET", rf"/miniapps/{OTHER}$", "500", times=1000))
    desired = [app(name="Renamed"), app(OTHER, name="Tea!", icon=None)]
    plan, result, _ = await mac.apply(desired)
    stuck = plan.stuck_apps
    assert list(stuck) == [OTHER]
    assert "could not be read" in stuck[OTHER][0].message
    assert "HTTP 500" in stuck[OTHER][0].message
    assert [c.app_id for c in plan.changes] == [APP]  # nothing planned from an unread app
    assert result.stuck == {OTHER: stuck[OTHER][0].message}
    assert mac.sandbox.get_miniapp(APP)["name"] == "Renamed"
    assert mac.sandbox.get_miniapp(OTHER)["name"] == "Tea"


async def test_a_failed_version_read_makes_only_that_app_stuck(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    mac.faults.append(Fault("GET", rf"/miniapps/{OTHER}/versions/", "500", times=1000))
    plan = await mac.plan([app(name="Renamed"), app(OTHER, name="Tea!", icon=None)])
    assert list(plan.stuck_apps) == [OTHER]
    assert {c.app_id for c in plan.changes} == {APP}


async def test_when_every_read_fails_the_run_fails(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    mac.faults.append(Fault("GET", r"/miniapps/[^/]+$", "500", times=1000))
    with pytest.raises(ApiError):
        await mac.plan([app(), app(OTHER, name="Tea", icon=None)])


async def test_a_refused_read_still_fails_the_run(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    mac.faults.append(Fault("GET", rf"/miniapps/{OTHER}$", "400", times=1000))
    with pytest.raises(ApiError):
        await mac.plan([app(), app(OTHER, name="Tea", icon=None)])


def test_the_state_knows_every_review_status_of_the_flow() -> None:
    from reconciler.providers.miniappcenter.review import STATUSES
    from reconciler.state import REVIEW_STATUSES

    assert set(REVIEW_STATUSES) == set(STATUSES)


@pytest.mark.parametrize("field", ["status", "status_candidates"])
def test_an_unknown_review_status_in_the_state_is_damage(
    tmp_path: Path, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from reconciler.cli.main import main
    from reconciler.errors import StateError
    from reconciler.state import FileStateStore, State, VersionRecord

    path = tmp_path / "state.json"
    store = FileStateStore(path)
    state = State(endpoint="sandbox:test")
    state.apps[APP] = AppRecord(versions={"1.0.0": VersionRecord(id=3, status="ready")})
    store.save(state)
    data = json.loads(path.read_text())
    record = mac_records(data)[APP]["versions"]["1.0.0"]
    if field == "status":
        record["status"] = "bogus"
    else:
        record.update(status="unknown", status_candidates=["pending", "bogus"])
    path.write_text(json.dumps(data))
    with pytest.raises(StateError) as caught:
        FileStateStore(path).load("sandbox:test")
    message = str(caught.value)
    assert str(path) in message and "'bogus'" in message
    assert 'replace it with "unknown"' in message and "Restore it from a backup" in message
    assert "Publish a new version" not in message
    # The CLI says it in one line, with no traceback.
    code = main(["state", "show", APP, "--state", str(path)])
    captured = capsys.readouterr()
    assert code == 1 and "'bogus'" in captured.err and "Traceback" not in captured.err
