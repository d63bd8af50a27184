"""A saved Akana plan: read back as it was written, and refused whole when anything in it is
not what this provider writes (a plan is data, never code)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.engine.plan import Plan
from reconciler.errors import PlanError
from reconciler.providers.akana.diff import diff
from reconciler.providers.akana.live import LiveAkana, LiveApp, LiveVersion
from reconciler.providers.akana.model import AkanaApp, AkanaVersion
from reconciler.providers.akana.provider import AKANA
from reconciler.providers.akana.records import AkanaSection, AppRecord, VersionRecord
from reconciler.providers.akana.vocabulary import OPERATIONS


def _version(version_id: str, name: str) -> LiveVersion:
    fields = {"description": "", "tags": [], "visibility": "Public", "website_address": ""}
    return LiveVersion(version_id, name, fields)


def saved_plan() -> dict[str, Any]:
    live = LiveAkana((
        LiveApp("a1.x", "Shop", {"summary": "old", "description": "", "picture_id": ""},
                versions=(_version("v1.x", "1.0"), _version("v15.x", "1.5"))),
        LiveApp("b2.x", "Theirs", {"summary": "", "description": "", "picture_id": ""},
                versions=(_version("t1.x", "1"),)),
    ))
    section = AkanaSection({"Shop": AppRecord(id="a1.x", versions={"1.0": VersionRecord(
        id="v1.x")})})
    desired = [
        AkanaApp(name="Shop", summary="new", versions=(
            AkanaVersion(name="1.5", description="x"), AkanaVersion(name="2.0"))),
        AkanaApp(name="New", versions=(AkanaVersion(name="1"), AkanaVersion(name="2"))),
        AkanaApp(name="Theirs", adopt=True, versions=(AkanaVersion(name="1"),)),
    ]
    result = diff(desired, live, section)
    plan = Plan(endpoints={"akana": "https://akana.example"}, changes=result.changes,
                warnings=result.warnings, errors=result.errors, apps=result.apps,
                app_meta=result.app_meta, learned=result.learned)
    data: dict[str, Any] = json.loads(json.dumps(plan.as_dict()))
    return data


def test_a_saved_plan_reads_back_as_it_was_written() -> None:
    data = saved_plan()
    assert {(c["kind"], c["action"]) for c in data["changes"]} == {
        (kind, action) for kind, action, _ in OPERATIONS
    } - {("akana_app", "delete")}
    assert data["learned"] == [{"address": "akana_app[Theirs]", "app_id": "Theirs",
                                "server_id": "b2.x", "versions": {"1": "t1.x"}}]
    plan = AKANA.load_saved_plan(data, "plan.json")
    assert plan.as_dict() == data


def _change(index: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["changes"][index].update(values)
    return edit


def _payload(index: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["changes"][index]["payload"].update(values)
    return edit


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return edit


TAMPERED = [
    ("another provider", _change(0, provider="miniappcenter"), "provider"),
    ("an unknown kind", _change(0, kind="status"), "kind"),
    ("a step", _change(0, step="ready"), "step"),
    ("an unknown field", _change(0, target_id=3), "target_id"),
    ("an address of another kind", _change(0, address="akana_app[New].version[1]"),
     "provider and kind do not match"),
    ("an address of another provider", _change(0, address="miniapp[New]"), "not valid"),
    ("an app_id that is not the address's", _change(0, app_id="Other"), "app_id does not"),
    ("a body field the API does not have", _payload(0, Secret="x"), "not a valid AppCreate"),
    ("a body naming another app", _payload(0, Name="Other"), "Name is not the name"),
    ("a delete with a body", _change(-1, payload={"Name": "1.0"}), "a delete sends no body"),
    ("a delete without its id", _change(-1, before={"name": "1.0"}), "before.id"),
    ("a summary that lies", _set(("summary", "delete"), 0), "summary"),
    ("a bad depends_on", _change(1, depends_on=["nothing"]), "not valid"),
    ("another endpoint provider", _set(("endpoints",), {"rest": "x"}), "endpoints"),
    ("an adoption with extras", _set(("learned", 0, "code"), "x"), "code"),
]


@pytest.mark.parametrize(("edit", "fragment"), [t[1:] for t in TAMPERED],
                         ids=[t[0] for t in TAMPERED])
def test_a_tampered_plan_is_refused_whole(
    edit: Callable[[dict[str, Any]], None], fragment: str
) -> None:
    data = copy.deepcopy(saved_plan())
    # The changes: New create, New version 2 create, Shop update, Shop 2.0 create,
    # Shop 1.0 delete, Theirs (adopted) nothing; check the layout the edits rely on.
    assert data["changes"][0]["action"] == "create"
    assert data["changes"][-1]["action"] == "delete"
    edit(data)
    with pytest.raises(PlanError) as caught:
        AKANA.load_saved_plan(data, "plan.json")
    message = str(caught.value)
    assert fragment in message and "Nothing was applied" in message


def test_the_provider_object_describes_itself() -> None:
    assert (AKANA.name, AKANA.title, AKANA.root_kind) == ("akana", "Akana API Platform",
                                                         "akana_app")
    assert set(AKANA.manifest_kinds) == {("akana/v1", "App")}
    assert AKANA.levels == {"akana_app": 0, "version": 1}
