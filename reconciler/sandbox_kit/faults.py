"""Fault injection as a pure ASGI middleware: latency, failures, lost responses, rate limits.

Decisions use ``random.Random(seed)``, drawn in request arrival order (three draws per request,
whatever the outcome), so a sequential client sees the same faults on every run.

A *dropped connection* cannot be expressed in ASGI: uvicorn answers 500 when an app raises
before starting its response. So the middleware starts a response (status line and headers,
``Content-Length: 1``) and then raises :class:`DroppedConnection`: uvicorn closes the socket
and an HTTP client sees the connection die mid-response (httpx: ``RemoteProtocolError``).
In process, ``httpx.ASGITransport`` re-raises app exceptions as they are; because
``DroppedConnection`` subclasses ``httpx.RemoteProtocolError``, a client sees the same
``httpx.TransportError`` there too. Either way the request is never handled.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What an injected fault answers: "unavailable" (503), "ambiguous" (502, the write was done),
# "rate_limited" (429). Each sandbox words the body the way its API does.
FaultKind = Literal["unavailable", "ambiguous", "rate_limited"]
FaultBody = Callable[[FaultKind, str], Any]


def plain_fault_body(kind: FaultKind, message: str) -> Any:
    return {"code": kind, "message": message}

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class DroppedConnection(httpx.RemoteProtocolError):
    """Injected fault: the connection is dropped before the request is handled."""


class TokenBucket:
    """``rate`` tokens per second, bursts up to ``max(1, rate)``."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """Take a token: 0.0 when granted, else the seconds until one will be available."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


def check_fault_settings(
    *, latency_ms: float, fail_rate: float, ambiguous_rate: float, rate_limit: float | None
) -> None:
    """ValueError for fault flags no sandbox accepts (each sandbox's config calls this)."""
    if latency_ms < 0:
        raise ValueError("latency_ms must be >= 0")
    for name, rate in (("fail_rate", fail_rate), ("ambiguous_rate", ambiguous_rate)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be between 0 and 1")
    if rate_limit is not None and rate_limit <= 0:
        raise ValueError("rate_limit must be > 0 (or None for no limit)")


class FaultInjectionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        latency_ms: float = 0,
        fail_rate: float = 0,
        ambiguous_rate: float = 0,
        seed: int | None = None,
        rate_limit: float | None = None,
        fault_body: FaultBody = plain_fault_body,
    ) -> None:
        self.app = app
        self.fault_body = fault_body
        self.latency_s = latency_ms / 1000
        self.fail_rate = fail_rate
        self.ambiguous_rate = ambiguous_rate
        self._random = random.Random(seed)
        self._bucket = TokenBucket(rate_limit) if rate_limit is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                await self._rate_limited(wait, scope, receive, send)
                return
        # Draw before the first await so the sequence follows arrival order.
        fail_roll, drop_roll, ambiguous_roll = (self._random.random() for _ in range(3))
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)  # never blocks other requests
        if fail_roll < self.fail_rate:
            if drop_roll < 0.5:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 503,
                        "headers": [(b"content-length", b"1")],
                    }
                )
                raise DroppedConnection("injected fault: connection dropped")
            response = JSONResponse(
                self.fault_body("unavailable", "service unavailable (injected fault)"),
                status_code=503,
            )
            await response(scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS and ambiguous_roll < self.ambiguous_rate:
            await self._ambiguous(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _ambiguous(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Do the write, lose its answer: the client cannot tell whether it happened."""

        async def discard(message: Message) -> None:
            return None

        await self.app(scope, receive, discard)
        response = JSONResponse(
            self.fault_body(
                "ambiguous", "bad gateway (injected fault; the request was processed)"
            ),
            status_code=502,
        )
        await response(scope, receive, send)

    async def _rate_limited(
        self, wait: float, scope: Scope, receive: Receive, send: Send
    ) -> None:
        retry_after = max(1, math.ceil(wait))
        response = JSONResponse(
            self.fault_body(
                "rate_limited", f"rate limit exceeded; retry after {retry_after} s"
            ),
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)
