"""Drift: pure classification table, then the CLI against the sandbox with changes made
outside the tool through the API; import round trip."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.address import parse_address
from reconciler.cli.main import main
from reconciler.engine.plan import Change, Plan
from reconciler.engine.render import render_drift
from reconciler.providers.miniappcenter.addresses import app_address
from reconciler.providers.miniappcenter.client import LocationBody, MiniAppUpdate
from reconciler.providers.miniappcenter.diff import CHANGED_OUTSIDE, DELETED_OUTSIDE
from reconciler.providers.miniappcenter.drift import classify
from reconciler.providers.miniappcenter.session import resolve_target
from reconciler.providers.miniappcenter.vocabulary import PROVIDER, ROOT_KINDS
from reconciler.state import AppRecord, LocationRecord, ObjectRef, State, VersionRecord

APP = "com.genexus.verdant.coffeemuffins"
ICON = "gxupload:" + "a" * 32
V1 = f"miniapp[{APP}].version[1.0]"
V2 = f"miniapp[{APP}].version[2.0]"


def change(resource: str, action: str, **kw: Any) -> Change:
    kw.setdefault("address", app_address(APP).child(resource))
    if isinstance(kw["address"], str):
        kw["address"] = parse_address(kw["address"], ROOT_KINDS)
    return Change(kind=resource, action=action, app_id=APP,  # type: ignore[arg-type]
                  before=kw.pop("before", None), after=kw.pop("after", None), **kw)


RECORD = AppRecord(
    fields={"name": "Coffee", "keywords": "a"},
    objects={"icon": ObjectRef(object_id=ICON, url="http://x/objects/a")},
    attributes={"COUNTRY": "Uruguay"},
    locations={"Central": LocationRecord(id=7, geo_point="POINT(1 2)")},
    versions={"1.0": VersionRecord(id=5, fields={"main_name": "s"}, status="pending")},
)


@pytest.mark.parametrize(
    ("the_change", "expected"),
    [
        # app fields: manifest == last applied -> someone changed it outside
        (change("miniapp", "update", before={"name": "Outside"}, after={"name": "Coffee"}),
         [("changed_outside", "name", "Coffee", "Outside", "Coffee")]),
        # manifest changed, not applied yet
        (change("miniapp", "update", before={"keywords": "a"}, after={"keywords": "b"}),
         [("pending", "keywords", "b", "a", "a")]),
        # image: same upload id applied, the live URL changed
        (change("miniapp", "update", before={"icon": "http://x/other"}, after={"icon": ICON},
                reason=CHANGED_OUTSIDE),
         [("changed_outside", "icon", ICON, "http://x/other", ICON)]),
        (change("miniapp", "create", after={"name": "Coffee"}, reason=DELETED_OUTSIDE),
         [("missing", None, {"name": "Coffee"}, None,
           {"name": "Coffee", "keywords": "a"})]),
        (change("attribute", "create", key="COUNTRY", after={"value": "Uruguay"}),
         [("missing", "value", "Uruguay", None, "Uruguay")]),
        (change("attribute", "create", key="NEW", after={"value": "x"}),
         [("pending", "value", "x", None, None)]),
        (change("attribute", "delete", key="STRAY", before={"value": "x"}),
         [("unmanaged", "value", None, "x", None)]),
        (change("attribute", "delete", key="COUNTRY", before={"value": "Uruguay"}),
         [("pending", "value", None, "Uruguay", "Uruguay")]),
        (change("attribute", "update", key="COUNTRY", before={"value": "Chile"},
                after={"value": "Uruguay"}),
         [("changed_outside", "value", "Uruguay", "Chile", "Uruguay")]),
        (change("location", "create", key="Central", after={"geo_point": "POINT(1 2)"}),
         [("missing", "geo_point", "POINT(1 2)", None, "POINT(1 2)")]),
        (change("location", "delete", key="Stray", target_id=9,
                before={"geo_point": "POINT(0 0)"}),
         [("unmanaged", "geo_point", None, "POINT(0 0)", None)]),
        (change("location", "update", key="Central", target_id=7,
                before={"geo_point": "POINT(3 3)"}, after={"geo_point": "POINT(1 2)"}),
         [("changed_outside", "geo_point", "POINT(1 2)", "POINT(3 3)", "POINT(1 2)")]),
        (change("version", "update", version_code="1.0", before={"main_name": "t"},
                after={"main_name": "s"}),
         [("changed_outside", "main_name", "s", "t", "s")]),
        (change("version", "create", version_code="1.0", after={"code": "1.0"},
                reason=DELETED_OUTSIDE),
         [("missing", None, {"code": "1.0"}, None, None)]),
        (change("compatibility", "create", version_code="1.0",
                after={"superapp_version": 3}),
         [("pending", None, {"superapp_version": 3}, None, None)]),
    ],
)
def test_classification(the_change: Change, expected: list[tuple[Any, ...]]) -> None:
    plan = Plan(endpoints={PROVIDER: "e"}, changes=(the_change,), apps=(APP,))
    report = classify(plan, State(apps={APP: RECORD}))
    got = [(i.kind, i.field, i.expected, i.live, i.last_applied) for i in report.items]
    assert got == expected


def test_an_app_deleted_outside_takes_only_what_was_applied() -> None:
    """What the state knew of a deleted app is missing; what the manifest added since is not."""
    record = RECORD.model_copy(
        update={"versions": {"1.0": VersionRecord(id=5, compatibility=[3], status="ready")}}
    )
    changes = (
        change("miniapp", "create", after={"name": "Coffee"}, reason=DELETED_OUTSIDE),
        change("version", "create", address=f"{V1}", version_code="1.0", after={"code": "1.0"}),
        change("version", "create", address=f"{V2}", version_code="2.0", after={"code": "2.0"}),
        change("compatibility", "create", address=f"{V1}.compatibility[3]", version_code="1.0",
               after={"superapp_version": 3}),
        change("compatibility", "create", address=f"{V1}.compatibility[4]", version_code="1.0",
               after={"superapp_version": 4}),
        change("status", "update", address=f"miniapp[{APP}].version[1.0].status[ready]",
               version_code="1.0", step="ready", before={"status": "in_review"},
               after={"status": "ready"}),
        change("status", "update", address=f"miniapp[{APP}].version[2.0].status[ready]",
               version_code="2.0", step="ready", before={"status": "in_review"},
               after={"status": "ready"}),
    )
    report = classify(Plan(endpoints={PROVIDER: "e"}, changes=changes, apps=(APP,)),
                      State(apps={APP: record}))
    assert [(str(i.address), i.kind) for i in report.items] == [
        (f"miniapp[{APP}].miniapp", "missing"),
        (f"miniapp[{APP}].version[1.0]", "missing"),
        (f"miniapp[{APP}].version[2.0]", "pending"),  # added to the manifest after the last apply
        (f"miniapp[{APP}].version[1.0].compatibility[3]", "missing"),
        (f"miniapp[{APP}].version[1.0].compatibility[4]", "pending"),
        (f"miniapp[{APP}].version[1.0].status", "missing"),
        (f"miniapp[{APP}].version[2.0].status", "pending"),
    ]


def test_status_steps_are_one_difference() -> None:
    steps = [
        change("status", "update", address=f"miniapp[{APP}].version[1.0].status[{step}]",
               version_code="1.0", step=step, before={"status": a}, after={"status": b})
        for step, a, b in [("send_to_review", "pending", "waiting_for_review"),
                           ("in_review", "waiting_for_review", "in_review")]
    ]
    report = classify(Plan(endpoints={PROVIDER: "e"}, changes=tuple(steps), apps=(APP,)),
                      State(apps={APP: RECORD}))
    ((kind, address, expected, last),) = [
        (i.kind, str(i.address), i.expected, i.last_applied) for i in report.items
    ]
    assert (kind, address, expected, last) == (
        "pending", f"miniapp[{APP}].version[1.0].status", "in_review", "pending"
    )


def test_in_sync_report_renders() -> None:
    report = classify(Plan(endpoints={PROVIDER: "e"}, changes=(), apps=(APP,)), State())
    assert report.in_sync
    assert "In sync" in render_drift(report, "text", color=False)
    assert json.loads(render_drift(report, "json", color=False))["in_sync"] is True


# --- CLI against the sandbox -------------------------------------------------------------


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shutil

    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(Path(__file__).resolve().parent.parent / "manifests", tmp_path / "fleet")
    (tmp_path / ".git").mkdir()  # a repository: its state and sandbox live at its root
    assert main(["apply", "fleet", "--sandbox", "--auto-approve"]) == 0
    return tmp_path


def outside(*calls: Any) -> None:
    """Changes made with the API itself, as a person in the backoffice would."""

    async def run() -> None:
        async with resolve_target(True, None).client(4) as client:
            for call in calls:
                await call(client)

    asyncio.run(run())


def drift_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["drift", "fleet", "--sandbox", "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_drift_in_sync_after_apply(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = drift_json(capsys)
    # 5 mini apps and 2 Akana apps
    assert code == 0 and report["in_sync"] and report["apps_checked"] == 7


def test_drift_classifies_outside_changes(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teatime, sweet = "com.genexus.verdant.teatime", "com.genexus.verdant.sweetcorner"

    async def rename(client: Any) -> None:
        live = await client.get_miniapp(teatime)
        renamed = MiniAppUpdate(
            name="Renamed outside", superapp_id=live.superapp_id, type=live.type
        )
        await client.update_miniapp(teatime, renamed)

    async def stray(client: Any) -> None:
        await client.set_attribute(teatime, "STRAY", "x")

    async def drop_location(client: Any) -> None:
        (first, *_) = await client.list_locations(sweet)
        await client.delete_location(sweet, first.id)

    outside(rename, stray, drop_location)
    state_before = (fleet / ".reconciler" / "sandbox-state.json").read_bytes()
    code, report = drift_json(capsys, "--out", "drift.json")
    assert code == 2
    got = sorted((i["kind"], i["address"], i.get("field")) for i in report["items"])
    assert got == [
        ("changed_outside", f"miniapp[{teatime}]", "name"),
        ("missing", f"miniapp[{sweet}].location[Carrasco]", "geo_point"),
        ("unmanaged", f"miniapp[{teatime}].attribute[STRAY]", "value"),
    ]
    renamed = next(i for i in report["items"] if i["kind"] == "changed_outside")
    assert (renamed["live"], renamed["expected"]) == ("Renamed outside", "Tea Time")
    assert json.loads((fleet / "drift.json").read_text()) == report
    # read-only: the state did not move
    assert (fleet / ".reconciler" / "sandbox-state.json").read_bytes() == state_before
    # markdown for a scheduled job's summary
    capsys.readouterr()
    assert main(["drift", "fleet", "--sandbox", "--format", "markdown"]) == 2
    markdown = capsys.readouterr().out
    assert markdown.startswith("<!-- miniapp-reconciler drift -->")
    assert "| changed outside | 1 |" in markdown
    # apply repairs it, then drift is clean again
    assert main(["apply", "fleet", "--sandbox", "--auto-approve"]) == 0
    assert drift_json(capsys)[0] == 0


def test_drift_reports_a_deleted_app_as_missing(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def delete(client: Any) -> None:
        await client.delete_miniapp("com.genexus.verdant.splitbill")

    outside(delete)
    code, report = drift_json(capsys)
    assert code == 2
    kinds = {(i["kind"], i["resource"]) for i in report["items"]
             if i["app_id"] == "com.genexus.verdant.splitbill"}
    assert ("missing", "miniapp") in kinds
    # Everything the app held was applied before and went with it: missing, not pending.
    assert {kind for kind, _ in kinds} == {"missing"}, sorted(kinds)
    assert {resource for _, resource in kinds} >= {"miniapp", "version", "compatibility"}


def test_drift_pending_when_manifest_changed(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fleet / "fleet" / "cafe" / "coffeemuffins.yaml"
    text = path.read_text()
    assert "name: Coffee & Muffins" in text
    path.write_text(text.replace("name: Coffee & Muffins", "name: Coffee and Muffins"))
    code, report = drift_json(capsys)
    assert code == 2
    assert [(i["kind"], i["field"]) for i in report["items"]] == [("pending", "name")]


def test_drift_cannot_check_is_exit_1(fleet: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAC_BASE_URL", "http://127.0.0.1:9/api")  # nothing listens there
    monkeypatch.setenv("MAC_API_TOKEN", "t0ken")
    capsys.readouterr()
    code = main(["drift", "fleet", "--format", "json", "--parallelism", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert "In sync" not in captured.out


def test_import_round_trip(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app_id = "com.outside.made"

    async def create(client: Any) -> None:
        from reconciler.providers.miniappcenter.client import MiniAppCreate, VersionCreate

        await client.create_miniapp(MiniAppCreate(
            id=app_id, name="Made outside", superapp_id="com.genexus.verdantbank",
            type="web", keywords="a  b", icon=ICON))
        await client.set_attribute(app_id, "COUNTRY", "Peru")
        await client.create_location(app_id, LocationBody(name="Lima",
                                                          geo_point="POINT (-77.04 -12.05)"))
        created = await client.create_version(app_id, VersionCreate(
            code="1.0", platform_id="iOS", main_name="m", main_type="panel"))
        (fleet / "vid").write_text(str(created.id))

    outside(create)
    vid = (fleet / "vid").read_text()
    capsys.readouterr()
    assert main(["import", app_id, "--out", "imported", "--version", f"1.0={vid}",
                 "--label", "team=ops", "--sandbox"]) == 0
    err = capsys.readouterr().err
    assert "not imported" in err and "icon" in err
    text = (fleet / "imported" / f"{app_id}.yaml").read_text()
    assert "team: ops" in text and 'code: "1.0"' in text
    assert main(["validate", "imported"]) == 0
    capsys.readouterr()
    code = main(["plan", "imported", "--sandbox", "--detailed-exitcode", "--format", "json"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0, plan["changes"]
    assert plan["changes"] == []
    # refuses to overwrite a manifest, or a record the state already keeps (its version ids
    # and protection would be lost)
    assert main(["import", app_id, "--out", "imported", "--sandbox"]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["import", app_id, "--out", "other", "--sandbox"]) == 1
    assert "already managed" in capsys.readouterr().err
    # a wrong version id is a clear error
    assert main(["state", "rm", app_id, "--sandbox"]) == 0
    assert main(["import", app_id, "--out", "other", "--version", "1.0=999",
                 "--sandbox"]) == 1
    assert "1.0=999" in capsys.readouterr().err


def test_a_file_sourced_image_replaced_outside_is_changed_outside() -> None:
    digest = "d" * 64
    record = AppRecord(objects={"icon": ObjectRef(object_id=f"sha256:{digest}", url="http://x/a")})
    the_change = change("miniapp", "update", before={"icon": "http://x/other"},
                        after={"icon": f"file:icons/a.png#sha256={digest}"},
                        reason=CHANGED_OUTSIDE)
    report = classify(Plan(endpoints={PROVIDER: "e"}, changes=(the_change,), apps=(APP,)),
                      State(apps={APP: record}))
    assert [(i.kind, i.field) for i in report.items] == [("changed_outside", "icon")]
