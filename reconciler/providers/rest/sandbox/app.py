"""The tenant sandbox as a Starlette app: simplejwt token endpoints, DRF collections.

Behaviour copied from Django REST framework + djangorestframework-simplejwt defaults:

* ``POST /api/token/`` ``{"username", "password"}`` -> ``{"access", "refresh"}``; wrong
  credentials: 401 ``{"detail": "No active account found with the given credentials"}``.
* ``POST /api/token/refresh/`` ``{"refresh"}`` -> ``{"access", "refresh"}`` with rotation
  (``ROTATE_REFRESH_TOKENS``) and blacklisting (``BLACKLIST_AFTER_ROTATION``): the refresh
  token sent is blacklisted, so using it again is 401 ``token_not_valid``.
* Resources need ``Authorization: Bearer <access>``: without it 401 "Authentication
  credentials were not provided."; with an expired or invalid token 401
  ``{"detail", "code": "token_not_valid", "messages": [...]}``.
* The schema (tenant) comes from ``Api-Key``; none: the read-only ``public`` schema (403 on
  writes); an unknown key: 403 (never a silent fall back to public, which would show a
  reconciler public data as if it were the tenant's).
* Lists are paginated ``{"count", "next", "previous", "results"}`` (``?page=``; a page-size
  parameter only when ``page_size_param`` is configured, capped at ``max_page_size``, as
  DRF's default pagination takes none), ``next``/``previous`` absolute URLs.

Token times are whole-second NumericDates, ``exp`` and ``iat`` each truncated, as simplejwt
issues them: a 2-second token lives between 1 and 2 seconds.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reconciler.providers.rest.sandbox.collections import (
    COLLECTIONS,
    READ_ONLY,
    REQUIRED,
    Collection,
    defaults,
    validate,
)
from reconciler.providers.rest.sandbox.config import TenantSandboxConfig
from reconciler.providers.rest.sandbox.jwt import TokenInvalid, decode_hs256, encode_hs256
from reconciler.providers.rest.sandbox.scripted import ScriptedFaultMiddleware, ScriptedFaults
from reconciler.providers.rest.sandbox.store import PUBLIC, Conflict, ObjectId, TenantStore
from reconciler.sandbox_kit.faults import DroppedConnection, FaultInjectionMiddleware, FaultKind

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _drf_fault_body(kind: FaultKind, message: str) -> Any:
    """An injected fault answers like Django REST framework: ``{"detail": ...}``."""
    return {"detail": message}


class DrfError(Exception):
    """An answer in DRF's shape (raised from a handler, rendered by the app)."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


def _detail(status: int, detail: str, **extra: Any) -> DrfError:
    headers = {"WWW-Authenticate": 'Bearer realm="api"'} if status == 401 else None
    return DrfError(status, {"detail": detail, **extra}, headers)


def _token_not_valid(detail: str, messages: list[dict[str, str]] | None = None) -> DrfError:
    extra: dict[str, Any] = {"code": "token_not_valid"}
    if messages is not None:
        extra["messages"] = messages
    return _detail(401, detail, **extra)


