"""Apply against the in-process sandbox: convergence, zero-write reapply, partial failures,
ambiguous writes resolved by re-reading, never a duplicate."""

from __future__ import annotations

from typing import Any

from reconciler.model import MiniApp, MiniAppSpec
from reconciler.state import UNKNOWN
from tests.fixtures_pipeline import Fault, Mac

APP = "com.genexus.verdant.coffeemuffins"
OTHER = "com.genexus.verdant.teatime"
ICON = "gxupload:" + "a" * 32
META = "gxupload:" + "c" * 32


def app(app_id: str = APP, **spec: Any) -> MiniApp:
    base: dict[str, Any] = {
        "name": "Coffee & Muffins",
        "superapp_id": "com.genexus.verdantbank",
        "type": "native",
        "keywords": "coffee cafe",
        "icon": ICON,
        "attributes": {"COUNTRY": "Uruguay", "CATEGORY": "Food"},
        "locations": [
            {"name": "Central", "geo_point": "POINT(-56.1637 -34.9247)"},
            {"name": "Pocitos", "geo_point": "POINT(-56.15 -34.91)"},
        ],
        "versions": [
            {
                "code": "1.0.0",
                "platform_id": "iOS",
                "metadata": META,
                "integrated_security": True,
                "main_name": "start",
                "main_type": "Panel",
                "service_url": "https://apps6.genexus.com/Id1/",
                "compatibility": [1, 2],
                "status": "ready",
            }
        ],
    }
    base.update(spec)
    return MiniApp(id=app_id, labels={"team": "cafe"}, spec=MiniAppSpec(**base))


def version_id(mac: Mac, app_id: str = APP, code: str = "1.0.0") -> int:
    vid = mac.state().version_id(app_id, code)
    assert vid is not None
    return vid


async def test_apply_converges_and_a_second_apply_writes_nothing(mac: Mac) -> None:
    desired = [app(), app(OTHER, name="Tea Time", icon=None)]
    plan, result, writes = await mac.apply(desired)
    assert result.ok and result.applied == len(plan.changes)
    assert writes == len(plan.changes)  # exactly one write per change
    # the server really has it
    vid = version_id(mac)
    assert mac.sandbox.version_status(APP, vid) == "ready"
    assert mac.sandbox.compatibilities(APP, vid) == {1, 2}
    assert mac.sandbox.count_apps() == 2
    # convergence
    again = await mac.plan(desired)
    assert again.changes == (), [c.address for c in again.changes]
    _, second, writes = await mac.apply(desired)
    assert writes == 0 and second.results == []


async def test_edits_converge(mac: Mac) -> None:
    await mac.apply([app()])
    edited = app(
        name="Coffee!",
        attributes={"COUNTRY": "Chile"},
        locations=[{"name": "Central", "geo_point": "POINT(1 2)"}],
        versions=[
            {"code": "1.0.0", "platform_id": "iOS", "main_name": "start", "main_type": "Menu",
             "compatibility": [2, 3], "status": "ready"},
            {"code": "1.1.0", "platform_id": "iOS", "main_name": "start", "main_type": "Panel",
             "status": "in_review"},
        ],
    )
    plan, result, _ = await mac.apply([edited])
    assert result.ok
    kinds = {(c.resource, c.action) for c in plan.changes}
    assert {("miniapp", "update"), ("attribute", "update"), ("attribute", "delete"),
            ("location", "update"), ("location", "delete"), ("version", "update"),
            ("version", "create"), ("compatibility", "create"),
            ("compatibility", "delete")} <= kinds
    assert (await mac.plan([edited])).changes == ()
    assert mac.sandbox.compatibilities(APP, version_id(mac)) == {2, 3}
    assert mac.sandbox.version_status(APP, version_id(mac, code="1.1.0")) == "in_review"


