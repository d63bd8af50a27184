"""Contract of the tenant sandbox over real HTTP: simplejwt tokens (rotation + blacklist,
expiry), Api-Key tenants and the read-only public schema, DRF pagination, 400/404 shapes."""

from __future__ import annotations

import time
import uuid

import pytest

from reconciler.providers.rest.sandbox.jwt import TokenInvalid, decode_hs256, encode_hs256
from tests.fixtures_tenant import (
    OTHER_KEY,
    TENANT_KEY,
    TENANT_PASSWORD,
    TENANT_USER,
    RunningTenant,
)

PRODUCT = {"sku": "A-1", "name": "Anvil", "price": 12.5}


def _auth(tenant: RunningTenant, key: str | None = TENANT_KEY) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {tenant.tokens()['access']}"}
    if key is not None:
        headers["Api-Key"] = key
    return headers


# --- the HS256 helper ------------------------------------------------------------------


def test_hs256_round_trip_and_refusals() -> None:
    key = b"k" * 32
    token = encode_hs256({"exp": 200.0, "sub": "x"}, key)
    assert decode_hs256(token, key, now=100.0)["sub"] == "x"
    with pytest.raises(TokenInvalid, match="expired"):
        decode_hs256(token, key, now=200.0)
    with pytest.raises(TokenInvalid):
        decode_hs256(token, b"other-key-other-key", now=100.0)
    header, body, signature = token.split(".")
    forged = encode_hs256({"exp": 999.0, "sub": "admin"}, key).split(".")[1]
    with pytest.raises(TokenInvalid):
        decode_hs256(f"{header}.{forged}.{signature}", key, now=100.0)
    # alg "none" (and anything but HS256) is refused whatever the signature says.
    none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"
    with pytest.raises(TokenInvalid):
        decode_hs256(f"{none_header}.{body}.", key, now=100.0)
    with pytest.raises(TokenInvalid):
        decode_hs256("not.a.jwt", key, now=100.0)


# --- tokens ----------------------------------------------------------------------------


def test_login_gives_an_access_and_a_refresh_token(tenant: RunningTenant) -> None:
    with tenant.http() as http:
        ok = http.post("/api/token/", json={"username": TENANT_USER, "password": TENANT_PASSWORD})
        wrong = http.post("/api/token/", json={"username": TENANT_USER, "password": "nope"})
        missing = http.post("/api/token/", json={"username": TENANT_USER})
    assert ok.status_code == 200 and set(ok.json()) == {"access", "refresh"}
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "No active account found with the given credentials"}
    assert missing.status_code == 400
    assert missing.json() == {"password": ["This field is required."]}


def test_refresh_rotates_and_blacklists_the_used_refresh_token(tenant: RunningTenant) -> None:
    first = tenant.tokens()
    with tenant.http() as http:
        rotated = http.post("/api/token/refresh/", json={"refresh": first["refresh"]})
        again = http.post("/api/token/refresh/", json={"refresh": first["refresh"]})
        with_new = http.post("/api/token/refresh/", json={"refresh": rotated.json()["refresh"]})
        with_access = http.post("/api/token/refresh/", json={"refresh": first["access"]})
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]
    assert again.status_code == 401
    assert again.json() == {"detail": "Token is blacklisted", "code": "token_not_valid"}
    assert with_new.status_code == 200
    assert with_access.status_code == 401 and with_access.json()["code"] == "token_not_valid"