class TenantApi:
    """Request handlers over one store and one config."""

    def __init__(self, config: TenantSandboxConfig, store: TenantStore) -> None:
        self.config = config
        self.store = store
        self.tokens_issued = 0  # logins and refreshes answered (tests count them)
        self.refreshes = 0
        self.logins = 0
        # The last tokens handed out, so tests can prove none of them leaks into a log.
        self.issued: deque[str] = deque(maxlen=256)

    # --- tokens ------------------------------------------------------------------------

    def _issue(self, user: str, kind: str, lifetime: float) -> str:
        # Whole seconds, each truncated on its own, as simplejwt's datetime_to_epoch does: a
        # token said to live 2 s may have only just over 1 s left when it is issued.
        now = time.time()
        payload = {
            "token_type": kind,
            "exp": int(now + lifetime),
            "iat": int(now),
            "jti": uuid.uuid4().hex,
            "user_id": user,
        }
        return encode_hs256(payload, self.config.signing_key)

    def _pair(self, user: str) -> dict[str, str]:
        self.tokens_issued += 1
        pair = {
            "access": self._issue(user, "access", self.config.access_seconds),
            "refresh": self._issue(user, "refresh", self.config.refresh_seconds),
        }
        self.issued.extend(pair.values())
        return pair

    async def obtain(self, request: Request) -> Response:
        data = await _json_body(request)
        errors = {name: [REQUIRED] for name in ("username", "password") if not data.get(name)}
        if errors:
            raise DrfError(400, errors)
        user, password = data["username"], data["password"]
        if not isinstance(user, str) or self.config.users.get(user) != password:
            raise _detail(401, "No active account found with the given credentials")
        self.logins += 1
        return JSONResponse(self._pair(user))

    async def refresh(self, request: Request) -> Response:
        data = await _json_body(request)
        token = data.get("refresh")
        if not token:
            raise DrfError(400, {"refresh": [REQUIRED]})
        if not isinstance(token, str):
            raise DrfError(400, {"refresh": ["Not a valid string."]})
        try:
            payload = decode_hs256(token, self.config.signing_key, now=time.time())
        except TokenInvalid:
            raise _token_not_valid("Token is invalid or expired") from None
        if payload.get("token_type") != "refresh":
            raise _token_not_valid("Token has wrong type")
        user = payload.get("user_id")
        if not isinstance(user, str) or user not in self.config.users:
            raise _token_not_valid("Token is invalid or expired")
        # Rotation + blacklist: the token sent can be used once (a second use, even by a
        # concurrent request, is refused as simplejwt's blacklist app refuses it).
        if not self.store.blacklist(str(payload.get("jti"))):
            raise _token_not_valid("Token is blacklisted")
        self.refreshes += 1
        return JSONResponse(self._pair(user))

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise _detail(401, "Authentication credentials were not provided.")
        invalid = [
            {
                "token_class": "AccessToken",
                "token_type": "access",
                "message": "Token is invalid or expired",
            }
        ]
        try:
            payload = decode_hs256(token.strip(), self.config.signing_key, now=time.time())
        except TokenInvalid:
            raise _token_not_valid("Given token not valid for any token type", invalid) from None
        if payload.get("token_type") != "access" or payload.get("user_id") not in self.config.users:
            raise _token_not_valid("Given token not valid for any token type", invalid)
        return str(payload["user_id"])

    def _schema(self, request: Request) -> str:
        key = request.headers.get("api-key")
        if key is None:
            return PUBLIC
        tenant = self.config.api_keys.get(key)
        if tenant is None:
            raise _detail(403, "Invalid Api-Key.")
        self.store.ensure_schema(tenant)
        return tenant

    def _context(self, request: Request) -> tuple[str, Collection]:
        collection = COLLECTIONS.get(request.path_params["collection"])
        if collection is None:
            raise HTTPException(404, "Not Found")
        self._authenticate(request)
        schema = self._schema(request)
        if request.method not in _SAFE and schema == PUBLIC:
            raise _detail(403, "You do not have permission to perform this action.")
        return schema, collection

    # --- collections -------------------------------------------------------------------

    async def list_or_create(self, request: Request) -> Response:
        schema, collection = self._context(request)
        if request.method == "POST":
            return await self._create(request, schema, collection)
        size = _page_size(request, self.config)
        count = self.store.count(schema, collection)
        pages = max(1, -(-count // size))
        raw_page = request.query_params.get("page", "1")
        page = int(raw_page) if raw_page.isdigit() else 0
        if raw_page == "last":
            page = pages
        if not 1 <= page <= pages:
            raise _detail(404, "Invalid page.")
        results = self.store.page(schema, collection, (page - 1) * size, size)

        def link(number: int) -> str | None:
            if not 1 <= number <= pages:
                return None
            return str(request.url.include_query_params(page=number))

        return JSONResponse(
            {
                "count": count,
                "next": link(page + 1),
                "previous": link(page - 1),
                "results": results,
            }
        )

    async def _create(self, request: Request, schema: str, collection: Collection) -> Response:
        values, errors = validate(
            collection, await _json_body(request), partial=False, exists=self._exists(schema),
            fixed_point=self.config.fixed_point_decimals,
        )
        if errors:
            raise DrfError(400, errors)
        merged = {**defaults(collection), **values}
        data = {f.name: merged[f.name] for f in collection.fields if f.name in merged}
        try:
            object_id = self.store.create(schema, collection, data)
        except Conflict:
            raise self._unique(collection) from None
        return JSONResponse(self.store.get(schema, collection, object_id), status_code=201)

    def _exists(self, schema: str) -> Callable[[str, int], bool]:
        def exists(name: str, object_id: int) -> bool:
            return self.store.get(schema, COLLECTIONS[name], object_id) is not None

        return exists

    def _unique(self, collection: Collection) -> DrfError:
        key = collection.natural_key
        return DrfError(400, {key: [f"{collection.verbose} with this {key} already exists."]})

    async def detail(self, request: Request) -> Response:
        schema, collection = self._context(request)
        object_id = _object_id(collection, request.path_params["object_id"])
        if object_id is None:
            raise _detail(404, "Not found.")
        current = self.store.get(schema, collection, object_id)
        if current is None:
            # Django's get_object_or_404, as DRF 3.16+ passes its message on.
            name = collection.verbose.capitalize()
            raise _detail(404, f"No {name} matches the given query.")
        if request.method == "GET":
            return JSONResponse(current)
        if request.method == "DELETE":
            self.store.delete(schema, collection, object_id)
            return Response(status_code=204)
        partial = request.method == "PATCH"
        values, errors = validate(
            collection, await _json_body(request), partial=partial, exists=self._exists(schema),
            fixed_point=self.config.fixed_point_decimals,
        )
        if errors:
            raise DrfError(400, errors)
        stored = {k: v for k, v in current.items() if k not in READ_ONLY}
        try:
            self.store.replace(schema, collection, object_id, {**stored, **values})
        except Conflict:
            raise self._unique(collection) from None
        return JSONResponse(self.store.get(schema, collection, object_id))


def _object_id(collection: Collection, text: str) -> ObjectId | None:
    """The id in the URL as the collection's primary key; None when it cannot be one (DRF's
    lookup then answers 404 "Not found.", as for an id that does not exist)."""
    if collection.id_kind == "uuid":
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return None
    # 18 digits: every such number fits SQLite's 64-bit INTEGER (a longer one is no id).
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _page_size(request: Request, config: TenantSandboxConfig) -> int:
    # DRF's PageNumberPagination.get_page_size: no parameter unless one is configured; a
    # bad value falls back to the default, a large one is cut to the maximum.
    if config.page_size_param is None:
        return config.page_size
    raw = request.query_params.get(config.page_size_param, "")
    if raw.isdigit() and int(raw) > 0:
        return min(int(raw), config.max_page_size)
    return config.page_size


async def _json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise _detail(413, "Request body too large.")
    raw = await request.body()
    if len(raw) > MAX_REQUEST_BYTES:
        raise _detail(413, "Request body too large.")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise _detail(400, "JSON parse error - the body is not valid JSON") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise DrfError(
            400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
        )
    return data


async def _drf_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DrfError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Paths that are not the API's: the web server's plain answer, not DRF's JSON.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        body = {"detail": f'Method "{request.method}" not allowed.'}
        return JSONResponse(body, status_code=405, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, DroppedConnection):
        return Response(status_code=500)  # injected; the response has started already
    logger.error("tenant sandbox error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "A server error occurred."}, status_code=500)


def create_tenant_app(config: TenantSandboxConfig) -> Starlette:
    """The tenant sandbox as an ASGI app: ``app.state.store`` (closed at lifespan end),
    ``app.state.api`` (its ``logins`` / ``refreshes`` counters) and ``app.state.faults``
    (:class:`ScriptedFaults`), the last two for tests."""
    store = TenantStore(config.db_path)
    api = TenantApi(config, store)
    faults = ScriptedFaults()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    app = Starlette(
        routes=[
            Route("/api/token/", api.obtain, methods=["POST"]),
            Route("/api/token/refresh/", api.refresh, methods=["POST"]),
            Route("/api/{collection:str}/", api.list_or_create, methods=["GET", "POST"]),
            Route(
                "/api/{collection:str}/{object_id:str}/",
                api.detail,
                methods=["GET", "PUT", "PATCH", "DELETE"],
            ),
        ],
        middleware=[
            Middleware(
                FaultInjectionMiddleware,
                latency_ms=config.latency_ms,
                fail_rate=config.fail_rate,
                ambiguous_rate=config.ambiguous_rate,
                seed=config.seed,
                rate_limit=config.rate_limit,
                fault_body=_drf_fault_body,
            ),
            Middleware(ScriptedFaultMiddleware, faults=faults),
        ],
        exception_handlers={
            DrfError: _drf_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.api = api
    app.state.faults = faults
    return app
