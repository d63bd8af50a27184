"""The REST provider's session (reconciler.providers.rest.session) as the engine's service
drives it: against the in-process tenant sandbox (``sandbox_dir``: no project file, no
variables) and against real tenant servers declared in a project file. Plan / apply /
re-plan, update, prune and protect, selection, two endpoints, string (UUID) ids, binding
refusals, drift, import, the durable record before each reported write, the JWT flow over a
100-object apply, and no secret in any output."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.plan import Plan, PlanProblem
from reconciler.engine.session import ChangeEvent, Scope, SectionApplied
from reconciler.errors import ConfigError, ReconcilerError, StateError
from reconciler.providers.rest.manifest import load_rest_manifests
from reconciler.providers.rest.model import RestObject
from reconciler.providers.rest.plan_check import load_saved_plan
from reconciler.providers.rest.provider import REST
from reconciler.providers.rest.records import read_records
from reconciler.providers.rest.session import (
    REST_CONNECTOR,
    RestConnector,
    RestSession,
    binding_text,
    parse_binding,
)
from reconciler.providers.rest.vocabulary import address_key
from reconciler.state import ProviderState
from reconciler.transport.http import RetryPolicy
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER, RunningTenant

ENV = {"T_USER": TENANT_USER, "T_PASSWORD": TENANT_PASSWORD, "T_KEY": TENANT_KEY}
PRODUCTS = "/api/products/"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def _product(n: int, endpoint: str = "shop", **extra: Any) -> RestObject:
    body = {"sku": f"SKU-{n:03}", "name": f"Item {n}", "price": n + 0.5}
    labels = extra.pop("labels", {})
    protect = extra.pop("protect", False)
    body.update(extra)
    return RestObject(
        name=str(body["sku"]),
        endpoint=endpoint,
        path=PRODUCTS,
        key_field="sku",
        body=body,
        ignore=("created_at", "updated_at"),
        labels=labels,
        protect=protect,
    )


def _coupon(code: str, percent: float, **options: Any) -> RestObject:
    return RestObject(
        name=code,
        endpoint="shop",
        path="/api/coupons/",
        key_field="code",
        body={"code": code, "percent": percent},
        **options,
    )


def _key(obj: RestObject) -> str:
    return address_key(obj.endpoint, obj.path, obj.key)


@dataclasses.dataclass
class Journal:
    """The service's side: what ``record`` made durable and what ``on_event`` reported, in
    one ordered log, so a test can say a write was recorded before it was reported."""

    records: list[tuple[str, str, dict[str, Any] | None]] = dataclasses.field(
        default_factory=list
    )
    events: list[ChangeEvent] = dataclasses.field(default_factory=list)
    log: list[str] = dataclasses.field(default_factory=list)
    started: list[str] = dataclasses.field(default_factory=list)

    async def record(self, kind: str, key: str, data: Mapping[str, Any] | None) -> None:
        self.records.append((kind, key, None if data is None else json.loads(json.dumps(data))))
        self.log.append(f"record {key}")

    def on_event(self, event: ChangeEvent) -> None:
        if event.outcome == "started":  # a write starts: not a result
            self.started.append(event.change.app_id)
            return
        if event.outcome == "applied":  # every write applied was reported started first
            assert event.change.app_id in self.started, event
        self.events.append(event)
        self.log.append(f"{event.outcome} {event.change.app_id}")


async def _apply(
    session: RestSession,
    plan: Plan,
    section: ProviderState,
    desired: list[RestObject] | None = None,
    journal: Journal | None = None,
) -> tuple[SectionApplied, Journal]:
    journal = journal or Journal()
    applied = await session.apply(
        plan,
        section,
        desired=desired,
        parallelism=4,
        record=journal.record,
        on_event=journal.on_event,
    )
    return applied, journal


@asynccontextmanager
async def _sandbox(tmp_path: Path, env: Mapping[str, str] | None = None) -> AsyncIterator[
    RestSession
]:
    async with REST_CONNECTOR.connect(
        env or {}, sandbox_dir=tmp_path / ".reconciler", config=None, parallelism=4
    ) as session:
        assert isinstance(session, RestSession)
        yield session


def _project_file(path: Path, endpoints: Mapping[str, str]) -> Path:
    lines = ["endpoints:"]
    for name, url in endpoints.items():
        lines += [
            f"  {name}:",
            f"    base_url: {url}",
            "    auth: {type: jwt, token_path: /api/token/, refresh_path: /api/token/refresh/,"
            " username_env: T_USER, password_env: T_PASSWORD}",
            "    api_key: {header: Api-Key, env: T_KEY}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@asynccontextmanager
async def _configured(
    config: Path, env: Mapping[str, str] = ENV, connector: RestConnector | None = None
) -> AsyncIterator[RestSession]:
    connector = connector or RestConnector(retry=FAST)
    async with connector.connect(env, sandbox_dir=None, config=config, parallelism=4) as session:
        assert isinstance(session, RestSession)
        yield session


# --- plan / apply / re-plan in the sandbox ----------------------------------------------------


async def test_sandbox_plan_apply_and_replan_need_no_project_file_nor_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no reconciler.yaml here
    desired = [_product(1), _product(2), _product(3)]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        assert plan.summary == {"create": 3, "update": 0, "delete": 0}
        assert plan.endpoints == {"rest": session.identity}
        assert [c.app_id for c in plan.changes] == [_key(o) for o in desired]
        applied, _ = await _apply(session, plan, section, desired)
        again = await session.plan(desired, section, Scope())
        live = await session.client("shop").list_objects(PRODUCTS)
    assert [e.outcome for e in applied.events] == ["applied"] * 3
    assert applied.adopted == 0 and applied.stuck == []
    assert again.changes == () and again.learned == () and not again.errors
    assert section.endpoint == session.identity
    assert session.identity == f"*=sandbox:{(tmp_path / '.reconciler').resolve()}/tenant-sandbox.db"
    assert (tmp_path / ".reconciler" / "tenant-sandbox.db").is_file()
    assert sorted(o["sku"] for o in live) == ["SKU-001", "SKU-002", "SKU-003"]
    assert "sandbox" in session.display and str(tmp_path) in session.display


async def test_the_sandbox_keeps_its_data_between_runs(tmp_path: Path) -> None:
    desired = [_product(1)]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        await _apply(session, await session.plan(desired, section, Scope()), section, desired)
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        again = await session.plan(desired, section, Scope())
    assert again.changes == () and not again.errors


async def test_each_completed_write_is_recorded_once_with_its_record_before_it_is_reported(
    tmp_path: Path,
) -> None:
    desired = [_product(1), _product(2)]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        created, journal = await _apply(
            session, await session.plan(desired, section, Scope()), section, desired
        )
        live = {o["sku"]: o for o in await session.client("shop").list_objects(PRODUCTS)}
        keys = [_key(o) for o in desired]
        assert sorted(k for _, k, _ in journal.records) == keys
        for kind, key, data in journal.records:
            assert kind == "rest_object"
            assert data == section.resources["rest_object"][key]
            assert data is not None and data["id"] == live[key.rsplit(":", 1)[1]]["id"]
            assert data["fields"] == {"sku": data["key"], "name": live[data["key"]]["name"],
                                      "price": float(live[data["key"]]["price"])}
            assert data["answered"]["price"] == live[data["key"]]["price"]  # "1.50" for 1.5
            # Durable before reported: the record line comes before the event's.
            assert journal.log.index(f"record {key}") < journal.log.index(f"applied {key}")
        # An update records the new fields; a delete records None.
        changed = [_product(1, name="Renamed")]
        plan = await session.plan(changed, section, Scope(prune=True))
        assert [(c.action, c.app_id) for c in plan.changes] == [
            ("update", keys[0]), ("delete", keys[1])
        ]
        _, second = await _apply(session, plan, section, changed)
    assert len(second.records) == 2
    by_key = {key: data for _, key, data in second.records}
    assert by_key[keys[1]] is None and keys[1] not in section.resources["rest_object"]
    assert by_key[keys[0]] is not None and by_key[keys[0]]["fields"]["name"] == "Renamed"
    assert [e.outcome for e in created.events] == ["applied", "applied"]


async def test_a_write_that_cannot_be_recorded_stops_the_run(tmp_path: Path) -> None:
    desired = [_product(n) for n in range(5)]
    section = ProviderState()
    calls: list[str] = []

    async def broken(kind: str, key: str, data: Mapping[str, Any] | None) -> None:
        calls.append(key)
        raise OSError("disk full")

    async with _sandbox(tmp_path) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        with pytest.raises(OSError, match="disk full"):
            await session.apply(
                plan, section, desired=desired, parallelism=1, record=broken,
                on_event=lambda event: None,
            )
        live = await session.client("shop").list_objects(PRODUCTS)
    # One write made, its record refused: no other write started.
    assert len(calls) == 1 and [o["sku"] for o in live] == [calls[0].rsplit(":", 1)[1]]


async def test_a_refused_write_is_not_recorded_and_names_the_manifest_line(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: rest/v1\nkind: RestObject\nspec:\n  endpoint: shop\n"
        "  path: /api/products/\n  key: sku\n  body:\n    sku: BAD-1\n    price: cheap\n",
        encoding="utf-8",
    )
    desired = [m.app for m in load_rest_manifests([manifest], {})] + [_product(1)]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        applied, journal = await _apply(session, plan, section, desired)
        # A saved plan (no manifests): the fields are named, without a line.
        saved = load_saved_plan(json.loads(json.dumps(plan.as_dict())), "plan.json")
        from_saved, _ = await _apply(session, saved, ProviderState(), None)
    failed = [e for e in applied.events if e.outcome == "failed"]
    assert len(failed) == 1 and failed[0].message is not None
    assert f"{manifest}:9:12: spec.body.price: A valid number is required." in failed[0].message
    assert "name: This field is required." in failed[0].message
    assert [k for _, k, _ in journal.records] == [_key(_product(1))]
    saved_failure = next(e for e in from_saved.events if e.outcome == "failed")
    assert "price: A valid number is required." in (saved_failure.message or "")
    assert str(manifest) not in (saved_failure.message or "")


async def test_changes_of_a_stuck_key_are_skipped_and_the_others_run(tmp_path: Path) -> None:
    desired = [_product(1), _product(2)]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        stuck_key = _key(desired[0])
        plan = dataclasses.replace(
            plan, errors=(PlanProblem("cannot tell which object", stuck_key, scope="app"),)
        )
        applied, journal = await _apply(session, plan, section, desired)
    assert applied.stuck == [stuck_key]
    assert [(e.outcome, e.change.app_id, e.message) for e in applied.events] == [
        ("skipped", stuck_key, "cannot tell which object"),
        ("applied", _key(desired[1]), 'the server normalized price: 2.5 -> "2.50"'),
    ]
    assert [k for _, k, _ in journal.records] == [_key(desired[1])]


async def test_adoptions_are_recorded_first_and_counted(tmp_path: Path) -> None:
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        await session.client("shop").create(
            PRODUCTS, "sku", {"sku": "SKU-001", "name": "Item 1", "price": 9}
        )
        desired = [_product(1)]
        plan = await session.plan(desired, section, Scope())
        assert [c.action for c in plan.changes] == ["update"] and len(plan.learned) == 1
        applied, journal = await _apply(session, plan, section, desired)
    key = _key(desired[0])
    assert applied.adopted == 1
    assert journal.log == [f"record {key}", f"record {key}", f"applied {key}"]
    assert journal.records[-1][2] is not None and journal.records[-1][2]["fields"]["price"] == 1.5


# --- prune, protect, selection ----------------------------------------------------------------


async def test_prune_deletes_only_with_scope_prune_and_protect_refuses(tmp_path: Path) -> None:
    section = ProviderState()
    kept, dropped, guarded = _product(1), _product(2), _product(3, protect=True)
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        first = [kept, dropped, guarded]
        await _apply(session, await session.plan(first, section, Scope()), section, first)
        without = await session.plan([kept], section, Scope())
        assert without.changes == ()
        assert any("will NOT be deleted without --prune" in w.message for w in without.warnings)
        pruned = await session.plan([kept], section, Scope(prune=True))
        assert {(c.action, c.app_id) for c in pruned.changes} == {
            ("delete", _key(dropped)), ("delete", _key(guarded))
        }
        assert [e.app_id for e in pruned.errors] == [_key(guarded)]
        assert "protect" in pruned.errors[0].message and pruned.errors[0].scope == "fleet"
        unguarded = await session.plan([kept, guarded], section, Scope(prune=True))
    assert [(c.action, c.app_id) for c in unguarded.changes] == [("delete", _key(dropped))]
    assert unguarded.errors == ()


async def test_selection_targets_and_declared_keys_bound_what_is_pruned(tmp_path: Path) -> None:
    section = ProviderState()
    a1, a2 = _product(1, labels={"team": "a"}), _product(2, labels={"team": "a"})
    b3 = _product(3, labels={"team": "b"})
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        everything = [a1, a2, b3]
        await _apply(session, await session.plan(everything, section, Scope()), section, everything)
        # --select team=a with a1 only: a2 is pruned, b3 (other team) is not.
        selected = await session.plan(
            [a1], section, Scope(selectors={"team": "a"}, prune=True, declared=frozenset())
        )
        # ... unless another manifest still declares a2 (outside the narrowed set).
        declared = await session.plan(
            [a1],
            section,
            Scope(selectors={"team": "a"}, prune=True, declared=frozenset({_key(a2)})),
        )
        # --target the key of a1: nothing else is a prune candidate.
        targeted = await session.plan(
            [a1], section, Scope(targets=frozenset({_key(a1)}), prune=True)
        )
    assert [(c.action, c.app_id) for c in selected.changes] == [("delete", _key(a2))]
    assert declared.changes == ()
    assert targeted.changes == ()


# --- several endpoints ------------------------------------------------------------------------


async def test_two_endpoint_names_in_one_sandbox_run_are_two_tenants(tmp_path: Path) -> None:
    desired = [_product(1, "shop"), _product(1, "hr"), _product(2, "hr")]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        assert [c.app_id for c in plan.changes] == [
            "shop:/api/products/:SKU-001", "hr:/api/products/:SKU-001", "hr:/api/products/:SKU-002"
        ]
        applied, _ = await _apply(session, plan, section, desired)
        again = await session.plan(desired, section, Scope())
        shop = await session.client("shop").list_objects(PRODUCTS)
        hr = await session.client("hr").list_objects(PRODUCTS)
    assert [e.outcome for e in applied.events] == ["applied"] * 3
    assert again.changes == () and not again.errors
    assert [o["sku"] for o in shop] == ["SKU-001"]
    assert [o["sku"] for o in hr] == ["SKU-001", "SKU-002"]
    assert {r.endpoint for r in read_records(section).values()} == {"shop", "hr"}


async def test_two_declared_endpoints_in_one_run_over_http(
    tmp_path: Path, tenant_factory: Callable[..., RunningTenant]
) -> None:
    shop = tenant_factory(db_path=tmp_path / "shop.db")
    hr = tenant_factory(db_path=tmp_path / "hr.db")
    config = _project_file(tmp_path / "reconciler.yaml", {"shop": shop.base_url, "hr": hr.base_url})
    desired = [_product(1, "shop"), _product(7, "hr")]
    section = ProviderState()
    async with _configured(config) as session:
        assert session.identity == binding_text({"shop": shop.base_url, "hr": hr.base_url})
        session.bind(section)
        applied, _ = await _apply(
            session, await session.plan(desired, section, Scope()), section, desired
        )
        again = await session.plan(desired, section, Scope())
    assert [e.outcome for e in applied.events] == ["applied", "applied"]
    assert again.changes == () and not again.errors
    assert parse_binding(section.endpoint or "") == {"shop": shop.base_url, "hr": hr.base_url}
    with shop.http(headers={"Authorization": f"Bearer {shop.tokens()['access']}",
                            "Api-Key": TENANT_KEY}) as http:
        assert [o["sku"] for o in http.get(PRODUCTS).json()["results"]] == ["SKU-001"]
    assert hr.api.logins == 1 and shop.api.logins == 2  # the session's, then the check's


async def test_an_endpoint_no_manifest_or_record_names_needs_no_credentials(
    tmp_path: Path, tenant: RunningTenant
) -> None:
    config = _project_file(
        tmp_path / "reconciler.yaml", {"shop": tenant.base_url, "unused": "https://unused.example"}
    )
    section = ProviderState()
    desired = [_product(1)]
    async with _configured(config) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        assert sorted(session.clients) == ["shop"]
    assert plan.summary["create"] == 1


# --- string ids -------------------------------------------------------------------------------


async def test_objects_with_uuid_ids_are_created_updated_deleted_and_saved_plans_carry_them(
    tmp_path: Path,
) -> None:
    section = ProviderState()
    spring = _coupon("SPRING", 10)
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        await _apply(session, await session.plan([spring], section, Scope()), section, [spring])
        record = read_records(section)[_key(spring)]
        assert isinstance(record.id, str) and len(record.id) == 36
        update = await session.plan([_coupon("SPRING", 15)], section, Scope())
        assert [(c.action, c.target_id) for c in update.changes] == [("update", record.id)]
        # Through a saved plan's JSON, as `plan -o` / `apply --plan` would.
        saved = load_saved_plan(json.loads(json.dumps(update.as_dict())), "plan.json")
        applied, journal = await _apply(session, saved, section, None)
        assert [e.outcome for e in applied.events] == ["applied"]
        live = await session.client("shop").get("/api/coupons/", record.id)
        gone = _coupon("SPRING", 15, ensure="absent")
        delete = await session.plan([gone], section, Scope())
        assert [(c.action, c.target_id) for c in delete.changes] == [("delete", record.id)]
        await _apply(session, delete, section, [gone])
        after = await session.client("shop").list_objects("/api/coupons/")
    assert live is not None and live["percent"] == "15.00"
    assert journal.records[0][2] is not None and journal.records[0][2]["id"] == record.id
    assert after == [] and _key(spring) not in read_records(section)


# --- binding ----------------------------------------------------------------------------------


async def test_bind_refuses_a_section_whose_endpoints_moved(
    tmp_path: Path, tenant_factory: Callable[..., RunningTenant]
) -> None:
    one = tenant_factory(db_path=tmp_path / "one.db")
    two = tenant_factory(db_path=tmp_path / "two.db")
    section = ProviderState()
    first = _project_file(tmp_path / "one.yaml", {"shop": one.base_url})
    async with _configured(first) as session:
        session.bind(section)  # a first run binds
        desired = [_product(1)]
        await _apply(session, await session.plan(desired, section, Scope()), section, desired)
    assert section.endpoint == f"shop={one.base_url}"
    moved = _project_file(tmp_path / "two.yaml", {"shop": two.base_url})
    async with _configured(moved) as session:
        with pytest.raises(StateError) as refused:
            session.bind(section)
    message = str(refused.value)
    assert f"shop: recorded {one.base_url}, now {two.base_url}" in message
    assert "--state" in message
    assert section.endpoint == f"shop={one.base_url}"  # unchanged by a refusal
    # A new endpoint next to the recorded one is added to the binding.
    grown = _project_file(tmp_path / "grown.yaml", {"shop": one.base_url, "hr": two.base_url})
    async with _configured(grown) as session:
        session.bind(section)
    assert parse_binding(section.endpoint or "") == {"shop": one.base_url, "hr": two.base_url}
    # A name no record uses may point elsewhere: nothing of it is recorded.
    regrown = _project_file(tmp_path / "regrown.yaml", {"shop": one.base_url, "hr": one.base_url})
    async with _configured(regrown) as session:
        session.bind(section)
    assert parse_binding(section.endpoint or "") == {"shop": one.base_url, "hr": one.base_url}
    # A sandbox state with records is not a real endpoint's, nor the reverse.
    async with _sandbox(tmp_path) as sandbox:
        with pytest.raises(StateError, match="this run talks to the embedded tenant sandbox"):
            sandbox.bind(section)
        sandboxed = ProviderState()
        sandbox.bind(sandboxed)
        await _apply(sandbox, await sandbox.plan(desired, sandboxed, Scope()), sandboxed, desired)
        empty = ProviderState()
        sandbox.bind(empty)
    async with _configured(first) as session:
        with pytest.raises(StateError, match="was made against the embedded tenant sandbox"):
            session.bind(sandboxed)
        session.bind(empty)  # nothing recorded there: it binds anew
        with pytest.raises(StateError, match="not a REST binding"):
            session.bind(ProviderState(endpoint="https://api.example"))
    assert empty.endpoint == f"shop={one.base_url}"


def test_binding_text_round_trips_urls_with_commas_and_percents() -> None:
    binding = {"*": "sandbox:/tmp/a,b%c=d/tenant-sandbox.db"}
    assert parse_binding(binding_text(binding)) == binding
    pair = {"shop": "https://a.example", "hr": "http://127.0.0.1:8090"}
    assert binding_text(pair) == "hr=http://127.0.0.1:8090,shop=https://a.example"
    assert parse_binding(binding_text(pair)) == pair
    assert parse_binding("https://api.example") is None
    assert parse_binding("Bad Name=x") is None


# --- drift and import -------------------------------------------------------------------------


async def test_drift_names_a_field_changed_outside(tmp_path: Path) -> None:
    desired = [_product(1), _product(2)]
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        await _apply(session, await session.plan(desired, section, Scope()), section, desired)
        record = read_records(section)[_key(desired[0])]
        await session.client("shop").update(PRODUCTS, record.id, {"price": 99})
        report = session.drift(await session.plan(desired, section, Scope()), section)
    assert [(i.kind, i.app_id, i.field, i.live, i.expected) for i in report.items] == [
        ("changed_outside", _key(desired[0]), "price", "99.00", 1.5)
    ]
    assert report.endpoint == session.identity


async def test_import_records_the_object_and_returns_a_manifest_that_plans_nothing(
    tmp_path: Path,
) -> None:
    section = ProviderState()
    async with _sandbox(tmp_path) as session:
        session.bind(section)
        made = await session.client("shop").create(
            PRODUCTS, "sku", {"sku": "HAM-01", "name": "Hammer", "price": 12.5}
        )
        imported = await session.import_resource("shop:/api/products/:sku=HAM-01", section)
        assert imported.key == "shop:/api/products/:HAM-01"
        assert read_records(section)[imported.key].id == made["id"]
        manifest = tmp_path / "imported.yaml"
        manifest.write_text(imported.manifest, encoding="utf-8")
        loaded = load_rest_manifests([manifest], {})  # loaded manifests, as the CLI has them
        again = await session.plan(loaded, section, Scope(notices=("no state file yet",)))
        # The key field is learned from the records of that collection when not given.
        await session.client("shop").create(
            PRODUCTS, "sku", {"sku": "SAW-02", "name": "Saw", "price": 20}
        )
        second = await session.import_resource("shop:/api/products/:SAW-02", section)
        with pytest.raises(ReconcilerError, match="already in the state"):
            await session.import_resource("shop:/api/products/:sku=HAM-01", section)
        with pytest.raises(ReconcilerError, match="no object has sku='NOPE'"):
            await session.import_resource("shop:/api/products/:sku=NOPE", section)
        with pytest.raises(ConfigError, match="FIELD=VALUE"):
            await session.import_resource("shop:/api/suppliers/:ACME", section)
        with pytest.raises(ConfigError, match="FIELD=VALUE"):
            await session.import_resource("not a reference", section)
    assert again.changes == () and again.learned == () and not again.errors
    assert [w.message for w in again.warnings] == ["no state file yet"]
    assert "sku: \"HAM-01\"" in imported.manifest and "endpoint: shop" in imported.manifest
    assert second.key == "shop:/api/products/:SAW-02"


# --- configuration errors ---------------------------------------------------------------------


async def test_without_sandbox_or_project_file_the_error_names_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert REST_CONNECTOR.configured({}, None) is False
    with pytest.raises(ConfigError) as missing:
        async with REST_CONNECTOR.connect({}, sandbox_dir=None, config=None, parallelism=4):
            pass
    assert "reconciler.yaml" in str(missing.value) and "--config" in str(missing.value)
    assert REST_CONNECTOR.configured({}, tmp_path / "elsewhere.yaml") is True
    with pytest.raises(ConfigError, match=r"elsewhere\.yaml.*not found"):
        async with REST_CONNECTOR.connect(
            {}, sandbox_dir=None, config=tmp_path / "elsewhere.yaml", parallelism=4
        ):
            pass
    project = tmp_path / "reconciler.yaml"
    project.write_text("other_tool: {}\n", encoding="utf-8")  # not this provider's
    assert REST_CONNECTOR.configured({}, None) is False
    project.write_text("endpoints:\n  shop: {base_url: ftp://x}\n", encoding="utf-8")
    assert REST_CONNECTOR.configured({}, None) is True  # invalid: said when connecting
    with pytest.raises(ConfigError, match=r"reconciler\.yaml:2:"):
        async with REST_CONNECTOR.connect({}, sandbox_dir=None, config=None, parallelism=4):
            pass
    _project_file(project, {"shop": "https://shop.example"})
    assert REST_CONNECTOR.configured({}, None) is True
    assert REST.connector is REST_CONNECTOR


async def test_missing_credentials_are_named_by_variable_never_by_value(tmp_path: Path) -> None:
    config = _project_file(tmp_path / "reconciler.yaml", {"shop": "https://shop.example"})
    env = {"T_USER": "alice-the-user", "T_KEY": "api-key-value-123456"}  # no T_PASSWORD
    async with _configured(config, env) as session:
        with pytest.raises(ConfigError) as missing:
            await session.plan([_product(1)], ProviderState(), Scope())
    message = str(missing.value)
    assert "$T_PASSWORD" in message and "not set" in message
    assert "alice-the-user" not in message and "api-key-value-123456" not in message


async def test_a_manifest_naming_an_undeclared_endpoint_is_a_config_error(
    tmp_path: Path, tenant: RunningTenant
) -> None:
    config = _project_file(tmp_path / "reconciler.yaml", {"shop": tenant.base_url})
    async with _configured(config) as session:
        with pytest.raises(ConfigError, match=r"'hr' is not declared .*declared: shop"):
            await session.plan([_product(1, "hr")], ProviderState(), Scope())


# --- the JWT flow under the session -----------------------------------------------------------


async def test_a_100_object_apply_with_2_second_tokens_refreshes_without_a_storm_and_leaks_nothing(
    tmp_path: Path,
    tenant_factory: Callable[..., RunningTenant],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = tenant_factory(latency_ms=100)  # 100 writes, 4 at a time: several lifetimes
    config = _project_file(tmp_path / "reconciler.yaml", {"shop": tenant.base_url})
    desired = [_product(n) for n in range(100)]
    section = ProviderState()
    started = time.monotonic()
    async with _configured(config) as session:
        session.bind(section)
        plan = await session.plan(desired, section, Scope())
        applied, journal = await _apply(session, plan, section, desired)
        duration = time.monotonic() - started
        auth = session.client("shop").auth
        refreshes, logins = auth.renewals, auth.logins
        again = await session.plan(desired, section, Scope())
        report = session.drift(again, section)
        shown = [session.identity, session.display]
        # Counted after the re-plan too: it may refresh once more.
        refreshes_in_all = auth.renewals
    assert [e.outcome for e in applied.events] == ["applied"] * 100
    assert len(journal.records) == 100 and again.changes == ()
    assert logins == 1
    # A token lives 2 s and is renewed in its last quarter: at most one refresh per 1.5 s.
    assert 1 <= refreshes <= math.ceil(duration / 1.5) + 1, (refreshes, duration)
    assert tenant.api.refreshes == refreshes_in_all
    output = "\n".join(
        [
            caplog.text,
            json.dumps(plan.as_dict()),
            json.dumps(again.as_dict()),
            json.dumps(section.model_dump(mode="json")),
            json.dumps([r for r in journal.records]),
            *(e.message or "" for e in applied.events),
            *shown,
            str(report.items),
        ]
    )
    secrets = [TENANT_PASSWORD, TENANT_KEY, *tenant.api.issued]
    assert len(secrets) >= 2 + 2 * (1 + refreshes_in_all)
    for secret in secrets:
        assert secret not in output
