"""Contract tests of every sandbox endpoint over real loopback HTTP with plain httpx.

The docs' cURL samples are the cases: same paths, same bodies (sent as raw bytes), expected
status and body shapes. JSON is sent with ``Content-Type: application/json`` (api-notes: the
samples' ``curl -d`` sends a form type; the sandbox is as strict as a real server may be).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.providers.miniappcenter.sandbox.errors import ErrorCode
from tests.fixtures_sandbox import RunningSandbox, http_client

APP_ID = "com.genexus.verdant.coffeemuffins"
OTHER_APP_ID = "com.genexus.verdant.teashop"
ICON_ID = "fe4602263a224b68a6cdd8c5533e5700"
CARD_ID = "32d77315af2a45aea39b99bb7b5a07a9"
METADATA_ID = "f292ef3f9ac94294a66cc353c4802c35"
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

# --- the docs' request bodies, verbatim --------------------------------------------------------

DOCS_CREATE_MINIAPP = """{
            "id": "com.genexus.verdant.coffeemuffins",
            "name":"Coffee & Muffins",
            "superapp_id":"com.genexus.verdantbank",
            "type":"native",
            "description":"Coffee & Muffins Mini App",
            "keywords":"coffee cafe muffins breakfast",
            "icon":"gxupload:fe4602263a224b68a6cdd8c5533e5700"
        }"""
DOCS_UPDATE_MINIAPP = """{
            "name":"Coffee & Muffins",
            "superapp_id":"com.genexus.verdantbank",
            "type":"native",
            "description":"Coffee & Muffins Mini App",
            "keywords":"coffee cafe muffins breakfast",
            "icon":"gxupload:fe4602263a224b68a6cdd8c5533e5700",
            "card":"gxupload:32d77315af2a45aea39b99bb7b5a07a9"
        }"""
DOCS_ATTRIBUTE = """{
            "field": "COUNTRY",
            "value": "Uruguay"
        }"""
DOCS_LOCATION = """{
            "name": "Central",
            "geo_point": "POINT(-56.163740158081055 -34.92478600243492)"
        }"""
DOCS_VERSION = """{
            "platform_id": "iOS",
            "metadata": "gxupload:f292ef3f9ac94294a66cc353c4802c35",
            "integrated_security": true,
            "main_name": "startObject",
            "main_type": "Panel",
            "service_url": "https://apps6.genexus.com/Id555317f4080a0da816dc4eb15d69bc1b/"
        }"""
DOCS_COMPATIBILITY = """{
            "superapp_version": 1
        }"""

MINIMAL_APP: dict[str, Any] = {
    "id": APP_ID,
    "name": "Coffee & Muffins",
    "superapp_id": "com.genexus.verdantbank",
    "type": "Native",
}
MINIMAL_VERSION: dict[str, Any] = {"platform_id": "iOS", "main_name": "start", "main_type": "Panel"}
# What every PUT of a mini app must carry (the create's required fields less the id).
APP_UPDATE: dict[str, Any] = {k: v for k, v in MINIMAL_APP.items() if k != "id"}
LOCATION: dict[str, Any] = {"name": "a", "geo_point": "POINT(1 2)"}
JSON_TYPE = {"Content-Type": "application/json"}


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def client(sandbox_server: RunningSandbox) -> Iterator[httpx.Client]:
    with sandbox_server.client() as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: ErrorCode | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}
    assert body["errors"], "an error answer lists at least one error"
    for error in body["errors"]:
        assert set(error) == {"code", "message"}
        assert type(error["code"]) is int
        assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert int(code) in [e["code"] for e in body["errors"]], body


def make_app(client: httpx.Client, app_id: str = APP_ID, **fields: Any) -> None:
    response = client.post("/miniapps", json={**MINIMAL_APP, "id": app_id, **fields})
    assert response.status_code == 201, response.text


def make_version(client: httpx.Client, app_id: str = APP_ID, **fields: Any) -> dict[str, Any]:
    response = client.post(f"/miniapps/{app_id}/versions", json={**MINIMAL_VERSION, **fields})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def make_location(client: httpx.Client, app_id: str = APP_ID, name: str = "Central") -> int:
    response = client.post(
        f"/miniapps/{app_id}/locations", json={"name": name, "geo_point": "POINT(1 2)"}
    )
    assert response.status_code == 201, response.text
    location_id: int = response.json()["data"]["id"]
    return location_id


def object_url(server: RunningSandbox, hex_id: str) -> str:
    return f"{server.base_url}/v1/objects/{hex_id}"


# --- mini apps ---------------------------------------------------------------------------------


def test_create_and_get_miniapp_docs_sample(
    client: httpx.Client, sandbox_server: RunningSandbox
) -> None:
    created = client.post("/miniapps", content=DOCS_CREATE_MINIAPP, headers=JSON_TYPE)
    assert created.status_code == 201
    assert created.content == b""

    got = client.get(f"/miniapps/{APP_ID}")
    assert got.status_code == 200
    data = got.json()["data"]
    assert set(data) == {
        "id", "organization_id", "name", "description", "superapp_id", "type", "keywords",
        "icon", "card", "banner", "additional_attributes",
    }  # fmt: skip
    assert data["id"] == APP_ID
    assert data["name"] == "Coffee & Muffins"
    assert data["superapp_id"] == "com.genexus.verdantbank"
    assert data["type"] == "native"  # stored as sent, not normalised
    assert data["description"] == "Coffee & Muffins Mini App"
    assert data["keywords"] == "coffee cafe muffins breakfast"
    # Written as an upload object id, read back as a URL on this server.
    assert data["icon"] == object_url(sandbox_server, ICON_ID)
    assert data["card"] is None and data["banner"] is None
    assert GUID_RE.fullmatch(data["organization_id"])
    assert data["additional_attributes"] == []
    assert sandbox_server.store.count_apps() == 1


def test_update_miniapp_docs_sample(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client, description="old", keywords="old words")
    updated = client.put(f"/miniapps/{APP_ID}", content=DOCS_UPDATE_MINIAPP, headers=JSON_TYPE)
    assert updated.status_code == 204
    assert updated.content == b""
    data = client.get(f"/miniapps/{APP_ID}").json()["data"]
    assert data["type"] == "native"
    assert data["description"] == "Coffee & Muffins Mini App"
    assert data["keywords"] == "coffee cafe muffins breakfast"
    assert data["icon"] == object_url(sandbox_server, ICON_ID)
    assert data["card"] == object_url(sandbox_server, CARD_ID)


def test_update_miniapp_keeps_optional_fields_left_out(client: httpx.Client) -> None:
    make_app(client, description="keep me", keywords="a b", icon=f"gxupload:{ICON_ID}")
    response = client.put(f"/miniapps/{APP_ID}", json={**APP_UPDATE, "name": "Renamed"})
    assert response.status_code == 204
    data = client.get(f"/miniapps/{APP_ID}").json()["data"]
    assert data["name"] == "Renamed"
    assert data["description"] == "keep me"
    assert data["keywords"] == "a b"
    assert data["icon"].endswith(ICON_ID)
    assert data["type"] == "Native"


@pytest.mark.parametrize("missing", ["name", "superapp_id", "type"])
def test_update_miniapp_requires_what_create_requires(client: httpx.Client, missing: str) -> None:
    # The docs do not say whether PUT replaces or merges: without these a replacing server
    # would blank the record, so the strict sandbox refuses (the reconciler always sends them).
    make_app(client, description="d")
    before = client.get(f"/miniapps/{APP_ID}").json()
    body = {k: v for k, v in APP_UPDATE.items() if k != missing}
    assert_error(client.put(f"/miniapps/{APP_ID}", json=body), 400, ErrorCode.FIELD_REQUIRED)
    assert_error(client.put(f"/miniapps/{APP_ID}", json={}), 400, ErrorCode.FIELD_REQUIRED)
    assert client.get(f"/miniapps/{APP_ID}").json() == before


@pytest.mark.parametrize(
    "field",
    ["organization_id", "name", "description", "superapp_id", "type", "keywords", "icon",
     "card", "banner"],
)  # fmt: skip
def test_update_miniapp_refuses_null(client: httpx.Client, field: str) -> None:
    make_app(client, icon=f"gxupload:{ICON_ID}", description="d")
    before = client.get(f"/miniapps/{APP_ID}").json()
    response = client.put(f"/miniapps/{APP_ID}", json={**APP_UPDATE, field: None})
    assert_error(response, 400, ErrorCode.FIELD_TYPE)
    assert client.get(f"/miniapps/{APP_ID}").json() == before


def test_organization_id_as_given(client: httpx.Client) -> None:
    org = "0f8fad5b-d9cb-469f-a165-70867728950e"
    make_app(client, organization_id=org)
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["organization_id"] == org
    assert_error(
        client.put(f"/miniapps/{APP_ID}", json={"organization_id": "not-a-guid"}),
        400,
        ErrorCode.INVALID_ORGANIZATION_ID,
    )


@pytest.mark.parametrize("app_type", ["Native", "native", "NATIVE", "Web", "web", "WEB"])
def test_type_accepted_in_any_case_and_returned_as_sent(
    client: httpx.Client, app_type: str
) -> None:
    make_app(client, type=app_type)
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["type"] == app_type


def test_unknown_json_fields_are_refused(
    client: httpx.Client, sandbox_server: RunningSandbox
) -> None:
    response = client.post("/miniapps", json={**MINIMAL_APP, "colour": "blue"})
    assert_error(response, 400, ErrorCode.FIELD_UNKNOWN)
    assert "'colour'" in response.text
    # What GET answers is not what PUT takes: additional_attributes have their own endpoint.
    response = client.post("/miniapps", json={**MINIMAL_APP, "additional_attributes": []})
    assert_error(response, 400, ErrorCode.FIELD_UNKNOWN)
    assert sandbox_server.store.count_apps() == 0
    make_app(client)
    # The id lives in the URL: in a PUT body it is unknown, not silently ignored.
    response = client.put(f"/miniapps/{APP_ID}", json={**APP_UPDATE, "id": OTHER_APP_ID})
    assert_error(response, 400, ErrorCode.FIELD_UNKNOWN)


def test_delete_miniapp(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client)
    deleted = client.delete(f"/miniapps/{APP_ID}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(client.get(f"/miniapps/{APP_ID}"), 404, ErrorCode.APP_NOT_FOUND)
    assert_error(client.delete(f"/miniapps/{APP_ID}"), 404, ErrorCode.APP_NOT_FOUND)
    assert sandbox_server.store.count_apps() == 0


def test_delete_miniapp_cascades(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client)
    client.post(f"/miniapps/{APP_ID}/attributes", json={"field": "COUNTRY", "value": "UY"})
    location_id = make_location(client)
    version = make_version(client, code="1.0.0")
    client.post(
        f"/miniapps/{APP_ID}/versions/{version['id']}/compatibility", json={"superapp_version": 3}
    )
    assert client.delete(f"/miniapps/{APP_ID}").status_code == 204

    make_app(client)  # same id again: nothing of the old app may come back
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["additional_attributes"] == []
    assert client.get(f"/miniapps/{APP_ID}/locations").json() == {"data": []}
    assert_error(
        client.put(f"/miniapps/{APP_ID}/locations/{location_id}", json=LOCATION),
        404,
        ErrorCode.LOCATION_NOT_FOUND,
    )
    assert_error(
        client.get(f"/miniapps/{APP_ID}/versions/{version['id']}"),
        404,
        ErrorCode.VERSION_NOT_FOUND,
    )
    # The old code is free again, and the old version's compatibilities are gone with it.
    assert make_version(client, code="1.0.0")["id"] != version["id"]
    with pytest.raises(Exception, match="not found"):
        sandbox_server.store.compatibilities(APP_ID, version["id"])


# --- attributes --------------------------------------------------------------------------------


def test_attribute_docs_sample_upsert_and_delete(client: httpx.Client) -> None:
    make_app(client)
    url = f"/miniapps/{APP_ID}/attributes"
    created = client.post(url, content=DOCS_ATTRIBUTE, headers=JSON_TYPE)
    assert created.status_code == 201
    assert created.content == b""
    attributes = client.get(f"/miniapps/{APP_ID}").json()["data"]["additional_attributes"]
    assert attributes == [{"field": "COUNTRY", "value": "Uruguay"}]

    again = client.post(f"/miniapps/{APP_ID}/attributes", json={"field": "COUNTRY", "value": "AR"})
    assert again.status_code == 201
    client.post(f"/miniapps/{APP_ID}/attributes", json={"field": "TIER", "value": "gold"})
    attributes = client.get(f"/miniapps/{APP_ID}").json()["data"]["additional_attributes"]
    assert attributes == [
        {"field": "COUNTRY", "value": "AR"},
        {"field": "TIER", "value": "gold"},
    ]

    deleted = client.delete(f"/miniapps/{APP_ID}/attributes/COUNTRY")
    assert deleted.status_code == 204
    assert deleted.content == b""
    attributes = client.get(f"/miniapps/{APP_ID}").json()["data"]["additional_attributes"]
    assert attributes == [{"field": "TIER", "value": "gold"}]
    assert_error(
        client.delete(f"/miniapps/{APP_ID}/attributes/COUNTRY"), 404, ErrorCode.ATTRIBUTE_NOT_FOUND
    )


def test_attribute_on_unknown_app_is_404(client: httpx.Client) -> None:
    assert_error(
        client.post(f"/miniapps/{APP_ID}/attributes", content=DOCS_ATTRIBUTE, headers=JSON_TYPE),
        404,
        ErrorCode.APP_NOT_FOUND,
    )
    assert_error(
        client.delete(f"/miniapps/{APP_ID}/attributes/COUNTRY"), 404, ErrorCode.APP_NOT_FOUND
    )


# --- locations ---------------------------------------------------------------------------------


def test_locations_docs_samples(client: httpx.Client) -> None:
    make_app(client)
    created = client.post(f"/miniapps/{APP_ID}/locations", content=DOCS_LOCATION, headers=JSON_TYPE)
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"data"} and set(body["data"]) == {"id"}
    location_id = body["data"]["id"]
    assert type(location_id) is int

    listed = client.get(f"/miniapps/{APP_ID}/locations")
    assert listed.status_code == 200
    assert listed.json() == {
        "data": [
            {
                "id": location_id,
                "name": "Central",
                "geo_point": "POINT(-56.163740158081055 -34.92478600243492)",
            }
        ]
    }

    updated = client.put(
        f"/miniapps/{APP_ID}/locations/{location_id}",
        content=DOCS_LOCATION.replace("Central", "Centro").replace(
            "POINT(-56.163740158081055 -34.92478600243492)", "POINT(-56.2 -34.9)"
        ),
        headers=JSON_TYPE,
    )
    assert updated.status_code == 204
    assert updated.content == b""
    [location] = client.get(f"/miniapps/{APP_ID}/locations").json()["data"]
    assert location["name"] == "Centro"
    assert location["geo_point"] == "POINT(-56.2 -34.9)"

    deleted = client.delete(f"/miniapps/{APP_ID}/locations/{location_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(f"/miniapps/{APP_ID}/locations").json() == {"data": []}
    assert_error(
        client.delete(f"/miniapps/{APP_ID}/locations/{location_id}"),
        404,
        ErrorCode.LOCATION_NOT_FOUND,
    )


def test_location_update_needs_the_whole_location(client: httpx.Client) -> None:
    make_app(client)
    location_id = make_location(client)
    url = f"/miniapps/{APP_ID}/locations/{location_id}"
    listed = [{"id": location_id, "name": "Central", "geo_point": "POINT(1 2)"}]
    for body in ({}, {"name": "North"}, {"geo_point": "POINT (3 4)"}):
        assert_error(client.put(url, json=body), 400, ErrorCode.FIELD_REQUIRED)
    assert client.get(f"/miniapps/{APP_ID}/locations").json()["data"] == listed
    assert client.put(url, json={"name": "North", "geo_point": "POINT (3 4)"}).status_code == 204
    assert client.get(f"/miniapps/{APP_ID}/locations").json()["data"] == [
        {"id": location_id, "name": "North", "geo_point": "POINT (3 4)"}
    ]
    assert_error(
        client.put(url, json={"name": "North", "geo_point": "POINT(3)"}),
        400,
        ErrorCode.INVALID_GEO_POINT,
    )


def test_location_ids_are_one_global_sequence(client: httpx.Client) -> None:
    make_app(client)
    make_app(client, OTHER_APP_ID)
    first = make_location(client, APP_ID)
    second = make_location(client, OTHER_APP_ID)
    third = make_location(client, APP_ID)
    assert (second, third) == (first + 1, first + 2)
    client.delete(f"/miniapps/{APP_ID}/locations/{third}")
    assert make_location(client, APP_ID) == third + 1  # never reused (AUTOINCREMENT)


def test_location_of_another_app_is_404(client: httpx.Client) -> None:
    make_app(client)
    make_app(client, OTHER_APP_ID)
    location_id = make_location(client, OTHER_APP_ID)
    url = f"/miniapps/{APP_ID}/locations/{location_id}"
    assert_error(client.put(url, json=LOCATION), 404, ErrorCode.LOCATION_NOT_FOUND)
    assert_error(client.delete(url), 404, ErrorCode.LOCATION_NOT_FOUND)
    assert len(client.get(f"/miniapps/{OTHER_APP_ID}/locations").json()["data"]) == 1


@pytest.mark.parametrize(
    "geo_point",
    ["POINT(1 2)", "POINT (1 2)", " POINT( -180 90 ) ", "point(1.5e1 -2)", "POINT(180 -90)",
     "POINT(-56.163740158081055 -34.92478600243492)"],
)  # fmt: skip
def test_geo_point_accepted(client: httpx.Client, geo_point: str) -> None:
    make_app(client)
    response = client.post(
        f"/miniapps/{APP_ID}/locations", json={"name": "Central", "geo_point": geo_point}
    )
    assert response.status_code == 201, response.text
    assert client.get(f"/miniapps/{APP_ID}/locations").json()["data"][0]["geo_point"] == geo_point


@pytest.mark.parametrize(
    ("geo_point", "code"),
    [
        ("POINT(1)", ErrorCode.INVALID_GEO_POINT),
        ("POINT(1 2 3)", ErrorCode.INVALID_GEO_POINT),
        ("POINT(1,2)", ErrorCode.INVALID_GEO_POINT),
        ("LINESTRING(1 2, 3 4)", ErrorCode.INVALID_GEO_POINT),
        ("1 2", ErrorCode.INVALID_GEO_POINT),
        ("", ErrorCode.INVALID_GEO_POINT),
        ("POINT(nan 2)", ErrorCode.INVALID_GEO_POINT),
        ("POINT(180.0001 0)", ErrorCode.GEO_POINT_OUT_OF_RANGE),
        ("POINT(-181 0)", ErrorCode.GEO_POINT_OUT_OF_RANGE),
        ("POINT(0 90.5)", ErrorCode.GEO_POINT_OUT_OF_RANGE),
        ("POINT(0 -91)", ErrorCode.GEO_POINT_OUT_OF_RANGE),
        ("POINT(1e400 0)", ErrorCode.GEO_POINT_OUT_OF_RANGE),
        (12, ErrorCode.FIELD_TYPE),
        (None, ErrorCode.FIELD_TYPE),
    ],
)
def test_geo_point_rejected(client: httpx.Client, geo_point: Any, code: ErrorCode) -> None:
    make_app(client)
    response = client.post(
        f"/miniapps/{APP_ID}/locations", json={"name": "Central", "geo_point": geo_point}
    )
    assert_error(response, 400, code)
    assert client.get(f"/miniapps/{APP_ID}/locations").json() == {"data": []}


# --- versions ----------------------------------------------------------------------------------


def test_version_docs_samples(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client)
    created = client.post(f"/miniapps/{APP_ID}/versions", content=DOCS_VERSION, headers=JSON_TYPE)
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"data"} and set(body["data"]) == {"id", "code"}
    version_id = body["data"]["id"]
    assert type(version_id) is int
    assert body["data"]["code"] == "1"  # the docs' sample sends no code: the server assigns it

    got = client.get(f"/miniapps/{APP_ID}/versions/{version_id}")
    assert got.status_code == 200
    assert got.json() == {
        "data": {
            "id": version_id,
            "code": "1",
            "platform_id": "iOS",
            "metadata": object_url(sandbox_server, METADATA_ID),
            "integrated_security": True,
            "main_name": "startObject",
            "main_type": "Panel",
            "service_url": "https://apps6.genexus.com/Id555317f4080a0da816dc4eb15d69bc1b/",
        }
    }  # no status, no compatibilities: as documented
    assert sandbox_server.store.version_status(APP_ID, version_id) == "pending"

    updated = client.put(
        f"/miniapps/{APP_ID}/versions/{version_id}",
        content=DOCS_VERSION.replace('"iOS"', '"Android"').replace("true", "false"),
        headers=JSON_TYPE,
    )
    assert updated.status_code == 204
    assert updated.content == b""
    data = client.get(f"/miniapps/{APP_ID}/versions/{version_id}").json()["data"]
    assert data["platform_id"] == "Android"
    assert data["integrated_security"] is False
    assert data["code"] == "1"


def test_version_codes_given_or_assigned(client: httpx.Client) -> None:
    make_app(client)
    make_app(client, OTHER_APP_ID)
    assert make_version(client, code="1")["code"] == "1"
    assert make_version(client)["code"] == "2"  # next free, skipping the taken "1"
    assert make_version(client, code="1.0.0")["code"] == "1.0.0"
    assert make_version(client, code="")["code"] == "3"  # empty = let the server choose
    assert_error(  # null is not a string: leave the code out instead
        client.post(f"/miniapps/{APP_ID}/versions", json={**MINIMAL_VERSION, "code": None}),
        400,
        ErrorCode.FIELD_TYPE,
    )
    # Codes are per app: another app starts at "1" and may reuse "1.0.0".
    assert make_version(client, OTHER_APP_ID)["code"] == "1"
    assert make_version(client, OTHER_APP_ID, code="1.0.0")["code"] == "1.0.0"


def test_duplicate_version_code_is_400(
    client: httpx.Client, sandbox_server: RunningSandbox
) -> None:
    make_app(client)
    make_version(client, code="1.0.0")
    response = client.post(
        f"/miniapps/{APP_ID}/versions", json={**MINIMAL_VERSION, "code": "1.0.0"}
    )
    assert_error(response, 400, ErrorCode.DUPLICATE_VERSION_CODE)
    assert sandbox_server.store.count_versions(APP_ID) == 1


def test_version_ids_are_one_global_sequence(client: httpx.Client) -> None:
    make_app(client)
    make_app(client, OTHER_APP_ID)
    ids = [make_version(client, app)["id"] for app in (APP_ID, OTHER_APP_ID, APP_ID)]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]


def test_version_update_keeps_optional_fields_left_out(client: httpx.Client) -> None:
    make_app(client)
    version = make_version(
        client, code="7", metadata=f"gxupload:{METADATA_ID}", integrated_security=True
    )
    url = f"/miniapps/{APP_ID}/versions/{version['id']}"
    before = client.get(url).json()["data"]
    assert client.put(url, json={**MINIMAL_VERSION, "main_name": "other"}).status_code == 204
    after = client.get(url).json()["data"]
    assert after == {**before, "main_name": "other"}
    # The code is fixed at creation: not a field of the PUT body.
    response = client.put(url, json={**MINIMAL_VERSION, "code": "8"})
    assert_error(response, 400, ErrorCode.FIELD_UNKNOWN)
    for missing in MINIMAL_VERSION:
        body = {k: v for k, v in MINIMAL_VERSION.items() if k != missing}
        assert_error(client.put(url, json=body), 400, ErrorCode.FIELD_REQUIRED)
    assert client.get(url).json()["data"] == after


def test_version_of_another_app_is_404(client: httpx.Client) -> None:
    make_app(client)
    make_app(client, OTHER_APP_ID)
    version_id = make_version(client, OTHER_APP_ID)["id"]
    base = f"/miniapps/{APP_ID}/versions/{version_id}"
    assert_error(client.get(base), 404, ErrorCode.VERSION_NOT_FOUND)
    assert_error(client.put(base, json=MINIMAL_VERSION), 404, ErrorCode.VERSION_NOT_FOUND)
    assert_error(
        client.post(base + "/compatibility", json={"superapp_version": 1}),
        404,
        ErrorCode.VERSION_NOT_FOUND,
    )
    assert_error(client.post(base + "/send_to_review"), 404, ErrorCode.VERSION_NOT_FOUND)


def test_compatibility_docs_samples(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client)
    version_id = make_version(client)["id"]
    base = f"/miniapps/{APP_ID}/versions/{version_id}/compatibility"
    added = client.post(base, content=DOCS_COMPATIBILITY, headers=JSON_TYPE)
    assert added.status_code == 204
    assert added.content == b""
    assert sandbox_server.store.compatibilities(APP_ID, version_id) == {1}
    # The docs' sample uses PUT for delete; the endpoint table says POST, and POST it is.
    assert_plain_http_error(
        client.put(base + "/delete", content=DOCS_COMPATIBILITY, headers=JSON_TYPE), 405
    )
    removed = client.post(base + "/delete", content=DOCS_COMPATIBILITY, headers=JSON_TYPE)
    assert removed.status_code == 204
    assert removed.content == b""
    assert sandbox_server.store.compatibilities(APP_ID, version_id) == set()


@pytest.mark.parametrize("step", ["send_to_review", "in_review", "rejected", "ready"])
def test_status_step_docs_samples(
    client: httpx.Client, sandbox_server: RunningSandbox, step: str
) -> None:
    make_app(client)
    version_id = make_version(client)["id"]
    path = f"/miniapps/{APP_ID}/versions/{version_id}"
    walk = {
        "send_to_review": [],
        "in_review": ["send_to_review"],
        "rejected": ["send_to_review", "in_review"],
        "ready": ["send_to_review", "in_review"],
    }[step]
    for previous in walk:
        assert client.post(f"{path}/{previous}").status_code == 204
    response = client.post(f"{path}/{step}")  # no body, as in the docs
    assert response.status_code == 204
    assert response.content == b""
    expected = {"send_to_review": "waiting_for_review"}.get(step, step)
    assert sandbox_server.store.version_status(APP_ID, version_id) == expected


# --- upload objects ----------------------------------------------------------------------------


def test_gxobject_upload_then_read_back(
    client: httpx.Client, sandbox_server: RunningSandbox
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    uploaded = client.post("/gxobject", content=png, headers={"x-gx-filename": "icon.png"})
    assert uploaded.status_code == 201
    object_id = uploaded.json()["object_id"]
    assert re.fullmatch(r"gxupload:[0-9a-f]{32}", object_id)
    hex_id = object_id.split(":", 1)[1]

    make_app(client, icon=object_id)
    icon_url = client.get(f"/miniapps/{APP_ID}").json()["data"]["icon"]
    assert icon_url == object_url(sandbox_server, hex_id)
    with sandbox_server.client() as fetcher:
        image = fetcher.get(icon_url)
    assert image.status_code == 200
    assert image.content == png
    assert image.headers["content-type"] == "image/png"


def test_gxobject_errors(client: httpx.Client) -> None:
    assert_error(client.post("/gxobject", content=b"x"), 400, ErrorCode.UPLOAD_FILENAME_MISSING)
    assert_error(
        client.post("/gxobject", content=b"", headers={"x-gx-filename": "a.png"}),
        400,
        ErrorCode.UPLOAD_EMPTY,
    )
    assert_error(client.get("/objects/" + "0" * 32), 404, ErrorCode.OBJECT_NOT_FOUND)
    assert_error(client.get("/objects/not-hex"), 404, ErrorCode.OBJECT_NOT_FOUND)


def test_well_formed_object_id_never_uploaded_is_accepted(client: httpx.Client) -> None:
    # Manifests carry ids uploaded elsewhere (and the real server forgets them after ~10 min).
    make_app(client, banner="gxupload:" + "ab" * 16)
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["banner"].endswith("ab" * 16)


# --- authentication ----------------------------------------------------------------------------

EVERY_ENDPOINT = [
    ("GET", "/miniapps/com.a.b"),
    ("POST", "/miniapps/upload"),
    ("POST", "/miniapps"),
    ("PUT", "/miniapps/com.a.b"),
    ("DELETE", "/miniapps/com.a.b"),
    ("POST", "/miniapps/com.a.b/attributes"),
    ("DELETE", "/miniapps/com.a.b/attributes/COUNTRY"),
    ("GET", "/miniapps/com.a.b/locations"),
    ("POST", "/miniapps/com.a.b/locations"),
    ("PUT", "/miniapps/com.a.b/locations/1"),
    ("DELETE", "/miniapps/com.a.b/locations/1"),
    ("GET", "/miniapps/com.a.b/versions/1"),
    ("POST", "/miniapps/com.a.b/versions/upload"),
    ("POST", "/miniapps/com.a.b/versions"),
    ("PUT", "/miniapps/com.a.b/versions/1"),
    ("POST", "/miniapps/com.a.b/versions/1/compatibility"),
    ("POST", "/miniapps/com.a.b/versions/1/compatibility/delete"),
    ("POST", "/miniapps/com.a.b/versions/1/send_to_review"),
    ("POST", "/miniapps/com.a.b/versions/1/in_review"),
    ("POST", "/miniapps/com.a.b/versions/1/rejected"),
    ("POST", "/miniapps/com.a.b/versions/1/ready"),
    ("POST", "/gxobject"),
    ("GET", "/objects/" + ICON_ID),
    ("GET", "/no/such/route"),
]


def test_every_endpoint_requires_the_token(sandbox_server: RunningSandbox) -> None:
    assert len(EVERY_ENDPOINT) == 21 + 3
    with http_client(sandbox_server.v1) as anonymous:
        for method, path in EVERY_ENDPOINT:
            missing = anonymous.request(method, path, content=b"{}")
            assert_error(missing, 401, ErrorCode.AUTH_MISSING)
            for wrong in ("test-tokeN", "x", "test-token-and-more"):
                response = anonymous.request(
                    method, path, content=b"{}", headers={"APIKey-Auth": wrong}
                )
                assert_error(response, 401, ErrorCode.AUTH_INVALID)
    assert sandbox_server.store.count_apps() == 0


@pytest.mark.parametrize("sandbox_server", [{"token": "another-token"}], indirect=True)
def test_server_checks_its_own_token(sandbox_server: RunningSandbox) -> None:
    with http_client(sandbox_server.v1) as c:
        old = c.get("/miniapps/com.a.b", headers={"APIKey-Auth": "test-token"})
        new = c.get("/miniapps/com.a.b", headers={"APIKey-Auth": "another-token"})
    assert_error(old, 401, ErrorCode.AUTH_INVALID)
    assert_error(new, 404, ErrorCode.APP_NOT_FOUND)


def test_token_header_name_is_case_insensitive(sandbox_server: RunningSandbox) -> None:
    with http_client(sandbox_server.v1) as c:
        response = c.get("/miniapps/com.a.b", headers={"apikey-auth": sandbox_server.token})
    assert_error(response, 404, ErrorCode.APP_NOT_FOUND)


# --- unknown resources -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/miniapps/{APP_ID}", None),
        ("PUT", f"/miniapps/{APP_ID}", APP_UPDATE),
        ("DELETE", f"/miniapps/{APP_ID}", None),
        ("POST", f"/miniapps/{APP_ID}/attributes", {"field": "A", "value": "b"}),
        ("DELETE", f"/miniapps/{APP_ID}/attributes/A", None),
        ("GET", f"/miniapps/{APP_ID}/locations", None),
        ("POST", f"/miniapps/{APP_ID}/locations", {"name": "a", "geo_point": "POINT(1 2)"}),
        ("PUT", f"/miniapps/{APP_ID}/locations/1", LOCATION),
        ("DELETE", f"/miniapps/{APP_ID}/locations/1", None),
        ("POST", f"/miniapps/{APP_ID}/versions", MINIMAL_VERSION),
        ("GET", f"/miniapps/{APP_ID}/versions/1", None),
        ("PUT", f"/miniapps/{APP_ID}/versions/1", MINIMAL_VERSION),
        ("POST", f"/miniapps/{APP_ID}/versions/1/compatibility", {"superapp_version": 1}),
        ("POST", f"/miniapps/{APP_ID}/versions/1/compatibility/delete", {"superapp_version": 1}),
        ("POST", f"/miniapps/{APP_ID}/versions/1/send_to_review", None),
        ("POST", f"/miniapps/{APP_ID}/versions/1/ready", None),
    ],
)
def test_unknown_miniapp_is_404(
    client: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = client.request(method, path, json=body)
    assert_error(response, 404, ErrorCode.APP_NOT_FOUND)


def test_unknown_location_and_version_are_404(client: httpx.Client) -> None:
    make_app(client)
    assert_error(
        client.put(f"/miniapps/{APP_ID}/locations/999", json=LOCATION),
        404,
        ErrorCode.LOCATION_NOT_FOUND,
    )
    assert_error(
        client.delete(f"/miniapps/{APP_ID}/locations/999"), 404, ErrorCode.LOCATION_NOT_FOUND
    )
    for method, suffix, body in [
        ("GET", "", None),
        ("PUT", "", MINIMAL_VERSION),
        ("POST", "/compatibility", {"superapp_version": 1}),
        ("POST", "/compatibility/delete", {"superapp_version": 1}),
        ("POST", "/in_review", None),
    ]:
        response = client.request(method, f"/miniapps/{APP_ID}/versions/999{suffix}", json=body)
        assert_error(response, 404, ErrorCode.VERSION_NOT_FOUND)


def assert_plain_http_error(response: httpx.Response, status: int) -> None:
    """What a web server in front of an API answers for a path or method it does not route:
    plain text, never the API's ``{"errors": [...]}`` body (which means "the API says so")."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    with pytest.raises(ValueError):
        response.json()


