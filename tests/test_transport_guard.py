"""The guarded transport every client is built on: the size cap and the deadline hold for
whole reads (an auth flow's ``aread``), and an unasked-for compressed answer is refused.
Bounds are asserted on bytes produced, never on time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.secrets import MASK, register_secret, unregister_secret
from reconciler.transport.config import ClientLimits
from reconciler.transport.guard import GuardedTransport, ResponseTooLarge
from reconciler.transport.http import RetryPolicy
from reconciler.transport.redact import RedactingFilter, Secret

CAP = 256 * 1024
CHUNK = 64 * 1024


class Endless(httpx.AsyncByteStream):
    """A body that does not end before 64 MiB (a client that reads on fails its test rather
    than exhausting the machine); counts what it produced."""

    def __init__(self, pause: float = 0.0) -> None:
        self.produced = 0
        self.pause = pause

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.produced < 64 * 1024 * 1024:
            if self.pause:
                await asyncio.sleep(self.pause)
            self.produced += CHUNK
            yield b" " * CHUNK


def serving(
    stream: httpx.AsyncByteStream, headers: dict[str, str] | None = None
) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers or {}, stream=stream)

    return httpx.MockTransport(answer)


async def test_a_whole_read_stops_at_the_cap() -> None:
    body = Endless()
    limits = ClientLimits(max_response_bytes=CAP)
    async with httpx.AsyncClient(transport=GuardedTransport(serving(body), limits)) as client:
        with pytest.raises(ResponseTooLarge, match="RECONCILER_MAX_RESPONSE_BYTES"):
            await client.get("http://127.0.0.1/x")  # reads the whole body, as aread does
    assert body.produced < CAP + 2 * 1024 * 1024 + 2 * CHUNK


async def test_a_dripping_body_is_cut_by_the_deadline() -> None:
    body = Endless(pause=0.05)
    limits = ClientLimits(request_deadline=0.3, max_response_bytes=1024**3)
    async with httpx.AsyncClient(transport=GuardedTransport(serving(body), limits)) as client:
        with pytest.raises(httpx.ReadTimeout, match="RECONCILER_REQUEST_DEADLINE"):
            await client.get("http://127.0.0.1/x")


async def test_a_compressed_answer_nobody_asked_for_is_refused() -> None:
    transport = GuardedTransport(
        serving(httpx.ByteStream(b"\x1f\x8b..."), {"Content-Encoding": "gzip"}), ClientLimits()
    )
    async with httpx.AsyncClient(transport=transport) as client:
        request = httpx.Request("POST", "http://127.0.0.1/api/login")  # no Accept-Encoding
        with pytest.raises(ResponseTooLarge, match="compressed"):
            await client.send(request)


async def test_an_endless_akana_login_answer_is_bounded() -> None:
    """The login is an auth-flow request: httpx reads its answer whole. Before the guard,
    this read until the server stopped (GBs)."""
    body = Endless()
    config = AkanaConfig(
        akana_endpoint("http://127.0.0.1:9"), "ops@example.com", Secret("a-password-123")
    )
    async with AkanaClient(
        config,
        transport=serving(body),
        limits=ClientLimits(max_response_bytes=CAP),
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        with pytest.raises(Exception, match="larger than"):
            await client.list_apps()
    assert body.produced < CAP + 2 * 1024 * 1024 + 2 * CHUNK


def test_a_log_record_is_masked_after_the_secret_was_let_go() -> None:
    secret = "a-token-let-go-4471"
    register_secret(secret)
    unregister_secret(secret)
    record = logging.LogRecord("httpx", logging.DEBUG, __file__, 1, "echo %s", (secret,), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == f"echo {MASK}"
