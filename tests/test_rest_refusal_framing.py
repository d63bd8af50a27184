"""A 401 is classified the same way whatever its framing (chunked, no Content-Length, the
body in small pieces), and at most 64 KiB of it is read.

A raw HTTP/1.1 server on loopback, in the test's event loop, answers one request per
connection: tokens as simplejwt does, the first read with a 401 ``token_not_valid`` framed
as the test asks, the replay with an empty page. respx cannot show this: it hands the client
a whole body, never a chunked stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from reconciler.errors import ReconcilerError
from reconciler.providers.rest.client import RestClient
from reconciler.providers.rest.config import ApiKeyHeader, JwtAuth, RestEndpoint
from tests.fixtures_tenant import credentials

REFUSAL = json.dumps({
    "detail": "Given token not valid for any token type",
    "code": "token_not_valid",
    "messages": [{"token_class": "AccessToken", "token_type": "access",
                  "message": "Token is invalid or expired"}],
}).encode()  # fmt: skip
PAGE = b'{"count": 0, "next": null, "previous": null, "results": []}'
KIB = 1024


def _jwt(seconds: int) -> str:
    now = int(time.time())
    claims = {"token_type": "access", "exp": now + seconds, "iat": now, "jti": "x"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2lnbmF0dXJl"


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


@dataclass
class Server:
    framing: str  # "chunked", "close" (no length: the body ends with the connection), "length"
    padding: int = 0  # spaces before the JSON (still valid JSON)
    refusals: int = 1  # how many reads are refused before one is served
    reads: int = 0
    refreshes: int = 0
    refusal_bytes_sent: int = 0
    base_url: str = field(default="")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            _method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            length = 0
            for line in head.decode().split("\r\n")[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            if path == "/api/token/":
                await self._send(writer, 200, json.dumps(
                    {"access": _jwt(300), "refresh": "r" * 40}).encode())  # fmt: skip
            elif path == "/api/token/refresh/":
                self.refreshes += 1
                await self._send(writer, 200, json.dumps({"access": _jwt(300)}).encode())
            elif self.reads < self.refusals:
                self.reads += 1
                await self._refuse(writer)
            else:
                self.reads += 1
                await self._send(writer, 200, PAGE)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client stopped reading: what a bounded reader does
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d"
                     b"\r\nConnection: close\r\n\r\n%s" % (status, len(body), body))  # fmt: skip
        await writer.drain()

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        body = b" " * self.padding + REFUSAL
        head = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
        head += b'WWW-Authenticate: Bearer realm="api"\r\n'
        if self.framing == "length":
            head += b"Content-Length: %d\r\n" % len(body)
        elif self.framing == "chunked":
            head += b"Transfer-Encoding: chunked\r\n"
        writer.write(head + b"Connection: close\r\n\r\n")
        for piece in _pieces(body, 7 if len(body) < 4 * KIB else 16 * KIB):
            frame = b"%x\r\n%s\r\n" % (len(piece), piece) if self.framing == "chunked" else piece
            writer.write(frame)
            self.refusal_bytes_sent += len(piece)
            await writer.drain()
        if self.framing == "chunked":
            writer.write(b"0\r\n\r\n")
            await writer.drain()


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[Server]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listening.close()


def _endpoint(base_url: str) -> RestEndpoint:
    return RestEndpoint(
        name="shop", base_url=base_url,
        auth=JwtAuth("/api/token/", "/api/token/refresh/", "T_USER", "T_PASSWORD"),
        api_key=ApiKeyHeader("Api-Key", "T_KEY"), file="reconciler.yaml", line=2,
    )  # fmt: skip


@pytest.mark.parametrize("framing", ["chunked", "close", "length"])
@pytest.mark.parametrize("padding", [0, 60 * KIB], ids=["small", "60KiB"])
async def test_a_token_not_valid_401_is_a_refusal_whatever_its_framing(
    framing: str, padding: int
) -> None:
    server = Server(framing, padding)
    async with serving(server), RestClient(_endpoint(server.base_url), credentials()) as client:
        listed = await client.list_objects("/api/categories/")
        replays = client.auth.replays
    assert listed == []
    assert (server.reads, server.refreshes, replays) == (2, 1, 1)


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_at_most_64_kib_of_a_refusal_is_read(framing: str) -> None:
    # 8 MiB of padding: the refusal cannot be told within 64 KiB, so it is not replayed (a
    # plain 401), and the client stops reading; the server is held back by what it could
    # not send (a few socket buffers on loopback, never the 8 MiB).
    server = Server(framing, padding=8 * KIB * KIB, refusals=10)
    async with serving(server), RestClient(_endpoint(server.base_url), credentials()) as client:
        with pytest.raises(ReconcilerError) as caught:
            await client.list_objects("/api/categories/")
        replays = client.auth.replays
    assert "401" in str(caught.value) and len(str(caught.value).splitlines()) == 1
    assert replays == 0 and server.refreshes == 0
    assert server.refusal_bytes_sent < 8 * KIB * KIB
