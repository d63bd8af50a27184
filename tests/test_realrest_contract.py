"""The tenant sandbox against a real Django REST framework server: the same requests to both,
the same status codes and body shapes (and, where a client reads them, the same values:
DRF's messages, a decimal's normal form). What the sandbox claims about DRF, simplejwt and
djangorestframework-api-key is checked here against the real packages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures_realrest import REALSHOP_PASSWORD, REALSHOP_USER, RealShop
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER, RunningTenant

# Ids (a supplier's too) come from sequences the two servers do not share.
SERVER_FIELDS = ("id", "supplier", "created_at", "updated_at")


@dataclass
class Server:
    """One side of the comparison: where it is and how to log in."""

    name: str
    http: httpx.Client
    user: str
    password: str
    api_key: str
    ids: dict[str, Any]

    def login(self) -> dict[str, Any]:
        answer = self.http.post(
            "/api/token/", json={"username": self.user, "password": self.password}
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def shape(value: Any) -> Any:
    """The JSON type tree of ``value``: objects by key, lists by their items' shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted({repr(shape(item)) for item in value})
    return type(value).__name__


def masked(value: Any) -> Any:
    """``value`` with what differs between two servers by nature (ids, times) masked."""
    if isinstance(value, dict):
        return {k: "<server>" if k in SERVER_FIELDS else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


Step = Callable[[Server], httpx.Response]


@pytest.fixture
def servers(
    tenant_factory: Callable[..., RunningTenant], realshop: RealShop, realshop_tenant: str
) -> Iterator[list[Server]]:
    # The real server's page size and token lifetime (the fixture's default is 2 s).
    tenant = tenant_factory(
        access_seconds=300.0, page_size=realshop.page_size, page_size_param=None
    )
    with tenant.http() as sandbox, realshop.http() as real:
        out = [
            Server("sandbox", sandbox, TENANT_USER, TENANT_PASSWORD, TENANT_KEY, {}),
            Server("real", real, REALSHOP_USER, REALSHOP_PASSWORD, realshop_tenant, {}),
        ]
        yield out


def both(servers: list[Server], step: Step, *, values: bool = False) -> list[httpx.Response]:
    """Send ``step`` to each server; the same status and body shape (``values``: the same
    body, ids and times masked)."""
    answers = [step(server) for server in servers]
    sandbox, real = answers
    assert sandbox.status_code == real.status_code, (sandbox.text, real.text)
    if real.content or sandbox.content:
        assert shape(sandbox.json()) == shape(real.json()), (sandbox.text, real.text)
        if values:
            assert masked(sandbox.json()) == masked(real.json()), (sandbox.text, real.text)
    return answers


def authed(server: Server, token: str, *, key: str | None = "tenant") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key == "tenant":
        headers["Api-Key"] = server.api_key
    elif key is not None:
        headers["Api-Key"] = key
    return headers


def test_tokens_and_their_refusals_match(servers: list[Server]) -> None:
    both(servers, lambda s: s.http.get("/api/products/"), values=True)  # no token: 401
    both(
        servers,
        lambda s: s.http.post("/api/token/", json={"username": s.user, "password": "no"}),
        values=True,
    )
    both(servers, lambda s: s.http.post("/api/token/", json={"username": s.user}), values=True)
    pairs = {s.name: s.login() for s in servers}
    assert {k: sorted(v) for k, v in pairs.items()} == {
        "sandbox": ["access", "refresh"], "real": ["access", "refresh"],
    }  # fmt: skip

    def refresh(s: Server) -> httpx.Response:
        return s.http.post("/api/token/refresh/", json={"refresh": pairs[s.name]["refresh"]})

    rotated = both(servers, refresh)
    assert all(sorted(r.json()) == ["access", "refresh"] for r in rotated)  # rotation
    both(servers, refresh)  # the same refresh token again: blacklisted, 401
    assert all(refresh(s).json()["code"] == "token_not_valid" for s in servers)
    both(servers, lambda s: s.http.get("/api/products/", headers=authed(s, "not.a.token")))
    both(
        servers, lambda s: s.http.get("/api/products/", headers=authed(s, pairs[s.name]["refresh"]))
    )


def test_collections_objects_and_errors_match(servers: list[Server]) -> None:
    access = {s.name: s.login()["access"] for s in servers}

    def call(method: str, path: str, body: Any = None, key: str | None = "tenant") -> Step:
        def step(s: Server) -> httpx.Response:
            url = path.format(**s.ids)
            headers = authed(s, access[s.name], key=key)
            return s.http.request(method, url, json=body, headers=headers)

        return step

    # Suppliers, and a product naming one by id (a PrimaryKeyRelatedField), with a decimal.
    [sandbox, real] = both(
        servers, call("POST", "/api/suppliers/", {"code": "ACME", "name": "Acme"}), values=True
    )
    servers[0].ids["supplier"], servers[1].ids["supplier"] = sandbox.json()["id"], real.json()["id"]
    body = {"sku": "HAM-01", "name": "Hammer", "price": 12.5}
    [sandbox, real] = both(
        servers,
        lambda s: call("POST", "/api/products/", {**body, "supplier": s.ids["supplier"]})(s),
    )
    assert sandbox.status_code == 201 and real.json()["price"] == sandbox.json()["price"] == "12.50"
    servers[0].ids["product"], servers[1].ids["product"] = sandbox.json()["id"], real.json()["id"]
    both(
        servers,
        call("POST", "/api/products/", {**body, "sku": "HAM-02", "supplier": 99999}),
        values=True,
    )
    both(
        servers,
        call("POST", "/api/products/", {**body, "sku": "HAM-03", "supplier": "x"}),
        values=True,
    )
    both(servers, call("POST", "/api/products/", body), values=True)  # the key is taken
    both(servers, call("POST", "/api/products/", {"sku": "HAM-04", "price": "cheap"}), values=True)
    both(
        servers,
        call("POST", "/api/products/", {"sku": "HAM-05", "name": "n", "price": "1.234"}),
        values=True,
    )
    both(
        servers,
        call("POST", "/api/products/", {"sku": "HAM-06", "name": "n", "price": "123456789"}),
        values=True,
    )
    both(servers, call("PATCH", "/api/products/{product}/", {"price": "13"}), values=True)
    both(servers, call("PATCH", "/api/products/{product}/", {"active": "maybe"}), values=True)
    both(servers, call("GET", "/api/products/{product}/"))
    both(servers, call("GET", "/api/products/999999/"), values=True)
    both(servers, call("GET", "/api/products/abc/"), values=True)
    # Coupons: a UUID primary key, answered as a string.
    [sandbox, real] = both(
        servers, call("POST", "/api/coupons/", {"code": "SPRING", "percent": 10}), values=True
    )
    servers[0].ids["coupon"], servers[1].ids["coupon"] = sandbox.json()["id"], real.json()["id"]
    both(servers, call("GET", "/api/coupons/{coupon}/"))
    both(servers, call("GET", "/api/coupons/00000000-0000-4000-8000-000000000000/"), values=True)
    # The read-only public schema (no key) and an unknown key.
    both(servers, call("GET", "/api/suppliers/", key=None))
    both(
        servers,
        call("POST", "/api/suppliers/", {"code": "NOPE", "name": "n"}, key=None),
        values=True,
    )
    both(servers, call("GET", "/api/suppliers/", key="no-such-key.0123456789"), values=True)
    both(servers, call("DELETE", "/api/products/{product}/"))
    both(servers, call("DELETE", "/api/products/{product}/"), values=True)


def test_pages_match(servers: list[Server], realshop: RealShop) -> None:
    access = {s.name: s.login()["access"] for s in servers}
    for s in servers:
        for n in range(realshop.page_size + 2):
            answer = s.http.post(
                "/api/suppliers/",
                json={"code": f"S{n}", "name": "s"},
                headers=authed(s, access[s.name]),
            )
            assert answer.status_code == 201, answer.text
    first = both(
        servers, lambda s: s.http.get("/api/suppliers/", headers=authed(s, access[s.name]))
    )
    assert all(a.json()["count"] == realshop.page_size + 2 for a in first)
    assert all(a.json()["next"].endswith("/api/suppliers/?page=2") for a in first)
    # DRF's default pagination takes no page-size parameter: pages stay the server's size.
    sized = both(
        servers,
        lambda s: s.http.get("/api/suppliers/?page_size=100", headers=authed(s, access[s.name])),
    )
    assert [len(a.json()["results"]) for a in sized] == [realshop.page_size] * 2
    both(
        servers,
        lambda s: s.http.get("/api/suppliers/?page=99", headers=authed(s, access[s.name])),
        values=True,
    )
