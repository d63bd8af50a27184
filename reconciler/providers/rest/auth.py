"""JWT access/refresh tokens plus a tenant Api-Key: this provider's wire specifics for the
shared session-auth engine (:mod:`reconciler.transport.session_auth`), which owns single
flight, the gate around renewals, replays and redaction.

* Login: ``POST token_path {username, password}`` -> ``{access, refresh}``; a 400/401 is a
  refused login (sticky: a clear configuration error, never sent again).
* Each request gets ``Authorization: Bearer <access>`` and ``api_key_header: <key>``.
* Lifetime: until the access token's own ``exp`` (its payload read, never verified: only the
  server can), minus a skew margin, bounded by ``exp - iat`` (see ``token_lifetime``). The
  engine refreshes within a quarter of it (at most 30 s) of its end.
* Refresh: ``POST refresh_path {refresh}`` -> ``{access}`` (+ a new ``refresh`` when the server
  rotates them). A refused refresh token (expired, or blacklisted after a rotation) means
  logging in again.
* A 401 with ``code: token_not_valid`` (clock skew, a token revoked server-side) is a refusal:
  the engine refreshes once and replays.

Token calls go through the client's own send path (per-request deadline, a 64 KiB cap on the
answer) and are retried on connection failures and 429/502/503/504 (getting tokens changes
nothing a retry could duplicate that matters: at worst one unused pair).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from reconciler.errors import ConfigError, ReconcilerError, TransportError
from reconciler.providers.rest.config import Credentials, JwtAuth
from reconciler.secrets import MIN_SECRET_LENGTH
from reconciler.transport.config import REQUEST_DEADLINE_ENV
from reconciler.transport.redact import Secret, redact
from reconciler.transport.session_auth import LoginRefused, SessionAuth

log = logging.getLogger("reconciler.providers.rest.auth")

MAX_TOKEN_BODY: Final = 64 * 1024
MAX_MARGIN_SECONDS: Final = 30.0
SKEW_MARGIN_SECONDS: Final = 1.0
TOKEN_ATTEMPTS: Final = 3


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, *unverified* ({} when it is not one): only used to learn ``exp``
    and ``iat`` so that a refresh happens before the server refuses the token."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 8192:
        return {}
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_lifetime(exp: float | None, iat: float | None, now: float) -> float | None:
    """Seconds the access token is still good for, from ``now`` (this machine's wall clock).

    It ends at its own ``exp``, whatever its ``exp - iat`` says: simplejwt truncates both to
    whole seconds, so a token said to live 2 s may have 1.01 s left when it arrives. A skew
    margin (a second, at most a quarter of what is left) covers a clock a little ahead of the
    server's and the trip of the next request. ``exp - iat`` still bounds it (a clock behind
    the server's must not stretch the token), and stands in when ``exp`` is already past on
    this clock: a clock far ahead would otherwise make every new token due (a refresh storm);
    then the server's 401 (a refusal, renewed and replayed) is the safety net.
    """
    if exp is None:
        return None
    span = None if iat is None else max(0.0, exp - iat)
    left = exp - now
    if span is not None and (left <= 0 or left > span):
        left = span
    left = max(0.0, left)
    return max(0.0, left - min(SKEW_MARGIN_SECONDS, left / 4))


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class RestLoginRefused(LoginRefused, ConfigError):
    """The token endpoint refused the username and password."""


@dataclass(frozen=True)
class JwtCredential:
    access: Secret
    refresh: Secret | None
    lifetime: float | None

    def secrets(self) -> list[str]:
        return [s.reveal() for s in (self.access, self.refresh) if s is not None]


# A token call: (url, JSON body) -> (status, parsed body or None). Raises httpx errors,
# TimeoutError (the per-request deadline) or ReconcilerError (an answer over the cap).
TokenSend = Callable[[httpx.URL, dict[str, str]], Awaitable[tuple[int, Any]]]


class JwtApiKeyScheme:
    """The scheme; ``send`` is bound by the client (its own deadline and body cap)."""

    refusal_needs_login = False  # token_not_valid: a refresh may well cure it

    def __init__(
        self,
        *,
        base_url: str,
        jwt: JwtAuth,
        credentials: Credentials,
        api_key_header: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token_url = httpx.URL(base_url + jwt.token_path)
        self._refresh_url = httpx.URL(base_url + jwt.refresh_path)
        self._jwt = jwt
        self._credentials = credentials
        self._api_key_header = api_key_header if credentials.api_key is not None else None
        self._clock = clock
        self.send: TokenSend | None = None

    def __repr__(self) -> str:
        return f"JwtApiKeyScheme(token_url={str(self._token_url)!r}, tokens=***)"

    def fixed_secrets(self) -> list[str]:
        return [
            secret.reveal()
            for secret in (self._credentials.password, self._credentials.api_key)
            if secret is not None
        ]

    def secret_in(self, text: str) -> str | None:
        """Which of this endpoint's secrets ``text`` holds ("password", "api_key"), or None;
        only values of MIN_SECRET_LENGTH or more count, as for masking."""
        named = (("password", self._credentials.password), ("api_key", self._credentials.api_key))
        for which, secret in named:
            value = secret.reveal() if secret is not None else ""
            if len(value) >= MIN_SECRET_LENGTH and value in text:
                return which
        return None

    # --- the engine's calls --------------------------------------------------------------

    async def login(self) -> JwtCredential:
        data = await self._post(
            self._token_url,
            {
                "username": self._credentials.username.reveal(),
                "password": self._credentials.password.reveal(),
            },
            login=True,
        )
        assert data is not None
        return self._credential(data, previous=None)

    async def renew(self, current: JwtCredential) -> JwtCredential | None:
        if current.refresh is None:
            return None
        data = await self._post(self._refresh_url, {"refresh": current.refresh.reveal()})
        if data is None:
            return None  # expired, or blacklisted after a rotation (a refresh used twice)
        return self._credential(data, previous=current)

    async def logout(self, current: JwtCredential) -> None:
        return None  # JWTs simply expire; nothing to send

    def attach(self, request: httpx.Request, credential: JwtCredential) -> None:
        if self._api_key_header is not None and self._credentials.api_key is not None:
            request.headers[self._api_key_header] = self._credentials.api_key.reveal()
        request.headers["Authorization"] = f"Bearer {credential.access.reveal()}"

    def refused(self, response: httpx.Response) -> bool:
        """A 401 saying simplejwt's ``token_not_valid`` (its body is already read, bounded)."""
        if response.status_code != 401:
            return False
        data = _json_object(response.content[:MAX_TOKEN_BODY])
        return data is not None and data.get("code") == "token_not_valid"

    def asks_renewal(self, response: httpx.Response) -> bool:
        return False

    # --- token answers -------------------------------------------------------------------

    def _credential(self, data: dict[str, Any], *, previous: JwtCredential | None) -> JwtCredential:
        access = data.get("access")
        refresh = data.get("refresh")
        if not isinstance(access, str) or not access:
            raise TransportError(
                "POST", self._jwt.token_path, "the token answer has no access token"
            )
        kept: Secret | None = None
        if isinstance(refresh, str) and refresh:
            kept = Secret(refresh)  # rotation: the old one is now blacklisted
        elif previous is not None:
            kept = previous.refresh
        claims = token_claims(access)
        lifetime = token_lifetime(
            _number(claims.get("exp")), _number(claims.get("iat")), self._clock()
        )
        log.debug("access token obtained (lifetime %s)", lifetime)
        return JwtCredential(Secret(access), kept, lifetime)

    async def _post(
        self, url: httpx.URL, body: dict[str, str], *, login: bool = False
    ) -> dict[str, Any] | None:
        """One token call with its retries; None when a refresh token is refused."""
        send = self.send
        if send is None:
            raise RuntimeError("JwtApiKeyScheme.send is not bound to a client")
        path = url.path
        last = ""
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            try:
                status, data = await send(url, body)
            except TimeoutError:
                last = (
                    "no complete answer within the per-request deadline"
                    f" ({REQUEST_DEADLINE_ENV} raises it)"
                )
            except (httpx.HTTPError, ReconcilerError) as exc:
                last = redact(f"{type(exc).__name__}: {exc}")[:300]
            else:
                if 200 <= status < 300 and isinstance(data, dict):
                    return data
                if 200 <= status < 300:
                    # A success that is no token answer: a web server, not the API, answered.
                    detail = (
                        "the answer is not a JSON object; check the endpoint's base_url and"
                        f" {self._jwt.token_path} in the project file"
                    )
                else:
                    shown = data.get("detail") if isinstance(data, dict) else None
                    detail = redact(str(shown or f"HTTP {status}"))[:300]
                if status in (400, 401):
                    if login:
                        raise RestLoginRefused(
                            f"POST {path} -> HTTP {status}: {detail}: the login was refused;"
                            f" check ${self._jwt.username_env} and ${self._jwt.password_env}"
                        )
                    log.debug("refresh token refused (%s): logging in again", detail)
                    return None
                last = f"HTTP {status}: {detail}"
                if status not in (429, 502, 503, 504):
                    break
            if attempt < TOKEN_ATTEMPTS:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        raise TransportError("POST", path, f"could not obtain a token ({last})")


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def jwt_session_auth(
    scheme: JwtApiKeyScheme, clock: Callable[[], float]
) -> SessionAuth[JwtCredential]:
    return SessionAuth(scheme, clock=clock, max_margin=MAX_MARGIN_SECONDS)
