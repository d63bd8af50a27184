"""The HTTP endpoints: the 21 documented ones plus the upload-object pair they depend on.

Handlers only translate: read and validate the request (validation, bundle), call one store
method (one transaction), shape the answer as the docs show it. Errors are raised as
:class:`ApiError` and turned into ``{"errors": [...]}`` by the app's exception handler.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.providers.miniappcenter.sandbox import bundle as bundles
from reconciler.providers.miniappcenter.sandbox import status as st
from reconciler.providers.miniappcenter.sandbox import validation as v
from reconciler.providers.miniappcenter.sandbox.errors import (
    ApiError,
    ErrorCode,
    bad_request,
    not_found,
)
from reconciler.providers.miniappcenter.sandbox.store import SandboxStore, StoredObject

PREFIX = "/api/v1"
MAX_JSON_BODY = 1024 * 1024
MAX_UPLOAD_BODY = 64 * 1024 * 1024

APP_FIELDS = ("id", "organization_id", "name", "description", "superapp_id", "type", "keywords")
IMAGE_FIELDS = ("icon", "card", "banner")
VERSION_FIELDS = (
    "id",
    "code",
    "platform_id",
    "metadata",
    "integrated_security",
    "main_name",
    "main_type",
    "service_url",
)


# --- request helpers ---------------------------------------------------------------------------


def _store(request: Request) -> SandboxStore:
    return cast(SandboxStore, request.app.state.store)


def _app_id(request: Request) -> str:
    return cast(str, request.path_params["app_id"])


# Ids are SQLite integers; a larger one in a URL names nothing (not a 500 from the driver).
MAX_STORED_ID = 2**63 - 1


def _version_id(request: Request) -> int:
    version_id = cast(int, request.path_params["version_id"])
    if version_id > MAX_STORED_ID:
        raise not_found(ErrorCode.VERSION_NOT_FOUND, f"version {version_id} not found")
    return version_id


def _location_id(request: Request) -> int:
    location_id = cast(int, request.path_params["location_id"])
    if location_id > MAX_STORED_ID:
        raise not_found(ErrorCode.LOCATION_NOT_FOUND, f"location {location_id} not found")
    return location_id


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without buffering all of it."""
    too_large = ApiError.one(413, ErrorCode.BODY_TOO_LARGE, f"request body exceeds {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict[str, Any]:
    v.check_json_content_type(request.headers.get("content-type"))
    return v.parse_json_object(await _body(request, MAX_JSON_BODY))


def _ignored(request: Request) -> list[str] | None:
    """Where unknown fields go when the server ignores them (None: it refuses them)."""
    store = _store(request)
    return None if store.refuse_unknown_fields else store.ignored_fields


async def _no_body(request: Request) -> None:
    """The status steps are documented without a body: one sent is a client mistake."""
    if await _body(request, MAX_JSON_BODY):
        raise bad_request(ErrorCode.BODY_NOT_EXPECTED, "this endpoint takes no request body")


def _object_url(request: Request, stored: str | None) -> str | None:
    """Stored ``gxupload:<hex>`` reads back as a URL on this server; URLs from bundles as given."""
    hex_id = v.object_hex(stored)
    if hex_id is None:
        return stored
    return f"{str(request.base_url).rstrip('/')}{PREFIX}/objects/{hex_id}"


def _data(data: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"data": data}, status_code=status_code)


CREATED = 201
NO_CONTENT = 204

Endpoint = Callable[[Request], Awaitable[Response]]


# --- mini apps ---------------------------------------------------------------------------------


async def create_miniapp(request: Request) -> Response:
    values = v.miniapp_create(await _json(request), ignored=_ignored(request))
    _store(request).create_miniapp(values)
    return Response(status_code=CREATED)


async def upload_miniapp(request: Request) -> Response:
    bundles.check_upload_filename(request.headers.get("filename"))
    parsed = bundles.parse_miniapp_bundle(await _body(request, MAX_UPLOAD_BODY))
    _store(request).create_miniapp(
        parsed.values,
        attributes=parsed.attributes,
        locations=parsed.locations,
        objects=parsed.objects,
    )
    return Response(status_code=CREATED)


async def get_miniapp(request: Request) -> Response:
    app = _store(request).get_miniapp(_app_id(request))
    data = {name: app[name] for name in APP_FIELDS}
    data.update({name: _object_url(request, app[name]) for name in IMAGE_FIELDS})
    data["additional_attributes"] = app["additional_attributes"]
    return _data(data)


async def update_miniapp(request: Request) -> Response:
    values = v.miniapp_update(await _json(request), ignored=_ignored(request))
    _store(request).update_miniapp(_app_id(request), values)
    return Response(status_code=NO_CONTENT)


async def delete_miniapp(request: Request) -> Response:
    _store(request).delete_miniapp(_app_id(request))
    return Response(status_code=NO_CONTENT)


# --- attributes --------------------------------------------------------------------------------


async def set_attribute(request: Request) -> Response:
    # An upsert: the docs' "assigns a value to an additional attribute".
    field, value = v.attribute(await _json(request), ignored=_ignored(request))
    _store(request).set_attribute(_app_id(request), field, value)
    return Response(status_code=CREATED)


async def delete_attribute(request: Request) -> Response:
    _store(request).delete_attribute(_app_id(request), cast(str, request.path_params["field"]))
    return Response(status_code=NO_CONTENT)


# --- locations ---------------------------------------------------------------------------------


async def list_locations(request: Request) -> Response:
    return _data(_store(request).list_locations(_app_id(request)))