def test_unknown_routes_answer_like_a_plain_web_server(client: httpx.Client) -> None:
    make_app(client)
    assert_plain_http_error(client.get("/nothing"), 404)
    assert_plain_http_error(client.get(f"/miniapps/{APP_ID}/versions/abc"), 404)
    assert_plain_http_error(client.post(f"/miniapps/{APP_ID}/versions/1/approve"), 404)
    wrong_method = client.patch(f"/miniapps/{APP_ID}", json={})
    assert_plain_http_error(wrong_method, 405)
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    # The API's own routes keep the API's error body: an unknown app is the API saying so.
    assert_error(client.get("/miniapps/com.genexus.nowhere"), 404, ErrorCode.APP_NOT_FOUND)


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1/v1", "/mac/api/v1", "/api/v2"])
def test_paths_outside_the_api_are_plain_404(sandbox_server: RunningSandbox, prefix: str) -> None:
    # The URLs a wrong MAC_BASE_URL (or MAC_API_VERSION) produces.
    root = sandbox_server.base_url.removesuffix("/api")
    headers = {"APIKey-Auth": sandbox_server.token, "Accept": "application/json"}
    with http_client(root + prefix, headers=headers) as plain:
        assert_plain_http_error(plain.get(f"/miniapps/{APP_ID}"), 404)
        assert_plain_http_error(plain.post("/miniapps", json={"id": APP_ID}), 404)


