"""``MiniAppCenterClient``: one method per Mini App Center endpoint.

Every id is checked against the allow-lists in
:mod:`reconciler.providers.miniappcenter.ids` *before* it enters a URL (``..`` would
otherwise address another resource: httpx drops dot segments), then percent-encoded. Only
this module builds URLs.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from reconciler.errors import AmbiguousWriteError, ApiError, InvalidIdError
from reconciler.providers.miniappcenter.client.wire import (
    AttributeBody,
    CompatibilityBody,
    CreatedId,
    LocationBody,
    LocationData,
    MiniAppCreate,
    MiniAppData,
    MiniAppUpdate,
    RequestBody,
    UploadedObject,
    VersionCreate,
    VersionCreated,
    VersionData,
    VersionUpdate,
)
from reconciler.providers.miniappcenter.ids import check_app_id, check_attribute_field, check_int_id
from reconciler.transport.config import ClientLimits, Endpoint
from reconciler.transport.http import (
    JSON,
    OCTET_STREAM,
    ApiSession,
    ClientStats,
    RetryPolicy,
    url_path,
)
from reconciler.transport.redact import redact

_M = TypeVar("_M", bound=BaseModel)

# A header value: visible ASCII and inner spaces, no path separators or quotes.
_FILENAME_RE: Final = re.compile(
    r"^[A-Za-z0-9_.()\[\]+-](?:[A-Za-z0-9_.()\[\]+ -]*[A-Za-z0-9_.()\[\]+-])?$"
)
_MAX_FILENAME: Final = 255


def _seg(value: str) -> str:
    return quote(value, safe="")


def _app(app_id: object) -> str:
    if not isinstance(app_id, str):
        raise InvalidIdError(f"invalid mini app id {app_id!r}: must be a string")
    return "/miniapps/" + _seg(check_app_id(app_id))


def _field(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidIdError(f"invalid attribute field {name!r}: must be a string")
    return check_attribute_field(name)


def _version(app_id: object, version_id: object) -> str:
    return f"{_app(app_id)}/versions/{check_int_id(version_id, 'version id')}"


def _filename(name: object) -> str:
    if (
        not isinstance(name, str)
        or len(name) > _MAX_FILENAME
        or name in (".", "..")
        or not _FILENAME_RE.fullmatch(name)
    ):
        raise InvalidIdError(
            f"invalid upload filename {name!r}: use letters, digits, '.', '_', '-', '+',"
            " brackets and inner spaces, without path separators"
        )
    return name


def _json_headers() -> dict[str, str]:
    return {"Content-Type": JSON}


class MiniAppCenterClient:
    """Async client for the Mini App Center API (``/miniapps`` and ``/gxobject``).

    Use as ``async with MiniAppCenterClient(endpoint, token) as client: ...``. One
    connection pool is shared by every call for the client's lifetime. Counters of every
    attempt sent are in :attr:`stats`. See :mod:`reconciler.transport.http` for retries and the
    client-wide pause after a 429.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        limits: ClientLimits | None = None,
    ) -> None:
        self._session = ApiSession(
            endpoint,
            token,
            transport=transport,
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            limits=limits,
        )
        self.endpoint: Endpoint = endpoint

    @property
    def stats(self) -> ClientStats:
        return self._session.stats

    @property
    def retry(self) -> RetryPolicy:
        return self._session.retry

    def __repr__(self) -> str:
        return f"MiniAppCenterClient(endpoint={self.endpoint.display!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.aclose()

    # --- plumbing --------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        body: RequestBody | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        if body is not None:
            content = body.to_json()
            headers = {**(headers or {}), **_json_headers()}
        return await self._session.call(
            method,
            path,
            idempotent=idempotent,
            content=content,
            headers=headers,
            missing_ok=missing_ok,
        )

    async def _write(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        body: RequestBody | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response = await self._send(
            method, path, idempotent=idempotent, body=body, content=content, headers=headers
        )
        assert response is not None  # only reads pass missing_ok
        return response

    @staticmethod
    def _parse(response: httpx.Response, model: type[_M], *, key: str | None = "data") -> _M:
        """The body's ``data`` (or the whole body) as ``model``.

        Errors are raised ``from None``: the validation error quotes the body, which could
        echo the token; the redacted summary is in the message instead.

        A 2xx body that is not the documented shape raises :class:`ApiError` for a read and
        :class:`AmbiguousWriteError` for a create (the write happened, its result is unknown).
        """
        try:
            payload: Any = response.json()
            if key is not None:
                if not isinstance(payload, dict) or key not in payload:
                    raise ValueError(f"no {key!r} member")
                payload = payload[key]
            return model.model_validate(payload)
        except (ValueError, ValidationError, RecursionError) as e:
            request = response.request
            method = request.method
            path = url_path(request.url)
            reason = f"HTTP {response.status_code} with an unexpected body ({_short(e)})"
            if method == "GET":
                raise ApiError(
                    method,
                    path,
                    response.status_code,
                    text=f"unexpected response body: {_short(e)}",
                ) from None
            raise AmbiguousWriteError(method, path, reason) from None

    @staticmethod
    def _parse_list(response: httpx.Response, model: type[_M]) -> list[_M]:
        try:
            payload: Any = response.json()
            items = payload["data"] if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise ValueError("'data' is not a list")
            return [model.model_validate(item) for item in items]
        except (ValueError, KeyError, ValidationError, RecursionError) as e:
            request = response.request
            path = url_path(request.url)
            raise ApiError(
                request.method,
                path,
                response.status_code,
                text=f"unexpected response body: {_short(e)}",
            ) from None

    # --- mini apps -------------------------------------------------------------------

    async def get_miniapp(self, app_id: str) -> MiniAppData | None:
        """The mini app, or None when it does not exist (404)."""
        response = await self._send("GET", _app(app_id), idempotent=True, missing_ok=True)
        return None if response is None else self._parse(response, MiniAppData)

    async def create_miniapp(self, body: MiniAppCreate) -> None:
        check_app_id(body.id)
        await self._write("POST", "/miniapps", idempotent=False, body=body)

    async def update_miniapp(self, app_id: str, body: MiniAppUpdate) -> None:
        await self._write("PUT", _app(app_id), idempotent=True, body=body)

    async def delete_miniapp(self, app_id: str) -> None:
        await self._write("DELETE", _app(app_id), idempotent=True)

    async def upload_miniapp(self, filename: str, content: bytes) -> None:
        """Create a mini app from a ``.mac`` bundle (raw bytes, ``filename`` header)."""
        await self._write(
            "POST",
            "/miniapps/upload",
            idempotent=False,
            content=bytes(content),
            headers={"Content-Type": OCTET_STREAM, "filename": _filename(filename)},
        )

    # --- attributes ------------------------------------------------------------------

    async def set_attribute(self, app_id: str, field: str, value: str) -> None:
        """Assign ``field`` = ``value`` (a set: repeating it is harmless, so it is retried)."""
        path = _app(app_id) + "/attributes"
        body = AttributeBody(field=_field(field), value=value)
        await self._write("POST", path, idempotent=True, body=body)

    async def delete_attribute(self, app_id: str, field: str) -> None:
        path = f"{_app(app_id)}/attributes/{_seg(_field(field))}"
        await self._write("DELETE", path, idempotent=True)

    # --- locations -------------------------------------------------------------------

    async def list_locations(self, app_id: str) -> list[LocationData]:
        response = await self._write("GET", _app(app_id) + "/locations", idempotent=True)
        return self._parse_list(response, LocationData)

    async def create_location(self, app_id: str, body: LocationBody) -> int:
        """Create a location; returns the id the server assigned."""
        path = _app(app_id) + "/locations"
        response = await self._write("POST", path, idempotent=False, body=body)
        return self._parse(response, CreatedId).id

    async def update_location(self, app_id: str, location_id: int, body: LocationBody) -> None:
        path = f"{_app(app_id)}/locations/{check_int_id(location_id, 'location id')}"
        await self._write("PUT", path, idempotent=True, body=body)

    async def delete_location(self, app_id: str, location_id: int) -> None:
        path = f"{_app(app_id)}/locations/{check_int_id(location_id, 'location id')}"
        await self._write("DELETE", path, idempotent=True)

    # --- versions --------------------------------------------------------------------

    async def get_version(self, app_id: str, version_id: int) -> VersionData | None:
        """The version, or None when it does not exist (404)."""
        path = _version(app_id, version_id)
        response = await self._send("GET", path, idempotent=True, missing_ok=True)
        return None if response is None else self._parse(response, VersionData)

    async def create_version(self, app_id: str, body: VersionCreate) -> VersionCreated:
        """Create a version; returns the server-assigned id and the code (the request's
        code when the server does not echo one)."""
        path = _app(app_id) + "/versions"
        response = await self._write("POST", path, idempotent=False, body=body)
        created = self._parse(response, VersionCreated)
        if not created.code:
            created = created.model_copy(update={"code": body.code})
        return created

    async def update_version(self, app_id: str, version_id: int, body: VersionUpdate) -> None:
        await self._write("PUT", _version(app_id, version_id), idempotent=True, body=body)

    async def upload_version(self, app_id: str, filename: str, content: bytes) -> None:
        """Create a version from a ``.mac`` bundle (raw bytes, ``filename`` header)."""
        await self._write(
            "POST",
            _app(app_id) + "/versions/upload",
            idempotent=False,
            content=bytes(content),
            headers={"Content-Type": OCTET_STREAM, "filename": _filename(filename)},
        )

    async def add_compatibility(self, app_id: str, version_id: int, superapp_version: int) -> None:
        path = _version(app_id, version_id) + "/compatibility"
        body = CompatibilityBody(
            superapp_version=check_int_id(superapp_version, "Super App version id")
        )
        await self._write("POST", path, idempotent=True, body=body)

    async def delete_compatibility(
        self, app_id: str, version_id: int, superapp_version: int
    ) -> None:
        # POST, as the endpoint table says (the published cURL sample wrongly uses PUT).
        path = _version(app_id, version_id) + "/compatibility/delete"
        body = CompatibilityBody(
            superapp_version=check_int_id(superapp_version, "Super App version id")
        )
        await self._write("POST", path, idempotent=True, body=body)

    async def _status_step(self, app_id: str, version_id: int, step: str) -> None:
        # A transition, not a set: repeating one may fail or move the version twice.
        await self._write("POST", f"{_version(app_id, version_id)}/{step}", idempotent=False)

    async def send_to_review(self, app_id: str, version_id: int) -> None:
        await self._status_step(app_id, version_id, "send_to_review")

    async def in_review(self, app_id: str, version_id: int) -> None:
        await self._status_step(app_id, version_id, "in_review")

    async def rejected(self, app_id: str, version_id: int) -> None:
        await self._status_step(app_id, version_id, "rejected")

    async def ready(self, app_id: str, version_id: int) -> None:
        await self._status_step(app_id, version_id, "ready")

    # --- upload objects --------------------------------------------------------------

    async def upload_object(self, filename: str, content: bytes) -> str:
        """Upload an image/video/audio/metadata file; returns its ``gxupload:<hex>`` id.

        The server keeps the reference about 10 minutes: upload right before use.
        """
        response = await self._write(
            "POST",
            "/gxobject",
            idempotent=False,
            content=bytes(content),
            headers={"Content-Type": OCTET_STREAM, "x-gx-filename": _filename(filename)},
        )
        try:
            payload: Any = response.json()
        except (ValueError, RecursionError):
            payload = None
        nested = isinstance(payload, dict) and "object_id" not in payload and "data" in payload
        return self._parse(response, UploadedObject, key="data" if nested else None).object_id


def _short(error: Exception) -> str:
    text = redact(str(error)).replace("\n", " ")
    return text if len(text) <= 300 else text[:300] + "..."
