"""Akana's session auth: the wire specifics the shared engine
(:mod:`reconciler.transport.session_auth`) needs, and nothing else.

* Login: ``POST /api/login`` with JSON email and password; the session is the cookie
  ``AtmoAuthToken_{fed}`` (lifetime from ``Max-Age``/``Expires``, else 30 minutes) and, with
  CSRF prevention on, the cookie ``Csrf-Token_{fed}``. A 401/403, a pending task (change
  password, accept an agreement) or a 200 without a session cookie is a refused login: sticky,
  never sent again (accounts lock).
* Each request gets the session cookie and, on writes, the CSRF cookie and header
  ``X-Csrf-Token_{fed}``, set at send time from :class:`Secret` values.
* Renewal: ``POST /api/login/renewToken`` (form type, no body) with the current session; a
  renewal the platform refuses means logging in again. A 401 on any request means the session
  is unknown or over (expired, or killed by a renewal): the engine logs in once and replays.
* ``Atmo-Renew-Token: renew`` (creates and updates answer it) asks for a renewal: the engine
  does it when no request is in flight, else the next due renewal serves it.
* Logout: ``GET /api/login/endsession``, never logging in only to log out.

All of these go through the client's ``ApiSession.call`` (deadline, bounded body, retries of
429/5xx, redaction). Secrets: the engine registers the password, cookie values and CSRF
tokens; and because httpcore logs response headers at DEBUG before anything reads the
``Set-Cookie`` that carries a new value, a log filter also masks any ``AtmoAuthToken_*=`` /
``Csrf-Token_*=`` value by pattern.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import httpx

from reconciler.secrets import (
    MASK,
    redact,
)

# The shared transport pieces (moving to a transport package).
from reconciler.transport.redact import LOGGER_NAMES, Secret, install_log_redaction
from reconciler.transport.session_auth import LoginRefused, SessionAuth

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
MAX_AUTH_BODY: Final = 64 * 1024  # a login or renewal answer is a few hundred bytes
MAX_SET_COOKIES: Final = 32

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


class AkanaLoginError(LoginRefused):
    """The platform refused the login, or answered it without a session."""


class AkanaPendingTaskError(AkanaLoginError):
    """The login answered a pending task (change password, accept an agreement, ...)."""

    def __init__(self, email: str, task: str) -> None:
        self.task = task
        super().__init__(
            f"Akana login of {email} answered a pending task instead of a session: {task}."
            " Complete it in the Akana portal (log in there once), then run again"
        )


@dataclass(frozen=True)
class AkanaCredential:
    """One session: its cookie and CSRF token (names and values), and its lifetime."""

    cookie_name: str
    cookie: Secret
    csrf_name: str | None  # cookie name; the header is "X-" + it
    csrf: Secret | None
    lifetime: float

    def secrets(self) -> list[str]:
        return [s.reveal() for s in (self.cookie, self.csrf) if s is not None]


@dataclass(frozen=True)
class _SetCookie:
    value: str
    max_age: float | None  # seconds from now, from Max-Age or Expires


def _set_cookies(response: httpx.Response) -> dict[str, _SetCookie]:
    found: dict[str, _SetCookie] = {}
    for header in response.headers.get_list("set-cookie")[:MAX_SET_COOKIES]:
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


AuthCall = Callable[..., Awaitable[httpx.Response | None]]
# Answers a login, renewal or logout hands back to the scheme instead of raising (a 429 and
# 5xx are retried by the transport first, then raised: not a refusal, never sticky).
_ANSWERED: Final = frozenset(range(300, 500)) - {429}


class AkanaAuthScheme:
    """Akana's wire specifics for :class:`~reconciler.transport.session_auth.SessionAuth`.

    ``call`` is the client's ``ApiSession.call`` (paths under ``{AKANA_BASE_URL}/api``): the
    login, renewal and logout go through the same deadline, body cap and redaction as any
    request.
    """

    refusal_needs_login = True  # a 401 means the session is unknown or over: renewing fails

    def __init__(self, email: str, password: Secret, call: AuthCall | None = None) -> None:
        self._email = email
        self._password = password
        self.call = call

    def __repr__(self) -> str:
        return f"AkanaAuthScheme(email={self._email!r}, password={MASK})"

    def fixed_secrets(self) -> list[str]:
        return [self._password.reveal()]

    async def _send(
        self, method: str, path: str, *, content: bytes = b"", headers: dict[str, str]
    ) -> httpx.Response:
        if self.call is None:
            raise RuntimeError("AkanaAuthScheme.call is not bound to a client")
        response = await self.call(
            method,
            path,
            idempotent=True,  # a login or renewal sent twice leaves one usable session
            content=content,
            headers=headers,
            authenticate=False,
            max_bytes=MAX_AUTH_BODY,
            answer=_ANSWERED,
        )
        assert response is not None
        return response

    async def login(self) -> AkanaCredential:
        body = json.dumps({"email": self._email, "password": self._password.reveal()})
        response = await self._send(
            "POST",
            LOGIN_PATH,
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        status = response.status_code
        where = f"POST /api{LOGIN_PATH}"
        cookies = _set_cookies(response)
        session_name = next((n for n in cookies if n.startswith(SESSION_COOKIE_PREFIX)), None)
        if status == 200 and session_name is not None:
            log.debug("logged in to Akana as %s", self._email)
            return _credential(cookies, session_name, keep=None)
        if status in (401, 403):
            raise AkanaLoginError(
                f"{where} -> HTTP {status}: the Akana login was refused ({_excerpt(response)});"
                " check AKANA_EMAIL and AKANA_PASSWORD. Not retried: repeated failed logins"
                " can lock the account"
            )
        if status == 200:
            task = _pending_task(response)
            if task is not None:
                raise AkanaPendingTaskError(self._email, task)
            raise AkanaLoginError(
                f"{where} -> HTTP 200 without a session cookie ({SESSION_COOKIE_PREFIX}...):"
                f" {_excerpt(response) or 'no body'}"
            )
        hint = " (check AKANA_BASE_URL: the platform root, without /api)" if status == 404 else ""
        raise AkanaLoginError(f"{where} -> HTTP {status}{hint}: {_excerpt(response) or 'no body'}")

    async def renew(self, current: AkanaCredential) -> AkanaCredential | None:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        _attach_headers(headers, current, write=True)
        response = await self._send("POST", RENEW_PATH, headers=headers)
        cookies = _set_cookies(response)
        if response.status_code != 200 or current.cookie_name not in cookies:
            # Over already, or not renewable: a fresh login replaces it.
            log.debug("Akana token renewal answered HTTP %d", response.status_code)
            return None
        log.debug("renewed the Akana session")
        return _credential(cookies, current.cookie_name, keep=current)

    async def logout(self, current: AkanaCredential) -> None:
        headers: dict[str, str] = {}
        _attach_headers(headers, current, write=False)
        await self._send("GET", ENDSESSION_PATH, headers=headers)

    def attach(self, request: httpx.Request, credential: AkanaCredential) -> None:
        headers: dict[str, str] = {"cookie": request.headers.get("cookie", "")}
        _attach_headers(headers, credential, write=request.method != "GET")
        for name, value in headers.items():
            request.headers[name] = value

    def refused(self, response: httpx.Response) -> bool:
        return response.status_code == 401

    def asks_renewal(self, response: httpx.Response) -> bool:
        return str(response.headers.get(RENEW_HEADER, "")).strip().lower() == "renew"


def _attach_headers(headers: dict[str, str], credential: AkanaCredential, *, write: bool) -> None:
    """The session cookie (and CSRF cookie, and on writes its header) into ``headers``,
    replacing any the client's cookie jar put there (never a stale session's)."""
    kept = [
        pair.strip()
        for pair in headers.get("cookie", "").split(";")
        if pair.strip()
        and not pair.strip().startswith((SESSION_COOKIE_PREFIX, CSRF_COOKIE_PREFIX))
    ]
    kept.append(f"{credential.cookie_name}={credential.cookie.reveal()}")
    if credential.csrf_name is not None and credential.csrf is not None:
        kept.append(f"{credential.csrf_name}={credential.csrf.reveal()}")
        if write:
            headers["X-" + credential.csrf_name] = credential.csrf.reveal()
    headers["cookie"] = "; ".join(kept)


def _credential(
    cookies: dict[str, _SetCookie], name: str, *, keep: AkanaCredential | None
) -> AkanaCredential:
    cookie = cookies[name]
    csrf_name = next((n for n in cookies if n.startswith(CSRF_COOKIE_PREFIX)), None)
    csrf: Secret | None = None
    if csrf_name is not None:
        csrf = Secret(cookies[csrf_name].value)
    elif keep is not None:  # a renewal keeps the session's CSRF token
        csrf_name, csrf = keep.csrf_name, keep.csrf
    lifetime = cookie.max_age if cookie.max_age and cookie.max_age > 0 else DEFAULT_LIFETIME
    return AkanaCredential(name, Secret(cookie.value), csrf_name, csrf, lifetime)


def akana_session_auth(
    email: str,
    password: Secret,
    *,
    clock: Callable[[], float] = time.monotonic,
    renew_margin: float = DEFAULT_RENEW_MARGIN,
) -> tuple[SessionAuth[AkanaCredential], AkanaAuthScheme]:
    """The engine with Akana's scheme (whose ``call`` the client binds)."""
    install_session_log_filter()
    scheme = AkanaAuthScheme(email, password)
    return SessionAuth(scheme, clock=clock, max_margin=renew_margin), scheme


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
