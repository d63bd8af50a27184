"""One keep-alive HTTP/1.1 connection ("lane"), framed and parsed by h11, on asyncio sockets.

Why not httpx's own transport over httpcore (D100): under the lanes each connection carries
one request at a time, so httpcore's pool (its assignment pass, locks, shielded cancel scopes,
per-request trace objects) is all overhead; with the request and response mapping around it,
it was over a third of the client's CPU per request (profiled in bench/). This lane does the
same work the short way: h11 writes and parses the messages, the sockets are
:mod:`reconciler.transport.netio`'s (connect, TLS with the caller's verifying context).

Same contract as ``httpx.AsyncHTTPTransport`` for what the client relies on:

* errors are httpx's types, the original kept as the cause: ``ConnectError`` /
  ``ConnectTimeout`` while connecting or in the TLS handshake (an ``ssl.SSLError`` stays in
  the chain), ``WriteError`` / ``WriteTimeout``, ``ReadError`` / ``ReadTimeout``,
  ``RemoteProtocolError`` for anything that is not valid HTTP/1.1 (h11's verdict) or a
  connection closed before the answer is complete;
* timeouts from the request's ``timeout`` extension (connect, read, write; per operation);
* the ``trace`` extension gets httpcore's event names (``connection.connect_tcp.started``,
  ``http11.send_request_headers.started``, ...), which the client uses to tell a write that
  never left from one that may have been sent; with DEBUG logging on, the same events are
  logged to httpcore's loggers (``httpcore.connection``, ``httpcore.http11``), which the
  token redaction filter covers;
* the body is streamed: the caller reads what it wants (``read_body`` stops at its cap) and
  closes; a connection whose answer was not read to its end is closed, never reused;
* a kept-alive connection is reused only if it is idle, for the same origin, has received
  nothing since (data or a close would mean the server is done with it) and has been idle
  less than ``keepalive_expiry`` (httpx's default, 5 s).

Not supported, as before this module: HTTP/2, proxies (the lanes never used the environment's
proxies; see D100), Unix sockets.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

import h11
import httpcore
import httpx

from reconciler.transport.netio import AsyncioBackend, AsyncioStream

_READ_SIZE: Final = 64 * 1024
# The status line and headers h11 may buffer before refusing them (httpcore's value).
_MAX_HEAD: Final = 100 * 1024
_KEEPALIVE_EXPIRY: Final = 5.0
_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}

_CONNECTION_LOG: Final = logging.getLogger("httpcore.connection")
_HTTP11_LOG: Final = logging.getLogger("httpcore.http11")

Trace = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class _Events:
    """httpcore's trace events for one request: to the ``trace`` extension and, at DEBUG, to
    httpcore's loggers. Built only when someone listens (the common case pays nothing)."""

    __slots__ = ("_trace",)

    def __init__(self, trace: Trace | None) -> None:
        self._trace = trace

    async def emit(self, logger: logging.Logger, name: str, info: Mapping[str, Any]) -> None:
        if self._trace is not None:
            await self._trace(f"{logger.name.rsplit('.', 1)[-1]}.{name}", info)
        if logger.isEnabledFor(logging.DEBUG):
            value = info.get("return_value", info) if info else None
            if value is None or value == {}:
                logger.debug(name)
            else:
                logger.debug("%s %s", name, " ".join(f"{k}={v!r}" for k, v in info.items()))


def _events_for(request: httpx.Request) -> _Events | None:
    trace = request.extensions.get("trace")
    if trace is None and not _HTTP11_LOG.isEnabledFor(logging.DEBUG):
        return None
    return _Events(trace)


# h11 and the socket layer speak their own exception types; the client classifies httpx's.
_NETWORK_ERRORS: Final[dict[type[Exception], type[httpx.TransportError]]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.WriteError: httpx.WriteError,
}


def _as_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    kind = _NETWORK_ERRORS.get(type(exc), httpx.NetworkError)
    return kind(str(exc) or type(exc).__name__, request=request)


