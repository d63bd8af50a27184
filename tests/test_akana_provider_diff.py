"""The Akana diff, pure: desired apps + a live picture + the state's section -> changes and
problems (no HTTP). Also the drift classification of its plans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.engine.plan import Plan
from reconciler.providers.akana.diff import UNMANAGED, AkanaDiff, diff
from reconciler.providers.akana.drift import classify
from reconciler.providers.akana.live import LiveAkana, LiveApp, LiveVersion, fingerprints
from reconciler.providers.akana.model import AkanaApp, AkanaVersion
from reconciler.providers.akana.records import (
    AkanaSection,
    AkanaSectionError,
    AppRecord,
    VersionRecord,
)
from reconciler.state import ProviderState, State


def version(name: str, **fields: Any) -> AkanaVersion:
    return AkanaVersion(name=name, **fields)


def app(name: str = "Shop", *versions: str, **fields: Any) -> AkanaApp:
    return AkanaApp(name=name, versions=tuple(version(v) for v in versions), **fields)


def live_app(name: str = "Shop", *versions: str, app_id: str = "a1.x", **fields: Any) -> LiveApp:
    base = {"summary": "", "description": "", "picture_id": ""}
    return LiveApp(
        app_id,
        name,
        {**base, **fields},
        versions=tuple(
            LiveVersion(f"{app_id}.v{v}", v, {"description": "", "tags": [],
                                              "visibility": "Public", "website_address": ""})
            for v in versions
        ),
    )


def recorded(name: str = "Shop", app_id: str = "a1.x", *versions: str, **kw: Any) -> AkanaSection:
    return AkanaSection({name: AppRecord(
        id=app_id, versions={v: VersionRecord(id=f"{app_id}.v{v}") for v in versions}, **kw
    )})


def lines(result: AkanaDiff) -> list[str]:
    return [f"{c.action} {c.address}" for c in result.changes]


def test_a_new_app_is_created_with_its_first_version_then_the_others() -> None:
    result = diff([app("Shop", "1.0", "2.0", summary="s")], LiveAkana(), AkanaSection())
    assert lines(result) == ["create akana_app[Shop]", "create akana_app[Shop].version[2.0]"]
    create, add = result.changes
    assert create.payload == {"Name": "Shop", "Summary": "s",
                              "ApplicationVersion": {"Name": "1.0"}}
    assert add.depends_on == (create.address,)
    assert (result.errors, result.learned) == ((), ())


def test_only_managed_fields_are_compared_and_the_put_keeps_the_others() -> None:
    live = LiveAkana((live_app("Shop", "1.0", summary="old", picture_id="p9"),))
    result = diff([app("Shop", "1.0", summary="new")], live, recorded("Shop", "a1.x", "1.0"))
    [change] = result.changes
    assert (change.action, [(f.path, f.before, f.after) for f in change.fields]) == (
        "update", [("summary", "old", "new")]
    )
    assert change.payload == {"Name": "Shop", "Summary": "new", "Description": "",
                              "PictureID": "p9"}
    assert change.before is not None and change.before["id"] == "a1.x"


def test_a_replaced_version_is_added_before_the_old_one_is_deleted() -> None:
    live = LiveAkana((live_app("Shop", "1.0"),))
    result = diff([app("Shop", "2.0")], live, recorded("Shop", "a1.x", "1.0"))
    assert lines(result) == ["create akana_app[Shop].version[2.0]",
                             "delete akana_app[Shop].version[1.0]"]
    add, delete = result.changes
    assert delete.depends_on == (add.address,)
    assert delete.before == {"id": "a1.x.v1.0", "name": "1.0", "description": "", "tags": [],
                             "visibility": "Public", "website_address": ""}


def test_a_changed_version_is_updated_with_every_field_in_its_body() -> None:
    live = LiveAkana((live_app("Shop", "1.0"),))
    result = diff([AkanaApp(name="Shop", versions=(version("1.0", tags=("a",)),))], live,
                  recorded("Shop", "a1.x", "1.0"))
    [change] = result.changes
    assert (str(change.address), change.action, change.key) == (
        "akana_app[Shop].version[1.0]", "update", "1.0")
    assert change.payload == {"Name": "1.0", "Description": "", "Tag": ["a"],
                              "Visibility": "Public", "WebsiteAddress": ""}


@pytest.mark.parametrize("adopt", [False, True])
def test_an_app_the_state_does_not_record_is_refused_unless_adopted(adopt: bool) -> None:
    live = LiveAkana((live_app("Shop", "1.0", "0.9", summary="theirs"),))
    result = diff([app("Shop", "1.0", summary="ours", adopt=adopt)], live, AkanaSection())
    if not adopt:
        assert result.changes == ()
        assert [(e.message, e.scope, e.app_id) for e in result.errors] == [
            (UNMANAGED, "app", "Shop")]
        return
    assert result.errors == ()
    assert [(a.server_id, dict(a.versions)) for a in result.learned] == [
        ("a1.x", {"1.0": "a1.x.v1.0", "0.9": "a1.x.v0.9"})]
    assert lines(result) == ["update akana_app[Shop]", "delete akana_app[Shop].version[0.9]"]


def test_two_apps_of_one_name_are_an_app_error() -> None:
    live = LiveAkana((live_app("Shop", "1", app_id="a.x"), live_app("Shop", "1", app_id="b.x")))
    result = diff([app("Shop", "1", adopt=True)], live, AkanaSection())
    assert result.changes == () and [e.scope for e in result.errors] == ["app"]


def test_an_app_deleted_outside_is_created_again() -> None:
    result = diff([app("Shop", "1.0")], LiveAkana(), recorded("Shop", "gone.x", "1.0"))
    [change] = result.changes
    assert (change.action, change.reason) == ("create", "missing on the server (deleted outside)")


def test_an_app_renamed_outside_is_named_back() -> None:
    live = LiveAkana((live_app("Shop 2", "1.0"),))
    [change] = diff([app("Shop", "1.0")], live, recorded("Shop", "a1.x", "1.0")).changes
    assert [(f.path, f.before, f.after) for f in change.fields] == [("name", "Shop 2", "Shop")]
    assert change.payload is not None and change.payload["Name"] == "Shop"


@pytest.mark.parametrize(
    ("desired", "section", "prune", "expected", "errors", "warned"),
    [
        # ensure: absent deletes a managed app, and nothing when it is gone already
        ([AkanaApp(name="Shop", ensure="absent")], recorded(), False,
         ["delete akana_app[Shop]"], [], False),
        ([AkanaApp(name="Gone", ensure="absent")], AkanaSection(), False, [], [], False),
        # a recorded app no manifest declares: a warning, deleted only with --prune
        ([], recorded(), False, [], [], True),
        ([], recorded(), True, ["delete akana_app[Shop]"], [], False),
        # protection refuses the delete for the whole plan
        ([], recorded(protect=True), True, ["delete akana_app[Shop]"], ["fleet"], False),
    ],
)
def test_deletes_prune_and_protect(
    desired: list[AkanaApp], section: AkanaSection, prune: bool, expected: list[str],
    errors: list[str], warned: bool,
) -> None:
    live = LiveAkana((live_app("Shop", "1.0"),))
    result = diff(desired, live, section, prune=prune)
    assert lines(result) == expected
    assert [e.scope for e in result.errors] == errors
    assert bool(result.warnings) == warned


def test_an_unrecorded_app_is_never_pruned() -> None:
    live = LiveAkana((live_app("Theirs", "1"),))
    assert diff([], live, AkanaSection(), prune=True).changes == ()


def test_drift_tells_changed_outside_from_pending() -> None:
    section = recorded("Shop", "a1.x", "1.0", fields={"summary": "ours", "description": "d"})
    live = LiveAkana((live_app("Shop", "1.0", summary="edited", description="d"),))
    desired = [app("Shop", "1.0", summary="ours", description="new d")]
    result = diff(desired, live, section)
    plan = Plan(endpoints={"akana": "https://akana.example"}, changes=result.changes,
                errors=result.errors, apps=result.apps)
    report = classify(plan, section)
    assert sorted((i.kind, i.field) for i in report.items) == [
        ("changed_outside", "summary"), ("pending", "description")]
    assert report.endpoint == "https://akana.example"


def test_a_live_visibility_the_body_cannot_carry_is_left_out_of_it() -> None:
    live_version = LiveVersion("v.x", "1.0", {"description": "", "tags": [],
                                              "visibility": "Registered", "website_address": ""})
    live = LiveAkana((LiveApp("a1.x", "Shop", {"summary": ""}, versions=(live_version,)),))
    desired = [AkanaApp(name="Shop", versions=(version("1.0", description="d"),))]
    [change] = diff(desired, live, recorded("Shop", "a1.x", "1.0")).changes
    assert change.payload == {"Name": "1.0", "Description": "d", "Tag": [],
                              "WebsiteAddress": ""}


def test_fingerprints_name_each_existing_app_a_plan_changes_and_move_with_it() -> None:
    section = recorded("Shop", "a1.x", "1.0")
    desired = [app("Shop", "1.0", summary="new"), app("New", "1")]
    live = LiveAkana((live_app("Shop", "1.0", summary="old"),))
    changes = diff(desired, live, section).changes
    prints = fingerprints(changes, live)
    assert [str(a) for a in prints] == ["akana_app[Shop]"]  # New has nothing to read yet
    moved = LiveAkana((live_app("Shop", "1.0", summary="edited"),))
    assert fingerprints(changes, moved) != prints
    assert fingerprints(changes, LiveAkana((live_app("Shop", "1.0", summary="old"),))) == prints


def test_drift_tells_missing_and_unmanaged() -> None:
    section = recorded("Shop", "gone.x", "1.0", fields={"summary": "s"})
    live = LiveAkana((live_app("Theirs", "1"),))
    result = diff([app("Shop", "1.0", summary="s"), app("Theirs", "1")], live, section)
    plan = Plan(endpoints={"akana": "e"}, changes=result.changes, errors=result.errors)
    report = classify(plan, section)
    assert sorted((i.kind, str(i.address)) for i in report.items) == [
        ("missing", "akana_app[Shop]"), ("unmanaged", "akana_app[Theirs]")]
    assert report.errors == ()


def test_the_section_round_trips_through_the_state_file() -> None:
    state = State()
    state.bind("akana", "https://akana.example")
    section = recorded("Shop", "a1.x", "1.0", protect=True, labels={"team": "t"},
                       fields={"summary": "s"})
    state.providers["akana"].resources = section.to_resources()
    again = State.from_file(json.loads(json.dumps(state.to_file())))
    assert AkanaSection.from_resources(again.providers["akana"].resources).apps == section.apps
    assert again.providers["akana"].endpoint == "https://akana.example"
    assert AkanaSection.from_resources(ProviderState().resources).apps == {}
    damaged = State.from_file(json.loads(json.dumps(state.to_file())))
    damaged.providers["akana"].resources["akana_app"]["Shop"]["id"] = 7
    with pytest.raises(AkanaSectionError) as caught:
        AkanaSection.from_resources(damaged.providers["akana"].resources)
    assert "app 'Shop' is damaged" in str(caught.value)