# --- invalid input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", ErrorCode.BODY_NOT_JSON),
        (b"", ErrorCode.BODY_NOT_JSON),
        (b'{"id": ', ErrorCode.BODY_NOT_JSON),
        (b'{"superapp_version": NaN}', ErrorCode.BODY_NOT_JSON),
        (b"\xff\xfe\xfa", ErrorCode.BODY_NOT_JSON),
        (b"[]", ErrorCode.BODY_NOT_OBJECT),
        (b'"text"', ErrorCode.BODY_NOT_OBJECT),
        (b"null", ErrorCode.BODY_NOT_OBJECT),
        (b"1", ErrorCode.BODY_NOT_OBJECT),
    ],
)
def test_body_must_be_a_json_object(client: httpx.Client, raw: bytes, code: ErrorCode) -> None:
    make_app(client)
    version_id = make_version(client)["id"]
    base = f"/miniapps/{APP_ID}"
    for method, path in [
        ("POST", "/miniapps"),
        ("PUT", base),
        ("POST", base + "/attributes"),
        ("POST", base + "/locations"),
        ("POST", base + "/versions"),
        ("PUT", f"{base}/versions/{version_id}"),
        ("POST", f"{base}/versions/{version_id}/compatibility"),
        ("POST", f"{base}/versions/{version_id}/compatibility/delete"),
    ]:
        response = client.request(method, path, content=raw, headers=JSON_TYPE)
        assert_error(response, 400, code)


