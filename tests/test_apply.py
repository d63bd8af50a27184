"""Apply against the in-process sandbox: convergence, zero-write reapply, partial failures,
ambiguous writes resolved by re-reading, never a duplicate."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.providers.miniappcenter.apply import STEP_RESENDS
from reconciler.providers.miniappcenter.model import MiniApp, MiniAppSpec
from reconciler.providers.miniappcenter.vocabulary import LEARN_STATUS
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
    kinds = {(c.kind, c.action) for c in plan.changes}
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
    outcomes = {str(r.change.address): r.outcome for r in result.results}
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


@pytest.mark.parametrize("mode", ["ambiguous", "timeout_after"])
async def test_ambiguous_version_create_is_found_by_reading_in_the_same_run(
    mac: Mac, mode: str
) -> None:
    mac.faults.append(Fault("POST", r"/versions$", mode))  # the write happens, no answer
    _, result, _ = await mac.apply([app()])
    assert result.ok, [(r.change.address, r.message) for r in result.results]
    created = next(r for r in result.results if r.change.kind == "version")
    assert "found it by reading: id 1 (1 reads)" in (created.message or "")
    assert result.probe_reads == 1  # stops at the first match
    record = mac.state().apps[APP].versions["1.0.0"]
    assert record.create_outcome is None and record.id == 1
    # never created twice, and the version went all the way (its steps ran after it)
    assert mac.sandbox.count_versions(APP) == 1
    assert mac.sandbox.version_status(APP, 1) == "ready"
    assert (await mac.plan([app()])).changes == ()


async def test_unanswered_version_create_that_did_not_land_is_sent_again(mac: Mac) -> None:
    # 500 before the write: the probe finds nothing above the mark, so it did not land; it is
    # sent once more (a late landing would be refused as a duplicate code, never doubled).
    mac.faults.append(Fault("POST", r"/versions$", "500"))
    _, result, _ = await mac.apply([app()])
    assert result.ok, [(r.change.address, r.message) for r in result.results]
    created = next(r for r in result.results if r.change.kind == "version")
    assert "did not find it, so it was sent again" in (created.message or "")
    assert mac.sandbox.count_versions(APP) == 1
    assert (await mac.plan([app()])).changes == ()


async def test_a_found_create_records_its_file_by_content_not_by_upload_id(
    mac: Mac, tmp_path: Any
) -> None:
    # The version found after an unanswered create is recorded like a created one: a
    # file-sourced metadata by its digest, so the next plan has nothing to re-upload.
    import hashlib

    content = b"metadata bytes"
    path = tmp_path / "meta.json"
    path.write_bytes(content)
    source = f"file:{path}#sha256={hashlib.sha256(content).hexdigest()}"
    desired = app(versions=[{"code": "1.0.0", "platform_id": "iOS", "main_name": "s",
                             "main_type": "Panel", "metadata": source}])
    mac.faults.append(Fault("POST", r"/versions$", "ambiguous"))
    _, result, _ = await mac.apply([desired])
    assert result.ok, [(r.change.address, r.message) for r in result.results]
    recorded = mac.state().apps[APP].versions["1.0.0"].objects["metadata"].object_id
    assert recorded.startswith("sha256:")
    assert (await mac.plan([desired])).changes == ()


async def test_a_late_commit_found_after_the_probe_is_adopted_not_doubled(mac: Mac) -> None:
    # The first create times out and the server commits it only after the probe read its id
    # as free; the second send is refused as a duplicate: it is looked for above the mark
    # taken before the FIRST send (where it is), not above where the probe stopped.
    mac.faults.append(Fault("POST", r"/versions$", "late_commit"))
    _, result, _ = await mac.apply([app()])
    assert result.ok, [(r.change.address, r.message) for r in result.results]
    created = next(r for r in result.results if r.change.kind == "version")
    assert "refused as a duplicate code: it already existed" in (created.message or "")
    assert mac.sandbox.count_versions(APP) == 1
    assert mac.state().apps[APP].versions["1.0.0"].id == 1
    assert (await mac.plan([app()])).changes == ()


async def test_create_without_answer_twice_is_resolved_by_the_next_plan(mac: Mac) -> None:
    # Both sends unanswered, the second one landed: the next plan finds it by reading (never
    # a second version), above where the first probe stopped.
    mac.faults.extend(
        [Fault("POST", r"/versions$", "500"), Fault("POST", r"/versions$", "ambiguous")]
    )
    _, result, _ = await mac.apply([app()])
    failed = [r for r in result.results if r.outcome == "failed"]
    assert [r.change.kind for r in failed] == ["version"]
    assert "the next run looks for it again" in (failed[0].message or "")
    intent = mac.state().apps[APP].versions["1.0.0"]
    assert intent.create_outcome == UNKNOWN and intent.probe_from == 0
    assert intent.probed_to is None  # the ids read before the second send prove nothing
    plan = await mac.plan([app()])
    assert not plan.errors
    [adopt] = plan.adoptions
    assert adopt.version_id == 1 and adopt.fresh and adopt.reads == 1
    _, again, _ = await mac.apply([app()])
    assert again.ok
    assert mac.sandbox.count_versions(APP) == 1
    assert (await mac.plan([app()])).changes == ()


async def test_version_that_exists_beyond_the_probe_window_makes_only_its_app_stuck(
    mac: Mac,
) -> None:
    other = app(OTHER, name="Tea", icon=None)
    third = app("com.genexus.verdant.third", name="Third", icon=None)
    await mac.apply([other])  # version id 1
    await mac.apply([third])  # version id 2
    await mac.apply([app()])  # version id 3
    store = mac.store
    state = store.read()
    del state.apps[APP].versions["1.0.0"]  # the state forgets it
    del state.apps[third.id]  # ... and the app whose version id 2 is
    store.save(state)
    # window 1: one read; id 1 (recorded for OTHER) costs none, id 2 is not APP's
    _, result, _ = await mac.apply([app(), other], probe_window=1)
    failed = [r for r in result.results if r.outcome == "failed"]
    assert [str(r.change.address) for r in failed] == [f"miniapp[{APP}].version[1.0.0]"]
    record = mac.state().apps[APP].versions["1.0.0"]
    assert record.create_outcome == "exists" and record.probed_to == 2
    plan = await mac.plan([app(), other], probe_window=1)
    assert plan.stuck_apps == {} and [a.version_id for a in plan.adoptions] == [3]
    # ... and had the next window also missed, only this app would be stuck:
    state = store.read()
    state.apps[APP].versions["1.0.0"] = record.model_copy(update={"probed_to": 5})
    store.save(state)
    plan = await mac.plan([app(), other], probe_window=3)
    assert list(plan.stuck_apps) == [APP]
    [error] = plan.errors
    assert error.scope == "app" and "--probe-window" in error.message
    assert "reading version ids 6-8 (3 reads)" in error.message
    _, stuck, writes = await mac.apply([app(), other.model_copy()], probe_window=3)
    assert stuck.stuck == {APP: error.message} and writes == 0
    assert mac.sandbox.count_versions(APP) == 1


async def test_duplicate_code_refusal_means_it_exists_and_is_adopted(mac: Mac) -> None:
    await mac.apply([app()])
    vid = version_id(mac)
    # the state forgets the version (as after `state rm --version`, or a lost record)
    store = mac.store
    state = store.read()
    del state.apps[APP].versions["1.0.0"]
    state.version_id_mark = 0
    store.save(state)
    _, result, _ = await mac.apply([app()])
    assert result.ok, [(r.change.address, r.message) for r in result.results]
    created = next(r for r in result.results if r.change.kind == "version")
    assert "refused as a duplicate code: it already existed" in (created.message or "")
    assert f"id {vid}" in (created.message or "")
    # Its steps were planned for a new version: the first one learnt the status (ready: the
    # server refused every step), the others were settled with it. No person, one run.
    steps = [r.message for r in result.results if r.change.kind == "status"]
    assert steps[0] is not None and steps[0].startswith("status learnt and set: ready")
    assert all(m == "settled with the version's first status change" for m in steps[1:])
    assert mac.state().apps[APP].versions["1.0.0"].id == vid
    assert (await mac.plan([app()])).changes == ()
    assert mac.sandbox.count_versions(APP) == 1


@pytest.mark.parametrize("mode", ["ambiguous", "timeout_after", "500"])
async def test_ambiguous_status_step_is_re_sent_and_settles(mac: Mac, mode: str) -> None:
    mac.faults.append(Fault("POST", r"/in_review$", mode))
    _, result, _ = await mac.apply([app()])
    assert result.ok, [(r.change.address, r.message) for r in result.results]
    step = next(r for r in result.results if r.change.step == "in_review")
    assert "re-sent" in (step.message or "")
    vid = version_id(mac)
    assert mac.state().apps[APP].versions["1.0.0"].status == "ready"
    assert mac.sandbox.version_status(APP, vid) == "ready"
    assert (await mac.plan([app()])).changes == ()


async def test_status_step_without_answer_is_learnt_on_the_next_run(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/in_review$", "ambiguous", times=1 + STEP_RESENDS))
    _, result, _ = await mac.apply([app()])
    failed = [r for r in result.results if r.outcome == "failed"]
    assert [r.change.step for r in failed] == ["in_review"]
    record = mac.state().apps[APP].versions["1.0.0"]
    assert record.status == UNKNOWN
    assert record.status_candidates == ["waiting_for_review", "in_review"]
    plan = await mac.plan([app()])
    assert not plan.errors
    learn = [c for c in plan.changes if c.key == LEARN_STATUS]
    assert len(learn) == 1 and learn[0].before == {
        "status": UNKNOWN, "candidates": ["waiting_for_review", "in_review"]
    }
    _, again, _ = await mac.apply([app()])
    assert again.ok
    assert mac.sandbox.version_status(APP, version_id(mac)) == "ready"
    assert (await mac.plan([app()])).changes == ()


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
    assert [str(c.address) for c in pruned.changes] == [f"miniapp[{OTHER}]"]
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
    from reconciler.providers.miniappcenter.planning import make_plan
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
    outcomes = [(r.change.kind, r.change.action, r.outcome) for r in result.results]
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
    outcomes = {r.change.kind: r.outcome for r in result.results}
    assert outcomes == {"version": "failed", "status": "skipped"}
    assert mac.sandbox.version_status(APP, version_id(mac)) == "pending"


async def test_server_fault_on_a_version_create_is_ambiguous(mac: Mac) -> None:
    # A 500 may come after the commit (D16): never a blind second POST; read first.
    mac.faults.append(Fault("POST", r"/versions$", "500"))
    _, result, _ = await mac.apply([app()])
    assert result.ok
    sent = [t for t in mac.transports[-1].sent if "/versions" in t[1]]
    posts = [i for i, (method, path) in enumerate(sent) if method == "POST"
             and path.endswith("/versions")]
    assert len(posts) == 2
    between = sent[posts[0] + 1 : posts[1]]
    assert between and all(method == "GET" for method, _ in between)


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
    assert [r.change.kind for r in result.results if r.outcome == "failed"] == ["version"]
    # no version POST was sent: nothing to adopt, the next apply simply creates it
    assert "1.0.0" not in mac.state().apps[APP].versions
    _, again, _ = await mac.apply([desired])
    assert again.ok and mac.sandbox.count_versions(APP) == 1


# --- the dispatch is a closed table (issue 11 §1) -----------------------------------------


def test_the_dispatch_table_is_exactly_the_plan_vocabulary() -> None:
    from reconciler.providers.miniappcenter.apply import _STEP_CALLS, DISPATCH
    from reconciler.providers.miniappcenter.client import MiniAppCenterClient
    from reconciler.providers.miniappcenter.vocabulary import OPERATIONS

    assert set(DISPATCH) == OPERATIONS
    # the four review steps call four different endpoints, each its own, through a closed
    # table keyed by the step (never a name looked up on the client)
    steps = {step for resource, _, step in OPERATIONS if resource == "status" and step}
    assert set(_STEP_CALLS) == steps
    assert {name: call.__name__ for name, call in _STEP_CALLS.items()} == {s: s for s in steps}
    assert len(set(_STEP_CALLS.values())) == 4
    assert all(getattr(MiniAppCenterClient, s) is _STEP_CALLS[s] for s in steps)


async def _run_plan(mac: Mac, plan: Any) -> tuple[Any, int]:
    from reconciler.providers.miniappcenter.apply import Executor

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
        dataclasses.replace(c, step="delete_location") if c.kind == "status" else c
        for c in plan.changes
    )
    result, _ = await _run_plan(mac, dataclasses.replace(plan, changes=forged))
    failed = [r for r in result.results if r.outcome == "failed"]
    assert failed and all(r.change.kind == "status" for r in failed)
    assert all("no operation for status update" in (r.message or "") for r in failed)
    assert [loc["name"] for loc in mac.sandbox.list_locations(APP)] == ["Central", "Pocitos"]


async def test_a_bad_payload_fails_only_its_change(mac: Mac) -> None:
    """The executor's own isolation (an in-process plan: saved plans never get here)."""
    import dataclasses

    plan = await mac.plan([app(), app(OTHER, name="Tea Time", icon=None)])
    broken = tuple(
        dataclasses.replace(c, payload={"superapp_version": "one"})
        if c.kind == "compatibility" and c.app_id == APP
        else c
        for c in plan.changes
    )
    result, _ = await _run_plan(mac, dataclasses.replace(plan, changes=broken))
    by_app = {r.change.app_id for r in result.results if r.outcome == "applied"}
    assert OTHER in by_app
    failed = [r for r in result.results if r.outcome == "failed"]
    assert failed and all(r.change.kind == "compatibility" for r in failed)
    assert all("payload for this change is invalid" in (r.message or "") for r in failed)
