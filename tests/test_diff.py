"""Table-driven tests of the pure diff: desired + live + state -> plan. No HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.engine.plan import Plan, order_changes
from reconciler.providers.miniappcenter.diff import (
    PlanOptions,
    build_plan,
    field_changes,
    status_path,
)
from reconciler.providers.miniappcenter.model import (
    LiveApp,
    Location,
    MiniApp,
    MiniAppSpec,
    ProbeHit,
    ProbeMiss,
    Version,
)
from reconciler.providers.miniappcenter.review import STATUSES
from reconciler.providers.miniappcenter.vocabulary import LEARN_STATUS, LEVELS
from reconciler.state import UNKNOWN, AppRecord, ObjectRef, State, VersionRecord

APP = "com.genexus.verdant.coffeemuffins"
ICON = "gxupload:" + "a" * 32
ICON2 = "gxupload:" + "b" * 32
META = "gxupload:" + "c" * 32
URL = "http://127.0.0.1/api/v1/objects/" + "a" * 32
META_URL = "http://127.0.0.1/api/v1/objects/" + "c" * 32


def desired(**spec: Any) -> MiniApp:
    base: dict[str, Any] = {
        "name": "Coffee & Muffins",
        "superapp_id": "com.genexus.verdantbank",
        "type": "Native",
    }
    base.update(spec)
    protect = base.pop("_protect", False)
    return MiniApp(id=APP, protect=protect, spec=MiniAppSpec(**base))


def live(
    *,
    locations: list[tuple[int, str, str]] | None = None,
    versions: dict[str, tuple[int, dict[str, Any]]] | None = None,
    attributes: dict[str, str] | None = None,
    **fields: Any,
) -> LiveApp:
    values: dict[str, Any] = {
        "name": "Coffee & Muffins",
        "superapp_id": "com.genexus.verdantbank",
        "type": "Native",
    }
    values.update(fields)
    locs = locations or []
    location_ids: dict[str, tuple[int, ...]] = {}
    models = []
    for loc_id, name, point in locs:
        if name in location_ids:
            location_ids[name] += (loc_id,)
            continue
        location_ids[name] = (loc_id,)
        models.append(Location(name=name, geo_point=point))
    version_models = [
        Version.model_construct(code=code, compatibility=None, status=None, **vals)
        for code, (_vid, vals) in (versions or {}).items()
    ]
    spec = MiniAppSpec.model_construct(
        ensure="present",
        attributes=attributes or {},
        locations=tuple(models) if locations is not None else None,
        versions=tuple(version_models),
        **{k: values.get(k) for k in (
            "name", "description", "superapp_id", "type", "keywords", "icon", "card", "banner",
            "organization_id",
        )},
    )
    return LiveApp(
        app=MiniApp.model_construct(id=APP, labels={}, protect=False, spec=spec),
        location_ids=location_ids,
        version_ids={code: vid for code, (vid, _) in (versions or {}).items()},
        locations_read=locations is not None,
    )


def plan_of(
    app: MiniApp | list[MiniApp],
    live_app: LiveApp | None,
    state: State | None = None,
    **options: Any,
) -> Plan:
    apps = app if isinstance(app, list) else [app]
    return build_plan(
        apps,
        {APP: live_app},
        state or State(),
        endpoint="http://127.0.0.1/api",
        options=PlanOptions(**options),
    )


def addresses(plan: Plan) -> list[tuple[str, str]]:
    return [(c.action, str(c.address)) for c in plan.changes]


def state_with(record: AppRecord, app_id: str = APP) -> State:
    return State(apps={app_id: record})


# --- creates -----------------------------------------------------------------------------


def test_new_app_is_created_with_all_parts_in_dependency_order() -> None:
    app = desired(
        attributes={"COUNTRY": "Uruguay"},
        locations=[{"name": "Central", "geo_point": "POINT(1 2)"}],
        versions=[
            {
                "code": "1.0.0",
                "platform_id": "iOS",
                "main_name": "start",
                "main_type": "Panel",
                "compatibility": [2, 1],
                "status": "ready",
            }
        ],
    )
    plan = plan_of(app, None)
    prefix = f"miniapp[{APP}]"
    assert addresses(plan) == [
        ("create", prefix),
        ("create", f"{prefix}.attribute[COUNTRY]"),
        ("create", f"{prefix}.location[Central]"),
        ("create", f"{prefix}.version[1.0.0]"),
        ("create", f"{prefix}.version[1.0.0].compatibility[1]"),
        ("create", f"{prefix}.version[1.0.0].compatibility[2]"),
        ("update", f"{prefix}.version[1.0.0].status[send_to_review]"),
        ("update", f"{prefix}.version[1.0.0].status[in_review]"),
        ("update", f"{prefix}.version[1.0.0].status[ready]"),
    ]
    create = plan.changes[0]
    assert create.payload == {
        "id": APP,
        "name": "Coffee & Muffins",
        "superapp_id": "com.genexus.verdantbank",
        "type": "Native",
    }
    # every part depends on the app create; status steps chain
    assert all(prefix in map(str, c.depends_on) for c in plan.changes[1:])
    steps = plan.changes[-3:]
    assert steps[0].address in steps[1].depends_on
    assert steps[1].address in steps[2].depends_on
    assert plan.summary == {"create": 6, "update": 3, "delete": 0}


def test_converged_app_has_no_changes() -> None:
    app = desired(
        keywords="coffee  cafe",
        icon=ICON,
        attributes={"COUNTRY": "Uruguay"},
        locations=[{"name": "Central", "geo_point": "POINT(-56.16 -34.92)"}],
        versions=[{"code": "1.0", "platform_id": "iOS", "main_name": "s", "main_type": "panel",
                   "metadata": META, "compatibility": [1], "status": "ready"}],
    )
    current = live(
        keywords="coffee cafe",
        icon=URL,
        attributes={"COUNTRY": "Uruguay"},
        locations=[(7, "Central", "POINT (-56.160 -34.92)")],
        versions={"1.0": (5, {"platform_id": "iOS", "main_name": "s", "main_type": "Panel",
                              "metadata": META_URL})},
        type="native",
    )
    # live values come in as the server wrote them; normalise like fetch does
    current = _normalised(current)
    record = AppRecord(
        objects={"icon": ObjectRef(object_id=ICON, url=URL)},
        versions={"1.0": VersionRecord(id=5, compatibility=[1], status="ready",
                                       objects={"metadata": ObjectRef(object_id=META,
                                                                      url=META_URL)})},
    )
    plan = plan_of(app, current, state_with(record))
    assert plan.changes == ()
    assert plan.errors == ()


def _normalised(current: LiveApp) -> LiveApp:
    from reconciler.providers.miniappcenter.fetch import live_app

    class Obj:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    spec = current.app.spec
    data = Obj(
        id=APP, **{f: getattr(spec, f) for f in (
            "name", "description", "superapp_id", "type", "keywords", "icon", "card", "banner",
            "organization_id")},
        additional_attributes=[Obj(field=k, value=v) for k, v in (spec.attributes or {}).items()],
    )
    locations = [
        Obj(id=ids[0], name=name, geo_point=spec_loc.geo_point)
        for name, ids in current.location_ids.items()
        for spec_loc in spec.locations or ()
        if spec_loc.name == name
    ]
    versions = {
        v.code: Obj(id=current.version_ids[v.code], code=v.code, platform_id=v.platform_id,
                    metadata=v.metadata, integrated_security=v.integrated_security,
                    main_name=v.main_name, main_type=v.main_type, service_url=v.service_url)
        for v in spec.versions or ()
    }
    return live_app(APP, data, locations, versions)


# --- unmanaged fields and formatting -----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "live_fields"),
    [
        ({}, {"description": "set in the backoffice"}),  # unmanaged field: never diffed
        ({"type": "WEB"}, {"type": "Web"}),  # type case
        ({"keywords": " a   b "}, {"keywords": "a b"}),  # keyword spacing
    ],
)
def test_no_phantom_changes(spec: dict[str, Any], live_fields: dict[str, Any]) -> None:
    plan = plan_of(desired(**spec), live(**live_fields))
    assert plan.changes == ()


def test_location_wkt_formatting_is_not_a_change() -> None:
    app = desired(locations=[{"name": "A", "geo_point": "POINT( -56.10  -34.900 )"}])
    plan = plan_of(app, live(locations=[(1, "A", "POINT(-56.1 -34.9)")]))
    assert plan.changes == ()


def test_changed_field_is_an_update_with_field_level_diff() -> None:
    plan = plan_of(desired(name="New name", description="d"), live(description="d"))
    (change,) = plan.changes
    assert (change.action, change.kind) == ("update", "miniapp")
    assert change.before == {"name": "Coffee & Muffins"}
    assert change.after == {"name": "New name"}
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("name", "Coffee & Muffins", "New name")
    ]
    # a PUT carries every managed plain field
    assert change.payload == {
        "name": "New name",
        "description": "d",
        "superapp_id": "com.genexus.verdantbank",
        "type": "Native",
    }


# --- image fields --------------------------------------------------------------------------


def test_image_equal_to_last_applied_is_no_change_despite_url() -> None:
    record = AppRecord(objects={"icon": ObjectRef(object_id=ICON, url=URL)})
    plan = plan_of(desired(icon=ICON), live(icon=URL), state_with(record))
    assert plan.changes == ()


def test_new_image_id_is_an_update_that_sends_only_that_image() -> None:
    record = AppRecord(
        objects={
            "icon": ObjectRef(object_id=ICON, url=URL),
            "card": ObjectRef(object_id=ICON, url=URL),
        }
    )
    plan = plan_of(desired(icon=ICON2, card=ICON), live(icon=URL, card=URL), state_with(record))
    (change,) = plan.changes
    assert change.after == {"icon": ICON2}
    assert "card" not in (change.payload or {})  # upload ids expire: send only changed ones
    assert change.reason is None


def test_image_replaced_outside_is_reverted_and_flagged() -> None:
    record = AppRecord(objects={"icon": ObjectRef(object_id=ICON, url=URL)})
    plan = plan_of(desired(icon=ICON), live(icon=URL + "-other"), state_with(record))
    (change,) = plan.changes
    assert change.after == {"icon": ICON}
    assert change.reason == "changed outside since the last apply"


def test_image_never_applied_is_sent() -> None:
    plan = plan_of(desired(icon=ICON), live(icon=URL))
    assert [c.after for c in plan.changes] == [{"icon": ICON}]


# --- attributes and locations: the whole set ------------------------------------------------


def test_attributes_whole_set() -> None:
    app = desired(attributes={"A": "1", "B": "new"})
    plan = plan_of(app, live(attributes={"B": "old", "C": "stray"}))
    assert [(c.action, c.key, c.before, c.after) for c in plan.changes] == [
        ("create", "A", None, {"value": "1"}),
        ("update", "B", {"value": "old"}, {"value": "new"}),
        ("delete", "C", {"value": "stray"}, None),
    ]


def test_attributes_left_out_are_not_managed() -> None:
    plan = plan_of(desired(), live(attributes={"C": "stray"}))
    assert plan.changes == ()


def test_locations_matched_by_name() -> None:
    app = desired(
        locations=[
            {"name": "Central", "geo_point": "POINT(1 2)"},
            {"name": "New", "geo_point": "POINT(3 4)"},
        ]
    )
    current = live(locations=[(10, "Central", "POINT(1 3)"), (11, "Old", "POINT(0 0)")])
    plan = plan_of(app, current)
    got = [(c.action, c.key, c.target_id) for c in plan.changes]
    assert got == [("update", "Central", 10), ("create", "New", None), ("delete", "Old", 11)]
    update = plan.changes[0]
    assert update.payload == {"name": "Central", "geo_point": "POINT(1 2)"}


def test_duplicate_live_location_names_delete_the_extras() -> None:
    app = desired(locations=[{"name": "A", "geo_point": "POINT(1 2)"}])
    plan = plan_of(app, live(locations=[(1, "A", "POINT(1 2)"), (2, "A", "POINT(1 2)")]))
    assert [(c.action, c.target_id) for c in plan.changes] == [("delete", 2)]


# --- versions ------------------------------------------------------------------------------


def _version(**kw: Any) -> dict[str, Any]:
    base = {"code": "1.0", "platform_id": "iOS", "main_name": "s", "main_type": "Panel"}
    base.update(kw)
    return base


def test_version_update_compat_and_status_against_state() -> None:
    app = desired(versions=[_version(main_name="t", compatibility=[2, 3], status="ready")])
    current = live(versions={"1.0": (5, {"platform_id": "iOS", "main_name": "s",
                                         "main_type": "Panel"})})
    record = AppRecord(
        versions={"1.0": VersionRecord(id=5, compatibility=[1, 2], status="in_review")}
    )
    plan = plan_of(app, current, state_with(record))
    got = [(c.kind, c.action, c.key) for c in plan.changes]
    # the status step waits for the version update and both compatibility changes (the
    # delete included, although deletes otherwise run last)
    assert got == [
        ("version", "update", "1.0"),
        ("compatibility", "create", "3"),
        ("compatibility", "delete", "1"),
        ("status", "update", "ready"),
    ]
    version_addr = f"miniapp[{APP}].version[1.0]"
    assert all(version_addr in map(str, c.depends_on) for c in plan.changes[1:])
    assert {c.address for c in plan.changes[1:3]} <= set(plan.changes[3].depends_on)
    assert plan.changes[0].target_id == 5
    assert plan.changes[0].after == {"main_name": "t"}


def test_version_dropped_from_manifest_is_reported_not_deleted() -> None:
    app = desired(versions=[_version(code="2.0")])
    record = AppRecord(versions={"1.0": VersionRecord(id=5, status="ready")})
    plan = plan_of(app, live(), state_with(record))
    assert [(c.action, c.key) for c in plan.changes] == [
        ("create", "2.0"),
    ]
    assert any("cannot delete versions" in w.message for w in plan.warnings)


def test_new_code_is_a_new_version() -> None:
    app = desired(versions=[_version(code="1.1")])
    record = AppRecord(versions={"1.0": VersionRecord(id=5, status="pending")})
    current = live(versions={"1.0": (5, {"platform_id": "iOS"})})
    plan = plan_of(app, current, state_with(record))
    assert [(c.kind, c.action, c.key) for c in plan.changes] == [
        ("version", "create", "1.1")
    ]


def test_version_deleted_outside_is_recreated() -> None:
    app = desired(versions=[_version()])
    record = AppRecord(versions={"1.0": VersionRecord(id=5, status="pending")})
    plan = plan_of(app, live(), state_with(record))
    (change,) = plan.changes
    assert (change.action, change.reason) == ("create", "deleted outside since the last apply")


def test_unreachable_status_is_a_plan_error_not_a_crash() -> None:
    app = desired(versions=[_version(status="pending")])
    current = live(versions={"1.0": (5, {"platform_id": "iOS", "main_name": "s",
                                         "main_type": "Panel"})})
    record = AppRecord(versions={"1.0": VersionRecord(id=5, status="ready")})
    plan = plan_of(app, current, state_with(record))
    assert plan.changes == ()
    (error,) = plan.errors
    assert "cannot go from 'ready' to 'pending'" in error.message
    assert str(error.address) == f"miniapp[{APP}].version[1.0]"


def test_unreachable_status_only_makes_its_app_stuck() -> None:
    app = desired(versions=[_version(status="pending")])
    current = live(versions={"1.0": (5, {"platform_id": "iOS", "main_name": "s",
                                         "main_type": "Panel"})})
    record = AppRecord(versions={"1.0": VersionRecord(id=5, status="ready")})
    plan = plan_of(app, current, state_with(record))
    assert plan.errors[0].scope == "app" and list(plan.stuck_apps) == [APP]
    assert plan.fleet_errors == ()


def _with_probe(current: LiveApp, code: str, hit: ProbeHit | None, miss: ProbeMiss) -> LiveApp:
    """``current`` as recover.py leaves it after a probe for ``code``."""
    if hit is None:
        return current.model_copy(update={"not_found": {code: miss}})
    fields = {"platform_id": "iOS", "main_name": "s", "main_type": "Panel"}
    spec = current.app.spec.model_copy(
        update={"versions": (Version.model_construct(code=code, compatibility=None,
                                                      status=None, metadata=None,
                                                      integrated_security=None,
                                                      service_url=None, **fields),)}
    )
    return current.model_copy(
        update={"app": current.app.model_copy(update={"spec": spec}),
                "version_ids": {code: hit.id}, "recovered": {code: hit}}
    )


def test_unanswered_create_found_exactly_is_adopted_as_a_fresh_pending_version() -> None:
    app = desired(versions=[_version(status="waiting_for_review", compatibility=[3])])
    record = AppRecord(versions={"1.0": VersionRecord(create_outcome=UNKNOWN, probe_from=40)})
    current = _with_probe(live(), "1.0", ProbeHit((41, 41), 1, 41, True), ProbeMiss((0, 0), 0))
    plan = plan_of(app, current, state_with(record))
    assert plan.errors == ()
    (learned,) = plan.learned
    assert (learned.code, learned.version_id, learned.fresh, learned.reads) == ("1.0", 41, True, 1)
    assert plan.summary["adopt"] == 1 and plan.has_changes
    # brand new: compatibility and the steps from pending are planned, no version create
    assert addresses(plan) == [
        ("create", f"miniapp[{APP}].version[1.0].compatibility[3]"),
        ("update", f"miniapp[{APP}].version[1.0].status[send_to_review]"),
    ]


def test_unanswered_create_not_found_above_the_mark_is_created_again() -> None:
    app = desired(versions=[_version()])
    record = AppRecord(versions={"1.0": VersionRecord(create_outcome=UNKNOWN, probe_from=7)})
    current = _with_probe(live(), "1.0", None, ProbeMiss((8, 263), 256))
    plan = plan_of(app, current, state_with(record))
    assert plan.errors == ()
    (change,) = plan.changes
    assert (change.kind, change.action) == ("version", "create")
    assert "created again" in (change.reason or "")
    (learned,) = plan.learned  # how far it read, recorded by apply
    assert learned.probed == (8, 263) and not learned.adopts


def test_version_the_server_says_exists_but_not_found_makes_only_its_app_stuck() -> None:
    app = desired(versions=[_version()])
    record = AppRecord(
        versions={"1.0": VersionRecord(create_outcome="exists", probe_from=0, probed_to=256)}
    )
    current = _with_probe(live(), "1.0", None, ProbeMiss((257, 512), 256))
    plan = plan_of(app, current, state_with(record), probe_window=256)
    assert plan.changes == ()
    (error,) = plan.errors
    assert error.scope == "app" and error.app_id == APP
    assert "reading version ids 257-512 (256 reads)" in error.message
    assert "next run reads on from id 513" in error.message
    assert "--probe-window 2048" in error.message
    assert "adopt-version" not in error.message  # never a request for an id nobody can see


def test_app_unknown_to_the_state_is_adopted_with_its_found_versions() -> None:
    app = desired(versions=[_version(status="ready")])
    current = _with_probe(live(), "1.0", ProbeHit((1, 16), 16, 9, True), ProbeMiss((0, 0), 0))
    plan = plan_of(app, current, State())  # a lost state file
    assert [(item.code, item.version_id, item.fresh) for item in plan.learned] == [
        (None, None, False), ("1.0", 9, False),
    ]
    # its status is unknown: one change learns it (by steps the server refuses)
    (learn,) = [c for c in plan.changes if c.kind == "status"]
    assert learn.key == LEARN_STATUS and learn.after == {"status": "ready"}
    assert learn.before == {"status": UNKNOWN, "candidates": list(STATUSES)}


@pytest.mark.parametrize(
    ("candidates", "desired_status", "planned"),
    [
        (None, "ready", "learn"),  # ready can always be learnt
        (None, "pending", "stuck"),  # no step is safe: every one could leave pending
        (["pending", "rejected", "ready"], "rejected", "stuck"),
        (["waiting_for_review", "in_review"], "ready", "learn"),
        (["in_review"], "ready", "steps"),  # one candidate: the status is known
    ],
)
def test_unknown_status_is_learnt_or_named_for_its_app_only(
    candidates: list[str] | None, desired_status: str, planned: str
) -> None:
    app = desired(versions=[_version(status=desired_status)])
    current = live(versions={"1.0": (5, {"platform_id": "iOS", "main_name": "s",
                                         "main_type": "Panel"})})
    record = AppRecord(versions={"1.0": VersionRecord(
        id=5, status=UNKNOWN, status_candidates=candidates, compatibility=[])})
    plan = plan_of(app, current, state_with(record))
    if planned == "stuck":
        (error,) = plan.errors
        assert error.scope == "version" and plan.changes == ()
        assert plan.stuck_apps == {}  # the rest of the app is still applied
        assert "state set-status" in error.message and "one of" in error.message
    elif planned == "learn":
        assert plan.errors == () and [c.key for c in plan.changes] == [LEARN_STATUS]
    else:
        assert plan.errors == () and [c.step for c in plan.changes] == ["ready"]


def test_first_contact_warns_that_the_endpoint_may_be_wrong() -> None:
    plan = plan_of(desired(), None, State())
    assert any("MAC_BASE_URL points at the wrong server" in w.message for w in plan.warnings)
    # an app that exists there, or a state that knows the endpoint: no such warning
    assert not any("wrong server" in w.message for w in plan_of(desired(), live()).warnings)
    known = state_with(AppRecord())
    assert not any("wrong server" in w.message for w in plan_of(desired(), None, known).warnings)


@pytest.mark.parametrize(
    ("current", "target", "steps"),
    [
        ("pending", "pending", []),
        ("pending", "waiting_for_review", ["send_to_review"]),
        ("pending", "ready", ["send_to_review", "in_review", "ready"]),
        ("pending", "rejected", ["send_to_review", "in_review", "rejected"]),
        ("rejected", "ready", ["send_to_review", "in_review", "ready"]),
        ("in_review", "rejected", ["rejected"]),
        ("ready", "pending", None),
        ("ready", "rejected", None),
        ("waiting_for_review", "pending", None),
    ],
)
def test_status_path(current: str, target: str, steps: list[str] | None) -> None:
    path = status_path(current, target)
    assert (None if path is None else [step for step, _ in path]) == steps


# --- deletes, prune, protect, max-deletes --------------------------------------------------


def test_ensure_absent_deletes_live_app() -> None:
    app = MiniApp(id=APP, spec=MiniAppSpec(ensure="absent"))
    plan = plan_of(app, live())
    assert addresses(plan) == [("delete", f"miniapp[{APP}]")]
    assert plan_of(app, None).changes == ()


def test_protect_refuses_delete_from_manifest_or_state() -> None:
    absent = MiniApp(id=APP, protect=True, spec=MiniAppSpec(ensure="absent"))
    assert "protected" in plan_of(absent, live()).errors[0].message
    # protection remembered in the state: a manifest without `protect` cannot lift it in the
    # same plan that deletes
    unprotected = MiniApp(id=APP, spec=MiniAppSpec(ensure="absent"))
    plan = plan_of(unprotected, live(), state_with(AppRecord(protect=True)))
    assert "protected" in plan.errors[0].message


def test_orphans_need_prune_and_respect_protection() -> None:
    other = "com.genexus.other"
    state = State(apps={APP: AppRecord(), other: AppRecord(protect=True)})
    live_apps: dict[str, LiveApp | None] = {APP: live(), other: live()}
    plan = build_plan([], live_apps, state, endpoint="e")
    assert plan.changes == ()
    assert "will NOT be deleted without --prune" in plan.warnings[0].message
    pruned = build_plan([], live_apps, state, endpoint="e", options=PlanOptions(prune=True))
    # sorted by app id: deterministic
    assert [(c.action, c.app_id) for c in pruned.changes] == [
        ("delete", other),
        ("delete", APP),
    ]
    assert [e.app_id for e in pruned.errors] == [other]


def test_prune_never_reaches_outside_the_selection() -> None:
    other = "com.genexus.other"
    state = State(
        apps={APP: AppRecord(labels={"team": "a"}), other: AppRecord(labels={"team": "b"})}
    )
    in_scope = lambda _id, rec: rec.labels.get("team") == "a"  # noqa: E731
    plan = build_plan(
        [], {APP: live(), other: live()}, state, endpoint="e",
        options=PlanOptions(prune=True, in_scope=in_scope),
    )
    assert [c.app_id for c in plan.changes] == [APP]


def test_max_deletes_refuses_the_plan() -> None:
    app = desired(attributes={})
    plan = plan_of(app, live(attributes={"A": "1", "B": "2"}), max_deletes=1)
    assert plan.delete_count == 2
    assert "more than --max-deletes 1" in plan.errors[0].message
    assert plan_of(app, live(attributes={"A": "1", "B": "2"}), max_deletes=2).errors == ()


# --- ordering and helpers ------------------------------------------------------------------


def test_order_puts_deletes_last_in_reverse_level() -> None:
    app = desired(
        attributes={},
        locations=[],
        versions=[_version(compatibility=[])],
    )
    current = live(
        attributes={"X": "1"},
        locations=[(3, "L", "POINT(0 0)")],
        versions={"1.0": (5, {"platform_id": "iOS", "main_name": "s", "main_type": "Panel"})},
        name="Old",
    )
    record = AppRecord(versions={"1.0": VersionRecord(id=5, compatibility=[4], status="pending")})
    plan = plan_of(app, current, state_with(record))
    assert [(c.action, c.kind) for c in plan.changes] == [
        ("update", "miniapp"),
        ("delete", "compatibility"),
        ("delete", "attribute"),
        ("delete", "location"),
    ]
    # levels decide the order whatever order the changes come in (stable inside a level,
    # which keeps status steps in sequence)
    shuffled = order_changes(reversed(plan.changes), LEVELS)
    assert [(c.action, LEVELS[c.kind]) for c in shuffled] == [
        ("update", 0), ("delete", 3), ("delete", 1), ("delete", 1)
    ]


def test_field_changes_uses_paths() -> None:
    got = field_changes({"a": 1, "b": [1, 2]}, {"a": 2, "b": [1, 2], "c": "x"})
    assert [(f.path, f.before, f.after) for f in got] == [("a", 1, 2), ("c", None, "x")]
    assert field_changes({"a": 1}, {"a": 1}) == ()


def test_ordering_a_large_app_is_linear_and_keeps_dependencies() -> None:
    from reconciler.engine.plan import Change as PlanChange
    from reconciler.providers.miniappcenter.addresses import app_address, location_address

    app_change = PlanChange(address=app_address("x"), kind="miniapp", action="create",
                            app_id="x", before=None, after={})
    locations = [
        PlanChange(address=location_address("x", str(i)), kind="location", action="create",
                   app_id="x", before=None, after={}, depends_on=(app_address("x"),))
        for i in range(6000)
    ]
    ordered = order_changes([*reversed(locations), app_change], LEVELS)
    assert ordered[0] is app_change
    assert ordered[1:] == list(reversed(locations))  # stable inside a level
