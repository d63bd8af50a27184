"""``AkanaClient``: one typed method per Akana apps operation. Only this module builds URLs.

Transport (retries, pacing, lanes, bounded bodies, redaction) is the shared ``ApiSession``;
auth is the shared session engine (:mod:`reconciler.transport.session_auth`) with Akana's
scheme (:mod:`reconciler.providers.akana.auth`).

Creates are not idempotent and ids are server-assigned: when a create's answer is lost
(timeout, dropped connection, 5xx after sending), the client lists and matches the app's
``Name`` (an app) or the version's ``Name`` within its app: one match is the created
resource; none means it was not created (:class:`WriteNotDoneError`: running again is safe).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Self, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ValidationError

from reconciler.errors import (
    AmbiguousWriteError,
    ApiError,
    ApiErrorItem,
    InvalidIdError,
    ReconcilerError,
)
from reconciler.providers.akana.auth import (
    AkanaAuthScheme,
    AkanaCredential,
    akana_session_auth,
    mask_session_values,
)
from reconciler.providers.akana.config import AkanaConfig
from reconciler.providers.akana.wire import (
    AppCreate,
    AppDetail,
    AppList,
    AppSummary,
    AppUpdate,
    AppVersion,
    VersionCreate,
    VersionList,
    VersionUpdate,
)
from reconciler.secrets import bounded

# The shared transport pieces (moving to a transport package).
from reconciler.transport.config import ClientLimits
from reconciler.transport.http import ApiSession, ClientStats, RetryPolicy
from reconciler.transport.session_auth import SessionAuth, current_carrier

log = logging.getLogger("reconciler.providers.akana.client")

# Every JSON answer is asked for in this explicit version: the platform answers 404 to an
# Accept it does not serve, so a default "*/*" or "application/json" is never relied on.
VND_JSON: Final = "application/vnd.soa.v83+json"
JSON_BODY: Final = "application/json"
TEXT: Final = "text/plain"  # creates answer the new id as plain text
MAX_ERROR_SHOWN: Final = 500
# Server-assigned ids look like "7b9f3d33-f6df-4255-a729-d42320bee5f9.acmepaymentscorp".
_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,254}$")

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


class AkanaApiError(ApiError):
    """A non-2xx answer from the Akana platform, with a hint for its status."""

    def __str__(self) -> str:
        message = f"{self.method} {self.path} -> HTTP {self.status}: {self.detail}"
        if self.status == 401:
            message += (
                " (refused after one fresh login: check AKANA_EMAIL / AKANA_PASSWORD, and"
                " the platform's CSRF settings)"
            )
        elif self.status == 403:
            message += " (the user lacks the role this needs, e.g. Business Admin to list apps)"
        elif self.status == 404:
            message += (
                " (not found; the platform also answers 404 for a wrong Accept or media type"
                " or verb, so check AKANA_BASE_URL too)"
            )
        return message


class WriteNotDoneError(ReconcilerError):
    """A create whose answer was lost, proven not done by re-reading: safe to run again."""


def _error_items(content: bytes) -> list[ApiErrorItem]:
    """Every answer is the platform's own (its error body is not documented): show the
    ``message`` of a JSON object when there is one, else a bounded excerpt of the text."""
    text = content.decode("utf-8", "replace")
    message: str | None = None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        for key in ("message", "Message", "faultstring", "FaultMessage", "detail", "error"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                message = value
                break
    shown = (message if message is not None else text).strip() or "(no error body)"
    shown = "".join(c if c.isprintable() or c == "\n" else "?" for c in shown)
    return [ApiErrorItem(code=None, message=bounded(mask_session_values(shown), MAX_ERROR_SHOWN))]


def _seg(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or ".." in value:
        raise InvalidIdError(
            f"invalid Akana {what} {bounded(repr(value), 80)}: expected letters, digits,"
            " '.', '_', '~' and '-' (like 7b9f3d33-...acmepaymentscorp)"
        )
    return quote(value, safe="")


def _shown(path: str) -> str:
    """A path as errors show it: with the /api prefix, without the query string."""
    return "/api" + path.split("?", 1)[0]


def _app(app_id: object) -> str:
    return "/apps/" + _seg(app_id, "AppID")


def _version(version_id: object) -> str:
    return "/apps/versions/" + _seg(version_id, "AppVersionID")


class AkanaClient:
    """Async client for Akana apps and app versions.

    ``async with AkanaClient(config) as client: ...``; closing logs out
    (``GET /api/login/endsession``) when a session is open.
    """

    def __init__(
        self,
        config: AkanaConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
        limits: ClientLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        session_auth: SessionAuth[AkanaCredential] | None = None,
    ) -> None:
        """``session_auth``: an engine (and its session) to carry on with, instead of a new
        one that logs in."""
        self.config = config
        self._timeout, self._retry, self._limits = timeout, retry, limits
        # One login per run: a run's plan and writes (two event loops) share the session
        # when the run carries it (reconciler.transport.session_auth.carried_sessions). Only
        # on the real network: an injected transport (a sandbox, a test) lives in one loop.
        carrier = current_carrier() if transport is None else None
        self._carry_key = f"akana {config.endpoint.base_url} {config.email}"
        self.auth: SessionAuth[AkanaCredential]
        taken = (carrier.take(self._carry_key) if carrier is not None else None) or session_auth
        if taken is not None:
            self.auth = taken
            scheme = taken.scheme
            assert isinstance(scheme, AkanaAuthScheme)
        else:
            self.auth, scheme = akana_session_auth(config.email, config.password, clock=clock)
        self._carried = carrier is not None
        try:
            self._session = ApiSession(
                config.endpoint,
                None,
                session_auth=self.auth,
                headers={"Accept": VND_JSON},
                error_items=_error_items,
                transport=transport,
                timeout=timeout,
                retry=retry,
                max_connections=max_connections,
                limits=limits,
            )
            scheme.call = self._session.call
        except BaseException:
            self.auth.close()
            raise

    @property
    def stats(self) -> ClientStats:
        return self._session.stats

    def __repr__(self) -> str:
        shown = self.config.endpoint.display
        return f"AkanaClient(endpoint={shown!r}, email={self.config.email!r})"

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
        """Log out (best effort: a failed logout only lets the session expire), then close;
        or, between the phases of a run that carries its session, keep it for the next."""
        carrier = current_carrier() if self._carried else None
        if carrier is not None and not carrier.final and self.auth.has_credential:
            carrier.park(self._carry_key, self.auth, self._late_logout)
            await self._session.aclose()
            return
        try:
            await self.auth.logout()  # sends nothing without a session
        finally:
            try:
                await self._session.aclose()
            finally:
                self.auth.close()

    async def _late_logout(self) -> None:
        # A client of its own (this one's connections belonged to a closed event loop).
        late = AkanaClient(
            self.config,
            timeout=self._timeout,
            retry=self._retry,
            limits=self._limits,
            session_auth=self.auth,
        )
        await late.aclose()

    # --- plumbing --------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        body: BaseModel | None = None,
        accept: str = VND_JSON,
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        headers = {"Accept": accept}
        content: bytes | None = None
        if body is not None:
            content = body.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")
            headers["Content-Type"] = JSON_BODY
        try:
            return await self._session.call(
                method,
                path,
                idempotent=idempotent,
                content=content,
                headers=headers,
                missing_ok=missing_ok,
            )
        except AkanaApiError:
            raise
        except ApiError as exc:
            raise AkanaApiError(exc.method, exc.path, exc.status, exc.errors, exc.text) from None

    async def _read(self, path: str, model: type[_M], *, missing_ok: bool = False) -> _M | None:
        response = await self._call("GET", path, idempotent=True, missing_ok=missing_ok)
        if response is None:
            return None
        return self._parse(response, model, "GET", path)

    @staticmethod
    def _parse(response: httpx.Response, model: type[_M], method: str, path: str) -> _M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            # Not the exception itself: it quotes the body.
            raise AkanaApiError(
                method,
                _shown(path),
                response.status_code,
                text=f"unexpected answer ({exc.error_count()} problems reading it as"
                f" {model.__name__})",
            ) from None

    @staticmethod
    def _new_id(response: httpx.Response, method: str, path: str) -> str:
        """The ``text/plain`` id a create answers; an unreadable one is an unknown outcome."""
        text = response.content.decode("utf-8", "replace").strip()
        if not _ID_RE.fullmatch(text) or ".." in text:
            raise AmbiguousWriteError(
                method, _shown(path), f"the answer is not an id: {bounded(repr(text), 80)}"
            )
        return text

    # --- apps ------------------------------------------------------------------------

    async def list_apps(self, business_id: str | None = None) -> list[AppSummary]:
        """``GET /api/apps[?BusinessID=]``: the root level's apps, or one organization's."""
        path = "/apps"
        if business_id:
            path += "?" + urlencode({"BusinessID": business_id})
        listing = await self._read(path, AppList)
        assert listing is not None
        return listing.applications

    async def get_app(self, app_id: str) -> AppDetail | None:
        """``GET /api/apps/{AppID}``; None when the platform answers 404."""
        return await self._read(_app(app_id), AppDetail, missing_ok=True)

    async def create_app(self, app: AppCreate) -> str:
        """``POST /api/apps`` (the app and its first version); the new AppID.

        A lost answer is resolved by listing (``app.business_id``'s level) and matching Name.
        """
        try:
            response = await self._call("POST", "/apps", idempotent=False, body=app, accept=TEXT)
            assert response is not None
            return self._new_id(response, "POST", "/apps")
        except AmbiguousWriteError as lost:
            apps = await self._resolve(lost, self.list_apps(app.business_id))
            return self._one_match(
                lost, [a.app_id for a in apps if a.name == app.name], f"app named {app.name!r}"
            )

    async def update_app(self, app_id: str, app: AppUpdate) -> AppDetail:
        """``PUT /api/apps/{AppID}``; the app as the platform now has it."""
        path = _app(app_id)
        response = await self._call("PUT", path, idempotent=True, body=app)
        assert response is not None
        return self._parse(response, AppDetail, "PUT", path)

    async def delete_app(self, app_id: str, comment: str | None = None) -> None:
        """``DELETE /api/apps/{AppID}[?Comment=]``: the app and all its versions."""
        path = _app(app_id)
        if comment:
            path += "?" + urlencode({"Comment": comment})
        await self._call("DELETE", path, idempotent=True)

    # --- versions --------------------------------------------------------------------

    async def list_versions(self, app_id: str) -> list[AppVersion]:
        listing = await self._read(_app(app_id) + "/versions", VersionList)
        assert listing is not None
        return listing.versions

    async def get_version(self, version_id: str) -> AppVersion | None:
        return await self._read(_version(version_id), AppVersion, missing_ok=True)

    async def add_version(self, app_id: str, version: VersionCreate) -> str:
        """``POST /api/apps/{AppID}/versions``; the new AppVersionID (a lost answer is
        resolved by listing the app's versions and matching Name)."""
        path = _app(app_id) + "/versions"
        try:
            response = await self._call("POST", path, idempotent=False, body=version, accept=TEXT)
            assert response is not None
            return self._new_id(response, "POST", path)
        except AmbiguousWriteError as lost:
            versions = await self._resolve(lost, self.list_versions(app_id))
            return self._one_match(
                lost,
                [v.version_id for v in versions if v.name == version.name],
                f"version named {version.name!r}",
            )

    async def update_version(self, version_id: str, version: VersionUpdate) -> AppVersion:
        path = _version(version_id)
        response = await self._call("PUT", path, idempotent=True, body=version)
        assert response is not None
        return self._parse(response, AppVersion, "PUT", path)

    async def delete_version(self, version_id: str) -> None:
        """``DELETE /api/apps/versions/{AppVersionID}``. Deleting an app's only version
        deletes the app (the platform's rule): add the new version first."""
        await self._call("DELETE", _version(version_id), idempotent=True)

    # --- lost answers ----------------------------------------------------------------

    @staticmethod
    async def _resolve(lost: AmbiguousWriteError, listing: Awaitable[list[_T]]) -> list[_T]:
        log.debug(
            "%s %s: answer lost (%s); re-reading to find out", lost.method, lost.path, lost.reason
        )
        try:
            return await listing
        except ReconcilerError as exc:
            raise AmbiguousWriteError(
                lost.method, lost.path, f"{lost.reason}; re-reading to check failed too: {exc}"
            ) from None

    @staticmethod
    def _one_match(lost: AmbiguousWriteError, ids: list[str], what: str) -> str:
        if len(ids) == 1:
            log.debug("%s %s: found the %s it created", lost.method, lost.path, what)
            return ids[0]
        if not ids:
            raise WriteNotDoneError(
                f"{lost.method} {lost.path}: the answer was lost ({lost.reason}) and no {what}"
                " exists, so it was not created; running again is safe"
            )
        raise AmbiguousWriteError(
            lost.method, lost.path, f"{lost.reason}; {len(ids)} of {what} exist, not one"
        )