def test_bearer_is_required_and_an_expired_access_token_is_token_not_valid(
    tenant: RunningTenant,
) -> None:
    now = time.time()
    expired = encode_hs256(
        {
            "token_type": "access",
            "exp": now - 1,
            "iat": now - 3,
            "jti": "x",
            "user_id": TENANT_USER,
        },
        tenant.config.signing_key,
    )
    with tenant.http() as http:
        none = http.get("/api/products/", headers={"Api-Key": TENANT_KEY})
        old = http.get(
            "/api/products/", headers={"Api-Key": TENANT_KEY, "Authorization": f"Bearer {expired}"}
        )
        refresh_as_access = http.get(
            "/api/products/",
            headers={
                "Api-Key": TENANT_KEY,
                "Authorization": f"Bearer {tenant.tokens()['refresh']}",
            },
        )
    assert none.status_code == 401
    assert none.json() == {"detail": "Authentication credentials were not provided."}
    assert none.headers["www-authenticate"] == 'Bearer realm="api"'
    assert old.status_code == 401
    body = old.json()
    assert body["code"] == "token_not_valid"
    assert body["messages"][0]["token_type"] == "access"
    assert refresh_as_access.status_code == 401
    assert refresh_as_access.json()["code"] == "token_not_valid"


def test_access_token_lifetime_is_the_configured_one(tenant: RunningTenant) -> None:
    import base64
    import json

    payload = tenant.tokens()["access"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == pytest.approx(2.0)
    assert claims["token_type"] == "access"


# --- tenants ---------------------------------------------------------------------------


def test_tenants_are_isolated_copies_of_public_and_public_is_read_only(
    tenant: RunningTenant,
) -> None:
    with tenant.http() as http:
        created = http.post("/api/products/", json=PRODUCT, headers=_auth(tenant))
        mine = http.get("/api/products/", headers=_auth(tenant)).json()
        other = http.get("/api/products/", headers=_auth(tenant, OTHER_KEY)).json()
        public = http.get("/api/products/", headers=_auth(tenant, None)).json()
        public_write = http.post("/api/products/", json=PRODUCT, headers=_auth(tenant, None))
        unknown = http.get("/api/products/", headers=_auth(tenant, "no-such-key"))
        seed = http.get("/api/categories/", headers=_auth(tenant, OTHER_KEY)).json()
    assert created.status_code == 201
    assert [p["sku"] for p in mine["results"]] == ["A-1"]
    assert other["count"] == 0 and public["count"] == 0
    assert public_write.status_code == 403
    assert public_write.json() == {"detail": "You do not have permission to perform this action."}
    assert unknown.status_code == 403
    assert [c["slug"] for c in seed["results"]] == ["general"]  # the copy of public


# --- collections -----------------------------------------------------------------------


def test_objects_have_server_fields_and_400_lists_only_invalid_fields(
    tenant: RunningTenant,
) -> None:
    headers = _auth(tenant)
    with tenant.http(headers=headers) as http:
        created = http.post("/api/products/", json={**PRODUCT, "id": 99, "extra": 1})
        invalid = http.post("/api/products/", json={"sku": "B-1", "price": "cheap"})
        duplicate = http.post("/api/products/", json=PRODUCT)
        patched = http.patch(f"/api/products/{created.json()['id']}/", json={"name": "Big anvil"})
        bad_patch = http.patch(f"/api/products/{created.json()['id']}/", json={"active": "yes"})
        missing = http.get("/api/products/9999/")
        deleted = http.delete(f"/api/products/{created.json()['id']}/")
        gone = http.delete(f"/api/products/{created.json()['id']}/")
    obj = created.json()
    assert created.status_code == 201
    assert obj["id"] == 1  # read-only fields sent are ignored, as DRF does
    assert "extra" not in obj
    assert obj["active"] is True and obj["description"] == ""  # defaults
    assert obj["created_at"].endswith("Z") and obj["updated_at"] == obj["created_at"]
    assert invalid.status_code == 400
    assert invalid.json() == {
        "name": ["This field is required."],
        "price": ["A valid number is required."],
    }
    assert duplicate.status_code == 400
    assert duplicate.json() == {"sku": ["product with this sku already exists."]}
    assert patched.status_code == 200
    assert patched.json()["name"] == "Big anvil" and patched.json()["price"] == "12.50"
    assert patched.json()["updated_at"] >= obj["updated_at"]
    assert bad_patch.status_code == 400 and bad_patch.json() == {
        "active": ["Must be a valid boolean."]
    }
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No Product matches the given query."}
    assert deleted.status_code == 204
    assert gone.status_code == 404


def test_coupons_have_uuid_ids_used_in_their_urls(tenant: RunningTenant) -> None:
    with tenant.http(headers=_auth(tenant)) as http:
        created = http.post("/api/coupons/", json={"code": "SPRING", "percent": 10, "id": 5})
        object_id = created.json()["id"]
        patched = http.patch(f"/api/coupons/{object_id}/", json={"percent": 15})
        listed = http.get("/api/coupons/").json()
        not_a_uuid = http.get("/api/coupons/5/")
        unknown = http.get("/api/coupons/00000000-0000-4000-8000-000000000000/")
        product_by_text = http.get("/api/products/abc/")
        deleted = http.delete(f"/api/coupons/{object_id}/")
        gone = http.get(f"/api/coupons/{object_id}/")
    assert created.status_code == 201
    assert isinstance(object_id, str) and str(uuid.UUID(object_id)) == object_id
    assert patched.json()["percent"] == "15.00" and patched.json()["id"] == object_id
    assert [c["id"] for c in listed["results"]] == [object_id]
    for answer in (not_a_uuid, product_by_text):
        assert answer.status_code == 404 and answer.json() == {"detail": "Not found."}
    for answer in (unknown, gone):  # Django's get_object_or_404 message, as DRF passes it on
        assert answer.status_code == 404
        assert answer.json() == {"detail": "No Coupon matches the given query."}
    assert deleted.status_code == 204


def test_pagination_is_drf_style_with_absolute_links(tenant: RunningTenant) -> None:
    headers = _auth(tenant)
    with tenant.http(headers=headers) as http:
        for n in range(25):
            assert http.post("/api/suppliers/", json={"code": f"S{n:02}", "name": "x"}).is_success
        first = http.get("/api/suppliers/").json()
        second = http.get(first["next"]).json()
        sized = http.get("/api/suppliers/?page_size=20&page=2").json()
        capped = http.get("/api/suppliers/?page_size=100000").json()
        beyond = http.get("/api/suppliers/?page=9")
    assert first["count"] == 25 and len(first["results"]) == 10 and first["previous"] is None
    assert first["next"].startswith(tenant.base_url + "/api/suppliers/?")
    assert second["results"][0]["code"] == "S10"
    assert second["previous"] is not None
    assert len(sized["results"]) == 5 and sized["next"] is None
    assert len(capped["results"]) == 25  # capped at max_page_size (100), all fit
    assert beyond.status_code == 404 and beyond.json() == {"detail": "Invalid page."}


def test_scripted_fault_commits_then_answers_502(tenant: RunningTenant) -> None:
    tenant.faults.add("POST", "/api/products/", "commit-then-502")
    with tenant.http(headers=_auth(tenant)) as http:
        lost = http.post("/api/products/", json=PRODUCT)
        listed = http.get("/api/products/").json()
    assert lost.status_code == 502
    assert [p["sku"] for p in listed["results"]] == ["A-1"]  # done, though answered 502


def test_put_needs_every_required_field_and_keeps_the_others(tenant: RunningTenant) -> None:
    with tenant.http(headers=_auth(tenant)) as http:
        created = http.post("/api/products/", json={**PRODUCT, "description": "kept"}).json()
        partial = http.put(f"/api/products/{created['id']}/", json={"name": "Only a name"})
        full = http.put(
            f"/api/products/{created['id']}/", json={"sku": "A-1", "name": "New", "price": 3}
        )
        method = http.post(f"/api/products/{created['id']}/", json={})
    assert partial.status_code == 400
    assert partial.json() == {
        "sku": ["This field is required."],
        "price": ["This field is required."],
    }
    assert full.status_code == 200
    assert (full.json()["name"], full.json()["description"]) == ("New", "kept")
    assert method.status_code == 405
    assert method.json() == {"detail": 'Method "POST" not allowed.'}