async def create_location(request: Request) -> Response:
    values = v.location_create(await _json(request), ignored=_ignored(request))
    location_id = _store(request).create_location(_app_id(request), values)
    return _data({"id": location_id}, CREATED)


async def update_location(request: Request) -> Response:
    values = v.location_update(await _json(request), ignored=_ignored(request))
    location_id = _location_id(request)
    _store(request).update_location(_app_id(request), location_id, values)
    return Response(status_code=NO_CONTENT)


async def delete_location(request: Request) -> Response:
    location_id = _location_id(request)
    _store(request).delete_location(_app_id(request), location_id)
    return Response(status_code=NO_CONTENT)


# --- versions ----------------------------------------------------------------------------------


async def create_version(request: Request) -> Response:
    values = v.version_create(await _json(request), ignored=_ignored(request))
    version_id, code = _store(request).create_version(_app_id(request), values)
    return _data({"id": version_id, "code": code}, CREATED)


async def upload_version(request: Request) -> Response:
    bundles.check_upload_filename(request.headers.get("filename"))
    parsed = bundles.parse_version_bundle(await _body(request, MAX_UPLOAD_BODY))
    _store(request).create_version(
        _app_id(request),
        parsed.values,
        compatibilities=parsed.compatibilities,
        status=parsed.status,
        objects=parsed.objects,
    )
    return Response(status_code=CREATED)


async def get_version(request: Request) -> Response:
    # As documented: no review status and no compatibilities.
    version = _store(request).get_version(_app_id(request), _version_id(request))
    data = {name: version[name] for name in VERSION_FIELDS}
    data["metadata"] = _object_url(request, version["metadata"])
    return _data(data)


async def update_version(request: Request) -> Response:
    values = v.version_update(await _json(request), ignored=_ignored(request))
    _store(request).update_version(_app_id(request), _version_id(request), values)
    return Response(status_code=NO_CONTENT)


async def add_compatibility(request: Request) -> Response:
    superapp_version = v.superapp_version(await _json(request), ignored=_ignored(request))
    _store(request).add_compatibility(_app_id(request), _version_id(request), superapp_version)
    return Response(status_code=NO_CONTENT)


async def delete_compatibility(request: Request) -> Response:
    superapp_version = v.superapp_version(await _json(request), ignored=_ignored(request))
    _store(request).remove_compatibility(_app_id(request), _version_id(request), superapp_version)
    return Response(status_code=NO_CONTENT)


def _status_step(step: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        await _no_body(request)
        _store(request).step_version(_app_id(request), _version_id(request), step)
        return Response(status_code=NO_CONTENT)

    endpoint.__name__ = f"version_{step}"
    return endpoint


# --- upload objects ----------------------------------------------------------------------------


async def upload_object(request: Request) -> Response:
    filename = request.headers.get("x-gx-filename")
    if filename is None or not filename.strip():
        raise bad_request(
            ErrorCode.UPLOAD_FILENAME_MISSING, "the 'x-gx-filename' header is required"
        )
    data = await _body(request, MAX_UPLOAD_BODY)
    if not data:
        raise bad_request(ErrorCode.UPLOAD_EMPTY, "the uploaded object is empty")
    hex_id = uuid.uuid4().hex
    _store(request).put_object(StoredObject(hex_id, filename.strip(), data))
    return JSONResponse({"object_id": f"gxupload:{hex_id}"}, status_code=CREATED)


async def get_object(request: Request) -> Response:
    hex_id = cast(str, request.path_params["hex"])
    obj = _store(request).get_object(hex_id) if v.OBJECT_HEX_RE.fullmatch(hex_id) else None
    if obj is None:
        raise not_found(ErrorCode.OBJECT_NOT_FOUND, f"object {hex_id!r} not found")
    media_type = mimetypes.guess_type(obj.filename)[0] or "application/octet-stream"
    return Response(obj.data, media_type=media_type)


# --- the table ---------------------------------------------------------------------------------


def _route(path: str, **by_method: Endpoint) -> Route:
    """One route per path, so a wrong method gets 405 with the complete ``Allow`` header."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    dispatch.__name__ = "_".join(h.__name__ for h in by_method.values())
    return Route(path, dispatch, methods=list(by_method))


_APP = PREFIX + "/miniapps/{app_id}"
_VERSION = _APP + "/versions/{version_id:int}"

ROUTES = [
    _route(PREFIX + "/miniapps", POST=create_miniapp),
    # Before /miniapps/{app_id}; "upload" is not a reverse-DNS id, so the two never clash.
    _route(PREFIX + "/miniapps/upload", POST=upload_miniapp),
    _route(_APP, GET=get_miniapp, PUT=update_miniapp, DELETE=delete_miniapp),
    _route(_APP + "/attributes", POST=set_attribute),
    _route(_APP + "/attributes/{field}", DELETE=delete_attribute),
    _route(_APP + "/locations", GET=list_locations, POST=create_location),
    _route(_APP + "/locations/{location_id:int}", PUT=update_location, DELETE=delete_location),
    _route(_APP + "/versions", POST=create_version),
    _route(_APP + "/versions/upload", POST=upload_version),
    _route(_VERSION, GET=get_version, PUT=update_version),
    _route(_VERSION + "/compatibility", POST=add_compatibility),
    _route(_VERSION + "/compatibility/delete", POST=delete_compatibility),
    *(_route(f"{_VERSION}/{step}", POST=_status_step(step)) for step in st.STEPS),
    _route(PREFIX + "/gxobject", POST=upload_object),
    _route(PREFIX + "/objects/{hex}", GET=get_object),
]
