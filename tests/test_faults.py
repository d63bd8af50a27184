"""Faults at scale: a read that fails after the retries stops only its own app; what a run
learnt by reading is kept; a damaged review status in the state is named as damage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from reconciler.errors import ApiError, ReconcilerError
from reconciler.providers.miniappcenter.apply import ApplyOptions, Executor
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient, RetryPolicy
from reconciler.providers.miniappcenter.model import MiniApp
from reconciler.providers.miniappcenter.planning import make_plan
from reconciler.providers.miniappcenter.sandbox import SandboxConfig, create_app
from reconciler.state import AppRecord, mac_records
from tests.fixtures_pipeline import IDENTITY, TOKEN, Fault, Mac, instant_sleep
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


async def test_a_lost_state_is_recovered_in_near_linear_reads(mac: Mac) -> None:
    from bench.fleet import make_app, make_fleet

    # Versions of apps made by someone else come first: the fleet's ids start past them.
    await mac.apply([make_app(1000 + n) for n in range(5)])
    fleet = make_fleet(40)
    await mac.apply(fleet)
    versions = sum(len(a.spec.versions or ()) for a in fleet)
    mac.state_path.unlink()  # a lost state
    plan = await mac.plan(fleet)
    sent = mac.transports[-1].sent
    assert [c for c in plan.changes if c.kind == "version" and c.action == "create"] == []
    found = [i for i in plan.learned if i.code and i.version_id is not None]
    assert len(found) == versions
    assert len(sent) <= 8 * (len(fleet) + versions), len(sent)
    # What the plan says it spent on the search is what it sent.
    version_reads = sum(1 for method, path in sent if method == "GET" and "/versions/" in path)
    assert plan.probe_reads == version_reads


PERSON = ("state adopt-version", "state set-status", "find the version's id")


async def _faulty_round(mac: Mac, fleet: list[MiniApp], seed: int) -> tuple[int, list[str]]:
    """One `apply --auto-approve` against a server failing 30% of requests and doing 20% of
    the writes but answering 502: (its exit code, every message it showed)."""
    faulty = create_app(SandboxConfig(db_path=mac.db, token=TOKEN, fail_rate=0.3,
                                      ambiguous_rate=0.2, seed=seed))
    client = MiniAppCenterClient(
        Endpoint(base_url="http://127.0.0.1/api"), TOKEN,
        transport=httpx.ASGITransport(app=faulty),
        retry=RetryPolicy(sleep=instant_sleep, jitter=False),
    )
    store = mac.store
    try:
        with store.lock("apply"):
            state = store.load(IDENTITY)
            async with client:
                try:
                    plan = await make_plan(client, fleet, state, identity=IDENTITY)
                except ReconcilerError as error:
                    return 1, [str(error)]
                shown = [str(e) for e in (*plan.errors, *plan.warnings)]
                if plan.fleet_errors:
                    return 1, shown
                executor = Executor(client, store, state, plan,
                                    options=ApplyOptions(parallelism=8))
                try:
                    result = await executor.run()
                finally:
                    store.save(state)
    finally:
        faulty.state.store.close()
    shown += [r.message or "" for r in result.results] + list(result.unresolved)
    return (0 if result.ok and not plan.errors else 3), shown


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_fleet_converges_under_heavy_faults_without_a_person(
    mac: Mac, tmp_path: Path, seed: int
) -> None:
    from bench.faults import write_fleet
    from reconciler.providers.miniappcenter.manifest import load_manifests

    folder = write_fleet(tmp_path / "fleet", 8)
    fleet = [item.app for item in load_manifests([folder], {})]
    codes: list[int] = []
    for run in range(10):
        code, shown = await _faulty_round(mac, fleet, seed * 100 + run)
        codes.append(code)
        assert not [m for m in shown if any(p in m for p in PERSON)], shown
        if code == 0:
            break
    assert codes[-1] == 0, codes
    clean = await mac.plan(fleet)
    assert clean.changes == () and clean.errors == (), [str(c.address) for c in clean.changes]
    with sqlite3.connect(mac.db) as conn:
        duplicates = conn.execute(
            "SELECT app_id, code FROM versions GROUP BY app_id, code HAVING COUNT(*) > 1"
            " UNION ALL SELECT app_id, name FROM locations GROUP BY app_id, name"
            " HAVING COUNT(*) > 1"
        ).fetchall()
    assert duplicates == []


async def test_an_app_whose_create_answer_was_lost_is_searched_only_where_it_can_be(
    mac: Mac,
) -> None:
    """The app landed but the state never recorded it (its create's answer and the read back
    were lost), so its versions were never created: the search for them stops at the
    highest id the endpoint can have handed out, not at `--probe-window`."""
    third = "com.genexus.verdant.third"
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    await mac.apply([app(third, name="Third", icon=None, versions=[])])
    store = mac.store
    state = store.read()
    del state.apps[third]
    store.save(state)
    mac.transports.clear()
    plan = await mac.plan([app(), app(OTHER, name="Tea", icon=None),
                           app(third, name="Third", icon=None)])
    reads = [p for m, p in mac.transports[-1].sent if m == "GET" and f"{third}/versions/" in p]
    assert len(reads) <= 2 * 16 + 4, len(reads)
    assert [c.address for c in plan.changes if c.kind == "version" and c.action == "create"]
