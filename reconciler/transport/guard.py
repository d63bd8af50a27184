"""The one path every request of every provider takes to the network: limits no caller can
forget.

Each client (the Mini App Center's and Akana's :class:`~reconciler.transport.http.ApiSession`,
the REST client) builds its ``httpx.AsyncClient`` on a :class:`GuardedTransport`. httpx runs
requests an auth flow makes itself (logins, token refreshes, renewals, logouts) through the
client's transport too, and reads their answers whole (``aread``) outside any caller's
bounded reader: guarding the transport is what bounds those. For every request:

* **deadline**: the answer's status line and headers, and then every piece of its body, must
  come within ``request_deadline`` seconds of sending (wall clock: httpx's timeouts are per
  read, and a server dripping a byte a second never trips them);
* **size**: at most ``max(max_response_bytes, MAX_ERROR_BODY)`` bytes of body are passed on
  (a bounded reader stops earlier; a whole read stops here);
* **codings**: a compressed answer to a request that did not ask for compression (no
  ``Accept-Encoding``) is refused: httpx would inflate it whole, and a few KB of gzip can
  inflate to GBs. Requests that do ask are read by :func:`~reconciler.transport.body.read_body`,
  which inflates with a bound.

Failures are httpx exceptions (so every client's existing classification applies): a
:class:`httpx.ReadTimeout` for the deadline, :class:`ResponseTooLarge` (an
:class:`httpx.DecodingError`) for the size and the coding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Final

import httpx

from reconciler.secrets import redact
from reconciler.transport.config import (
    MAX_RESPONSE_BYTES_ENV,
    REQUEST_DEADLINE_ENV,
    ClientLimits,
)

# Of a non-2xx answer the clients read at most this much; never cap below it.
MAX_ERROR_BODY: Final = 64 * 1024
_PLAIN: Final = frozenset({"", "identity"})
_SLACK: Final = 1024 * 1024


# `reconciler -v`: one line per request, every provider's and every auth flow's, since they
# all pass here. Method, host and path, never the query or a header (where secrets travel);
# the line is masked like every message besides.
REQUEST_LOG: Final = logging.getLogger("reconciler.requests")

# Set by the engine while a run applies: awaited before every request that may write (any
# method but GET, HEAD and OPTIONS), whichever provider, plugin or auth flow sends it. A state
# store that leases what a run writes (PostgreSQL) confirms its lease there, so that no
# provider's write goes out after the run lost its lease to another run. It raises to refuse.
WRITE_GATE: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "reconciler_write_gate", default=None
)
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

# Set by the engine while a run plans, in each provider's task: called once each read (GET,
# HEAD, OPTIONS) is answered, whoever sends it, so that a progress display counts the live
# reads per provider without any provider's code knowing of it.
READ_SEEN: ContextVar[Callable[[], None] | None] = ContextVar("reconciler_read_seen", default=None)


def _log_request(request: httpx.Request, outcome: str, started: float) -> None:
    millis = (time.monotonic() - started) * 1000
    where = f"{request.url.host}{request.url.path}"
    REQUEST_LOG.info(redact(f"{request.method} {where} -> {outcome} ({millis:.0f} ms)"))


class ResponseTooLarge(httpx.DecodingError):
    """An answer larger than the response cap, or compressed without being asked to be."""


def _too_slow(deadline: float) -> str:
    return (
        f"no complete answer within {deadline:g}s (the per-request deadline;"
        f" {REQUEST_DEADLINE_ENV} raises it)"
    )


class GuardedTransport(httpx.AsyncBaseTransport):
    """``inner`` with the per-request deadline, the size cap and the coding rule applied."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limits: ClientLimits) -> None:
        self._inner = inner
        self.limits = limits

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in _READS and (gate := WRITE_GATE.get()) is not None:
            await gate()  # before the request leaves: a refused write was never sent
        deadline = self.limits.request_deadline
        started = time.monotonic()
        ends = started + deadline
        logging_on = REQUEST_LOG.isEnabledFor(logging.INFO)
        try:
            async with asyncio.timeout(deadline):
                response = await self._inner.handle_async_request(request)
        except TimeoutError:
            if logging_on:
                _log_request(request, "no answer in time", started)
            raise httpx.ReadTimeout(_too_slow(deadline), request=request) from None
        except httpx.HTTPError as exc:
            if logging_on:
                _log_request(request, type(exc).__name__, started)
            raise
        if logging_on:
            _log_request(request, str(response.status_code), started)
        if request.method in _READS and (seen := READ_SEEN.get()) is not None:
            seen()
        coding = response.headers.get("content-encoding", "").strip().lower()
        if coding not in _PLAIN and "accept-encoding" not in request.headers:
            await response.aclose()
            raise ResponseTooLarge(
                f"the answer is compressed ({coding[:20]!r}) though no compression was asked"
                " for: refused (it could inflate without bound)",
                request=request,
            )
        if response.is_closed:  # already read by the inner transport (ASGI apps, mocks)
            return response
        # Above the caps the bounded readers apply, so that they stop first and say so.
        cap = max(self.limits.max_response_bytes, MAX_ERROR_BODY) + _SLACK
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _GuardedStream(response.stream, request, ends, deadline, cap)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _GuardedStream(httpx.AsyncByteStream):
    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        request: httpx.Request,
        ends: float,
        deadline: float,
        cap: int,
    ) -> None:
        self._stream = stream
        self._request = request
        self._ends = ends
        self._deadline = deadline
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        pieces = self._stream.__aiter__()
        while True:
            try:
                async with asyncio.timeout_at(_loop_time(self._ends)):
                    chunk = await anext(pieces)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise httpx.ReadTimeout(
                    _too_slow(self._deadline), request=self._request
                ) from None
            seen += len(chunk)
            if seen > self._cap:
                raise ResponseTooLarge(
                    f"the answer is larger than {self._cap:,} bytes (the response cap;"
                    f" {MAX_RESPONSE_BYTES_ENV} raises it)",
                    request=self._request,
                )
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def _loop_time(monotonic_instant: float) -> float:
    """``monotonic_instant`` on the running loop's clock (asyncio's is monotonic too, but
    not necessarily the same origin)."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_instant - time.monotonic())
