"""Akana session auth as an ``httpx.Auth`` (async flow): login, cookie + CSRF, renewal,
one re-login on 401 (single flight), logout.

How a request goes (see ``/work/shared/providers.md`` for the platform's rules):

1. Under one ``asyncio.Lock``: log in if there is no session (``POST /api/login``, JSON
   email and password); renew (``POST /api/login/renewToken``, form type, no body) when the
   last answer carried ``Atmo-Renew-Token: renew`` or the cookie expires within the margin.
   Renewal is done before the *next* request, not after the answer that asked for it:
   httpx hands the caller the last response its auth flow saw, so a renewal yielded after
   the answer would replace it.
2. The request gets the session cookie (``AtmoAuthToken_{fed}``) and, on writes, the CSRF
   cookie and header ``X-Csrf-Token_{fed}``, set at send time, never stored on the client.
3. On a 401, under the lock: if no other task has replaced the session this request used,
   log in again (exactly once for N concurrent 401s), then replay the request once.

A refused login (401/403, a pending task such as a password change, an answer without a
session cookie) is sticky: every later request raises the same error and no login is sent
again, so a wrong password is tried once per run, never in a loop (accounts lock). A login
answered 429/5xx is not sticky; it is raised as an ``httpx.ConnectError`` so that the
session's retry rules treat the request as never sent (it was not).

Secrets: the password, cookie values and CSRF tokens are registered for redaction while the
auth lives; and because httpcore logs response headers at DEBUG *before* this flow sees
them, a log filter also masks any ``AtmoAuthToken_*=`` / ``Csrf-Token_*=`` value by pattern.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Final

import httpx

from reconciler.errors import ReconcilerError
from reconciler.secrets import (
    MASK,
    MIN_SECRET_LENGTH,
    redact,
    register_secret,
    unregister_secret,
)

# The shared transport pieces (moving to a transport package).
from reconciler.transport.redact import LOGGER_NAMES, Secret, install_log_redaction

log = logging.getLogger("reconciler.providers.akana.auth")

SESSION_COOKIE_PREFIX: Final = "AtmoAuthToken_"
CSRF_COOKIE_PREFIX: Final = "Csrf-Token_"
CSRF_HEADER_PREFIX: Final = "X-Csrf-Token_"
RENEW_HEADER: Final = "atmo-renew-token"
LOGIN_PATH: Final = "/login"
RENEW_PATH: Final = "/login/renewToken"
ENDSESSION_PATH: Final = "/login/endsession"
LOGOUT_PATH: Final = "/login/logout"
DEFAULT_LIFETIME: Final = 30 * 60.0  # the platform's default when the cookie names none
DEFAULT_RENEW_MARGIN: Final = 60.0
MAX_SHOWN_BODY: Final = 300

_SESSION_VALUE_RE: Final = re.compile(
    r"((?:X-)?(?:AtmoAuthToken|Csrf-Token)_[^\s=;,'\"]*(?:=|['\"],\s*b?['\"]|:\s*))"
    r"[^\s;,'\"]+",
    re.IGNORECASE,
)


def mask_session_values(text: str) -> str:
    """``text`` with the value after any session cookie or CSRF name masked."""
    return _SESSION_VALUE_RE.sub(lambda m: m.group(1) + MASK, text)


class _SessionValueFilter(logging.Filter):
    """Masks session cookie and CSRF values in any record (rewrites, never drops)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's problem
            return True
        cleaned = mask_session_values(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER: Final = _SessionValueFilter()


def install_session_log_filter() -> None:
    """Attach the pattern filter to httpx/httpcore loggers and this module's (idempotent)."""
    install_log_redaction()
    for name in (*LOGGER_NAMES, log.name):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class AkanaLoginError(ReconcilerError):
    """The platform refused the login, or answered it without a session."""


class AkanaPendingTaskError(AkanaLoginError):
    """The login answered a pending task (change password, accept an agreement, ...)."""

    def __init__(self, email: str, task: str) -> None:
        self.task = task
        super().__init__(
            f"Akana login of {email} answered a pending task instead of a session: {task}."
            " Complete it in the Akana portal (log in there once), then run again"
        )


class LoginUnavailable(httpx.ConnectError):
    """The login got 429/5xx: the request it was made for was never sent."""


@dataclass(frozen=True)
class _Session:
    cookie_name: str
    cookie: Secret
    csrf_name: str | None  # cookie name; the header is "X-" + it
    csrf: Secret | None
    expires_at: float  # on the auth's clock
    lifetime: float
    generation: int


@dataclass(frozen=True)
class _SetCookie:
    value: str
    max_age: float | None  # seconds from now, from Max-Age or Expires


def _set_cookies(response: httpx.Response) -> dict[str, _SetCookie]:
    found: dict[str, _SetCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = header.split(";")
        name, _, value = first.partition("=")
        max_age: float | None = None
        for attribute in attributes:
            key, _, text = attribute.partition("=")
            key = key.strip().lower()
            try:
                if key == "max-age":
                    max_age = float(text.strip())
                elif key == "expires" and max_age is None:
                    when = email.utils.parsedate_to_datetime(text.strip())
                    max_age = when.timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
        found[name.strip()] = _SetCookie(value.strip().strip('"'), max_age)
    return found


def _excerpt(response: httpx.Response) -> str:
    # Every secret masked before the cut below (an echoed login body holds the password).
    text = redact(mask_session_values(response.text.strip()))
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= MAX_SHOWN_BODY else text[:MAX_SHOWN_BODY] + "...(truncated)"


class AkanaSessionAuth(httpx.Auth):
    """Session auth for one user of one platform (``root`` is ``{AKANA_BASE_URL}/api``).

    ``clock`` (monotonic seconds) decides proactive renewal; ``renew_margin``: renew when the
    cookie expires within this many seconds (at most a quarter of the session's lifetime).
    Async only: the sync flow raises.
    """

    def __init__(
        self,
        root: str,
        email: str,
        password: Secret,
        *,
        clock: Callable[[], float] = time.monotonic,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
    ) -> None:
        self._root = root.rstrip("/")
        self._email = email
        self._password = password
        self._clock = clock
        self._renew_margin = renew_margin
        self._lock = asyncio.Lock()
        self._session: _Session | None = None
        self._generation = 0
        self._renew_due = False
        self._failure: AkanaLoginError | None = None
        self._registered: list[str] = []
        self.logins = 0  # login requests sent (what tests and stats read)
        self.renewals = 0
        install_session_log_filter()
        self._register(password.reveal())

    def __repr__(self) -> str:
        return f"AkanaSessionAuth(email={self._email!r}, password={MASK})"

    @property
    def has_session(self) -> bool:
        return self._session is not None

    # --- secrets -----------------------------------------------------------------------

    def _register(self, value: str) -> None:
        # Too short to search for (see reconciler.secrets); such values are never logged.
        if len(value) >= MIN_SECRET_LENGTH:
            register_secret(value)
            self._registered.append(value)

    def close(self) -> None:
        """Forget the session and stop masking its values (call once the client is closed)."""
        self._session = None
        registered, self._registered = self._registered, []
        for value in registered:
            unregister_secret(value)

    # --- the flow ----------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("AkanaSessionAuth is async only (use httpx.AsyncClient)")
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._is_logout(request):
            # Never log in (or again) only to log out.
            if self._session is not None:
                self._apply(request, self._session)
            yield request
            self._session = None
            return
        async with self._lock:
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            if self._session is None:
                response = yield self._login_request(request)
                await response.aread()
                self._accept_login(response)
            elif self._renew_due or self._expiring(self._session):
                response = yield self._renew_request(request, self._session)
                await response.aread()
                if response.status_code == 401:  # already over: a fresh login instead
                    self._session = None
                    response = yield self._login_request(request)
                    await response.aread()
                    self._accept_login(response)
                else:
                    self._accept_renewal(response)
            used = self._session
            assert used is not None
        self._apply(request, used)
        response = yield request
        if response.status_code == 401:
            await response.aread()
            async with self._lock:
                if self._failure is not None:
                    raise self._failure.with_traceback(None)
                if self._session is None or self._session.generation == used.generation:
                    log.debug("401 on %s %s: logging in again", request.method, request.url.path)
                    self._session = None
                    login = yield self._login_request(request)
                    await login.aread()
                    self._accept_login(login)
                current = self._session
                assert current is not None
            self._apply(request, current)
            response = yield request
        if response.headers.get(RENEW_HEADER, "").strip().lower() == "renew":
            self._renew_due = True

    # --- requests ----------------------------------------------------------------------

    def _is_logout(self, request: httpx.Request) -> bool:
        path = request.url.path
        return path.endswith(("/api" + ENDSESSION_PATH, "/api" + LOGOUT_PATH))

    def _extensions(self, request: httpx.Request) -> dict[str, object]:
        # The original request's timeouts: an auth-built request gets no client defaults.
        timeout = request.extensions.get("timeout")
        return {"timeout": timeout} if timeout is not None else {}

    def _login_request(self, request: httpx.Request) -> httpx.Request:
        self.logins += 1
        body = json.dumps({"email": self._email, "password": self._password.reveal()})
        return httpx.Request(
            "POST",
            self._root + LOGIN_PATH,
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            extensions=self._extensions(request),
        )

    def _renew_request(self, request: httpx.Request, session: _Session) -> httpx.Request:
        self.renewals += 1
        renew = httpx.Request(
            "POST",
            self._root + RENEW_PATH,
            content=b"",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            extensions=self._extensions(request),
        )
        self._apply(renew, session)
        return renew

    def _apply(self, request: httpx.Request, session: _Session) -> None:
        kept = [
            pair.strip()
            for pair in request.headers.get("cookie", "").split(";")
            if pair.strip()
            and not pair.strip().startswith((SESSION_COOKIE_PREFIX, CSRF_COOKIE_PREFIX))
        ]
        kept.append(f"{session.cookie_name}={session.cookie.reveal()}")
        if session.csrf_name is not None and session.csrf is not None:
            kept.append(f"{session.csrf_name}={session.csrf.reveal()}")
            if request.method != "GET":
                request.headers["X-" + session.csrf_name] = session.csrf.reveal()
        request.headers["Cookie"] = "; ".join(kept)

    # --- answers -----------------------------------------------------------------------

    def _expiring(self, session: _Session) -> bool:
        margin = min(self._renew_margin, session.lifetime / 4)
        return self._clock() >= session.expires_at - margin

    def _fail(self, error: AkanaLoginError) -> AkanaLoginError:
        self._failure = error
        return error

    def _accept_login(self, response: httpx.Response) -> None:
        status = response.status_code
        where = f"POST {response.request.url.path}"
        if status == 429 or status >= 500:
            raise LoginUnavailable(
                f"the Akana login answered HTTP {status}", request=response.request
            )
        cookies = _set_cookies(response)
        session_name = next((n for n in cookies if n.startswith(SESSION_COOKIE_PREFIX)), None)
        if status == 200 and session_name is not None:
            self._take_session(cookies, session_name, keep=None)
            log.debug("logged in to Akana as %s", self._email)
            return
        if status in (401, 403):
            raise self._fail(
                AkanaLoginError(
                    f"{where} -> HTTP {status}: the Akana login was refused ({_excerpt(response)});"
                    " check AKANA_EMAIL and AKANA_PASSWORD. Not retried: repeated failed logins"
                    " can lock the account"
                )
            )
        if status == 200:
            task = _pending_task(response)
            if task is not None:
                raise self._fail(AkanaPendingTaskError(self._email, task))
            raise self._fail(
                AkanaLoginError(
                    f"{where} -> HTTP 200 without a session cookie ({SESSION_COOKIE_PREFIX}...):"
                    f" {_excerpt(response) or 'no body'}"
                )
            )
        hint = " (check AKANA_BASE_URL: the platform root, without /api)" if status == 404 else ""
        raise self._fail(
            AkanaLoginError(f"{where} -> HTTP {status}{hint}: {_excerpt(response) or 'no body'}")
        )

    def _accept_renewal(self, response: httpx.Response) -> None:
        session = self._session
        assert session is not None
        self._renew_due = False
        if response.status_code != 200:
            # Not fatal: the session may still be valid; a 401 later logs in again.
            log.debug("Akana token renewal answered HTTP %d", response.status_code)
            return
        cookies = _set_cookies(response)
        name = session.cookie_name if session.cookie_name in cookies else None
        if name is None:
            return
        self._take_session(cookies, name, keep=session)
        log.debug("renewed the Akana session")

    def _take_session(
        self, cookies: dict[str, _SetCookie], name: str, *, keep: _Session | None
    ) -> None:
        cookie = cookies[name]
        csrf_name = next((n for n in cookies if n.startswith(CSRF_COOKIE_PREFIX)), None)
        csrf: Secret | None = None
        if csrf_name is not None:
            csrf = Secret(cookies[csrf_name].value)
            self._register(cookies[csrf_name].value)
        elif keep is not None:  # a renewal keeps the session's CSRF token
            csrf_name, csrf = keep.csrf_name, keep.csrf
        self._register(cookie.value)
        lifetime = cookie.max_age if cookie.max_age and cookie.max_age > 0 else DEFAULT_LIFETIME
        self._generation += 1
        self._renew_due = False
        self._session = _Session(
            cookie_name=name,
            cookie=Secret(cookie.value),
            csrf_name=csrf_name,
            csrf=csrf,
            expires_at=self._clock() + lifetime,
            lifetime=lifetime,
            generation=self._generation,
        )


def _pending_task(response: httpx.Response) -> str | None:
    """The task named by a login answer (the body shape is not documented: lenient)."""
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("PendingTask", "pendingTask", "PendingTasks", "pendingTasks"):
        task = data.get(key)
        if isinstance(task, list):
            task = ", ".join(str(t) for t in task[:5])
        if isinstance(task, str) and task.strip():
            shown = "".join(c if c.isprintable() else "?" for c in task.strip())
            return shown[:100]
    return None