@pytest.mark.parametrize("missing", ["id", "name", "superapp_id", "type"])
def test_miniapp_create_required_fields(
    client: httpx.Client, sandbox_server: RunningSandbox, missing: str
) -> None:
    body = {k: v for k, v in MINIMAL_APP.items() if k != missing}
    assert_error(client.post("/miniapps", json=body), 400, ErrorCode.FIELD_REQUIRED)
    assert sandbox_server.store.count_apps() == 0


def test_every_problem_is_listed(client: httpx.Client) -> None:
    response = client.post("/miniapps", json={"id": "nodots", "type": "Hybrid", "name": 5})
    assert_error(response, 400)
    codes = sorted(e["code"] for e in response.json()["errors"])
    assert codes == sorted(
        [ErrorCode.INVALID_APP_ID, ErrorCode.INVALID_APP_TYPE, ErrorCode.FIELD_TYPE,
         ErrorCode.FIELD_REQUIRED]
    )  # fmt: skip
    # Distinct failures have distinct codes (aliases would hide in iteration: use members).
    assert len({int(c) for c in ErrorCode.__members__.values()}) == len(ErrorCode.__members__)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("id", 42, ErrorCode.FIELD_TYPE),
        ("id", "nodots", ErrorCode.INVALID_APP_ID),
        ("id", ".com.a", ErrorCode.INVALID_APP_ID),
        ("id", "com..a", ErrorCode.INVALID_APP_ID),
        ("id", "com.a.", ErrorCode.INVALID_APP_ID),
        ("id", "com.a/../b", ErrorCode.INVALID_APP_ID),
        ("id", "com. a", ErrorCode.INVALID_APP_ID),
        ("id", "com.-a", ErrorCode.INVALID_APP_ID),
        ("id", "com." + "a" * 300, ErrorCode.INVALID_APP_ID),
        ("id", None, ErrorCode.FIELD_TYPE),
        ("name", 1, ErrorCode.FIELD_TYPE),
        ("name", "", ErrorCode.FIELD_EMPTY),
        ("name", ["x"], ErrorCode.FIELD_TYPE),
        ("superapp_id", True, ErrorCode.FIELD_TYPE),
        ("type", "Hybrid", ErrorCode.INVALID_APP_TYPE),
        ("type", "", ErrorCode.INVALID_APP_TYPE),
        ("type", 1, ErrorCode.FIELD_TYPE),
        ("description", 3.5, ErrorCode.FIELD_TYPE),
        ("keywords", ["coffee", "cafe"], ErrorCode.FIELD_TYPE),
        ("icon", "fe4602263a224b68a6cdd8c5533e5700", ErrorCode.INVALID_OBJECT_ID),
        ("icon", "gxupload:FE4602263A224B68A6CDD8C5533E5700", ErrorCode.INVALID_OBJECT_ID),
        ("card", "gxupload:123", ErrorCode.INVALID_OBJECT_ID),
        ("banner", "https://example.com/banner.png", ErrorCode.INVALID_OBJECT_ID),
        ("banner", 7, ErrorCode.FIELD_TYPE),
        ("organization_id", "acme", ErrorCode.INVALID_ORGANIZATION_ID),
    ],
)
def test_miniapp_create_invalid_field(
    client: httpx.Client, sandbox_server: RunningSandbox, field: str, value: Any, code: ErrorCode
) -> None:
    assert_error(client.post("/miniapps", json={**MINIMAL_APP, field: value}), 400, code)
    assert sandbox_server.store.count_apps() == 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", None, ErrorCode.FIELD_TYPE),
        ("name", "", ErrorCode.FIELD_EMPTY),
        ("type", "Hybrid", ErrorCode.INVALID_APP_TYPE),
        ("icon", "gxupload:xyz", ErrorCode.INVALID_OBJECT_ID),
        ("keywords", 1, ErrorCode.FIELD_TYPE),
    ],
)
def test_miniapp_update_invalid_field_changes_nothing(
    client: httpx.Client, field: str, value: Any, code: ErrorCode
) -> None:
    make_app(client)
    before = client.get(f"/miniapps/{APP_ID}").json()
    body = {**APP_UPDATE, "description": "new", field: value}
    response = client.put(f"/miniapps/{APP_ID}", json=body)
    assert_error(response, 400, code)
    assert client.get(f"/miniapps/{APP_ID}").json() == before


