"""The Akana sandbox as a Starlette app: login and session cookies, CSRF, vendor media types,
apps and app versions.

Rules (from the public docs, see ``/work/shared/providers.md``; choices marked *decided*):

* ``POST /api/login`` (JSON ``{"email", "password"}``) sets ``AtmoAuthToken_{fed}`` (with
  ``Max-Age``) and, CSRF on, ``Csrf-Token_{fed}``. A user with a pending task gets 200 and
  ``{"LoginStatus": "PendingTask", "PendingTask": "<task>"}`` and no cookie (*decided*).
* Every other operation needs the session cookie (401 without it, or when it expired). Writes
  (every verb but GET) also need header ``X-Csrf-Token_{fed}`` equal to the CSRF cookie and to
  the session's token (401 otherwise). Login itself is exempt.
* ``POST /api/login/renewToken`` (form content type, no body) issues a new session cookie; the
  old one stops working (*decided*, so that a client that ignores the new cookie is caught).
* JSON answers are ``application/vnd.soa.v83+json`` and need that exact Accept (404 otherwise,
  as the docs say for a wrong Accept); creates answer ``text/plain`` ids and need an Accept
  that allows it. A wrong request media type or verb is 404 too.
* Creates and updates of apps and versions answer ``Atmo-Renew-Token: renew``.
"""

from __future__ import annotations

import hmac
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.providers.akana.sandbox import validation as v
from reconciler.providers.akana.sandbox.config import AkanaSandboxConfig
from reconciler.providers.akana.sandbox.errors import (
    AkanaError,
    bad_request,
    not_found,
    unauthorized,
)
from reconciler.providers.akana.sandbox.store import (
    APP_STATE_ACTIVE,
    VERSION_STATE_ACTIVE,
    AkanaSandboxStore,
    Session,
    new_id,
)

# The fault injection of the Mini App Center sandbox, reused as is: it acts in front of the
# server like a gateway (its 502/503/429 bodies are a gateway's, not Akana's).
from reconciler.sandbox_kit.faults import DroppedConnection, FaultInjectionMiddleware

logger = logging.getLogger(__name__)

VND_JSON: Final = "application/vnd.soa.v83+json"
# The request media types the docs list for POST /api/apps (and used for every JSON write).
JSON_BODY_TYPES: Final = frozenset(
    {
        "application/json",
        "application/vnd.soa.v71+json",
        "application/vnd.soa.v72+json",
        "application/vnd.soa.v80+json",
        "application/vnd.soa.v81+json",
    }
)
FORM: Final = "application/x-www-form-urlencoded"
RENEW_HEADER: Final = {"Atmo-Renew-Token": "renew"}

Handler = Callable[[Request], Awaitable[Response]]


def _media_types(header: str) -> set[str]:
    return {part.split(";", 1)[0].strip().lower() for part in header.split(",") if part.strip()}


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _require_accept(request: Request, *allowed: str) -> None:
    if not _media_types(request.headers.get("accept", "")) & set(allowed):
        raise not_found(f"no representation for Accept {request.headers.get('accept', '')[:80]!r}")


def _require_json_body(request: Request) -> None:
    if _content_type(request) not in JSON_BODY_TYPES:
        raise not_found(f"unsupported media type {_content_type(request)[:80]!r}")


