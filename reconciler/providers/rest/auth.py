"""JWT access/refresh tokens plus a tenant Api-Key, as an ``httpx.Auth`` (async only).

httpx's documented place for a token flow is an auth class; a flow that does its own I/O
and must be single-flight under concurrency overrides ``async_auth_flow`` and uses an
``asyncio.Lock`` (httpx docs, "Customizing authentication"). The lock is never held across
a ``yield``: httpx may resume the generator from another task, and holding a lock there
would serialize every request. Token calls are made inside the lock, through the same
client with ``auth=None``.

* First use: ``POST token_path {username, password}`` -> ``{access, refresh}``.
* Before each request: if the access token is within a margin of its end (a quarter of its
  lifetime, at most 30 s), refresh first. The lifetime is ``exp - iat`` of its payload (read,
  never verified: only the server can) counted from receipt on the local clock, so a skewed
  clock cannot make every new token look expired. N concurrent requests that find it due
  wait on the lock; the first one refreshes, the others see the new token and go on: one
  refresh, not N.
* A 401 with ``code: token_not_valid`` (clock skew, a token revoked server-side): refresh
  once, unless another request already did since this one was sent, and replay.
* A refused refresh token (expired, or blacklisted after rotation): log in again.
* The password, the Api-Key and every token are registered secrets while the auth is open,
  so they are masked in every log record and message (:mod:`reconciler.secrets`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Final

import httpx

from reconciler.errors import ConfigError, TransportError
from reconciler.providers.rest.config import Credentials, JwtAuth
from reconciler.secrets import MIN_SECRET_LENGTH
from reconciler.transport.body import BodyError, read_body
from reconciler.transport.redact import Secret, redact, register_token, unregister_token

log = logging.getLogger("reconciler.providers.rest.auth")

MAX_TOKEN_BODY: Final = 64 * 1024
MAX_MARGIN_SECONDS: Final = 30.0
MARGIN_FRACTION: Final = 0.25
TOKEN_ATTEMPTS: Final = 3
# Old tokens stay masked for a while after they are replaced (a late log line may carry one).
_KEEP_MASKED: Final = 8


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


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class TokenRefused(Exception):
    """The token endpoint answered 400/401 (credentials or refresh token refused)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class JwtApiKeyAuth(httpx.Auth):
    """Bearer tokens obtained and refreshed on demand, plus ``api_key_header: <key>``."""

    def __init__(
        self,
        *,
        base_url: str,
        jwt: JwtAuth,
        credentials: Credentials,
        api_key_header: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token_url = base_url + jwt.token_path
        self._refresh_url = base_url + jwt.refresh_path
        self._jwt = jwt
        self._credentials = credentials
        self._api_key_header = api_key_header if credentials.api_key is not None else None
        self._clock = clock
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None
        self._access: Secret | None = None
        self._refresh: Secret | None = None
        self._expires_at: float | None = None
        self._margin = 0.0
        self._masked: deque[str] = deque()
        self.logins = 0
        self.refreshes = 0
        self._closed = False
        # Masked while open; a value shorter than MIN_SECRET_LENGTH is not searched for (it
        # would garble every message and protects nothing), as for the manifest loader.
        self._fixed = [
            secret.reveal()
            for secret in (credentials.password, credentials.api_key)
            if secret is not None and len(secret.reveal()) >= MIN_SECRET_LENGTH
        ]
        for value in self._fixed:
            register_token(value)

    def secret_in(self, text: str) -> str | None:
        """Which of this endpoint's secrets ``text`` holds ("password", "api_key"), or None;
        only values of MIN_SECRET_LENGTH or more count, as for masking."""
        named = (("password", self._credentials.password), ("api_key", self._credentials.api_key))
        for which, secret in named:
            value = secret.reveal() if secret is not None else ""
            if len(value) >= MIN_SECRET_LENGTH and value in text:
                return which
        return None

    def bind(self, client: httpx.AsyncClient) -> None:
        """The client token calls go through (the one this auth is installed on)."""
        self._client = client

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._masked:
            unregister_token(self._masked.popleft())
        for value in self._fixed:
            unregister_token(value)

    def __repr__(self) -> str:
        return f"JwtApiKeyAuth(token_url={self._token_url!r}, tokens=***)"

    # --- the flow ----------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("JwtApiKeyAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._api_key_header is not None and self._credentials.api_key is not None:
            request.headers[self._api_key_header] = self._credentials.api_key.reveal()
        sent = await self._current_access()
        request.headers["Authorization"] = f"Bearer {sent.reveal()}"
        response = yield request
        if response.status_code != 401 or not await _token_not_valid(response):
            return
        log.debug("access token refused (token_not_valid): refreshing once and replaying")
        fresh = await self._renew(after=sent)
        request.headers["Authorization"] = f"Bearer {fresh.reveal()}"
        yield request

    def _due(self) -> bool:
        if self._access is None:
            return True
        if self._expires_at is None:  # no readable exp: rely on the server's 401
            return False
        return self._expires_at - self._clock() <= self._margin

    async def _current_access(self) -> Secret:
        seen = self._access
        if seen is not None and not self._due():
            return seen
        async with self._lock:  # single flight: the others wait and find a fresh token
            # Renewed while this request waited: use that token, whatever the clock says.
            if self._access is None or (self._access is seen and self._due()):
                await self._refresh_or_login()
            assert self._access is not None
            return self._access

    async def _renew(self, *, after: Secret) -> Secret:
        async with self._lock:
            if self._access is None or self._access is after:
                await self._refresh_or_login()
            assert self._access is not None
            return self._access

    async def _refresh_or_login(self) -> None:
        if self._refresh is not None:
            try:
                data = await self._post(self._refresh_url, {"refresh": self._refresh.reveal()})
            except TokenRefused as exc:
                # Expired, or blacklisted after a rotation (a refresh used twice): log in.
                log.debug("refresh token refused (%s): logging in again", exc.detail)
            else:
                self.refreshes += 1
                self._store(data, keep_refresh=True)
                return
        data = await self._post(
            self._token_url,
            {
                "username": self._credentials.username.reveal(),
                "password": self._credentials.password.reveal(),
            },
            login=True,
        )
        self.logins += 1
        self._store(data, keep_refresh=False)

    def _store(self, data: dict[str, Any], *, keep_refresh: bool) -> None:
        access = data.get("access")
        refresh = data.get("refresh")
        if not isinstance(access, str) or not access:
            raise TransportError(
                "POST", self._jwt.token_path, "the token answer has no access token"
            )
        if refresh is not None and not isinstance(refresh, str):
            refresh = None
        for token in (access, refresh):
            if token:
                self._mask(token)
        self._access = Secret(access)
        if refresh:
            self._refresh = Secret(refresh)  # rotation: the old one is now blacklisted
        elif not keep_refresh:
            self._refresh = None
        claims = token_claims(access)
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        if exp is not None and iat is not None:
            # The lifetime counted from receipt on this machine's clock: a clock ahead of the
            # server's would otherwise find every new token already due (a refresh storm).
            lifetime = max(0.0, exp - iat)
            self._expires_at = self._clock() + lifetime
        else:
            lifetime = MAX_MARGIN_SECONDS * 4
            self._expires_at = exp
        self._margin = min(MAX_MARGIN_SECONDS, lifetime * MARGIN_FRACTION)
        log.debug("access token obtained (lifetime %.1fs)", lifetime)

    def _mask(self, token: str) -> None:
        register_token(token)
        self._masked.append(token)
        while len(self._masked) > _KEEP_MASKED:
            unregister_token(self._masked.popleft())

    async def _post(self, url: str, body: dict[str, str], *, login: bool = False) -> dict[str, Any]:
        """One token call, retried on connection failures and 502/503/504 (getting tokens
        changes nothing a retry could duplicate that matters: at worst one unused pair)."""
        client = self._client
        if client is None:
            raise RuntimeError("JwtApiKeyAuth.bind(client) was not called")
        path = httpx.URL(url).path
        last = ""
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            try:
                response = await client.send(
                    client.build_request("POST", url, json=body), auth=None, stream=True
                )
                try:
                    payload = await read_body(response, MAX_TOKEN_BODY)
                finally:
                    await response.aclose()
            except (httpx.HTTPError, BodyError) as exc:
                last = redact(f"{type(exc).__name__}: {exc}")[:300]
            else:
                status = response.status_code
                data = _json_object(payload.content)
                if 200 <= status < 300 and data is not None:
                    return data
                if 200 <= status < 300:
                    # A success that is no token answer: a web server, not the API, answered.
                    detail = (
                        "the answer is not a JSON object; check the endpoint's base_url and"
                        f" {self._jwt.token_path} in the project file"
                    )
                else:
                    detail = redact(str((data or {}).get("detail") or f"HTTP {status}"))[:300]
                if status in (400, 401):
                    if login:
                        raise ConfigError(
                            f"POST {path} -> HTTP {status}: {detail}: the login was refused;"
                            f" check ${self._jwt.username_env} and ${self._jwt.password_env}"
                        )
                    raise TokenRefused(status, detail)
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


async def _token_not_valid(response: httpx.Response) -> bool:
    """Whether a 401 says simplejwt's ``token_not_valid``; reads at most 64 KiB of it (a
    body without a small Content-Length is not read: it is not simplejwt's answer)."""
    length = response.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_TOKEN_BODY:
        return False
    await response.aread()
    data = _json_object(response.content)
    return data is not None and data.get("code") == "token_not_valid"