def test_duplicate_miniapp_id_is_400(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client, name="first")
    assert_error(
        client.post("/miniapps", json={**MINIMAL_APP, "name": "second"}),
        400,
        ErrorCode.DUPLICATE_APP_ID,
    )
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["name"] == "first"
    assert sandbox_server.store.count_apps() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"value": "x"}, ErrorCode.FIELD_REQUIRED),
        ({"field": "A"}, ErrorCode.FIELD_REQUIRED),
        ({"field": 1, "value": "x"}, ErrorCode.FIELD_TYPE),
        ({"field": "A", "value": 1}, ErrorCode.FIELD_TYPE),
        ({"field": "A", "value": None}, ErrorCode.FIELD_TYPE),
        ({"field": "", "value": "x"}, ErrorCode.FIELD_EMPTY),
    ],
)
def test_attribute_invalid(client: httpx.Client, body: dict[str, Any], code: ErrorCode) -> None:
    make_app(client)
    assert_error(client.post(f"/miniapps/{APP_ID}/attributes", json=body), 400, code)
    assert client.get(f"/miniapps/{APP_ID}").json()["data"]["additional_attributes"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"geo_point": "POINT(1 2)"}, ErrorCode.FIELD_REQUIRED),
        ({"name": "a"}, ErrorCode.FIELD_REQUIRED),
        ({"name": 1, "geo_point": "POINT(1 2)"}, ErrorCode.FIELD_TYPE),
        ({"name": "", "geo_point": "POINT(1 2)"}, ErrorCode.FIELD_EMPTY),
    ],
)
def test_location_invalid(client: httpx.Client, body: dict[str, Any], code: ErrorCode) -> None:
    make_app(client)
    assert_error(client.post(f"/miniapps/{APP_ID}/locations", json=body), 400, code)
    location_id = make_location(client)
    response = client.put(f"/miniapps/{APP_ID}/locations/{location_id}", json=body)
    assert_error(response, 400, code)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("platform_id", None, ErrorCode.FIELD_REQUIRED),
        ("main_name", None, ErrorCode.FIELD_REQUIRED),
        ("main_type", None, ErrorCode.FIELD_REQUIRED),
        ("platform_id", 1, ErrorCode.FIELD_TYPE),
        ("main_name", "", ErrorCode.FIELD_EMPTY),
        ("main_type", "Window", ErrorCode.INVALID_MAIN_TYPE),
        ("main_type", 3, ErrorCode.FIELD_TYPE),
        ("integrated_security", "true", ErrorCode.FIELD_TYPE),
        ("integrated_security", 1, ErrorCode.FIELD_TYPE),
        ("code", 100, ErrorCode.FIELD_TYPE),
        ("metadata", "f292ef3f9ac94294a66cc353c4802c35", ErrorCode.INVALID_OBJECT_ID),
        ("service_url", 5, ErrorCode.FIELD_TYPE),
    ],
)
def test_version_invalid_field(
    client: httpx.Client, sandbox_server: RunningSandbox, field: str, value: Any, code: ErrorCode
) -> None:
    make_app(client)
    body = {**MINIMAL_VERSION, field: value}
    if code is ErrorCode.FIELD_REQUIRED:
        del body[field]
    assert_error(client.post(f"/miniapps/{APP_ID}/versions", json=body), 400, code)
    assert sandbox_server.store.count_versions(APP_ID) == 0
    if field != "code":  # the code is not a field of the PUT body
        version_id = make_version(client)["id"]
        url = f"/miniapps/{APP_ID}/versions/{version_id}"
        before = client.get(url).json()
        assert_error(client.put(url, json=body), 400, code)
        assert client.get(url).json() == before