class H11Lane(httpx.AsyncBaseTransport):
    """One connection at a time, one request at a time (the lanes guarantee the latter)."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext,
        backend: AsyncioBackend | None = None,
        keepalive_expiry: float = _KEEPALIVE_EXPIRY,
    ) -> None:
        self._ssl = verify
        self._backend = backend or AsyncioBackend()
        self._keepalive_expiry = keepalive_expiry
        self._stream: AsyncioStream | None = None
        self._h11: h11.Connection | None = None
        self._origin: tuple[bytes, str, int] | None = None
        self._idle_since = 0.0
        self._busy = False

    # --- the connection ------------------------------------------------------------------

    def _reusable(self, origin: tuple[bytes, str, int]) -> bool:
        conn, stream = self._h11, self._stream
        if conn is None or stream is None or origin != self._origin:
            return False
        if conn.our_state is not h11.IDLE or conn.their_state is not h11.IDLE:
            return False
        if stream.get_extra_info("is_readable"):  # data or a close arrived while idle
            return False
        loop = asyncio.get_running_loop()
        return loop.time() - self._idle_since < self._keepalive_expiry

    async def _connect(
        self,
        origin: tuple[bytes, str, int],
        timeout: float | None,
        request: httpx.Request,
        events: _Events | None,
    ) -> None:
        scheme, host, port = origin
        if events is not None:
            info = {"host": host, "port": port, "local_address": None, "timeout": timeout}
            await events.emit(_CONNECTION_LOG, "connect_tcp.started", info)
        try:
            stream = await self._backend.connect_tcp(host, port, timeout=timeout)
            if scheme == b"https":
                if events is not None:
                    info = {"server_hostname": host, "timeout": timeout}
                    await events.emit(_CONNECTION_LOG, "start_tls.started", info)
                stream = await stream.start_tls(self._ssl, server_hostname=host, timeout=timeout)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            raise _as_httpx(exc, request) from exc
        assert isinstance(stream, AsyncioStream)
        if events is not None:
            await events.emit(_CONNECTION_LOG, "connect_tcp.complete", {"return_value": stream})
        self._stream = stream
        self._origin = origin
        self._h11 = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)

    def _drop(self) -> None:
        """Forget the connection (closed, unusable, or in an unknown state)."""
        stream, self._stream, self._h11, self._origin = self._stream, None, None, None
        if stream is not None:
            stream.close_now()

    async def _read(self, request: httpx.Request, timeout: float | None) -> bytes:
        stream = self._stream
        assert stream is not None
        try:
            return await stream.read(_READ_SIZE, timeout)
        except (httpcore.ReadError, httpcore.ReadTimeout) as exc:
            raise _as_httpx(exc, request) from exc

    def _next_event(self, request: httpx.Request) -> Any:
        conn = self._h11
        assert conn is not None
        try:
            return conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc

    # --- one exchange ----------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._busy:
            raise RuntimeError("an H11Lane carries one request at a time")
        self._busy = True
        try:
            return await self._exchange(request)
        except BaseException:
            # Cancelled, timed out or failed half-way: the connection's state is unknown.
            self._busy = False
            self._drop()
            raise

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"the URL scheme must be http or https, not {url.scheme!r}", request=request
            )
        origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout") or {}
        events = _events_for(request)
        if not self._reusable(origin):
            self._drop()
            await self._connect(origin, timeouts.get("connect"), request, events)
        conn, stream = self._h11, self._stream
        assert conn is not None and stream is not None

        if events is not None:
            await events.emit(_HTTP11_LOG, "send_request_headers.started", {"request": request})
        try:
            head = conn.send(
                h11.Request(method=request.method, target=url.raw_path, headers=request.headers.raw)
            )
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        assert head is not None
        await self._write(request, head, timeouts.get("write"))
        await self._send_body(request, conn, timeouts.get("write"))
        if events is not None:
            await events.emit(_HTTP11_LOG, "send_request_body.complete", {})

        read_timeout = timeouts.get("read")
        while True:
            event = self._next_event(request)
            if event is h11.NEED_DATA:
                data = await self._read(request, read_timeout)
                if not data and conn.their_state is h11.SEND_RESPONSE:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response.", request=request
                    )
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            # InformationalResponse (1xx): wait for the real answer (the deadline bounds it)
        headers = event.headers.raw_items()
        if events is not None:
            answer = (b"HTTP/" + event.http_version, event.status_code, event.reason, headers)
            await events.emit(
                _HTTP11_LOG, "receive_response_headers.complete", {"return_value": answer}
            )
        return httpx.Response(
            event.status_code,
            headers=headers,
            stream=LaneBody(self, request, read_timeout),
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
            },
        )

    async def _send_body(
        self, request: httpx.Request, conn: h11.Connection, timeout: float | None
    ) -> None:
        try:
            content = request.content
        except httpx.RequestNotRead:
            async for chunk in request.stream:  # type: ignore[union-attr]
                if chunk:
                    data = conn.send(h11.Data(data=chunk))
                    assert data is not None
                    await self._write(request, data, timeout)
        else:
            if content:
                data = conn.send(h11.Data(data=content))
                assert data is not None
                await self._write(request, data, timeout)
        end = conn.send(h11.EndOfMessage())
        if end:
            await self._write(request, end, timeout)

    async def _write(self, request: httpx.Request, data: bytes, timeout: float | None) -> None:
        stream = self._stream
        assert stream is not None
        try:
            await stream.write(data, timeout)
        except (httpcore.WriteError, httpcore.WriteTimeout) as exc:
            raise _as_httpx(exc, request) from exc

    def _release(self, complete: bool) -> None:
        """The response was closed: keep the connection for the next request if the answer
        was read to its end and both sides may go on; otherwise close it."""
        self._busy = False
        conn = self._h11
        if conn is None:
            return
        if complete and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                self._drop()
                return
            self._idle_since = asyncio.get_running_loop().time()
            return
        self._drop()

    async def aclose(self) -> None:
        self._drop()


class LaneBody(httpx.AsyncByteStream):
    """A response body read from the lane as the caller iterates; closing it (exactly once)
    releases the lane, then runs the callback the pool above registered (``when_closed``:
    one generator layer less per chunk than wrapping the stream)."""

    def __init__(self, lane: H11Lane, request: httpx.Request, timeout: float | None) -> None:
        self._lane = lane
        self._request = request
        self._timeout = timeout
        self._complete = False
        self._closed = False
        self._then: Callable[[], None] | None = None

    def when_closed(self, callback: Callable[[], None]) -> None:
        self._then = callback

    async def __aiter__(self) -> AsyncIterator[bytes]:
        lane, request = self._lane, self._request
        conn = lane._h11
        if conn is None or self._complete or self._closed:
            return
        try:
            while True:
                event = lane._next_event(request)
                if event is h11.NEED_DATA:
                    conn.receive_data(await lane._read(request, self._timeout))
                elif type(event) is h11.Data:
                    data = event.data
                    yield data if type(data) is bytes else bytes(data)
                elif type(event) is h11.EndOfMessage:
                    self._complete = True
                    return
                elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - h11 raises
                    raise httpx.RemoteProtocolError("connection closed mid-body", request=request)
        except BaseException:
            self._close()  # no await here: this may run as the generator is finalised
            raise

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._lane._release(self._complete)
            finally:
                then, self._then = self._then, None
                if then is not None:
                    then()
