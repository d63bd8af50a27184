"""The transport's sockets: httpcore on plain asyncio (``reconciler.transport.netio``), not anyio.

Real connections only: a trusted TLS server (the handshake, hostname check), the refused one
is in test_client_errors; a server closing a kept-alive connection; a connection refused."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import TransportError
from reconciler.providers.miniappcenter.client import (
    Endpoint,
    MiniAppCenterClient,
    RetryPolicy,
)
from reconciler.transport import netio
from reconciler.transport.http import _tls_context
from tests.fixtures_sandbox import RunningSandbox
from tests.test_client_errors import self_signed_server  # noqa: F401 (a fixture)

TOKEN = "netio-token-12345"
APP = "com.example.netio"


async def _no_sleep(_: float) -> None:
    return None


async def test_a_trusted_tls_server_is_read_through_the_asyncio_backend(
    self_signed_server: tuple[str, list[str]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, served = self_signed_server
    # Trust the fixture's certificate the way a corporate CA is trusted.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    _tls_context.cache_clear()
    connects: list[tuple[str, int]] = []
    real = netio.AsyncioBackend.connect_tcp

    async def spy(self: netio.AsyncioBackend, host: str, port: int, **kwargs: Any) -> Any:
        connects.append((host, port))
        return await real(self, host, port, **kwargs)

    monkeypatch.setattr(netio.AsyncioBackend, "connect_tcp", spy)
    try:
        async with MiniAppCenterClient(Endpoint(url), TOKEN) as client:
            data = await asyncio.wait_for(client.get_miniapp(APP), timeout=10)
            again = await asyncio.wait_for(client.get_miniapp(APP), timeout=10)
    finally:
        _tls_context.cache_clear()
    assert data is not None and again is not None
    assert served == [f"/api/v1/miniapps/{APP}"] * 2
    assert len(connects) >= 1 and connects[0][0] == "127.0.0.1"


async def test_keep_alive_connections_carry_many_requests(sandbox_server: RunningSandbox) -> None:
    sandbox = sandbox_server
    connects = 0
    real = netio.AsyncioBackend.connect_tcp

    async def count(self: netio.AsyncioBackend, *args: Any, **kwargs: Any) -> Any:
        nonlocal connects
        connects += 1
        return await real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(netio.AsyncioBackend, "connect_tcp", count)
        async with MiniAppCenterClient(
            Endpoint(sandbox.base_url), sandbox.token, max_connections=2
        ) as client:
            for _ in range(20):
                assert await client.get_miniapp("com.example.none") is None
    assert client.stats.reads == 20
    assert 1 <= connects <= 2


async def test_a_closed_idle_connection_is_not_reused() -> None:
    # The server answers, then closes the kept-alive connection: the next request must open
    # a new one (httpcore asks the stream whether it is readable) instead of failing.
    accepted = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"data":{"id":"com.example.netio"}}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MiniAppCenterClient(
            Endpoint(f"http://127.0.0.1:{port}/api"), TOKEN, max_connections=1
        ) as client:
            for _ in range(3):
                assert await client.get_miniapp(APP) is not None
                await asyncio.sleep(0.05)  # let the close arrive
            assert client.stats.retries == 0
    finally:
        server.close()
        await server.wait_closed()
    assert accepted == 3


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    retry = RetryPolicy(max_attempts=2, sleep=_no_sleep)
    async with MiniAppCenterClient(
        Endpoint(f"http://127.0.0.1:{port}/api"), TOKEN, retry=retry
    ) as client:
        with pytest.raises(TransportError, match="could not connect") as info:
            await client.get_miniapp(APP)
    assert "gave up after 2 attempts" in str(info.value)
