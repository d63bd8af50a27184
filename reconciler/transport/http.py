"""Executing one API call: retries, shared pacing, error mapping, redaction and counting.

Retry rules (the reason for each is the question "could the server have acted on it?"):

* Idempotent calls (GET, PUT, DELETE and the set-like POSTs: attributes, compatibility,
  compatibility/delete) are retried on 429/502/503/504, on timeouts and on connection
  errors, with jittered exponential backoff, honouring ``Retry-After`` (seconds or an HTTP
  date, capped at ``retry_after_cap``), within an overall per-call ``deadline``. When the
  attempts or the deadline run out: :class:`ApiError` for a status, :class:`TransportError`
  for a network failure.
* Non-idempotent calls (creates, uploads, gxobject, status steps) are never retried blindly.
  A timeout, a connection lost after sending, or 502/503/504 raise
  :class:`AmbiguousWriteError`: the caller must re-read and decide. They are retried only
  when the server provably did nothing: a 429 (refused before any work), or a failure to
  obtain a connection at all (connect error, connect timeout, pool timeout), where the
  request never left this process.

Hostile or broken servers (see :mod:`reconciler.transport.body` and ``ClientLimits``): every
attempt runs under one wall-clock deadline from send to the last byte of the answer
(``MAC_REQUEST_DEADLINE``; httpx's own timeouts are per read and a dripping server never trips
them), and bodies are streamed and capped after decompression (``MAC_MAX_RESPONSE_BYTES`` for
a 2xx, a 64 KiB excerpt of any other). A deadline hit counts as a timeout above: retried for
idempotent calls within ``deadline``, ambiguous for a write that may have been sent.

Shared pacing: a 429 (or any answer carrying ``Retry-After``) slows the whole client, not
only the request that got it. The client keeps one monotonic "paused until" instant; every
attempt of every call awaits it before it is sent, so N concurrent tasks back off together
instead of each one hammering the server until it gets its own 429.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import math
import os
import random
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Final

import httpx

from reconciler import __version__
from reconciler.errors import (
    AmbiguousWriteError,
    ApiError,
    ApiErrorItem,
    ReconcilerError,
    TransportError,
)
from reconciler.transport.body import ACCEPT_ENCODING, BodyError, read_body
from reconciler.transport.config import (
    MAX_RESPONSE_BYTES_ENV,
    REQUEST_DEADLINE_ENV,
    ClientLimits,
    Endpoint,
    check_endpoint_security,
    check_token,
    is_loopback,
)
from reconciler.transport.guard import GuardedTransport
from reconciler.transport.h11lane import H11Lane, LaneBody
from reconciler.transport.redact import (
    ApiKeyAuth,
    Secret,
    redact,
    register_token,
    unregister_token,
)
from reconciler.transport.session_auth import SessionAuth, StaticKeyScheme
from reconciler.transport.urls import UrlJoiner

log = logging.getLogger("reconciler.providers.miniappcenter.client")

USER_AGENT: Final = f"miniapp-reconciler/{__version__}"
JSON: Final = "application/json"
OCTET_STREAM: Final = "application/octet-stream"
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
AMBIGUOUS_STATUSES: Final = frozenset({502, 503, 504})
MAX_ERROR_TEXT: Final = 2000
# Of a non-2xx answer only this much (decoded) is read: enough for the documented error JSON
# and a message excerpt; the rest is never read (the connection is closed instead).
MAX_ERROR_BODY: Final = 64 * 1024


@functools.lru_cache(maxsize=8)
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """The verifying TLS context, built once per CA setting (building one costs ~40 ms).

    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` (a corporate CA) are honoured, as httpx does.
    """
    context = httpx.create_ssl_context(verify=True, trust_env=True)
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise RuntimeError("refusing a TLS context that does not verify certificates")
    return context


def tls_context() -> ssl.SSLContext:
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


async def _asyncio_sleep(delay: float) -> None:
    await asyncio.sleep(delay)


@dataclass
class RetryPolicy:
    """How hard one call tries. ``sleep`` and ``clock`` are injectable for tests."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    retry_after_cap: float = 60.0
    deadline: float = 120.0  # overall seconds per call, waits and attempts included
    jitter: bool = True
    sleep: Callable[[float], Awaitable[None]] = _asyncio_sleep
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.retry_after_cap, self.deadline) < 0:
            raise ValueError("delays and the deadline must not be negative")

    def backoff(self, failed_attempts: int) -> float:
        """Exponential backoff after ``failed_attempts`` failures ("equal jitter": [d/2, d])."""
        delay = min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))
        return random.uniform(delay / 2, delay) if self.jitter else delay


@dataclass
class ClientStats:
    """Counted per HTTP attempt handed to the transport (retries included).

    ``reads`` are GETs, ``writes`` everything else; ``by_method`` counts HTTP verbs,
    ``by_request`` counts ``"METHOD /path"`` (to prove that no resource is read twice).
    """

    reads: int = 0
    writes: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    by_request: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def reset(self) -> None:
        self.reads = self.writes = self.retries = 0
        self.by_method.clear()
        self.by_request.clear()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def url_path(url: httpx.URL) -> str:
    """The path of ``url`` as sent (percent-encoded), without host, query or fragment."""
    return url.raw_path.split(b"?", 1)[0].decode("ascii", "replace")


def _error_items(content: bytes) -> list[ApiErrorItem] | None:
    """The documented ``{"errors": [{"code", "message"}]}`` body, or None for any other."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(data, dict):
        return None
    raw = data.get("errors")
    if not isinstance(raw, list) or not raw:
        return None
    items: list[ApiErrorItem] = []
    for entry in raw:
        if not isinstance(entry, dict):
            return None
        code = entry.get("code")
        if isinstance(code, str) and code.strip().lstrip("-").isdigit():
            code = int(code)
        if not isinstance(code, int) or isinstance(code, bool):
            code = None
        message = entry.get("message")
        if not isinstance(message, str):
            message = json.dumps(message) if message is not None else "(no message)"
        items.append(ApiErrorItem(code=code, message=_clean(redact(message))))
    return items


ErrorItemsReader = Callable[[bytes], list[ApiErrorItem] | None]


def _wrong_endpoint(
    method: str,
    path: str,
    response: httpx.Response,
    endpoint: Endpoint,
    read_items: ErrorItemsReader = _error_items,
) -> ApiError:
    error = api_error(method, path, response, read_items)
    error.text = (
        f"{response.status_code} without the Mini App Center's error body, so this is not the"
        f" API answering: {_base_url_hint(endpoint)}. " + error.text
    ).strip()
    error.errors = []
    return error


def _base_url_hint(endpoint: Endpoint) -> str:
    """The likeliest fix, from the shape of the configured URL (never its query or secrets)."""
    base_path = url_path(httpx.URL(endpoint.base_url)).rstrip("/")
    if base_path.endswith(f"/{endpoint.api_version}"):
        return (
            f"MAC_BASE_URL ends in /{endpoint.api_version}, which the client adds itself;"
            f" drop it (the docs' $BASE_URL ends in /api)"
        )
    if not base_path.endswith("/api"):
        return (
            f"check MAC_BASE_URL ({endpoint.display}): the docs' $BASE_URL ends in /api,"
            " e.g. https://host/api"
        )
    return (
        f"check MAC_BASE_URL ({endpoint.display}; the docs' $BASE_URL, ending in /api) and"
        f" MAC_API_VERSION ({endpoint.api_version})"
    )


def api_error(
    method: str,
    path: str,
    response: httpx.Response,
    read_items: ErrorItemsReader = _error_items,
) -> ApiError:
    """Map a non-2xx answer to :class:`ApiError`; nothing from it may carry the token.

    ``read_items`` recognises the API's own error body (default: the Mini App Center's).
    """
    status = response.status_code
    items = read_items(response.content)
    if items is not None:
        return ApiError(method, path, status, errors=items)
    text = redact(response.text)  # before cutting: a cut secret would no longer match
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "...(truncated)"
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        target = ""
        if location:
            try:
                to = response.request.url.join(location)
                target = f" to {to.scheme}://{to.host}{url_path(to)}"
            except httpx.InvalidURL:
                target = ""
        text = f"redirect{target} not followed (redirects are never followed)" + (
            f": {text}" if text.strip() else ""
        )
    return ApiError(method, path, status, text=_clean(redact(text)))


def _ssl_failure(exc: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass
class _Failure:
    error: ReconcilerError
    retryable: bool
    delay: float | None = None  # from Retry-After
    shared: bool = False  # pause the whole client
    outcome_unknown: bool = False  # the server may have acted on this attempt


class _BadBody(Exception):
    """A 2xx answer whose body is refused (too large, undecodable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Progress:
    """How far one attempt got, from httpcore's trace events.

    A write cut by the deadline is retry-safe only if it provably never started sending;
    transports that emit no trace events (ASGI, mocks) prove nothing, so it stays ambiguous.
    """

    def __init__(self) -> None:
        self.traced = False
        self.sending = False
        self.answered = False  # the status line and headers were received

    async def __call__(self, name: str, info: Mapping[str, object]) -> None:
        self.traced = True
        if name.endswith("send_request_headers.started"):
            self.sending = True

    @property
    def maybe_sent(self) -> bool:
        return self.sending or not self.traced


_HOP_HEADERS: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _with_content(response: httpx.Response, content: bytes) -> httpx.Response:
    """``response`` (read and closed) holding ``content``, already decoded and bounded.

    Settled in place rather than copied into a new ``httpx.Response`` (~5% of a read's CPU,
    bench/): what httpx's own ``aread`` does, plus dropping the headers that described the
    raw body (its coding, its length), so nothing decodes or trusts them again."""
    headers = response.headers
    for name in [key for key in headers if key in _HOP_HEADERS]:
        del headers[name]
    response.extensions.pop("network_stream", None)
    response._content = content
    return response


_CONTROL: Final = {c: "?" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c not in (9, 10)}


def _clean(text: str) -> str:
    """Server text fit for a terminal: control characters (escape sequences, NULs) become
    '?', so an error body cannot rewrite the screen or hide the rest of the message."""
    return text.translate(_CONTROL)


def byte_size(count: int) -> str:
    """A byte count as people read it: 32 MiB, 64 KiB, else 1,234 bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes"


def _bounded(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "...(truncated)"


class _Budget:
    """One call's deadline. Elapsed time is the larger of the clock and the time slept, so
    that an instant fake sleep (tests) still spends the budget."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._start = policy.clock()
        self._slept = 0.0

    def elapsed(self) -> float:
        return max(self._policy.clock() - self._start, self._slept)

    def remaining(self) -> float:
        return self._policy.deadline - self.elapsed()

    async def sleep(self, delay: float) -> None:
        await self._policy.sleep(delay)
        self._slept += delay


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which skips answers that set no cookie: httpx hands every answer
    to ``http.cookiejar`` (urllib request/response shims and all), ~4% of a read's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class _Lanes(httpx.AsyncBaseTransport):
    """The default transport: ``size`` single-connection transports ("lanes"), each carrying
    one request at a time; a request takes an idle lane (most recently used first, so that
    kept-alive connections are reused) and gives it back when its response is closed.

    Why not httpx's own pool: httpcore 1.0 hands the same idle connection to every request
    that enters the pool in the same pass (encode/httpcore#822, #1035); all but one bounce
    with ``ConnectionNotAvailable`` and re-run an O(connections^2) assignment pass. Measured
    on a plan of 1,000 apps (bench/): at 16 in flight and 25 ms, 0.2 bounces per read (6% of
    the client's CPU, wall time unchanged); with no latency, 2.6 per read and half the CPU
    (5.8 s -> 2.9 s); at 32-64 in flight, 6 per read and 15-23 s instead of ~3 s, so raising
    ``--parallelism`` made runs slower. A lane's pool holds one connection and never sees a
    second request, so nothing bounces.
    """

    def __init__(self, size: int, make: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._make = make
        self._size = max(1, size)
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._created: list[httpx.AsyncBaseTransport] = []
        self._free = asyncio.Semaphore(self._size)

    async def _take(self, request: httpx.Request) -> httpx.AsyncBaseTransport:
        if self._free.locked():  # only a wait needs a deadline (a timeout scope costs CPU)
            timeouts = request.extensions.get("timeout") or {}
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._free.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection", request=request) from None
        else:
            await self._free.acquire()  # free: returns at once
        if self._idle:
            return self._idle.pop()
        lane = self._make()  # lazily: a small run opens few connections
        self._created.append(lane)
        return lane

    def _give_back(self, lane: httpx.AsyncBaseTransport) -> None:
        self._idle.append(lane)
        self._free.release()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lane = await self._take(request)
        try:
            response = await lane.handle_async_request(request)
        except BaseException:
            self._give_back(lane)
            raise
        if response.is_closed:  # a body the transport already read and closed (mocks)
            self._give_back(lane)
            return response
        stream = response.stream
        if isinstance(stream, LaneBody):  # tells us itself when it is closed: no wrapper
            stream.when_closed(lambda: self._give_back(lane))
            return response
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _LaneStream(stream, lambda: self._give_back(lane))
        return response

    async def aclose(self) -> None:
        lanes, self._created, self._idle = self._created, [], []
        for lane in lanes:
            await lane.aclose()


class _LaneStream(httpx.AsyncByteStream):
    """A response body that gives its lane back once closed (exactly once)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class ApiSession:
    """One shared ``httpx.AsyncClient`` (one connection pool) and the call loop around it.

    By default it speaks to the Mini App Center: ``token`` goes in ``APIKey-Auth``, answers
    are JSON, and a 404/405 without the documented error body means a wrong base URL. Another
    API passes ``token=None`` with its own ``auth`` (an :class:`httpx.Auth`), default
    ``headers`` (e.g. a vendor ``Accept``) and ``error_items`` (which bodies are the API's own
    errors: a 404/405 whose body it does not recognise is read as "not the API answering").
    An API with a session (a login, renewals) passes ``session_auth`` instead of ``auth``: the
    call loop takes a lease on its credential for each attempt, and the scheme's own login,
    renewal and logout requests come back through :meth:`call` with ``authenticate=False``.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        limits: ClientLimits | None = None,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        error_items: ErrorItemsReader | None = None,
        session_auth: SessionAuth[Any] | None = None,
    ) -> None:
        check_endpoint_security(endpoint.base_url)
        if [token, auth, session_auth].count(None) != 2:
            raise ValueError("ApiSession needs exactly one of token, auth and session_auth")
        secret = Secret(check_token(token)) if token is not None else None
        if secret is not None:
            # The static key is the simplest session: nothing to obtain, renew or end. This
            # session registers it for redaction itself (whatever its length), below.
            session_auth = SessionAuth(
                StaticKeyScheme(ApiKeyAuth.HEADER, secret, register=False)
            )
        self._session_auth = session_auth
        self._owns_auth = secret is not None
        self._error_items: ErrorItemsReader = error_items or _error_items
        self.endpoint = endpoint
        self._url = UrlJoiner(endpoint.root)
        self.stats = ClientStats()
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self.limits = limits or ClientLimits()
        self._paused_until = -math.inf
        self._token = secret
        self._closed = False
        loopback = is_loopback(httpx.URL(endpoint.base_url).host)
        if transport is None:
            transport = _Lanes(
                max_connections,
                # One keep-alive connection each, h11 on asyncio sockets (D100).
                functools.partial(H11Lane, verify=tls_context()),  # always verifying
            )
        self._http = httpx.AsyncClient(
            auth=auth,
            # Only the codings read_body can inflate with a bound (never br/zstd).
            headers={
                "Accept": JSON,
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": USER_AGENT,
                **(headers or {}),
            },
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=tls_context(),  # always verifying; see _tls_context
            # Every request, those of an auth flow included, under the shared limits.
            transport=GuardedTransport(transport, self.limits),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            # The lanes connect directly: httpx ignores the environment's proxies when it is
            # given a transport, as it has since the lanes (D50, D100). CA bundles
            # (SSL_CERT_FILE/DIR) are honoured through tls_context().
            trust_env=not loopback,
        )
        # The client's own setter would copy this into a plain Cookies.
        self._http._cookies = _Cookies()
        if secret is not None:
            register_token(secret.reveal())  # last: nothing after it can fail and leak a count

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._http.aclose()
        finally:
            if self._owns_auth and self._session_auth is not None:
                self._session_auth.close()
            if self._token is not None:
                unregister_token(self._token.reveal())

    def __repr__(self) -> str:
        return f"ApiSession(endpoint={self.endpoint.display!r})"

    # --- pacing ----------------------------------------------------------------------

    def pause(self, seconds: float) -> bool:
        """Hold every request of this client until ``seconds`` from now (never shortens).

        True when this call set the pause (no longer pause was already in place).
        """
        until = self.retry.clock() + seconds
        if until >= self._paused_until:
            self._paused_until = until
            return True
        return False

    async def _wait_pause(self, budget: _Budget, waited_for: float | None) -> None:
        """Wait until the client-wide pause is over. ``waited_for`` is a pause instant the
        caller has already slept through (its own 429): not slept twice, even when the clock
        does not move during an injected instant sleep."""
        while True:
            until = self._paused_until
            if until == waited_for:  # slept for this pause already (clock may be fake)
                return
            delay = until - self.retry.clock()
            if delay <= 0:
                return
            await budget.sleep(delay)
            waited_for = until

    # --- the call loop ---------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
        authenticate: bool = True,
        max_bytes: int | None = None,
        answer: frozenset[int] = frozenset(),
    ) -> httpx.Response | None:
        """Send ``method`` to ``endpoint.root + path`` (already validated and encoded).

        Returns the 2xx response, or None for a 404 when ``missing_ok``. The session auth's
        own requests pass ``authenticate=False`` (no lease, not counted in ``stats``),
        ``max_bytes`` (a smaller cap than the response cap) and ``answer``: the statuses
        handed back as responses instead of raised (a refused login is the scheme's to word).
        A request the server refuses as unauthenticated is replayed after one renewal (see
        :mod:`reconciler.transport.session_auth`), without spending a retry attempt.
        """
        url = self._url(path)
        shown = url_path(url)
        policy = self.retry
        budget = _Budget(policy)
        outcome_unknown = False
        covered: float | None = None  # the pause this call already slept through
        auth = self._session_auth if authenticate else None
        replays = 0
        attempt = 0
        while True:
            attempt += 1
            await self._wait_pause(budget, covered)
            refusal = False
            timeout: httpx.Timeout | None = None
            deadline = self.limits.request_deadline
            if idempotent:
                # Cutting an idempotent attempt short costs nothing: it stays within the
                # call's budget. A write gets the whole per-request deadline.
                timeout = httpx.Timeout(min(self._timeout, max(budget.remaining(), 1.0)))
                deadline = min(deadline, max(budget.remaining(), 0.1))
            request = self._http.build_request(
                method,
                url,
                content=content,
                headers=dict(headers or {}),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            progress = _Progress()
            if not idempotent:
                # Only a write asks whether it was sent (``maybe_sent``); a trace makes httpcore
                # await the callback twice per phase, ~10% of a read's CPU (bench/).
                request.extensions["trace"] = progress
            # Taken last, just before sending: nothing between here and the release below
            # can fail, so a lease is never left behind to hold up a renewal.
            lease = await auth.acquire() if auth is not None else None
            if lease is not None:
                assert auth is not None
                auth.attach(request, lease)
            if authenticate:  # the session auth's own requests are not the client's calls
                self._count(method, shown, attempt)
            try:
                # Wall clock from send to the last byte: httpx's timeouts are per read, and a
                # server dripping one byte per read never trips them.
                async with asyncio.timeout(deadline):
                    response = await self._receive(request, progress, max_bytes)
            except TimeoutError:
                failure = self._too_slow(method, shown, deadline, idempotent, progress)
            except _BadBody as exc:
                failure = (
                    self._bad_body(method, shown, exc, idempotent)
                    if authenticate
                    # A login's or renewal's answer we refuse changed nothing a caller reads.
                    else _Failure(TransportError(method, shown, exc.reason), retryable=False)
                )
            except httpx.HTTPError as exc:
                failure = self._classify_exception(method, shown, exc, idempotent, progress)
            else:
                status = response.status_code
                log.debug("%s %s -> %d (attempt %d)", method, shown, status, attempt)
                if auth is not None:
                    auth.note_answer(response)
                    refusal = auth.is_refusal(response)
                if 200 <= status < 300 or status in answer:
                    return response
                if status in (404, 405):
                    await response.aread()
                    if self._error_items(response.content) is None:
                        # Not the API talking but the web server in front of it: the path is
                        # not the API's, most likely a wrong base URL. Never "absent" (a plan
                        # would read it as "create everything"), on any call.
                        raise _wrong_endpoint(
                            method, shown, response, self.endpoint, self._error_items
                        )
                if status == 404 and missing_ok:
                    return None
                if status == 404 and method == "DELETE" and outcome_unknown:
                    # An earlier attempt may have deleted it and lost the answer.
                    log.debug("%s %s: 404 after an unanswered attempt: done", method, shown)
                    return response
                failure = self._classify_status(method, shown, response, idempotent)
            finally:
                if lease is not None:
                    assert auth is not None
                    auth.release(lease)
            if refusal and lease is not None:
                assert auth is not None
                # Refused before any work: replayed with the renewed credential, as a new
                # attempt that spends none of the retry budget.
                if await auth.refused(lease, replays):
                    replays += 1
                    attempt -= 1
                    log.debug("%s %s: replaying after an auth refusal", method, shown)
                    continue
            outcome_unknown = outcome_unknown or failure.outcome_unknown
            if failure.retryable:
                delay = (
                    min(failure.delay, policy.retry_after_cap)
                    if failure.delay is not None
                    else policy.backoff(attempt)
                )
                # Set even when giving up: the other requests should still slow down.
                covered = self._paused_until if failure.shared and self.pause(delay) else None
                if attempt < policy.max_attempts and budget.elapsed() + delay <= policy.deadline:
                    log.debug("%s %s: retrying in %.2fs (%s)", method, shown, delay, failure.error)
                    if delay > 0:
                        await budget.sleep(delay)
                    continue
                raise self._give_up(failure.error, attempt)
            raise failure.error

    async def _receive(
        self, request: httpx.Request, progress: _Progress, max_bytes: int | None = None
    ) -> httpx.Response:
        """Send and read the answer, keeping at most the response cap (decoded; or
        ``max_bytes`` when smaller) of a 2xx body and :data:`MAX_ERROR_BODY` of any other;
        the rest is never read."""
        response = await self._http.send(request, stream=True)
        progress.answered = True
        try:
            ok = 200 <= response.status_code < 300
            cap = self.limits.max_response_bytes if ok else MAX_ERROR_BODY
            if ok and max_bytes is not None:
                cap = min(cap, max_bytes)
            try:
                body = await read_body(response, cap)
            except BodyError as exc:
                if ok:
                    raise _BadBody(str(exc)) from None
                content = b"(undecodable error body)"
            else:
                if ok and body.truncated:
                    why = (
                        f"the response cap; {MAX_RESPONSE_BYTES_ENV} raises it"
                        if cap == self.limits.max_response_bytes
                        else "more than this answer can hold"
                    )
                    raise _BadBody(
                        f"the answer is larger than {byte_size(cap)} after decompression ({why})"
                    )
                content = body.content
        finally:
            await response.aclose()
        return _with_content(response, content)

    def _too_slow(
        self, method: str, path: str, deadline: float, idempotent: bool, progress: _Progress
    ) -> _Failure:
        reason = (
            f"the server was too slow: no complete answer within {deadline:g}s (the per-request"
            f" deadline; {REQUEST_DEADLINE_ENV} raises it)"
        )
        log.debug("%s %s -> %s", method, path, reason)
        if idempotent:
            return _Failure(
                TransportError(method, path, reason), retryable=True, outcome_unknown=True
            )
        if not progress.maybe_sent:  # still connecting: the request never left
            return _Failure(TransportError(method, path, reason), retryable=True)
        return _Failure(AmbiguousWriteError(method, path, reason), retryable=False)

    def _bad_body(self, method: str, path: str, exc: _BadBody, idempotent: bool) -> _Failure:
        # A 2xx whose body we refuse: for a read, asking again gets the same; for a write, it
        # was done, but what it answered (a new id) is lost.
        if idempotent and method == "GET":
            return _Failure(TransportError(method, path, exc.reason), retryable=False)
        return _Failure(AmbiguousWriteError(method, path, exc.reason), retryable=False)

    def _count(self, method: str, path: str, attempt: int) -> None:
        stats = self.stats
        if method == "GET":
            stats.reads += 1
        else:
            stats.writes += 1
        stats.by_method[method] += 1
        stats.by_request[f"{method} {path}"] += 1
        if attempt > 1:
            stats.retries += 1

    def _give_up(self, error: ReconcilerError, attempts: int) -> ReconcilerError:
        if isinstance(error, TransportError):
            why = (
                "attempts exhausted"
                if attempts >= self.retry.max_attempts
                else f"retry deadline of {self.retry.deadline:g}s reached"
            )
            return TransportError(
                error.method,
                error.path,
                f"{error.reason} (gave up after {attempts} attempts: {why})",
            )
        return error

    def _classify_exception(
        self,
        method: str,
        path: str,
        exc: httpx.HTTPError,
        idempotent: bool,
        progress: _Progress | None = None,
    ) -> _Failure:
        # bounded and cleaned: h11 quotes up to 100 KiB of what the server sent
        detail = _clean(_bounded(redact(str(exc)))) or type(exc).__name__
        log.debug("%s %s -> %s: %s", method, path, type(exc).__name__, detail)
        tls = _ssl_failure(exc)
        if tls is not None:
            reason = f"TLS failure ({redact(str(tls)) or type(tls).__name__})"
            return _Failure(TransportError(method, path, reason), retryable=False)
        # The request never left this process: retrying cannot write twice.
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            reason = f"could not connect ({type(exc).__name__}: {detail})"
            return _Failure(TransportError(method, path, reason), retryable=True)
        # Sent (maybe partly, maybe wholly) and no complete answer: the outcome is unknown.
        if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
            reason = f"no complete answer ({type(exc).__name__}: {detail})"
            if isinstance(exc, httpx.RemoteProtocolError) and not (
                progress is not None and progress.answered
            ):
                reason = f"no valid HTTP answer ({type(exc).__name__}: {detail})"
            if idempotent:
                return _Failure(
                    TransportError(method, path, reason), retryable=True, outcome_unknown=True
                )
            return _Failure(AmbiguousWriteError(method, path, reason), retryable=False)
        return _Failure(
            TransportError(method, path, f"{type(exc).__name__}: {detail}"), retryable=False
        )

    def _classify_status(
        self, method: str, path: str, response: httpx.Response, idempotent: bool
    ) -> _Failure:
        status = response.status_code
        error = api_error(method, path, response, self._error_items)
        if status >= 500 and not idempotent:
            # Any server fault on a create or a status step may come after the write was
            # done (commit, then crash): the caller must re-read, never assume it failed.
            return _Failure(
                AmbiguousWriteError(method, path, f"HTTP {status}: {error.detail}"),
                retryable=False,
            )
        if status not in RETRY_STATUSES:
            return _Failure(error, retryable=False)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:  # refused before any work: safe to retry even for a create
            return _Failure(error, retryable=True, delay=retry_after, shared=True)
        if not idempotent:
            return _Failure(
                AmbiguousWriteError(method, path, f"HTTP {status}: {error.detail}"),
                retryable=False,
            )
        return _Failure(
            error,
            retryable=True,
            delay=retry_after,
            shared=retry_after is not None,
            outcome_unknown=True,
        )
