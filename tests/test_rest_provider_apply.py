"""The REST provider end to end against the in-process tenant sandbox (httpx ASGITransport):
read_live -> build_plan -> apply -> re-plan is empty; a 400 points at the manifest line of
each refused field; an ambiguous create converges without a duplicate; one stuck object
never holds the others; import writes a manifest that plans nothing."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.engine.plan import Plan
from reconciler.errors import ConfigError
from reconciler.providers.rest.apply import RestResult, apply_changes, apply_plan
from reconciler.providers.rest.client import RestClient
from reconciler.providers.rest.config import ApiKeyHeader, JwtAuth, RestEndpoint
from reconciler.providers.rest.diff import build_plan
from reconciler.providers.rest.fetch import read_live
from reconciler.providers.rest.importer import import_object
from reconciler.providers.rest.manifest import load_rest_manifests
from reconciler.providers.rest.model import RestObject
from reconciler.providers.rest.records import read_records
from reconciler.providers.rest.sandbox import TenantSandboxConfig, create_tenant_app
from reconciler.providers.rest.vocabulary import address_key
from reconciler.state import ProviderState
from reconciler.transport.http import RetryPolicy
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER, credentials

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)
REPO = Path(__file__).resolve().parent.parent


def _app(tmp_path: Path, **overrides: Any) -> Starlette:
    config = TenantSandboxConfig(
        db_path=tmp_path / "tenant.db",
        users={TENANT_USER: TENANT_PASSWORD},
        api_keys={TENANT_KEY: "tenant_one"},
        access_seconds=2.0,
        **overrides,
    )
    return create_tenant_app(config)


@asynccontextmanager
async def _clients(app: Starlette) -> AsyncIterator[dict[str, RestClient]]:
    endpoint = RestEndpoint(
        "shop",
        "http://127.0.0.1:9",  # never dialled: the ASGI transport hands requests to the app
        JwtAuth("/api/token/", "/api/token/refresh/", "T_USER", "T_PASSWORD"),
        ApiKeyHeader("Api-Key", "T_KEY"),
        "reconciler.yaml",
        2,
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with RestClient(endpoint, credentials(), transport=transport, retry=FAST) as client:
            yield {"shop": client}
    finally:
        app.state.store.close()


async def _plan(
    clients: dict[str, RestClient], desired: Sequence[RestObject], section: ProviderState
) -> Plan:
    live = await read_live(clients, desired, section)
    return build_plan(desired, live, section, endpoint="shop")


def _product(n: int, **extra: Any) -> RestObject:
    body = {"sku": f"SKU-{n:03}", "name": f"Item {n}", "price": n + 0.5, **extra}
    return RestObject(name=body["sku"], endpoint="shop", path="/api/products/",
                      key_field="sku", body=body, ignore=("created_at", "updated_at"))


def _by_key(objects: Sequence[RestObject]) -> dict[str, RestObject]:
    return {address_key(o.endpoint, o.path, o.key): o for o in objects}


async def test_100_objects_converge_with_2_second_tokens_and_no_refresh_storm(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path, latency_ms=100)  # 100 writes, 4 at a time: several token lifetimes
    desired = [_product(n) for n in range(100)]
    section = ProviderState()
    started = time.monotonic()
    async with _clients(app) as clients:
        first = await _plan(clients, desired, section)
        assert first.summary == {"create": 100, "update": 0, "delete": 0}
        results = await apply_plan(clients, first, section, parallelism=4)
        assert [r.message for r in results if not r.ok] == []
        duration = time.monotonic() - started
        auth = clients["shop"].auth
        refreshes, logins = auth.renewals, auth.logins
        # Read together: the re-plan below may refresh again (its clock runs on).
        served = app.state.api.refreshes
        again = await _plan(clients, desired, section)
        listed = await clients["shop"].list_objects("/api/products/")
    assert again.changes == () and again.learned == () and not again.errors
    assert len(listed) == 100 and len(read_records(section)) == 100
    assert {r.id for r in read_records(section).values()} == {o["id"] for o in listed}
    assert logins == 1
    # A token lives 2 s and is renewed in its last quarter: at most one refresh per 1.5 s.
    assert 1 <= refreshes <= math.ceil(duration / 1.5) + 1, (refreshes, duration)
    assert served == refreshes


async def test_updates_deletes_adoption_and_the_record(tmp_path: Path) -> None:
    app = _app(tmp_path)
    section = ProviderState()
    async with _clients(app) as clients:
        client = clients["shop"]
        made = await client.create("/api/products/", "sku", {"sku": "OLD", "name": "o", "price": 1})
        await client.create("/api/products/", "sku", {"sku": "ADOPT", "name": "a", "price": 2})
        desired = [_product(1), _product(2)]
        await apply_plan(clients, await _plan(clients, desired, section), section)
        # Changed outside, changed in the manifest, declared absent, declared and found live:
        await client.update("/api/products/", read_records(section)[
            "shop:/api/products/:SKU-001"].id, {"name": "edited outside"})
        desired = [
            _product(1),
            _product(2, name="Renamed"),
            RestObject(name="OLD", endpoint="shop", path="/api/products/", key_field="sku",
                       body={"sku": "OLD"}, ensure="absent"),
            RestObject(name="ADOPT", endpoint="shop", path="/api/products/", key_field="sku",
                       body={"sku": "ADOPT", "price": 3}),
        ]
        second = await _plan(clients, desired, section)
        assert [(c.action, c.address.key, c.payload) for c in second.changes] == [
            ("update", "shop:/api/products/:SKU-001", {"name": "Item 1"}),
            ("update", "shop:/api/products/:SKU-002", {"name": "Renamed"}),
            ("delete", "shop:/api/products/:OLD", None),
            ("update", "shop:/api/products/:ADOPT", {"price": 3}),
        ]
        seen: list[RestResult] = []
        results = await apply_plan(clients, second, section, on_result=seen.append)
        assert all(r.ok for r in results) and len(seen) == 4
        assert (await _plan(clients, desired, section)).changes == ()
        gone = await client.get("/api/products/", made["id"])
    assert gone is None
    records = read_records(section)
    assert "shop:/api/products/:OLD" not in records
    assert records["shop:/api/products/:ADOPT"].fields == {"sku": "ADOPT", "price": 3}
    assert records["shop:/api/products/:SKU-002"].fields["name"] == "Renamed"


async def test_a_400_names_each_field_at_its_manifest_line(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: rest/v1\n"
        "kind: RestObject\n"
        "spec:\n"
        "  endpoint: shop\n"
        "  path: /api/products/\n"
        "  key: sku\n"
        "  body:\n"
        "    sku: BAD-1\n"
        "    price: not a number\n"
        "    category: not a slug!\n",
        "utf-8",
    )
    desired = [item.app for item in load_rest_manifests([manifest], {})]
    section = ProviderState()
    async with _clients(_app(tmp_path)) as clients:
        plan = await _plan(clients, desired, section)
        [result] = await apply_changes(clients, plan.changes, section, objects=_by_key(desired))
    assert not result.ok and result.message is not None
    lines = result.message.splitlines()
    assert lines[0] == "POST /api/products/ refused (400)"
    assert sorted(lines[1:]) == sorted([
        f"  {manifest}:1:1: spec.body: name: This field is required.",
        f"  {manifest}:9:12: spec.body.price: A valid number is required.",
        f"  {manifest}:10:15: spec.body.category: Enter a valid “slug” consisting of letters,"
        " numbers, underscores or hyphens.",
    ])
    assert read_records(section) == {}


@pytest.mark.parametrize("fault", ["commit-then-502", "commit-then-drop"])
async def test_an_ambiguous_create_converges_without_a_duplicate(
    tmp_path: Path, fault: str
) -> None:
    app = _app(tmp_path)
    app.state.faults.add("POST", "/api/products/", fault)
    desired = [_product(7)]
    section = ProviderState()
    async with _clients(app) as clients:
        [result] = await apply_plan(clients, await _plan(clients, desired, section), section)
        listed = await clients["shop"].list_objects("/api/products/")
        again = await _plan(clients, desired, section)
    assert result.ok, result.message
    assert [p["sku"] for p in listed] == ["SKU-007"]
    assert read_records(section)["shop:/api/products/:SKU-007"].id == listed[0]["id"]
    assert again.changes == () and app.state.faults.pending == 0


async def test_one_stuck_object_never_holds_the_others(tmp_path: Path) -> None:
    app = _app(tmp_path)
    desired = [_product(n) for n in range(3)]
    section = ProviderState()
    async with _clients(app) as clients:
        plan = await _plan(clients, desired, section)
        app.state.faults.add("POST", "/api/products/", "delay", seconds=60)
        results = await apply_changes(
            clients, plan.changes, section, parallelism=1, change_deadline=0.5
        )
    assert [r.ok for r in results].count(False) == 1
    [stuck] = [r for r in results if not r.ok]
    assert stuck.message == "no result within the change's deadline"
    assert len(read_records(section)) == 2


async def test_import_writes_a_manifest_that_plans_nothing(tmp_path: Path) -> None:
    section = ProviderState()
    async with _clients(_app(tmp_path)) as clients:
        client = clients["shop"]
        await client.create(
            "/api/products/", "sku",
            {"sku": "IMP-1", "name": "Imported ${x}", "price": 9.25, "category": "tools"},
        )
        text, record = await import_object(client, "shop", "/api/products/", "sku", "IMP-1")
        file = tmp_path / "imported.yaml"
        file.write_text(text, "utf-8")
        desired = [item.app for item in load_rest_manifests([file], {})]
        section.resources["rest_object"] = {record.address_key: record.as_json()}
        plan = await _plan(clients, desired, section)
    [obj] = desired
    assert obj.body == {
        "sku": "IMP-1", "name": "Imported ${x}", "price": "9.25", "category": "tools",
        "supplier": None, "active": True, "description": "",
    }
    assert obj.ignore == ("created_at", "updated_at")
    assert plan.changes == () and plan.learned == ()


async def test_a_collection_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    desired = [
        _product(1),
        RestObject(name="x", endpoint="crm", path="/api/x/", key_field="k", body={"k": "x"}),
    ]
    async with _clients(_app(tmp_path)) as clients:
        live = await read_live(clients, desired, ProviderState())
    assert live.unreadable == {("crm", "/api/x/"): "no client for endpoint 'crm' (is it declared?)"}
    assert list(live.objects) == [("shop", "/api/products/")] and live.reads == 2




async def test_a_refused_login_is_said_once_not_per_collection(tmp_path: Path) -> None:
    app = _app(tmp_path)
    endpoint = RestEndpoint(
        "shop", "http://127.0.0.1:9",
        JwtAuth("/api/token/", "/api/token/refresh/", "T_USER", "T_PASSWORD"),
        ApiKeyHeader("Api-Key", "T_KEY"), "reconciler.yaml", 2,
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with RestClient(
            endpoint, credentials(password="wrong-password-9"), transport=transport, retry=FAST
        ) as client:
            with pytest.raises(ConfigError, match="login was refused"):
                await read_live({"shop": client}, [_product(1)], ProviderState())
    finally:
        app.state.store.close()
