"""The REST diff is pure: desired objects + live listings + the state's section -> a plan.
Also: addresses round-trip, saved plans are validated whole, drift is classified."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from reconciler.address import parse_address
from reconciler.engine.plan import Plan
from reconciler.errors import PlanError
from reconciler.providers.registry import PROVIDERS
from reconciler.providers.rest.diff import (
    ADOPTED,
    CHANGED_OUTSIDE,
    DELETED_OUTSIDE,
    LiveRest,
    RestPlanOptions,
    build_plan,
)
from reconciler.providers.rest.drift import classify
from reconciler.providers.rest.model import RestObject, json_equal
from reconciler.providers.rest.provider import REST
from reconciler.providers.rest.records import RestRecord, put_record, read_records
from reconciler.providers.rest.vocabulary import (
    ROOT_KINDS,
    Adopt,
    address_key,
    object_address,
    split_address_key,
)
from reconciler.state import ProviderState

P = "/api/products/"
C = ("shop", P)


def obj(sku: str = "A", **fields: Any) -> RestObject:
    options = {k: fields.pop(k) for k in ("ensure", "protect", "ignore") if k in fields}
    return RestObject(
        name=sku, endpoint="shop", path=P, key_field="sku", body={"sku": sku, **fields}, **options
    )


def live(*objects: dict[str, Any]) -> LiveRest:
    return LiveRest(objects={C: list(objects)})


def record(sku: str = "A", id: int = 1, protect: bool = False, **fields: Any) -> RestRecord:
    return RestRecord(
        id=id, endpoint="shop", path=P, key_field="sku", key=sku,
        fields={"sku": sku, **fields}, protect=protect,
    )


def section(*records: RestRecord) -> ProviderState:
    out = ProviderState()
    for item in records:
        put_record(out, item)
    return out


def plan(desired: list[RestObject], now: LiveRest, state: ProviderState, **options: Any) -> Plan:
    return build_plan(desired, now, state, endpoint="shop=http://x", options=RestPlanOptions(
        **options))


def test_a_missing_object_is_created_with_its_body() -> None:
    result = plan([obj("A", name="Hammer", price=12.5)], live(), section())
    [change] = result.changes
    assert (change.action, change.kind, str(change.address)) == (
        "create", "rest_object", "rest_object[shop:/api/products/:A]"
    )
    assert change.payload == {"sku": "A", "name": "Hammer", "price": 12.5}
    assert change.key == "sku" and change.target_id is None and change.reason is None
    assert result.app_meta["shop:/api/products/:A"].protect is False


def test_an_equal_object_plans_nothing_and_unmanaged_fields_are_left_alone() -> None:
    now = live({"id": 7, "sku": "A", "price": 12.0, "stock": 3, "meta": {"etag": "x", "k": 1}})
    desired = obj("A", price=12, meta={"k": 1}, ignore=("meta.etag",))
    result = plan([desired], now, section(record("A", 7, price=12, meta={"k": 1})))
    assert result.changes == () and result.learned == () and not result.errors


def test_a_declared_live_object_unknown_to_the_state_is_adopted() -> None:
    now = live({"id": 7, "sku": "A", "price": 12.5})
    result = plan([obj("A", price=12.5)], now, section())
    assert result.changes == ()
    [fact] = result.learned
    assert isinstance(fact, Adopt) and fact.adopts
    assert fact.record["id"] == 7 and fact.record["fields"] == {"sku": "A", "price": 12.5}
    assert result.summary == {"create": 0, "update": 0, "delete": 0, "adopt": 1}


@pytest.mark.parametrize(
    ("recorded", "live_price", "desired_price", "reason"),
    [
        ({"price": 5}, 9, 5, CHANGED_OUTSIDE),  # manifest = last applied: live moved
        ({"price": 5}, 5, 6, None),  # the manifest changed
        (None, 9, 5, ADOPTED),
    ],
)
def test_updates_send_only_changed_fields(
    recorded: dict[str, Any] | None, live_price: int, desired_price: int, reason: str | None
) -> None:
    now = live({"id": 3, "sku": "A", "price": live_price, "name": "same"})
    state = section(record("A", 3, name="same", **recorded)) if recorded else section()
    result = plan([obj("A", name="same", price=desired_price)], now, state)
    [change] = result.changes
    assert change.action == "update" and change.target_id == 3
    assert change.payload == {"price": desired_price}
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("price", live_price, desired_price)
    ]
    assert change.reason == reason


def test_true_is_not_one() -> None:
    assert not json_equal(True, 1) and json_equal(1, 1.0) and not json_equal("1", 1)
    assert not json_equal({"a": [True]}, {"a": [1]}) and not json_equal(None, False)
    result = plan([obj("A", active=True)], live({"id": 1, "sku": "A", "active": 1}), section())
    assert [c.payload for c in result.changes] == [{"active": True}]


def test_a_field_the_server_does_not_have_is_warned_not_planned() -> None:
    result = plan([obj("A", prize=3)], live({"id": 1, "sku": "A", "price": 3}), section())
    assert result.changes == ()
    assert [w.message for w in result.warnings] == [
        "the server's object has no field(s) prize: a server ignores fields it does not know;"
        " check their spelling (not planned)"
    ]


def test_a_recorded_object_deleted_outside_is_created_again() -> None:
    result = plan([obj("A")], live(), section(record("A", 4)))
    [change] = result.changes
    assert change.action == "create" and change.reason == DELETED_OUTSIDE


def test_ensure_absent_deletes_what_it_declares_and_protect_refuses() -> None:
    now = live({"id": 5, "sku": "A", "name": "x"})
    [change] = plan([obj("A", ensure="absent")], now, section()).changes
    assert (change.action, change.target_id, change.reason) == ("delete", 5, "ensure: absent")
    assert plan([obj("A", ensure="absent")], live(), section()).changes == ()
    guarded = plan([obj("A", ensure="absent")], now, section(record("A", 5, protect=True)))
    assert [e.message.split(" (")[0] for e in guarded.errors] == [
        "refusing to delete a protected REST object"
    ]
    assert guarded.errors[0].scope == "fleet"


def test_prune_deletes_only_recorded_objects_that_are_still_the_recorded_ones() -> None:
    now = live({"id": 1, "sku": "A"}, {"id": 2, "sku": "B"}, {"id": 99, "sku": "C"},
               {"id": 4, "sku": "STRANGER"})
    state = section(record("A", 1), record("B", 2, protect=True), record("C", 3))
    quiet = plan([], now, state)
    assert quiet.changes == ()
    assert quiet.warnings[-1].message.startswith(
        "2 REST object(s) recorded in the state are in no manifest and will NOT be deleted"
    )
    assert "it was replaced outside" in quiet.warnings[0].message  # C: id 99 is not 3
    pruned = plan([], now, state, prune=True)
    assert [(c.action, c.target_id) for c in pruned.changes] == [("delete", 1), ("delete", 2)]
    assert [e.address and e.address.key for e in pruned.errors] == ["shop:/api/products/:B"]
    kept = plan([], now, state, prune=True, declared=frozenset({"shop:/api/products/:A"}))
    assert [c.target_id for c in kept.changes] == [2]
    assert plan([], now, state, prune=True, max_deletes=1).errors[-1].message.startswith(
        "the plan deletes 2 object(s), more than --max-deletes 1"
    )


def test_an_unreadable_collection_stops_only_its_objects() -> None:
    other = RestObject(name="S", endpoint="shop", path="/api/suppliers/", key_field="code",
                       body={"code": "S"})
    now = LiveRest(objects={("shop", "/api/suppliers/"): []}, unreadable={C: "listing failed"})
    result = plan([obj("A"), other], now, section())
    assert [c.address.key for c in result.changes] == ["shop:/api/suppliers/:S"]
    # App-scoped only: a fleet-scoped error would make apply hold every other object too.
    assert [(e.scope, e.app_id) for e in result.errors] == [("app", "shop:/api/products/:A")]
    assert result.stuck_apps.keys() == {"shop:/api/products/:A"}


def test_duplicate_live_keys_and_two_key_fields_are_refused() -> None:
    dupes = plan([obj("A")], live({"id": 1, "sku": "A"}, {"id": 2, "sku": "A"}), section())
    assert "two objects have sku='A' (ids 1 and 2)" in dupes.errors[0].message
    by_id = RestObject(name="x", endpoint="shop", path=P, key_field="name", body={"name": "x"})
    clash = plan([obj("A"), by_id], live(), section())
    assert "objects name different key fields" in clash.errors[0].message


def test_addresses_round_trip_whatever_the_key_holds() -> None:
    for key in ("A", "a:b:c", "x]y\\z", "42", "with space"):
        address = object_address("shop", "/api/v1/items/", key)
        text = str(address)
        assert parse_address(text, ROOT_KINDS) == address
        assert split_address_key(address.key or "") == ("shop", "/api/v1/items/", key)
    assert address_key("e", "/p/", "k") == "e:/p/:k"
    with pytest.raises(ValueError):
        split_address_key("shop:api:k")


def _saved(result: Plan) -> dict[str, Any]:
    return json.loads(json.dumps(result.as_dict()))


def test_a_saved_plan_is_read_back_whole() -> None:
    now = live({"id": 3, "sku": "A", "price": 1}, {"id": 4, "sku": "B", "price": 2},
               {"id": 5, "sku": "D"})
    result = plan(
        [obj("A", price=2), obj("B", price=2), obj("C", price=1), obj("D", ensure="absent")],
        now, section(record("A", 3, price=1)),
    )
    back = REST.load_saved_plan(_saved(result), "plan.json")
    assert back.as_dict() == result.as_dict()
    assert [type(f) for f in back.learned] == [Adopt]
    assert PROVIDERS.keys() >= {"miniappcenter"}  # the registry is the lead's to extend


def test_string_ids_are_planned_and_unaddressable_ones_refused() -> None:
    uid = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    now = live({"id": uid, "sku": "A", "price": 1}, {"id": "a/b", "sku": "B", "price": 1})
    result = plan([obj("A", price=2), obj("B", price=2)], now, section())
    assert [(c.app_id, c.target_id) for c in result.changes] == [("shop:/api/products/:A", uid)]
    assert [(e.app_id, e.scope) for e in result.errors] == [("shop:/api/products/:B", "app")]
    assert "cannot be put in the object's URL" in result.errors[0].message
    back = REST.load_saved_plan(_saved(dataclasses.replace(result, errors=())), "plan.json")
    assert back.changes[0].target_id == uid


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda d: d["changes"][0].update(kind="miniapp"), "changes.0.kind"),
        (lambda d: d["changes"][0].update(action="replace"), "changes.0.action"),
        (lambda d: d["changes"][0].update(address="rest_object[shop:api:A]"), "bad address"),
        (lambda d: d["changes"][0].update(app_id="other"), "app_id is not the address key"),
        (lambda d: d["changes"][1].update(target_id=None), "an update has a payload and a target"),
        (lambda d: d["changes"][1].update(target_id="../../x"), "changes.1.target_id"),
        (lambda d: d["changes"][1].update(target_id=""), "changes.1.target_id"),
        (lambda d: d["changes"][1].update(target_id=0), "changes.1.target_id"),
        (lambda d: d["changes"][1]["payload"].update(sku="Z"), "payload is not its changed"),
        (lambda d: d["changes"][2].update(payload={}), "a delete has a target and no payload"),
        (lambda d: d["changes"][0].update(extra=1), "changes.0.extra"),
        (lambda d: d["summary"].update(create=5), "summary"),
        (lambda d: d["learned"][0]["adopt"].update(key="Q"), "filed under another address"),
        (lambda d: d.update(endpoints={"miniappcenter": "x"}), "endpoints"),
    ],
)
def test_a_tampered_plan_is_refused_before_anything_runs(tamper: Any, why: str) -> None:
    now = live({"id": 3, "sku": "B", "price": 1}, {"id": 5, "sku": "D"})
    result = plan([obj("A"), obj("B", price=2), obj("D", ensure="absent")], now, section())
    data = _saved(result)
    tamper(data)
    with pytest.raises(PlanError, match="not a plan this reconciler made") as caught:
        REST.load_saved_plan(data, "plan.json")
    assert why in str(caught.value)


def test_drift_says_why_each_difference_exists() -> None:
    now = live({"id": 1, "sku": "A", "price": 9}, {"id": 2, "sku": "B", "price": 1},
               {"id": 3, "sku": "D"})
    state = section(record("A", 1, price=5), record("B", 2, price=1), record("C", 4))
    result = plan([obj("A", price=5), obj("B", price=2), obj("C"), obj("D", ensure="absent")],
                  now, state)
    report = classify(result, state)
    assert [(i.kind, i.address.key, i.field) for i in report.items] == [
        ("changed_outside", "shop:/api/products/:A", "price"),
        ("pending", "shop:/api/products/:B", "price"),
        ("missing", "shop:/api/products/:C", None),
        ("pending", "shop:/api/products/:D", None),
    ]
    assert report.endpoint == "shop=http://x" and not report.in_sync
    assert read_records(state)["shop:/api/products/:A"].fields == {"sku": "A", "price": 5}


def test_an_unreadable_collection_holds_only_its_own_objects() -> None:
    """One collection that cannot be listed (a 503 after the retries, two objects sharing a
    key) makes its objects stuck, each naming why; the objects of other collections still
    plan, and the fleet is not held (no fleet-scoped error)."""
    other = RestObject(
        name="tools", endpoint="shop", path="/api/categories/", key_field="slug",
        body={"slug": "tools"},
    )  # fmt: skip
    for unreadable in (
        LiveRest(objects={("shop", "/api/categories/"): []}, unreadable={C: "HTTP 503"}),
        LiveRest(objects={("shop", "/api/categories/"): [],
                          C: [{"id": 1, "sku": "A"}, {"id": 2, "sku": "A"}]}),
    ):  # fmt: skip
        result = plan([obj("A"), obj("B"), other], unreadable, section())
        assert result.fleet_errors == ()
        assert set(result.stuck_apps) == {"shop:/api/products/:A", "shop:/api/products/:B"}
        reasons = [p.message for p in result.stuck_apps["shop:/api/products/:A"]]
        assert any("503" in r or "two objects" in r for r in reasons), reasons
        assert [c.app_id for c in result.changes] == ["shop:/api/categories/:tools"]


@pytest.mark.parametrize(
    ("live_price", "desired_price", "planned", "reason"),
    [
        ("12.50", 12.5, None, None),  # what the server answered for what was sent: unchanged
        ("13.00", 12.5, ("13.00", 12.5), CHANGED_OUTSIDE),  # it left that answer: outside
        ("12.50", 14, ("12.50", 14), None),  # the manifest changed: not "outside"
    ],
)
def test_a_value_the_server_normalized_counts_as_sent(
    live_price: str, desired_price: float, planned: tuple[Any, Any] | None, reason: str | None
) -> None:
    # As apply writes it: the fields sent (ignored paths removed) and the whole answers.
    normalized = record("A", 3, price=12.5, meta={"n": 1}).model_copy(
        update={"answered": {"sku": "A", "price": "12.50", "meta": {"etag": "old", "n": "1"}}}
    )
    now = live({"id": 3, "sku": "A", "price": live_price, "meta": {"etag": "new", "n": "1"}})
    desired = obj("A", price=desired_price, meta={"etag": "x", "n": 1}, ignore=("meta.etag",))
    result = plan([desired], now, section(normalized))
    if planned is None:
        assert result.changes == ()
        return
    [change] = result.changes
    assert [(f.path, f.before, f.after) for f in change.fields] == [("price", *planned)]
    assert change.reason == reason
