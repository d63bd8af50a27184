"""The REST collection client: pagination followed safely, ambiguous creates resolved by
listing, PATCH of managed fields, errors mapped per field / read-only / retried reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.errors import AmbiguousWriteError
from reconciler.providers.rest.client import (
    DuplicateKeyError,
    ListLimits,
    PaginationError,
    ReadOnlyError,
    RestApiError,
    RestClient,
    RestValidationError,
)
from reconciler.providers.rest.config import ApiKeyHeader, JwtAuth, RestEndpoint
from reconciler.transport.http import RetryPolicy
from tests.fixtures_tenant import RunningTenant, credentials

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def _client(tenant: RunningTenant, **kwargs: Any) -> RestClient:
    kwargs.setdefault("retry", FAST)
    return RestClient(tenant.endpoint(), credentials(), **kwargs)


async def _seed(client: RestClient, count: int) -> None:
    for n in range(count):
        await client.create("/api/suppliers/", "code", {"code": f"S{n:02}", "name": f"n{n}"})


async def test_listing_follows_every_page(tenant: RunningTenant) -> None:
    async with _client(tenant, list_limits=ListLimits(page_size=10)) as client:
        await _seed(client, 25)
        client.stats.by_request.clear()
        listed = await client.list_objects("/api/suppliers/")
    assert [s["code"] for s in listed] == [f"S{n:02}" for n in range(25)]
    assert client.stats.by_request == {"GET /api/suppliers/": 3}


async def test_find_matches_the_natural_key(tenant: RunningTenant) -> None:
    async with _client(tenant) as client:
        await _seed(client, 3)
        found = await client.find("/api/suppliers/", "code", "S01")
        absent = await client.find("/api/suppliers/", "code", "S99")
    assert found is not None and found["name"] == "n1"
    assert absent is None


async def test_too_many_pages_or_items_are_refused(tenant: RunningTenant) -> None:
    async with _client(tenant, list_limits=ListLimits(page_size=2, max_pages=2)) as client:
        await _seed(client, 5)
        with pytest.raises(PaginationError, match="more than 2 pages"):
            await client.list_objects("/api/suppliers/")
    async with _client(tenant, list_limits=ListLimits(page_size=10, max_items=3)) as client:
        with pytest.raises(PaginationError, match="more than 3 objects"):
            await client.list_objects("/api/suppliers/")


# --- a hostile server: pagination must not leave the origin -----------------------------


def _hostile(next_of: Callable[[str], str | None], seen: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        host = dict(scope["headers"]).get(b"host", b"").decode()
        query = scope["query_string"].decode()
        seen.append(f"{scope['method']} {scope['scheme']}://{host}{scope['path']}?{query}")
        if scope["path"] == "/api/token/":
            body: Any = {"access": "a.b.c", "refresh": "d.e.f"}
        else:
            body = {
                "count": 99,
                "next": next_of(scope["query_string"].decode()),
                "previous": None,
                "results": [{"id": len(seen), "code": f"x{len(seen)}"}],
            }
        raw = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    return app


def _hostile_client(app: Any, base_url: str = "http://127.0.0.1:9", **options: Any) -> RestClient:
    endpoint = RestEndpoint(
        "hostile",
        base_url,
        JwtAuth("/api/token/", "/api/token/refresh/", "U", "P"),
        ApiKeyHeader("Api-Key", "K"),
        "reconciler.yaml",
        1,
        **options,
    )
    return RestClient(endpoint, credentials(), transport=httpx.ASGITransport(app=app), retry=FAST)


@pytest.mark.parametrize(
    "target",
    [
        "http://evil.example/api/things/?page=2",
        "https://127.0.0.1:10/api/things/?page=2",  # another scheme and port
        "http://127.0.0.1:10/api/things/?page=2",  # another port
        "http://127.0.0.1:9/api/other/?page=2",  # another collection
        "//evil.example/api/things/?page=2",  # scheme-relative
    ],
)
async def test_a_next_link_to_another_origin_is_refused(target: str) -> None:
    seen: list[str] = []
    async with _hostile_client(_hostile(lambda query: target, seen)) as client:
        with pytest.raises(PaginationError, match="refusing to follow 'next'") as caught:
            await client.list_objects("/api/things/")
    assert ":None" not in str(caught.value)  # the origin as written, not a missing port
    # No page-size parameter unless the endpoint names one.
    assert [s for s in seen if "/api/things/" in s] == ["GET http://127.0.0.1:9/api/things/?"]
    assert not any("evil" in s or ":10" in s or "/api/other/" in s for s in seen)


@pytest.mark.parametrize(
    ("base_url", "link"),
    [
        ("https://shop.example", "http://shop.example/api/things/?page=2"),
        ("https://shop.example:8443", "http://shop.example:8443/api/things/?page=2"),
    ],
)
async def test_a_next_link_in_another_scheme_on_the_same_host_and_port_is_read_at_the_origin(
    base_url: str, link: str
) -> None:
    # An application behind a TLS-terminating proxy builds its links with http://: they are
    # read at the base URL's origin (https), never in clear.
    seen: list[str] = []
    pages = {"": link, "page=2": None}
    async with _hostile_client(_hostile(lambda query: pages[query], seen), base_url) as client:
        listed = await client.list_objects("/api/things/")
    assert len(listed) == 2
    origin = base_url.replace(":8443", "")  # the Host header carries the port
    assert [s.split(" ", 1)[1].replace(":8443", "") for s in seen if "/api/things/" in s] == [
        f"{origin}/api/things/?", f"{origin}/api/things/?page=2"
    ]
    assert not any(s.split(" ", 1)[1].startswith("http://") for s in seen)


async def test_a_page_size_is_asked_for_only_with_the_endpoint_s_parameter() -> None:
    seen: list[str] = []
    app = _hostile(lambda query: None, seen)
    async with _hostile_client(app, page_size_param="limit") as client:
        await client.list_objects("/api/things/")
    assert seen[-1] == "GET http://127.0.0.1:9/api/things/?limit=100"


async def test_a_next_link_loop_is_detected() -> None:
    seen: list[str] = []
    # page 1 -> page 2 -> page 2 ...
    app = _hostile(lambda query: "http://127.0.0.1:9/api/things/?page=2", seen)
    async with _hostile_client(app) as client:
        with pytest.raises(PaginationError, match="already read"):
            await client.list_objects("/api/things/")
    assert len([s for s in seen if "/api/things/" in s]) == 2


# --- writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["commit-then-502", "commit-then-drop"])
async def test_an_ambiguous_create_that_was_done_is_resolved_by_listing(
    tenant: RunningTenant, fault: Any
) -> None:
    tenant.faults.add("POST", "/api/products/", fault)
    async with _client(tenant) as client:
        created = await client.create(
            "/api/products/", "sku", {"sku": "P1", "name": "p", "price": 1}
        )
        listed = await client.list_objects("/api/products/")
    assert created["sku"] == "P1" and isinstance(created["id"], int)
    assert [p["sku"] for p in listed] == ["P1"]  # one object, not two
    assert client.stats.by_request["POST /api/products/"] == 1  # never sent twice


async def test_an_ambiguous_create_that_was_not_done_is_sent_again(tenant: RunningTenant) -> None:
    tenant.faults.add("POST", "/api/products/", "503")
    async with _client(tenant) as client:
        created = await client.create(
            "/api/products/", "sku", {"sku": "P2", "name": "p", "price": 2}
        )
        listed = await client.list_objects("/api/products/")
    assert created["sku"] == "P2"
    assert [p["sku"] for p in listed] == ["P2"]
    assert client.stats.by_request["POST /api/products/"] == 2


async def test_a_create_that_stays_ambiguous_says_so(tenant: RunningTenant) -> None:
    for _ in range(FAST.max_attempts):
        tenant.faults.add("POST", "/api/products/", "500")
    async with _client(tenant) as client:
        with pytest.raises(AmbiguousWriteError, match="still unresolved"):
            await client.create("/api/products/", "sku", {"sku": "P3", "name": "p", "price": 3})


async def test_reads_are_retried_on_502_and_503(tenant: RunningTenant) -> None:
    tenant.faults.add("GET", "/api/categories/", "502")
    tenant.faults.add("GET", "/api/categories/", "503")
    async with _client(tenant) as client:
        listed = await client.list_objects("/api/categories/")
    assert len(listed) == 1
    assert client.stats.retries == 2


async def test_update_patches_only_the_managed_fields(tenant: RunningTenant) -> None:
    async with _client(tenant) as client:
        created = await client.create(
            "/api/products/", "sku", {"sku": "U1", "name": "u", "price": 1, "description": "keep"}
        )
        updated = await client.update("/api/products/", created["id"], {"price": 9})
        fetched = await client.get("/api/products/", created["id"])
    assert updated["price"] == "9.00"  # a DecimalField answers its fixed-point form
    assert fetched is not None and fetched["description"] == "keep" and fetched["name"] == "u"
    assert client.stats.by_request[f"PATCH /api/products/{created['id']}/"] == 1


async def test_delete_and_delete_again(tenant: RunningTenant) -> None:
    async with _client(tenant) as client:
        created = await client.create("/api/categories/", "slug", {"slug": "tools", "name": "T"})
        assert await client.delete("/api/categories/", created["id"]) is True
        assert await client.delete("/api/categories/", created["id"]) is False
        assert await client.get("/api/categories/", created["id"]) is None


async def test_field_errors_are_returned_per_field(tenant: RunningTenant) -> None:
    async with _client(tenant) as client:
        with pytest.raises(RestValidationError) as caught:
            await client.create("/api/products/", "sku", {"sku": "", "price": "x"})
    error = caught.value
    assert error.status == 400
    assert error.fields == {
        "sku": ["This field may not be blank."],
        "name": ["This field is required."],
        "price": ["A valid number is required."],
    }
    assert "price: A valid number is required." in str(error)


async def test_public_schema_writes_say_check_the_api_key(tenant: RunningTenant) -> None:
    async with RestClient(tenant.endpoint(api_key=False), credentials(None), retry=FAST) as client:
        assert len(await client.list_objects("/api/categories/")) == 1  # reads work
        with pytest.raises(
            ReadOnlyError, match=r"read-only \(public schema\?\): check the Api-Key"
        ):
            await client.create("/api/categories/", "slug", {"slug": "x", "name": "x"})


async def test_duplicate_natural_keys_and_unsafe_paths_are_refused(tenant: RunningTenant) -> None:
    from reconciler.providers.rest.client import index_by_key

    with pytest.raises(DuplicateKeyError, match="two objects have sku='A'"):
        index_by_key([{"id": 1, "sku": "A"}, {"id": 2, "sku": "A"}], "sku", "/api/products/")
    async with _client(tenant) as client:
        for bad in ("api/products/", "/api/products", "/api/../token/", "/api/p/?x=1"):
            with pytest.raises(Exception, match="collection path"):
                await client.list_objects(bad)
        with pytest.raises(Exception, match="cannot be put in a URL"):
            await client.delete("/api/products/", "1/../../token")
        with pytest.raises(RestApiError) as missing:
            await client.update("/api/products/", 424242, {"name": "x"})
    assert missing.value.status == 404


async def test_the_sandbox_works_in_process(tmp_path: Any) -> None:
    from reconciler.providers.rest.sandbox import TenantSandboxConfig, create_tenant_app
    from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER

    config = TenantSandboxConfig(
        db_path=tmp_path / "t.db",
        users={TENANT_USER: TENANT_PASSWORD},
        api_keys={TENANT_KEY: "t"},
    )
    app = create_tenant_app(config)
    endpoint = RestEndpoint(
        "shop",
        "http://127.0.0.1:9",  # never dialled: the ASGI transport hands requests to the app
        JwtAuth("/api/token/", "/api/token/refresh/", "U", "P"),
        ApiKeyHeader("Api-Key", "K"),
        "reconciler.yaml",
        1,
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with RestClient(endpoint, credentials(), transport=transport) as client:
            await client.create("/api/categories/", "slug", {"slug": "tools", "name": "Tools"})
            listed = await client.list_objects("/api/categories/")
    finally:
        app.state.store.close()
    assert [c["slug"] for c in listed] == ["general", "tools"]