class Sandbox:
    """The handlers, with the config and store they share."""

    def __init__(self, config: AkanaSandboxConfig, store: AkanaSandboxStore) -> None:
        self.config = config
        self.store = store
        fed = config.fedmember
        self.session_cookie = f"AtmoAuthToken_{fed}"
        self.csrf_cookie = f"Csrf-Token_{fed}"
        self.csrf_header = f"X-Csrf-Token_{fed}"

    # --- helpers -----------------------------------------------------------------------

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.config.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _token(self, expires_at: float) -> str:
        # Shaped like the platform's cookie values (URL-encoded "TokenID=...,expirationTime=").
        return f"TokenID%3D{uuid.uuid4()}%2CexpirationTime%3D{int(expires_at * 1000)}"

    def _session(self, request: Request) -> Session:
        token = request.cookies.get(self.session_cookie)
        if not token:
            raise unauthorized(f"login required: no {self.session_cookie} cookie")
        session = self.store.session(token)
        if session is None or session.expires_at <= self.config.clock():
            raise unauthorized("the session is unknown or has expired: log in again")
        if request.method != "GET" and self.config.csrf:
            header = request.headers.get(self.csrf_header, "")
            cookie = request.cookies.get(self.csrf_cookie, "")
            if not header or not cookie:
                raise unauthorized(f"missing CSRF header {self.csrf_header} or its cookie")
            if not (
                hmac.compare_digest(header, cookie) and hmac.compare_digest(header, session.csrf)
            ):
                raise unauthorized("stale or invalid CSRF token")
        return session

    def _set_session_cookies(self, response: Response, session: Session, *, csrf: bool) -> None:
        max_age = max(1, math.ceil(session.expires_at - self.config.clock()))
        response.set_cookie(
            self.session_cookie, session.token, max_age=max_age, path="/", httponly=True
        )
        if csrf and self.config.csrf:
            response.set_cookie(self.csrf_cookie, session.csrf, max_age=max_age, path="/")

    def _json(self, data: Any, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(data, media_type=VND_JSON, headers=headers)

    def _app_json(self, request: Request, row: dict[str, Any], *, full: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "AppID": row["id"],
            "Name": row["name"],
            "Description": row["description"],
            "Created": row["created"],
            "Updated": row["updated"],
            "State": row["state"],
            "Visibility": row["visibility"],
            "AvatarURL": str(request.base_url).rstrip("/") + f"/api/apps/avatar/{row['id']}",
        }
        if full:  # GET /api/apps/{AppID}: the list's fields and what the create body set
            data.update(
                Summary=row["summary"], PictureID=row["picture_id"], BusinessID=row["business_id"]
            )
        return data

    @staticmethod
    def _version_json(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "AppVersionID": row["id"],
            "AppID": row["app_id"],
            "Name": row["name"],
            "Description": row["description"],
            "Tag": row["tags"],
            "Visibility": row["visibility"],
            "WebsiteAddress": row["website"],
            "Environment": row["environment"],
            "State": row["state"],
            "Created": row["created"],
            "Updated": row["updated"],
        }

    def _new_version(self, app_id: str, body: dict[str, Any], where: str) -> dict[str, Any]:
        v.check(body, v.VERSION_CREATE, where)
        v.check_no_identity(body, where)
        now = self._now_iso()
        return {
            "id": new_id(self.config.fedmember),
            "app_id": app_id,
            "name": body["Name"],
            "description": body.get("Description") or "",
            "tags": body.get("Tag") or [],
            "visibility": body.get("Visibility") or "Public",
            "website": body.get("WebsiteAddress") or "",
            "environment": body.get("InitialEnvironment") or "Sandbox",
            "state": VERSION_STATE_ACTIVE,
            "created": now,
            "updated": now,
        }

    # --- login -------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        self.store.bump("login")
        if _content_type(request) not in JSON_BODY_TYPES:
            raise not_found(f"unsupported media type {_content_type(request)[:80]!r}")
        body = v.parse_json_object(await request.body())
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not isinstance(password, str):
            raise bad_request("email and password (strings) are required")
        known = self.config.users.get(email)
        if known is None or not hmac.compare_digest(known.encode(), password.encode()):
            raise unauthorized("invalid email or password")
        task = self.config.pending_tasks.get(email)
        if task:
            return JSONResponse(
                {"LoginStatus": "PendingTask", "PendingTask": task, "UserName": email}
            )
        expires_at = self.config.clock() + self.config.session_seconds
        session = Session(self._token(expires_at), self._token(expires_at), email, expires_at)
        self.store.open_session(session)
        response = JSONResponse(
            {"LoginStatus": "Success", "UserName": email, "FedMemberID": self.config.fedmember}
        )
        self._set_session_cookies(response, session, csrf=True)
        return response

    async def renew(self, request: Request) -> Response:
        self.store.bump("renew")
        if _content_type(request) != FORM:
            raise not_found(f"unsupported media type {_content_type(request)[:80]!r}")
        if await request.body():
            raise bad_request("renewToken takes no body")
        session = self._session(request)
        expires_at = self.config.clock() + self.config.session_seconds
        renewed = Session(self._token(expires_at), session.csrf, session.email, expires_at)
        self.store.replace_session(session.token, renewed)
        response = Response(status_code=200)
        self._set_session_cookies(response, renewed, csrf=False)
        return response

    async def end_session(self, request: Request) -> Response:
        self.store.bump("logout")
        session = self._session(request)
        self.store.end_session(session.token)
        response = Response(status_code=200)
        response.delete_cookie(self.session_cookie, path="/")
        response.delete_cookie(self.csrf_cookie, path="/")
        return response

    # --- apps --------------------------------------------------------------------------

    async def list_apps(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, VND_JSON)
        business_id = request.query_params.get("BusinessID", "")
        rows = self.store.list_apps(business_id)
        return self._json({"Application": [self._app_json(request, r, full=False) for r in rows]})

    async def create_app(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, "text/plain", "text/*", "*/*")
        _require_json_body(request)
        body = v.check(v.parse_json_object(await request.body()), v.APP_CREATE, "Application")
        app_id = new_id(self.config.fedmember)
        version = self._new_version(app_id, body["ApplicationVersion"], "ApplicationVersion")
        now = self._now_iso()
        self.store.create_app(
            {
                "id": app_id,
                "business_id": body.get("BusinessID") or "",
                "name": body["Name"],
                "summary": body.get("Summary") or "",
                "description": body.get("Description") or "",
                "picture_id": body.get("PictureID") or "",
                # The create body has no app-level Visibility: the first version's is shown.
                "visibility": version["visibility"],
                "state": APP_STATE_ACTIVE,
                "created": now,
                "updated": now,
            },
            version,
        )
        return PlainTextResponse(app_id, headers=RENEW_HEADER)

    async def get_app(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, VND_JSON)
        row = self.store.app(request.path_params["app_id"])
        return self._json(self._app_json(request, row, full=True))

    async def update_app(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, VND_JSON)
        _require_json_body(request)
        body = v.check(v.parse_json_object(await request.body()), v.APP_UPDATE, "Application")
        changes: dict[str, Any] = {"name": body["Name"], "updated": self._now_iso()}
        for field, column in (
            ("Summary", "summary"),
            ("Description", "description"),
            ("PictureID", "picture_id"),
        ):
            if field in body and body[field] is not None:
                changes[column] = body[field]
        row = self.store.update_app(request.path_params["app_id"], changes)
        return self._json(self._app_json(request, row, full=True), headers=RENEW_HEADER)

    async def delete_app(self, request: Request) -> Response:
        self._session(request)
        if len(request.query_params.get("Comment", "")) > v.MAX_TEXT:
            raise bad_request("Comment is too long")
        self.store.delete_app(request.path_params["app_id"])
        return Response(status_code=200)

    # --- versions ----------------------------------------------------------------------

    async def list_versions(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, VND_JSON)
        rows = self.store.versions(request.path_params["app_id"])
        return self._json({"ApplicationVersion": [self._version_json(r) for r in rows]})

    async def add_version(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, "text/plain", "text/*", "*/*")
        _require_json_body(request)
        app_id = request.path_params["app_id"]
        version = self._new_version(
            app_id, v.parse_json_object(await request.body()), "ApplicationVersion"
        )
        self.store.add_version(version)
        return PlainTextResponse(version["id"], headers=RENEW_HEADER)

    async def get_version(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, VND_JSON)
        return self._json(self._version_json(self.store.version(request.path_params["vid"])))

    async def update_version(self, request: Request) -> Response:
        self._session(request)
        _require_accept(request, VND_JSON)
        _require_json_body(request)
        body = v.check(
            v.parse_json_object(await request.body()), v.VERSION_UPDATE, "ApplicationVersion"
        )
        changes: dict[str, Any] = {"name": body["Name"], "updated": self._now_iso()}
        for field, column in (
            ("Description", "description"),
            ("Tag", "tags"),
            ("Visibility", "visibility"),
            ("WebsiteAddress", "website"),
        ):
            if body.get(field) is not None:
                changes[column] = body[field]
        row = self.store.update_version(request.path_params["vid"], changes)
        return self._json(self._version_json(row), headers=RENEW_HEADER)

    async def delete_version(self, request: Request) -> Response:
        self._session(request)
        self.store.delete_version(request.path_params["vid"])
        return Response(status_code=200)

    def routes(self) -> list[Route]:
        return [
            Route("/api/login", self.login, methods=["POST"]),
            Route("/api/login/renewToken", self.renew, methods=["POST"]),
            Route("/api/login/endsession", self.end_session, methods=["GET"]),
            Route("/api/login/logout", self.end_session, methods=["POST"]),
            Route("/api/apps", self.list_apps, methods=["GET"]),
            Route("/api/apps", self.create_app, methods=["POST"]),
            Route("/api/apps/versions/{vid}", self.get_version, methods=["GET"]),
            Route("/api/apps/versions/{vid}", self.update_version, methods=["PUT"]),
            Route("/api/apps/versions/{vid}", self.delete_version, methods=["DELETE"]),
            Route("/api/apps/{app_id}", self.get_app, methods=["GET"]),
            Route("/api/apps/{app_id}", self.update_app, methods=["PUT"]),
            Route("/api/apps/{app_id}", self.delete_app, methods=["DELETE"]),
            Route("/api/apps/{app_id}/versions", self.list_versions, methods=["GET"]),
            Route("/api/apps/{app_id}/versions", self.add_version, methods=["POST"]),
        ]


async def _akana_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AkanaError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    # The docs: a wrong verb is 404 too (not 405).
    assert isinstance(exc, HTTPException)
    status = 404 if exc.status_code == 405 else exc.status_code
    return JSONResponse({"code": status, "message": "resource not found"}, status_code=status)


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, DroppedConnection):
        return Response(status_code=500)  # injected; the response has started, never sent
    logger.error("akana sandbox error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"code": 500, "message": "internal server error"}, status_code=500)


class _Faults:
    """The fault injection, optionally sparing the login operations."""

    def __init__(self, app: ASGIApp, /, *, faults_on_login: bool, **faults: Any) -> None:
        self._plain = app
        self._faulty = FaultInjectionMiddleware(app, **faults)
        self._faults_on_login = faults_on_login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spared = scope["type"] == "http" and str(scope["path"]).startswith("/api/login")
        if spared and not self._faults_on_login:
            await self._plain(scope, receive, send)
        else:
            await self._faulty(scope, receive, send)


def create_akana_app(config: AkanaSandboxConfig) -> Starlette:
    """The Akana sandbox as an ASGI app; its store is ``app.state.store``."""
    store = AkanaSandboxStore(
        config.db_path,
        unique_app_names=config.unique_app_names,
        unique_version_names=config.unique_version_names,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    app = Starlette(
        routes=Sandbox(config, store).routes(),
        middleware=[
            Middleware(
                _Faults,
                faults_on_login=config.faults_on_login,
                latency_ms=config.latency_ms,
                fail_rate=config.fail_rate,
                ambiguous_rate=config.ambiguous_rate,
                seed=config.seed,
                rate_limit=config.rate_limit,
            )
        ],
        exception_handlers={
            AkanaError: _akana_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.config = config
    return app
