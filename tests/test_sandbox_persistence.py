"""Durability, concurrency, fault injection and bundle uploads."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.providers.miniappcenter.sandbox import SandboxConfig, SandboxStore, create_app
from reconciler.providers.miniappcenter.sandbox.errors import ErrorCode
from reconciler.providers.miniappcenter.sandbox.store import StoredObject
from tests.fixtures_sandbox import TEST_TOKEN, RunningSandbox

APP_ID = "com.genexus.verdant.coffeemuffins"
APP_BODY: dict[str, Any] = {
    "id": APP_ID,
    "name": "Coffee & Muffins",
    "superapp_id": "com.genexus.verdantbank",
    "type": "Native",
}
VERSION_BODY: dict[str, Any] = {"platform_id": "iOS", "main_name": "start", "main_type": "Panel"}
Factory = Callable[..., RunningSandbox]


def in_process(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox.test/api/v1",
        headers={"APIKey-Auth": TEST_TOKEN},
    )


def error_codes(response: httpx.Response) -> list[int]:
    return [e["code"] for e in response.json()["errors"]]


# --- durability --------------------------------------------------------------------------------


async def test_data_survives_a_restart(sandbox_config: SandboxConfig) -> None:
    first = create_app(sandbox_config)
    async with in_process(first) as c:
        assert (await c.post("/miniapps", json=APP_BODY)).status_code == 201
        await c.post(f"/miniapps/{APP_ID}/attributes", json={"field": "COUNTRY", "value": "UY"})
        location = (
            await c.post(
                f"/miniapps/{APP_ID}/locations", json={"name": "C", "geo_point": "POINT(1 2)"}
            )
        ).json()["data"]["id"]
        version = (await c.post(f"/miniapps/{APP_ID}/versions", json=VERSION_BODY)).json()["data"]
        await c.post(f"/miniapps/{APP_ID}/versions/{version['id']}/send_to_review")
        await c.post(
            f"/miniapps/{APP_ID}/versions/{version['id']}/compatibility",
            json={"superapp_version": 4},
        )
        object_id = (
            await c.post("/gxobject", content=b"img", headers={"x-gx-filename": "i.png"})
        ).json()["object_id"]
        update = {k: APP_BODY[k] for k in ("name", "superapp_id", "type")}
        await c.put(f"/miniapps/{APP_ID}", json={**update, "icon": object_id})
        before = (await c.get(f"/miniapps/{APP_ID}")).json()
    first.state.store.close()

    second = create_app(sandbox_config)
    try:
        async with in_process(second) as c:
            assert (await c.get(f"/miniapps/{APP_ID}")).json() == before
            listed = (await c.get(f"/miniapps/{APP_ID}/locations")).json()["data"]
            assert [loc["id"] for loc in listed] == [location]
            got = await c.get(f"/miniapps/{APP_ID}/versions/{version['id']}")
            assert got.json()["data"]["code"] == version["code"]
            assert (await c.get(before["data"]["icon"])).content == b"img"
            # Sequences carry on after the restart; codes too.
            new_location = await c.post(
                f"/miniapps/{APP_ID}/locations", json={"name": "D", "geo_point": "POINT(3 4)"}
            )
            assert new_location.json()["data"]["id"] == location + 1
            new_version = await c.post(f"/miniapps/{APP_ID}/versions", json=VERSION_BODY)
            assert new_version.json()["data"] == {"id": version["id"] + 1, "code": "2"}
        store: SandboxStore = second.state.store
        assert store.version_status(APP_ID, version["id"]) == "waiting_for_review"
        assert store.compatibilities(APP_ID, version["id"]) == {4}
    finally:
        second.state.store.close()


def test_restart_over_http(sandbox_server_factory: Factory) -> None:
    first = sandbox_server_factory()
    with first.client() as c:
        assert c.post("/miniapps", json=APP_BODY).status_code == 201
    first.stop()  # synchronously: the next server opens the same file

    second = sandbox_server_factory()
    with second.client() as c:
        assert c.get(f"/miniapps/{APP_ID}").json()["data"]["name"] == "Coffee & Muffins"
    assert second.store.count_apps() == 1


def test_store_call_is_one_transaction(sandbox_config: SandboxConfig) -> None:
    with SandboxStore(sandbox_config.db_path) as store:
        icon = StoredObject("a" * 32, "icon.png", b"png")
        # The second location is malformed: the failure comes after the app row, the
        # attribute, the first location and the object were written, and must undo them.
        with pytest.raises(KeyError):
            store.create_miniapp(
                APP_BODY,
                attributes=[("COUNTRY", "UY")],
                locations=[{"name": "A", "geo_point": "POINT(1 2)"}, {"name": "B"}],
                objects=[icon],
            )
        assert store.count_apps() == 0
        assert store.count_objects() == 0
        store.create_miniapp(APP_BODY)  # and the store is still usable
        assert store.count_apps() == 1


# --- concurrency -------------------------------------------------------------------------------


async def test_concurrent_location_creates_get_distinct_ids(sandbox_server: RunningSandbox) -> None:
    async with sandbox_server.async_client() as c:
        assert (await c.post("/miniapps", json=APP_BODY)).status_code == 201
        responses = await asyncio.gather(
            *(
                c.post(
                    f"/miniapps/{APP_ID}/locations",
                    json={"name": f"L{i}", "geo_point": f"POINT({i} {i / 2})"},
                )
                for i in range(50)
            )
        )
        assert [r.status_code for r in responses] == [201] * 50
        ids = [r.json()["data"]["id"] for r in responses]
        assert len(set(ids)) == 50
        listed = (await c.get(f"/miniapps/{APP_ID}/locations")).json()["data"]
    assert sorted(loc["id"] for loc in listed) == sorted(ids)


async def test_concurrent_versions_get_distinct_assigned_codes(
    sandbox_server: RunningSandbox,
) -> None:
    async with sandbox_server.async_client() as c:
        await c.post("/miniapps", json=APP_BODY)
        responses = await asyncio.gather(
            *(c.post(f"/miniapps/{APP_ID}/versions", json=VERSION_BODY) for _ in range(30))
        )
    assert [r.status_code for r in responses] == [201] * 30
    codes = sorted(int(r.json()["data"]["code"]) for r in responses)
    assert codes == list(range(1, 31))


async def test_latency_does_not_serialise_requests(sandbox_server_factory: Factory) -> None:
    latency_s = 0.2
    server = sandbox_server_factory(latency_ms=latency_s * 1000)
    async with server.async_client() as c:
        started = time.monotonic()
        await c.get(f"/miniapps/{APP_ID}")
        one = time.monotonic() - started
        assert one >= latency_s * 0.95  # the latency is really applied

        started = time.monotonic()
        responses = await asyncio.gather(*(c.get(f"/miniapps/{APP_ID}") for _ in range(20)))
        elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [404] * 20
    assert elapsed < 5 * latency_s, f"20 requests took {elapsed:.2f}s: serialised?"


# --- injected faults ---------------------------------------------------------------------------


async def outcomes(config: SandboxConfig, count: int) -> list[str]:
    """'ok', '503' or 'dropped' for ``count`` sequential GETs against a fresh app."""
    app = create_app(config)
    result: list[str] = []
    try:
        async with in_process(app) as c:
            for _ in range(count):
                try:
                    response = await c.get(f"/miniapps/{APP_ID}")
                except httpx.TransportError:
                    result.append("dropped")
                    continue
                if response.status_code == 503:
                    assert error_codes(response) == [ErrorCode.FAULT_UNAVAILABLE]
                    result.append("503")
                else:
                    assert response.status_code == 404
                    result.append("ok")
    finally:
        app.state.store.close()
    return result


async def test_fail_rate_is_seeded_and_mixes_503_and_drops(sandbox_config: SandboxConfig) -> None:
    config = SandboxConfig(
        db_path=sandbox_config.db_path, token=TEST_TOKEN, fail_rate=0.3, seed=1234
    )
    first = await outcomes(config, 200)
    assert first == await outcomes(config, 200)  # same seed, same faults
    failures = first.count("503") + first.count("dropped")
    assert 30 <= failures <= 90, first  # about 30 % of 200
    assert first.count("503") > 10 and first.count("dropped") > 10  # about half each


async def test_failed_requests_do_nothing(sandbox_config: SandboxConfig) -> None:
    config = SandboxConfig(db_path=sandbox_config.db_path, token=TEST_TOKEN, fail_rate=1, seed=3)
    app = create_app(config)
    try:
        async with in_process(app) as c:
            for _ in range(10):
                try:
                    response = await c.post("/miniapps", json=APP_BODY)
                    assert response.status_code == 503
                except httpx.TransportError:
                    pass
        assert app.state.store.count_apps() == 0
    finally:
        app.state.store.close()


def test_dropped_connection_over_http(sandbox_server_factory: Factory) -> None:
    server = sandbox_server_factory(fail_rate=1.0, seed=0)
    seen: set[str] = set()
    with server.client() as c:
        for _ in range(20):
            try:
                response = c.get(f"/miniapps/{APP_ID}")
            except httpx.RemoteProtocolError:
                seen.add("dropped")
            else:
                assert response.status_code == 503
                assert error_codes(response) == [ErrorCode.FAULT_UNAVAILABLE]
                seen.add("503")
    assert seen == {"dropped", "503"}


def test_ambiguous_write_is_done_then_502(sandbox_server_factory: Factory) -> None:
    server = sandbox_server_factory(ambiguous_rate=1.0, seed=1)
    with server.client() as c:
        response = c.post("/miniapps", json=APP_BODY)
        assert response.status_code == 502
        assert error_codes(response) == [ErrorCode.FAULT_AMBIGUOUS]
        assert server.store.count_apps() == 1  # the write happened
        # Reads are never ambiguous: the client can check what happened.
        assert c.get(f"/miniapps/{APP_ID}").status_code == 200
        # A blind retry also answers 502, hiding the duplicate error behind it.
        assert c.post("/miniapps", json=APP_BODY).status_code == 502
        assert server.store.count_apps() == 1


def test_rate_limit_answers_429_with_retry_after(sandbox_server_factory: Factory) -> None:
    server = sandbox_server_factory(rate_limit=2)
    with server.client() as c:
        statuses = []
        for _ in range(8):
            response = c.get(f"/miniapps/{APP_ID}")
            statuses.append(response.status_code)
            if response.status_code == 429:
                limited = response
        assert statuses[:2] == [404, 404]  # a burst of up to `rate_limit` passes
        assert statuses.count(429) >= 5
        assert int(limited.headers["Retry-After"]) >= 1
        assert error_codes(limited) == [ErrorCode.RATE_LIMITED]
        time.sleep(0.6)  # 2 tokens per second: one is back after 0.5 s
        assert c.get(f"/miniapps/{APP_ID}").status_code == 404


# --- bundle uploads ----------------------------------------------------------------------------


def mac(files: dict[str, bytes | str], *, manifest: str | None = None, info: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr("MANIFEST.MF", manifest)
        elif info:
            zf.writestr("MANIFEST.MF", f"Manifest-Version: 1.0\r\nVersion: 1\r\ninfo:{info}\r\n")
        for name, content in files.items():
            zf.writestr(name, content)
    return buffer.getvalue()


ICON = b"\x89PNG\r\n\x1a\nicon-bytes"
MINIAPP_JSON: dict[str, Any] = {
    "id": APP_ID,
    "name": "Coffee & Muffins",
    "organization_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "type": "native",
    "superapp_id": "com.genexus.verdantbank",
    "description": "Coffee & Muffins Mini App",
    "keywords": "coffee cafe",
    "icon": "images/icon.png",
    "card": "https://cdn.example.com/card.png",
    "additional_attributes": [{"field": "COUNTRY", "value": "Uruguay"}],
    "locations": [{"name": "Central", "geo_point": "POINT(-56.16 -34.92)"}],
}
VERSION_JSON: dict[str, Any] = {
    "code": "",
    "platform_id": "iOS",
    "main_name": "startObject",
    "main_type": "Panel",
    "metadata": "metadata.json",
    "integrated_security": True,
    "service_url": "https://apps6.genexus.com/x/",
    "compatibilities": [{"version": 1}, {"version": 2}],
    "status": "R",
}


def miniapp_bundle(**changes: Any) -> bytes:
    doc = {**MINIAPP_JSON, **changes}
    return mac({"miniapp.json": json.dumps(doc), "images/icon.png": ICON}, info="miniapp.json")


def version_bundle(**changes: Any) -> bytes:
    doc = {**VERSION_JSON, **changes}
    return mac(
        {"miniappversion.json": json.dumps(doc), "metadata.json": b'{"meta": 1}'},
        info="miniappversion.json",
    )


@pytest.fixture
def client(sandbox_server: RunningSandbox) -> Iterator[httpx.Client]:
    with sandbox_server.client() as c:
        yield c


def upload(client: httpx.Client, path: str, data: bytes, filename: str | None) -> httpx.Response:
    headers = {"filename": filename} if filename is not None else {}
    return client.post(path, content=data, headers=headers)


def test_miniapp_bundle_upload(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    response = upload(client, "/miniapps/upload", miniapp_bundle(), "MiniApp.mac")
    assert response.status_code == 201, response.text
    assert response.content == b""
    data = client.get(f"/miniapps/{APP_ID}").json()["data"]
    assert data["name"] == "Coffee & Muffins"
    assert data["type"] == "native"
    assert data["organization_id"] == MINIAPP_JSON["organization_id"]
    assert data["card"] == "https://cdn.example.com/card.png"  # a URL stays a URL
    assert data["icon"].startswith(sandbox_server.v1 + "/objects/")
    assert client.get(data["icon"]).content == ICON  # a file in the zip became an object
    assert data["additional_attributes"] == [{"field": "COUNTRY", "value": "Uruguay"}]
    [location] = client.get(f"/miniapps/{APP_ID}/locations").json()["data"]
    assert (location["name"], location["geo_point"]) == ("Central", "POINT(-56.16 -34.92)")


def test_version_bundle_upload(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    client.post("/miniapps", json=APP_BODY)
    response = upload(client, f"/miniapps/{APP_ID}/versions/upload", version_bundle(), "V.MAC")
    assert response.status_code == 201, response.text
    assert response.content == b""
    version_id = sandbox_server.store.version_id(APP_ID, "1")  # empty code: server assigns
    data = client.get(f"/miniapps/{APP_ID}/versions/{version_id}").json()["data"]
    assert data["platform_id"] == "iOS" and data["integrated_security"] is True
    assert client.get(data["metadata"]).content == b'{"meta": 1}'
    assert sandbox_server.store.version_status(APP_ID, version_id) == "waiting_for_review"
    assert sandbox_server.store.compatibilities(APP_ID, version_id) == {1, 2}

    pending = version_bundle(code="2.0", status=None, compatibilities=[])
    upload(client, f"/miniapps/{APP_ID}/versions/upload", pending, "v2.mac")
    second = sandbox_server.store.version_id(APP_ID, "2.0")
    assert sandbox_server.store.version_status(APP_ID, second) == "pending"
    assert sandbox_server.store.compatibilities(APP_ID, second) == set()


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        (None, miniapp_bundle(), ErrorCode.UPLOAD_FILENAME_MISSING),
        ("", miniapp_bundle(), ErrorCode.UPLOAD_FILENAME_MISSING),
        ("MiniApp.zip", miniapp_bundle(), ErrorCode.UPLOAD_BAD_EXTENSION),
        ("MiniApp.mac.txt", miniapp_bundle(), ErrorCode.UPLOAD_BAD_EXTENSION),
        ("MiniApp.mac", b"this is not a zip", ErrorCode.BUNDLE_NOT_ZIP),
        ("MiniApp.mac", b"", ErrorCode.BUNDLE_NOT_ZIP),
        ("MiniApp.mac", miniapp_bundle()[:-30], ErrorCode.BUNDLE_NOT_ZIP),  # truncated
        ("MiniApp.mac", mac({"miniapp.json": json.dumps(MINIAPP_JSON)}),
         ErrorCode.BUNDLE_MANIFEST_MISSING),
        ("MiniApp.mac", mac({"miniapp.json": "{}"}, manifest="info:miniapp.json"),
         ErrorCode.BUNDLE_MANIFEST_INVALID),
        ("MiniApp.mac", mac({"miniapp.json": "{}"}, manifest="Version: 1\n"),
         ErrorCode.BUNDLE_MANIFEST_INVALID),
        ("MiniApp.mac", mac({}, info="miniapp.json"), ErrorCode.BUNDLE_FILE_MISSING),
        ("MiniApp.mac", mac({"miniapp.json": "{nope"}, info="miniapp.json"),
         ErrorCode.BODY_NOT_JSON),
        ("MiniApp.mac", mac({"miniapp.json": json.dumps(MINIAPP_JSON)}, info="miniapp.json"),
         ErrorCode.BUNDLE_FILE_MISSING),  # icon names a file that is not in the zip
        ("MiniApp.mac", miniapp_bundle(type="Hybrid"), ErrorCode.INVALID_APP_TYPE),
        ("MiniApp.mac", miniapp_bundle(id="nodots"), ErrorCode.INVALID_APP_ID),
    ],
)  # fmt: skip
def test_bad_miniapp_uploads(
    client: httpx.Client,
    sandbox_server: RunningSandbox,
    filename: str | None,
    data: bytes,
    code: ErrorCode,
) -> None:
    response = upload(client, "/miniapps/upload", data, filename)
    assert response.status_code == 400
    assert code in error_codes(response), response.text
    assert sandbox_server.store.count_apps() == 0
    assert sandbox_server.store.count_objects() == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"locations": [{"name": "ok", "geo_point": "POINT(1 2)"},
                       {"name": "bad", "geo_point": "POINT(500 2)"}]},
        {"additional_attributes": [{"field": "A", "value": "1"}, {"field": "B"}]},
        {"additional_attributes": "COUNTRY=UY"},
        {"locations": ["Central"]},
    ],
)  # fmt: skip
def test_miniapp_bundle_is_all_or_nothing(
    client: httpx.Client, sandbox_server: RunningSandbox, changes: dict[str, Any]
) -> None:
    response = upload(client, "/miniapps/upload", miniapp_bundle(**changes), "MiniApp.mac")
    assert response.status_code == 400
    assert all(e["message"].startswith("miniapp.json: ") for e in response.json()["errors"])
    assert sandbox_server.store.count_apps() == 0
    assert sandbox_server.store.count_objects() == 0  # the icon was not kept either
    assert client.get(f"/miniapps/{APP_ID}").status_code == 404


def test_duplicate_bundle_changes_nothing(
    client: httpx.Client, sandbox_server: RunningSandbox
) -> None:
    assert upload(client, "/miniapps/upload", miniapp_bundle(), "a.mac").status_code == 201
    objects = sandbox_server.store.count_objects()
    again = upload(client, "/miniapps/upload", miniapp_bundle(name="Other"), "a.mac")
    assert again.status_code == 400
    assert error_codes(again) == [ErrorCode.DUPLICATE_APP_ID]
    assert sandbox_server.store.count_objects() == objects
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["name"] == "Coffee & Muffins"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"compatibilities": [{"version": 1}, {"version": "2"}]}, ErrorCode.FIELD_TYPE),
        ({"compatibilities": [{"version": 0}]}, ErrorCode.INVALID_SUPERAPP_VERSION),
        ({"status": "Z"}, ErrorCode.BUNDLE_INVALID_STATUS),
        ({"main_type": "Window"}, ErrorCode.INVALID_MAIN_TYPE),
        ({"metadata": "missing.json"}, ErrorCode.BUNDLE_FILE_MISSING),
        ({"platform_id": None}, ErrorCode.FIELD_TYPE),
        ({"code": "1.0"}, ErrorCode.DUPLICATE_VERSION_CODE),
    ],
)
def test_bad_version_bundle_changes_nothing(
    client: httpx.Client, sandbox_server: RunningSandbox, changes: dict[str, Any], code: ErrorCode
) -> None:
    client.post("/miniapps", json=APP_BODY)
    client.post(f"/miniapps/{APP_ID}/versions", json={**VERSION_BODY, "code": "1.0"})
    path = f"/miniapps/{APP_ID}/versions/upload"
    response = upload(client, path, version_bundle(**changes), "v.mac")
    assert response.status_code == 400
    assert code in error_codes(response), response.text
    assert sandbox_server.store.count_versions(APP_ID) == 1
    assert sandbox_server.store.count_objects() == 0


def test_version_upload_to_unknown_app_is_404(
    client: httpx.Client, sandbox_server: RunningSandbox
) -> None:
    response = upload(client, f"/miniapps/{APP_ID}/versions/upload", version_bundle(), "v.mac")
    assert response.status_code == 404
    assert error_codes(response) == [ErrorCode.APP_NOT_FOUND]
    assert sandbox_server.store.count_objects() == 0
