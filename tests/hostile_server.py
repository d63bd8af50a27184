"""A hostile HTTP/1.1 server on 127.0.0.1, in the test's own event loop (issue 11 §6).

Each connection reads one request and answers it badly, in the chosen :data:`Mode`. Every
body is generated lazily (nothing is held in memory but one chunk), and the server is bounded
in time and bytes per connection: it stops itself even if a client never gives up, so a broken
client makes a test fail, never hang the suite.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

Mode = Literal[
    "slow_headers",  # the status line and headers, one byte at a time
    "slow_body",  # a 200 whose body comes one byte at a time
    "endless_chunked",  # a 200 with a chunked body that never ends
    "huge_error",  # a 500 with hundreds of MB of body
    "gzip_bomb",  # a 200, Content-Encoding: gzip, a few KB that inflate to GBs
    "gzip_bomb_error",  # the same bomb in a 400 answer
    "garbage_status",  # not an HTTP status line
    "endless_headers",  # header lines that never end
    "long_status",  # a 40 KB invalid status line of terminal escape sequences
    "close_mid_body",  # Content-Length: 1000, 10 bytes, then close
    "endless_informational",  # "103 Early Hints" interim answers, never the real one
    "nesting_bomb",  # a 200 whose JSON body is 100,000 nested arrays
    "ok",  # a well-formed small JSON answer (the control)
    "huge_body",  # a 200 with ``body_size`` bytes of body
    "echo",  # ``echo_status`` answering the whole request back (see _echo)
]

CHUNK = 64 * 1024
ZEROS = bytes(CHUNK * 16)  # 1 MiB of zeros: the bomb's payload, compressed on the fly


@dataclass
class HostileServer:
    mode: Mode
    drip_interval: float = 0.02  # seconds between bytes when dripping
    max_seconds: float = 20.0  # per connection: the server gives up on its own
    max_bytes: int = 4 * 1024**3  # per connection: what the answer would total if read fully
    body_size: int = 800 * 1024**2  # huge_error, huge_body
    echo_status: int = 401  # echo: the status of every answer but a granted login
    grant_logins: bool = False  # echo: a POST carrying "password" gets a session (_grant)
    requests: int = 0
    bytes_sent: int = 0
    issued: list[str] = field(default_factory=list)  # secrets _grant handed out
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with asyncio.timeout(self.max_seconds):
                await self._serve(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # our own shutdown (asyncio.streams would log a cancelled handler as an error)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")  # limited by the StreamReader (64 KiB)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await reader.readexactly(length) if length else b""
        self.requests += 1
        if self.mode == "echo":
            await self._echo(writer, head, body)
            return
        await getattr(self, "_" + self.mode)(writer)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()  # back-pressure: we only produce what the client reads
        await asyncio.sleep(0)  # drain() does not yield below the high-water mark: let the
        # client (in the same event loop) run between chunks

    async def _drip(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        for byte in data:
            await self._send(writer, bytes([byte]))
            await asyncio.sleep(self.drip_interval)

    async def _ok(self, writer: asyncio.StreamWriter) -> None:
        body = b'{"data": {"id": "com.example.shop", "name": "Shop"}}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        await self._send(writer, head.encode() + b"\r\n\r\n" + body)

    async def _endless_informational(self, writer: asyncio.StreamWriter) -> None:
        while self.bytes_sent < self.max_bytes:
            await self._send(writer, b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            await asyncio.sleep(self.drip_interval)

    async def _nesting_bomb(self, writer: asyncio.StreamWriter) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        await self._send(writer, head.encode() + b"\r\n\r\n" + body)

    async def _slow_headers(self, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: a\r\n" * 10_000
        await self._drip(writer, head)

    async def _slow_body(self, writer: asyncio.StreamWriter) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        )
        await self._drip(writer, b'{"data": ' + b" " * 99_990)

    async def _endless_chunked(self, writer: asyncio.StreamWriter) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
        )
        chunk = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
        while self.bytes_sent < self.max_bytes:
            await self._send(writer, chunk)

    async def _huge_body(self, writer: asyncio.StreamWriter) -> None:
        size = self.body_size
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % size,
        )
        block = b" " * CHUNK
        for _ in range(size // CHUNK):
            await self._send(writer, block)

    async def _echo(self, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        """The request back, as a server with a debug page or a careless error handler
        would: headers and body as JSON (so JSON-escaped), the body URL-encoded and base64'd
        too. With ``grant_logins`` a POST whose body names a password is a login: it gets a
        session in every common form (session and CSRF cookies, a JWT access/refresh pair),
        so that the next requests carry them and their echo must be masked too."""
        if self.grant_logins and head.startswith(b"POST ") and b"password" in body:
            await self._grant(writer)
            return
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip()] = value.strip()
        text = body.decode("utf-8", "replace")
        echoed = {
            "detail": f"bad request: {lines[0]} {text}",
            "request": lines[0],
            "headers": headers,
            "body": text,
            "form": quote(text),
            "encoded": base64.b64encode(body).decode(),
        }
        answer = json.dumps(echoed).encode()
        reason = {400: "Bad Request", 401: "Unauthorized"}.get(self.echo_status, "Error")
        await self._send(
            writer,
            f"HTTP/1.1 {self.echo_status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer,
        )

    async def _grant(self, writer: asyncio.StreamWriter) -> None:
        now = int(time.time())
        cookie, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        access, refresh = _jwt(now, "access"), _jwt(now, "refresh")
        self.issued += [cookie, csrf, access, refresh]
        answer = json.dumps({"access": access, "refresh": refresh}).encode()
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Set-Cookie: AtmoAuthToken_hostile=" + cookie.encode() + b"; Max-Age=3600\r\n"
            b"Set-Cookie: Csrf-Token_hostile=" + csrf.encode() + b"; Max-Age=3600\r\n"
            b"Content-Length: %d\r\n\r\n" % len(answer) + answer,
        )

    async def _huge_error(self, writer: asyncio.StreamWriter) -> None:
        size = self.body_size
        await self._send(
            writer,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % size,
        )
        block = b"x" * CHUNK
        for _ in range(size // CHUNK):
            await self._send(writer, block)

    async def _bomb(self, writer: asyncio.StreamWriter, status: bytes) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        inflated = 0
        while inflated < self.max_bytes:  # 4 GiB inflated if the client read it all
            packed = packer.compress(ZEROS)
            inflated += len(ZEROS)
            if packed:
                await self._send(writer, b"%x\r\n" % len(packed) + packed + b"\r\n")
        tail = packer.flush()
        await self._send(writer, b"%x\r\n" % len(tail) + tail + b"\r\n0\r\n\r\n")

    async def _gzip_bomb(self, writer: asyncio.StreamWriter) -> None:
        await self._bomb(writer, b"200 OK")

    async def _gzip_bomb_error(self, writer: asyncio.StreamWriter) -> None:
        await self._bomb(writer, b"400 Bad Request")

    async def _garbage_status(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, b"HTTP/1.1 OK-ish \x00\xff\r\nwhat: ever\r\n\r\n{}")

    async def _long_status(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, b"HTTP/1.1 \x1b[2J" + b"\x1b[2J" * 10_000 + b"\r\n\r\n{}")

    async def _endless_headers(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, b"HTTP/1.1 200 OK\r\n")
        line = b"X-More: " + b"y" * 1000 + b"\r\n"
        while self.bytes_sent < self.max_bytes:
            await self._send(writer, line)

    async def _close_mid_body(self, writer: asyncio.StreamWriter) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"data": {',
        )


def _jwt(now: int, kind: str) -> str:
    """An unsigned-looking but well-formed JWT (clients read ``exp``/``iat``, never verify)."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"token_type": kind, "iat": now, "exp": now + 3600, "jti": secrets.token_hex(16)}
    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


@contextlib.contextmanager
def hostile_server_thread(mode: Mode, **options: object) -> Iterator[HostileServer]:
    """:func:`hostile_server` on its own event loop in a thread: for a client in another
    process (the CLI run as a user runs it). Read ``requests``/``issued`` after the run."""
    ready = threading.Event()
    holder: list[HostileServer] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with hostile_server(mode, **options) as state:  # type: ignore[arg-type]
            holder.append(state)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the hostile server did not start")
    try:
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@contextlib.asynccontextmanager
async def hostile_server(mode: Mode, **options: float) -> AsyncIterator[HostileServer]:
    """Serve ``mode`` on an ephemeral loopback port; on exit every connection is cut."""
    state = HostileServer(mode, **options)  # type: ignore[arg-type]
    server = await asyncio.start_server(state._handle, "127.0.0.1", 0)
    state._server = server
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(state._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=5)