@pytest.mark.parametrize("main_type", ["Panel", "panel", "PANEL", "Menu", "menu", "MeNu"])
def test_main_type_any_case(client: httpx.Client, main_type: str) -> None:
    make_app(client)
    version = make_version(client, main_type=main_type)
    url = f"/miniapps/{APP_ID}/versions/{version['id']}"
    assert client.get(url).json()["data"]["main_type"] == main_type


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, ErrorCode.FIELD_REQUIRED),
        ({"superapp_version": "1"}, ErrorCode.FIELD_TYPE),
        ({"superapp_version": True}, ErrorCode.FIELD_TYPE),
        ({"superapp_version": 1.5}, ErrorCode.FIELD_TYPE),
        ({"superapp_version": None}, ErrorCode.FIELD_TYPE),
        ({"superapp_version": 0}, ErrorCode.INVALID_SUPERAPP_VERSION),
        ({"superapp_version": -3}, ErrorCode.INVALID_SUPERAPP_VERSION),
    ],
)
def test_compatibility_invalid(
    client: httpx.Client, sandbox_server: RunningSandbox, body: dict[str, Any], code: ErrorCode
) -> None:
    make_app(client)
    version_id = make_version(client)["id"]
    base = f"/miniapps/{APP_ID}/versions/{version_id}/compatibility"
    assert_error(client.post(base, json=body), 400, code)
    assert_error(client.post(base + "/delete", json=body), 400, code)
    assert sandbox_server.store.compatibilities(APP_ID, version_id) == set()


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/jsonx", "json"],
)
def test_json_bodies_need_the_json_content_type(
    client: httpx.Client, sandbox_server: RunningSandbox, content_type: str | None
) -> None:
    """``curl -d`` (the docs' samples) sends a form type: a real server may refuse it."""
    make_app(client)
    version_id = make_version(client)["id"]
    base = f"/miniapps/{APP_ID}"
    before = sandbox_server.store.dump()
    headers = {} if content_type is None else {"Content-Type": content_type}
    for method, path, body in [
        ("POST", "/miniapps", {**MINIMAL_APP, "id": OTHER_APP_ID}),
        ("PUT", base, APP_UPDATE),
        ("POST", base + "/attributes", {"field": "A", "value": "b"}),
        ("POST", base + "/locations", LOCATION),
        ("POST", base + "/versions", MINIMAL_VERSION),
        ("PUT", f"{base}/versions/{version_id}", MINIMAL_VERSION),
        ("POST", f"{base}/versions/{version_id}/compatibility", {"superapp_version": 1}),
        ("POST", f"{base}/versions/{version_id}/compatibility/delete", {"superapp_version": 1}),
    ]:
        response = client.request(method, path, content=json.dumps(body), headers=headers)
        assert_error(response, 400, ErrorCode.BODY_WRONG_CONTENT_TYPE)
    assert sandbox_server.store.dump() == before


def test_status_steps_take_no_body(client: httpx.Client, sandbox_server: RunningSandbox) -> None:
    make_app(client)
    version_id = make_version(client)["id"]
    url = f"/miniapps/{APP_ID}/versions/{version_id}/send_to_review"
    assert_error(client.post(url, json={"status": "ready"}), 400, ErrorCode.BODY_NOT_EXPECTED)
    assert sandbox_server.store.version_status(APP_ID, version_id) == "pending"
    assert client.post(url).status_code == 204


def test_json_sent_with_content_type_works_too(client: httpx.Client) -> None:
    response = client.post(
        "/miniapps",
        content=json.dumps(MINIMAL_APP),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201
