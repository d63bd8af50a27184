"""Exact wire calls of every endpoint: method, path, headers, body; parsing of the answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from reconciler import __version__
from reconciler.providers.miniappcenter.client import (
    Endpoint,
    LocationBody,
    LocationData,
    MiniAppCenterClient,
    MiniAppCreate,
    MiniAppData,
    MiniAppUpdate,
    RetryPolicy,
    VersionCreate,
    VersionCreated,
    VersionData,
    VersionUpdate,
)

TOKEN = "wire-test-token-8c1f"
BASE = "https://mac.example.test/api"
ROOT = BASE + "/v1"
APP = "com.genexus.verdant.coffeemuffins"


async def _no_sleep(delay: float) -> None:
    raise AssertionError(f"no call in this file should wait (asked for {delay}s)")


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=ROOT, assert_all_called=True) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[MiniAppCenterClient]:
    async with MiniAppCenterClient(Endpoint(BASE), TOKEN, retry=RetryPolicy(sleep=_no_sleep)) as c:
        yield c


def _check_common_headers(request: httpx.Request) -> None:
    assert request.headers["APIKey-Auth"] == TOKEN
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == f"miniapp-reconciler/{__version__}"
    assert "authorization" not in request.headers


def _single_request(mock: respx.MockRouter) -> httpx.Request:
    assert mock.calls.call_count == 1
    request: httpx.Request = mock.calls.last.request
    _check_common_headers(request)
    return request


def _json_body(request: httpx.Request) -> Any:
    assert request.headers["Content-Type"] == "application/json"
    return json.loads(request.content)


def _no_body(request: httpx.Request) -> None:
    assert request.content == b""
    assert "content-type" not in request.headers


MINIAPP_JSON = {
    "id": APP,
    "organization_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "name": "Coffee & Muffins",
    "description": "Coffee & Muffins Mini App",
    "superapp_id": "com.genexus.verdantbank",
    "type": "Native",
    "keywords": "coffee cafe muffins breakfast",
    "icon": "https://cdn.example.test/icon.png",
    "card": "https://cdn.example.test/card.png",
    "banner": "https://cdn.example.test/banner.png",
    "additional_attributes": [{"field": "COUNTRY", "value": "Uruguay"}],
}

VERSION_JSON = {
    "id": 17,
    "code": "1.0.0",
    "platform_id": "iOS",
    "metadata": "https://cdn.example.test/meta.json",
    "integrated_security": True,
    "main_name": "startObject",
    "main_type": "Panel",
    "service_url": "https://apps6.genexus.com/Id555317f4080a0da816dc4eb15d69bc1b/",
}

Call = Callable[[MiniAppCenterClient], Awaitable[Any]]

# (name, call, method, path, JSON body sent or None, response, expected return value)
CASES: list[tuple[str, Call, str, str, Any, httpx.Response, Any]] = [
    (
        "get_miniapp",
        lambda c: c.get_miniapp(APP),
        "GET",
        f"/api/v1/miniapps/{APP}",
        None,
        httpx.Response(200, json={"data": MINIAPP_JSON}),
        MiniAppData.model_validate(MINIAPP_JSON),
    ),
    (
        "create_miniapp",
        lambda c: c.create_miniapp(
            MiniAppCreate(
                id=APP,
                name="Coffee & Muffins",
                superapp_id="com.genexus.verdantbank",
                type="native",
                icon="gxupload:fe4602263a224b68a6cdd8c5533e5700",
            )
        ),
        "POST",
        "/api/v1/miniapps",
        {
            "id": APP,
            "name": "Coffee & Muffins",
            "superapp_id": "com.genexus.verdantbank",
            "type": "native",
            "icon": "gxupload:fe4602263a224b68a6cdd8c5533e5700",
        },
        httpx.Response(201),
        None,
    ),
    (
        "update_miniapp",
        lambda c: c.update_miniapp(APP, MiniAppUpdate(name="New name", keywords="a b")),
        "PUT",
        f"/api/v1/miniapps/{APP}",
        {"name": "New name", "keywords": "a b"},
        httpx.Response(204),
        None,
    ),
    (
        "delete_miniapp",
        lambda c: c.delete_miniapp(APP),
        "DELETE",
        f"/api/v1/miniapps/{APP}",
        None,
        httpx.Response(204),
        None,
    ),
    (
        "set_attribute",
        lambda c: c.set_attribute(APP, "COUNTRY", "Uruguay"),
        "POST",
        f"/api/v1/miniapps/{APP}/attributes",
        {"field": "COUNTRY", "value": "Uruguay"},
        httpx.Response(201),
        None,
    ),
    (
        "delete_attribute",
        lambda c: c.delete_attribute(APP, "loyalty_tier"),
        "DELETE",
        f"/api/v1/miniapps/{APP}/attributes/loyalty_tier",
        None,
        httpx.Response(204),
        None,
    ),
    (
        "list_locations",
        lambda c: c.list_locations(APP),
        "GET",
        f"/api/v1/miniapps/{APP}/locations",
        None,
        httpx.Response(
            200,
            json={
                "data": [
                    {"id": 1, "name": "Central", "geo_point": "POINT(-56.1637 -34.9247)"},
                    {"id": "2", "name": "Port", "geo_point": "POINT(1 2)"},
                ]
            },
        ),
        [
            LocationData(id=1, name="Central", geo_point="POINT(-56.1637 -34.9247)"),
            LocationData(id=2, name="Port", geo_point="POINT(1 2)"),
        ],
    ),
    (
        "create_location",
        lambda c: c.create_location(
            APP, LocationBody(name="Central", geo_point="POINT(-56.1637 -34.9247)")
        ),
        "POST",
        f"/api/v1/miniapps/{APP}/locations",
        {"name": "Central", "geo_point": "POINT(-56.1637 -34.9247)"},
        httpx.Response(201, json={"data": {"id": 42}}),
        42,
    ),
    (
        "update_location",
        lambda c: c.update_location(APP, 42, LocationBody(name="Central", geo_point="POINT(3 4)")),
        "PUT",
        f"/api/v1/miniapps/{APP}/locations/42",
        {"name": "Central", "geo_point": "POINT(3 4)"},
        httpx.Response(204),
        None,
    ),
    (
        "delete_location",
        lambda c: c.delete_location(APP, 42),
        "DELETE",
        f"/api/v1/miniapps/{APP}/locations/42",
        None,
        httpx.Response(204),
        None,
    ),
    (
        "get_version",
        lambda c: c.get_version(APP, 17),
        "GET",
        f"/api/v1/miniapps/{APP}/versions/17",
        None,
        httpx.Response(200, json={"data": VERSION_JSON}),
        VersionData.model_validate(VERSION_JSON),
    ),
    (
        "create_version",
        lambda c: c.create_version(
            APP,
            VersionCreate(
                code="1.0.0",
                platform_id="iOS",
                metadata="gxupload:f292ef3f9ac94294a66cc353c4802c35",
                integrated_security=False,
                main_name="startObject",
                main_type="Panel",
                service_url="https://apps6.genexus.com/x/",
            ),
        ),
        "POST",
        f"/api/v1/miniapps/{APP}/versions",
        {
            "code": "1.0.0",
            "platform_id": "iOS",
            "metadata": "gxupload:f292ef3f9ac94294a66cc353c4802c35",
            "integrated_security": False,  # False is a value, not "unset"
            "main_name": "startObject",
            "main_type": "Panel",
            "service_url": "https://apps6.genexus.com/x/",
        },
        httpx.Response(201, json={"data": {"id": 17, "code": "1.0.0"}}),
        VersionCreated(id=17, code="1.0.0"),
    ),
    (
        "update_version",
        lambda c: c.update_version(APP, 17, VersionUpdate(main_type="Menu")),
        "PUT",
        f"/api/v1/miniapps/{APP}/versions/17",
        {"main_type": "Menu"},
        httpx.Response(204),
        None,
    ),
    (
        "add_compatibility",
        lambda c: c.add_compatibility(APP, 17, 3),
        "POST",
        f"/api/v1/miniapps/{APP}/versions/17/compatibility",
        {"superapp_version": 3},
        httpx.Response(204),
        None,
    ),
    (
        "delete_compatibility",
        lambda c: c.delete_compatibility(APP, 17, 3),
        "POST",  # the table's verb, not the sample's PUT
        f"/api/v1/miniapps/{APP}/versions/17/compatibility/delete",
        {"superapp_version": 3},
        httpx.Response(204),
        None,
    ),
    *[
        (
            step,
            (lambda s: lambda c: getattr(c, s)(APP, 17))(step),
            "POST",
            f"/api/v1/miniapps/{APP}/versions/17/{step}",
            None,
            httpx.Response(204),
            None,
        )
        for step in ("send_to_review", "in_review", "rejected", "ready")
    ],
]


@pytest.mark.parametrize(
    ("call", "method", "path", "body", "response", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_endpoint_wire(
    mock: respx.MockRouter,
    client: MiniAppCenterClient,
    call: Call,
    method: str,
    path: str,
    body: Any,
    response: httpx.Response,
    expected: Any,
) -> None:
    mock.route(method=method, path=path.removeprefix("/api/v1")).mock(return_value=response)
    result = await call(client)
    request = _single_request(mock)
    assert request.method == method
    assert request.url.raw_path.decode() == path
    assert request.url.host == "mac.example.test"
    if body is None:
        _no_body(request)
    else:
        assert _json_body(request) == body
    assert result == expected
    stats = client.stats
    assert stats.by_method == {method: 1}
    assert (stats.reads, stats.writes) == ((1, 0) if method == "GET" else (0, 1))


def test_every_documented_endpoint_is_covered() -> None:
    # 21 documented endpoints: 19 JSON/empty-body ones here, the two bundle uploads below.
    assert len(CASES) == 19


async def test_upload_miniapp_sends_raw_bytes_and_filename(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    content = b"PK\x03\x04\nline1\r\nline2\n\x00\xff"  # newlines and NULs survive
    mock.post("/miniapps/upload").mock(return_value=httpx.Response(201))
    assert await client.upload_miniapp("MiniApp.mac", content) is None
    request = _single_request(mock)
    assert request.method == "POST"
    assert request.url.raw_path == b"/api/v1/miniapps/upload"
    assert request.content == content
    assert request.headers["filename"] == "MiniApp.mac"
    assert request.headers["Content-Type"] == "application/octet-stream"


async def test_upload_version_sends_raw_bytes_and_filename(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    content = bytes(range(256))
    mock.post(f"/miniapps/{APP}/versions/upload").mock(return_value=httpx.Response(201))
    assert await client.upload_version(APP, "MiniAppVersion.mac", content) is None
    request = _single_request(mock)
    assert request.url.raw_path.decode() == f"/api/v1/miniapps/{APP}/versions/upload"
    assert request.content == content
    assert request.headers["filename"] == "MiniAppVersion.mac"
    assert request.headers["Content-Type"] == "application/octet-stream"


async def test_upload_object_posts_to_gxobject(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    object_id = "gxupload:fe4602263a224b68a6cdd8c5533e5700"
    mock.post("/gxobject").mock(return_value=httpx.Response(201, json={"object_id": object_id}))
    content = b"\x89PNG\r\n\x1a\n..."
    assert await client.upload_object("icon.png", content) == object_id
    request = _single_request(mock)
    assert request.method == "POST"
    assert request.url.raw_path == b"/api/v1/gxobject"
    assert request.content == content
    assert request.headers["x-gx-filename"] == "icon.png"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert "filename" not in request.headers


async def test_get_absent_resources_is_none(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    errors = {"errors": [{"code": 404, "message": "not found"}]}
    mock.get(f"/miniapps/{APP}").mock(return_value=httpx.Response(404, json=errors))
    mock.get(f"/miniapps/{APP}/versions/9").mock(return_value=httpx.Response(404, json=errors))
    assert await client.get_miniapp(APP) is None
    assert await client.get_version(APP, 9) is None
    assert client.stats.reads == 2


async def test_unknown_response_fields_are_kept(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    data = {**MINIAPP_JSON, "created_at": "2024-01-01", "rating": 4.5}
    mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(200, json={"data": data, "meta": {"x": 1}})
    )
    app = await client.get_miniapp(APP)
    assert app is not None
    assert app.model_extra == {"created_at": "2024-01-01", "rating": 4.5}
    assert app.additional_attributes[0].field == "COUNTRY"
    assert app.additional_attributes[0].value == "Uruguay"


async def test_sparse_and_loosely_typed_responses(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(
            200, json={"data": {"id": APP, "organization_id": 1234, "additional_attributes": None}}
        )
    )
    mock.get(f"/miniapps/{APP}/versions/5").mock(
        return_value=httpx.Response(
            200, json={"data": {"id": "5", "code": 2, "integrated_security": "true"}}
        )
    )
    app = await client.get_miniapp(APP)
    assert app == MiniAppData(id=APP, organization_id="1234")
    assert app.additional_attributes == []
    assert app.name is None
    version = await client.get_version(APP, 5)
    assert version is not None
    assert (version.id, version.code, version.integrated_security) == (5, "2", True)
    assert version.platform_id is None


async def test_create_version_without_code_in_answer_keeps_the_sent_code(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.post(f"/miniapps/{APP}/versions").mock(
        return_value=httpx.Response(201, json={"data": {"id": "8"}})
    )
    created = await client.create_version(APP, VersionCreate(code="2.1.0"))
    assert created == VersionCreated(id=8, code="2.1.0")
    assert _json_body(_single_request(mock)) == {"code": "2.1.0"}


async def test_exclude_none_sends_only_managed_fields(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.put(f"/miniapps/{APP}").mock(return_value=httpx.Response(204))
    await client.update_miniapp(APP, MiniAppUpdate(description=""))
    # "" is a value to write; every None field is absent from the JSON.
    assert _single_request(mock).content == b'{"description":""}'


async def test_empty_update_sends_empty_object(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.put(f"/miniapps/{APP}/versions/3").mock(return_value=httpx.Response(204))
    await client.update_version(APP, 3, VersionUpdate())
    assert _json_body(_single_request(mock)) == {}


async def test_non_ascii_json_is_utf8(mock: respx.MockRouter, client: MiniAppCenterClient) -> None:
    mock.post(f"/miniapps/{APP}/attributes").mock(return_value=httpx.Response(204))
    await client.set_attribute(APP, "CITY", "Montevideo – Ciudad Vieja ☕")
    request = _single_request(mock)
    assert "Ciudad Vieja ☕".encode() in request.content
    assert _json_body(request) == {"field": "CITY", "value": "Montevideo – Ciudad Vieja ☕"}


def test_request_models_reject_unknown_fields() -> None:
    with pytest.raises(ValueError, match="nmae"):
        MiniAppUpdate(nmae="typo")  # type: ignore[call-arg]


def test_endpoint_root_and_display() -> None:
    endpoint = Endpoint("https://mac.example.test:8443/api/")
    assert endpoint.base_url == "https://mac.example.test:8443/api"
    assert endpoint.root == "https://mac.example.test:8443/api/v1"
    assert endpoint.display == "https://mac.example.test:8443/api"
    assert Endpoint("https://h.test/api", "v2").root == "https://h.test/api/v2"