async def test_failed_change_skips_only_its_dependents(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/miniapps/[^/]+/versions$", "400"))
    _, result, _ = await mac.apply([app()])
    outcomes = {r.change.address: r.outcome for r in result.results}
    version_addr = f"miniapp[{APP}].version[1.0.0]"
    assert outcomes[version_addr] == "failed"
    dependents = [a for a in outcomes if a.startswith(version_addr + ".")]
    assert dependents and all(outcomes[a] == "skipped" for a in dependents)
    independent = [a for a in outcomes if a != version_addr and a not in dependents]
    assert independent and all(outcomes[a] == "applied" for a in independent)
    failed = next(r for r in result.results if r.outcome == "failed")
    assert "injected failure" in (failed.message or "")
    # the refused create left no intent behind: re-running is the fix
    assert "1.0.0" not in mac.state().apps[APP].versions
    _, again, _ = await mac.apply([app()])
    assert again.ok and (await mac.plan([app()])).changes == ()
    assert mac.sandbox.count_versions(APP) == 1


async def test_ambiguous_app_create_is_read_back_not_repeated(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/miniapps$", "ambiguous"))
    _, result, _ = await mac.apply([app()])
    assert result.ok
    creates = [t for t in mac.transports[-1].sent if t == ("POST", "/api/v1/miniapps")]
    assert len(creates) == 1  # the GET said it exists: no second create
    assert (await mac.plan([app()])).changes == ()


async def test_ambiguous_app_create_that_did_not_happen_is_created_once(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/miniapps$", "drop_before"))
    _, result, _ = await mac.apply([app()])
    assert result.ok
    assert mac.sandbox.count_apps() == 1


async def test_ambiguous_location_create_is_matched_by_name(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/locations$", "timeout_after", times=2))
    _, result, _ = await mac.apply([app()])
    assert result.ok
    assert sorted(loc["name"] for loc in mac.sandbox.list_locations(APP)) == [
        "Central", "Pocitos"
    ]
    assert (await mac.plan([app()])).changes == ()


async def test_ambiguous_version_create_is_never_repeated_and_can_be_adopted(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/versions$", "ambiguous"))
    _, result, _ = await mac.apply([app()])
    failed = [r for r in result.results if r.outcome == "failed"]
    assert [r.change.resource for r in failed] == ["version"]
    assert "state adopt-version" in (failed[0].message or "")
    assert mac.state().apps[APP].versions["1.0.0"].create_outcome == UNKNOWN
    # the next plan refuses to create it again
    plan = await mac.plan([app()])
    assert not any(c.resource == "version" and c.action == "create" for c in plan.changes)
    assert any("adopt-version" in e.message for e in plan.errors)
    assert mac.sandbox.count_versions(APP) == 1
    # adopt it (as `reconciler state adopt-version` does) and converge
    store = mac.store
    state = store.read()
    from reconciler.state import VersionRecord

    server_id = 1  # the first version the sandbox ever created
    state.apps[APP].versions["1.0.0"] = VersionRecord(id=server_id, status="pending")
    store.save(state)
    _, adopted, _ = await mac.apply([app()])
    assert adopted.ok
    assert (await mac.plan([app()])).changes == ()
    assert mac.sandbox.count_versions(APP) == 1
    assert mac.sandbox.version_status(APP, server_id) == "ready"


async def test_ambiguous_status_step_becomes_unknown_with_instructions(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/in_review$", "ambiguous"))
    _, result, _ = await mac.apply([app()])
    failed = [r for r in result.results if r.outcome == "failed"]
    assert [r.change.step for r in failed] == ["in_review"]
    assert "set-status" in (failed[0].message or "")
    assert mac.state().apps[APP].versions["1.0.0"].status == UNKNOWN
    plan = await mac.plan([app()])
    assert any("set-status" in e.message for e in plan.errors)


async def test_retryable_faults_are_retried_transparently(mac: Mac) -> None:
    mac.faults.extend(
        [
            Fault("POST", r"/attributes$", "500", times=0),  # not retryable (500): unused
            Fault("PUT", r"/miniapps/", "drop_before"),
            Fault("GET", r"/miniapps/[^/]+$", "drop_before", times=2),
        ]
    )
    await mac.apply([app()])
    _, result, _ = await mac.apply([app(name="Renamed")])
    assert result.ok
    assert mac.sandbox.get_miniapp(APP)["name"] == "Renamed"


async def test_prune_deletes_only_with_flag_and_never_protected(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea")])
    plan = await mac.plan([app()])
    assert plan.changes == () and "--prune" in plan.warnings[0].message
    pruned, result, _ = await mac.apply([app()], prune=True)
    assert [c.address for c in pruned.changes] == [f"miniapp[{OTHER}]"]
    assert result.ok and mac.sandbox.count_apps() == 1
    assert OTHER not in mac.state().apps


async def test_protection_is_remembered_and_lifted_only_by_an_applied_manifest(mac: Mac) -> None:
    protected = app(name="Safe").model_copy(update={"protect": True})
    await mac.apply([protected])
    assert mac.state().apps[APP].protect is True
    # the YAML vanished: prune must refuse
    plan = await mac.plan([], prune=True)
    assert any("protected" in e.message for e in plan.errors)
    # ensure: absent without protect: false applied first is still refused
    gone = MiniApp(id=APP, spec=MiniAppSpec(ensure="absent"))
    assert any("protected" in e.message for e in (await mac.plan([gone])).errors)
    # apply `protect: false` (no API write), then the delete is allowed
    _, _, writes = await mac.apply([app(name="Safe")])
    assert writes == 0 and mac.state().apps[APP].protect is False
    _, result, _ = await mac.apply([gone])
    assert result.ok and mac.sandbox.count_apps() == 0


async def test_plan_reads_each_needed_resource_exactly_once(mac: Mac) -> None:
    from reconciler.pipeline import make_plan
    from tests.fixtures_pipeline import IDENTITY

    desired = [app(), app(OTHER, name="Tea", locations=None)]
    await mac.apply(desired)
    async with mac.client() as client:
        plan = await make_plan(client, desired, mac.state(), identity=IDENTITY)
        requests = dict(client.stats.by_request)
        assert client.stats.writes == 0
    assert plan.changes == ()
    vid = version_id(mac)
    other_vid = version_id(mac, OTHER)
    assert requests == {
        f"GET /api/v1/miniapps/{APP}": 1,
        f"GET /api/v1/miniapps/{APP}/locations": 1,
        f"GET /api/v1/miniapps/{APP}/versions/{vid}": 1,
        f"GET /api/v1/miniapps/{OTHER}": 1,
        # OTHER does not manage locations: they are not read
        f"GET /api/v1/miniapps/{OTHER}/versions/{other_vid}": 1,
    }


# --- regressions from review -----------------------------------------------------------


async def test_status_waits_for_a_compatibility_delete(mac: Mac) -> None:
    first = app(versions=[{"code": "1.0.0", "platform_id": "iOS", "main_name": "s",
                           "main_type": "Panel", "compatibility": [1, 2],
                           "status": "pending"}])
    await mac.apply([first])
    second = app(versions=[{"code": "1.0.0", "platform_id": "iOS", "main_name": "s",
                            "main_type": "Panel", "compatibility": [1], "status": "ready"}])
    mac.faults.append(Fault("POST", r"/compatibility/delete$", "400"))
    _, result, _ = await mac.apply([second])
    outcomes = [(r.change.resource, r.change.action, r.outcome) for r in result.results]
    assert ("compatibility", "delete", "failed") in outcomes
    assert all(o == "skipped" for res, _, o in outcomes if res == "status")
    assert mac.sandbox.version_status(APP, version_id(mac)) == "pending"


async def test_status_waits_for_its_version_update(mac: Mac) -> None:
    first = app(versions=[{"code": "1.0.0", "platform_id": "iOS", "main_name": "s",
                           "main_type": "Panel", "status": "pending"}])
    await mac.apply([first])
    second = app(versions=[{"code": "1.0.0", "platform_id": "iOS", "main_name": "new",
                            "main_type": "Panel", "status": "waiting_for_review"}])
    mac.faults.append(Fault("PUT", r"/versions/\d+$", "400"))
    _, result, _ = await mac.apply([second])
    outcomes = {r.change.resource: r.outcome for r in result.results}
    assert outcomes == {"version": "failed", "status": "skipped"}
    assert mac.sandbox.version_status(APP, version_id(mac)) == "pending"


async def test_server_fault_on_a_version_create_is_ambiguous(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/versions$", "500"))
    _, result, _ = await mac.apply([app()])
    failed = [r for r in result.results if r.outcome == "failed"]
    assert [r.change.resource for r in failed] == ["version"]
    assert mac.state().apps[APP].versions["1.0.0"].create_outcome == UNKNOWN


async def test_an_ambiguous_upload_is_not_an_unknown_version(
    mac: Mac, tmp_path: Any
) -> None:
    import hashlib

    content = b"metadata bytes"
    path = tmp_path / "meta.json"
    path.write_bytes(content)
    source = f"file:{path}#sha256={hashlib.sha256(content).hexdigest()}"
    desired = app(versions=[{"code": "1.0.0", "platform_id": "iOS", "main_name": "s",
                             "main_type": "Panel", "metadata": source}])
    mac.faults.append(Fault("POST", r"/gxobject$", "ambiguous"))
    _, result, _ = await mac.apply([desired])
    assert [r.change.resource for r in result.results if r.outcome == "failed"] == ["version"]
    # no version POST was sent: nothing to adopt, the next apply simply creates it
    assert "1.0.0" not in mac.state().apps[APP].versions
    _, again, _ = await mac.apply([desired])
    assert again.ok and mac.sandbox.count_versions(APP) == 1


# --- the dispatch is a closed table (issue 11 §1) -----------------------------------------


def test_the_dispatch_table_is_exactly_the_plan_vocabulary() -> None:
    from reconciler.apply import DISPATCH
    from reconciler.plan import OPERATIONS

    assert set(DISPATCH) == OPERATIONS
    # the four review steps call four different endpoints, through four different methods
    steps = {key: handler for key, handler in DISPATCH.items() if key[0] == "status"}
    assert len(set(steps.values())) == 4


async def _run_plan(mac: Mac, plan: Any) -> tuple[Any, int]:
    from reconciler.apply import Executor

    store = mac.store
    with store.lock("apply"):
        state = store.load("sandbox:test")
        async with mac.client() as client:
            executor = Executor(client, store, state, plan)
            result = await executor.run()
            writes = client.stats.writes
        store.save(state)
    return result, writes


async def test_a_status_step_naming_another_operation_is_never_executed(mac: Mac) -> None:
    """Even if a plan reached the executor unvalidated: a step is looked up in the table,
    never resolved as a client method (`delete_location` was, before)."""
    import dataclasses

    plan = await mac.plan([app()])
    forged = tuple(
        dataclasses.replace(c, step="delete_location") if c.resource == "status" else c
        for c in plan.changes
    )
    result, _ = await _run_plan(mac, dataclasses.replace(plan, changes=forged))
    failed = [r for r in result.results if r.outcome == "failed"]
    assert failed and all(r.change.resource == "status" for r in failed)
    assert all("no operation for status update" in (r.message or "") for r in failed)
    assert [loc["name"] for loc in mac.sandbox.list_locations(APP)] == ["Central", "Pocitos"]


async def test_a_bad_payload_fails_only_its_change(mac: Mac) -> None:
    """The executor's own isolation (an in-process plan: saved plans never get here)."""
    import dataclasses

    plan = await mac.plan([app(), app(OTHER, name="Tea Time", icon=None)])
    broken = tuple(
        dataclasses.replace(c, payload={"superapp_version": "one"})
        if c.resource == "compatibility" and c.app_id == APP
        else c
        for c in plan.changes
    )
    result, _ = await _run_plan(mac, dataclasses.replace(plan, changes=broken))
    by_app = {r.change.app_id for r in result.results if r.outcome == "applied"}
    assert OTHER in by_app
    failed = [r for r in result.results if r.outcome == "failed"]
    assert failed and all(r.change.resource == "compatibility" for r in failed)
    assert all("payload for this change is invalid" in (r.message or "") for r in failed)
