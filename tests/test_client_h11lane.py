"""The client's HTTP/1.1 lane (``reconciler.transport.h11lane``, D100) over real loopback TCP.

A tiny scripted asyncio server answers each request the way a test asks (framing, keep-alive,
a close half-way); the lane is driven through ``httpx.AsyncClient`` as the client drives it,
and through the Mini App Center client where the client's limits matter. No timing asserts:
a timeout is provoked by a server that never answers, and only its kind is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from reconciler.errors import TransportError
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient, RetryPolicy
from reconciler.transport.config import ClientLimits
from reconciler.transport.h11lane import H11Lane
from reconciler.transport.http import _Lanes, tls_context
from reconciler.transport.urls import UrlJoiner

TOKEN = "lane-test-token-5521"
APP = "com.example.lane"
JSON_BODY = b'{"data":{"id":"com.example.lane","name":"Lane"}}'


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection carried it (1, 2, ...)


Answer = Callable[[Seen, asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection


@dataclass
class Scripted:
    answer: Answer
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _version = line.split(" ")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (item.split(":", 1) for item in lines if item)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, target, headers, body, number)
                self.seen.append(seen)
                if not await self.answer(seen, writer):
                    return
        finally:
            writer.close()


@asynccontextmanager
async def scripted(answer: Answer) -> AsyncIterator[Scripted]:
    server_state = Scripted(answer)
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    try:
        yield server_state
    finally:
        server.close()
        await server.wait_closed()


def _response(status: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *extra]
    if not any(h.lower().startswith(("transfer-encoding", "content-length")) for h in extra):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def ok_json(seen: Seen, writer: asyncio.StreamWriter) -> bool:
    writer.write(_response("200 OK", JSON_BODY))
    await writer.drain()
    return True


def _lane_client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=H11Lane(verify=tls_context(), **kwargs), timeout=5.0)


async def test_a_kept_alive_connection_carries_the_next_requests() -> None:
    async with scripted(ok_json) as server, _lane_client() as client:
        for _ in range(3):
            response = await client.get(server.url + "/api/v1/x")
            assert response.status_code == 200 and response.content == JSON_BODY
    assert [s.connection for s in server.seen] == [1, 1, 1]
    assert server.connections == 1


async def test_a_request_body_is_sent_with_its_length() -> None:
    async with scripted(ok_json) as server, _lane_client() as client:
        await client.post(server.url + "/p", content=b'{"a":1}', headers={"X-Kind": "t"})
    (seen,) = server.seen
    assert (seen.method, seen.target, seen.body) == ("POST", "/p", b'{"a":1}')
    assert seen.headers["content-length"] == "7" and seen.headers["x-kind"] == "t"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"


async def test_connection_close_from_the_server_opens_a_new_connection() -> None:
    async def close_each(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(_response("200 OK", JSON_BODY, "Connection: close"))
        await writer.drain()
        return False

    async with scripted(close_each) as server, _lane_client() as client:
        for _ in range(3):
            assert (await client.get(server.url + "/x")).content == JSON_BODY
    assert [s.connection for s in server.seen] == [1, 2, 3]


async def test_chunked_and_content_length_bodies_are_both_read_whole() -> None:
    async def chunked(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.target == "/chunked":
            writer.write(_response("200 OK", b"", "Transfer-Encoding: chunked"))
            for piece in (JSON_BODY[:10], JSON_BODY[10:]):
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(_response("200 OK", JSON_BODY))
        await writer.drain()
        return True

    async with scripted(chunked) as server, _lane_client() as client:
        first = await client.get(server.url + "/chunked")
        second = await client.get(server.url + "/length")
        third = await client.get(server.url + "/chunked")
    assert first.content == second.content == third.content == JSON_BODY
    assert server.connections == 1  # both framings end cleanly: the connection is kept


async def test_an_answer_not_read_to_its_end_is_never_reused() -> None:
    big = b"x" * 300_000

    async def large(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(_response("200 OK", big if seen.target == "/big" else JSON_BODY))
        await writer.drain()
        return True

    async with scripted(large) as server, _lane_client() as client:
        async with client.stream("GET", server.url + "/big") as response:
            async for _ in response.aiter_raw():
                break  # stop reading: the rest of the body is still on the wire
        assert (await client.get(server.url + "/small")).content == JSON_BODY
    assert [s.connection for s in server.seen] == [1, 2]


async def test_an_oversized_answer_is_refused_and_its_connection_dropped() -> None:
    big = b'{"data":{"id":"' + b"x" * 200_000 + b'"}}'

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(_response("200 OK", big if seen.target.endswith("big") else JSON_BODY))
        await writer.drain()
        return True

    async with scripted(answer) as server:
        client = MiniAppCenterClient(
            Endpoint(server.url + "/api"),
            TOKEN,
            max_connections=1,
            limits=ClientLimits(max_response_bytes=64 * 1024),
            retry=RetryPolicy(max_attempts=1),
        )
        async with client:
            with pytest.raises(TransportError, match="larger than 64 KiB"):
                await client.get_miniapp("com.example.big")
            assert await client.get_miniapp(APP) is not None
    assert [s.connection for s in server.seen] == [1, 2]


async def test_a_server_closing_mid_body_is_a_protocol_error() -> None:
    async def cut(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(_response("200 OK", b"", "Content-Length: 1000") + b"only ten b")
        await writer.drain()
        return False

    async with scripted(cut) as server, _lane_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|closed"):
            await client.get(server.url + "/x")


async def test_a_server_closing_before_answering_is_a_protocol_error() -> None:
    async def hang_up(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        return False

    async with scripted(hang_up) as server, _lane_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.get(server.url + "/x")


async def test_invalid_http_is_a_protocol_error() -> None:
    async def garbage(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        return False

    async with scripted(garbage) as server, _lane_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url + "/x")


async def test_a_silent_server_is_a_read_timeout_and_the_lane_recovers() -> None:
    async def silent_once(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.target == "/silent":
            await asyncio.sleep(30)  # ended by the server's close when the test finishes
            return False
        return await ok_json(seen, writer)

    async with scripted(silent_once) as server, _lane_client() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url + "/silent", timeout=httpx.Timeout(5.0, read=0.1))
        assert (await client.get(server.url + "/after")).content == JSON_BODY
    assert [s.connection for s in server.seen] == [1, 2]


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with scripted(ok_json) as server:
        url = server.url
    async with _lane_client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url + "/x")


async def test_an_idle_connection_past_its_expiry_is_not_reused() -> None:
    async with scripted(ok_json) as server, _lane_client(keepalive_expiry=0.0) as client:
        for _ in range(2):
            assert (await client.get(server.url + "/x")).content == JSON_BODY
    assert [s.connection for s in server.seen] == [1, 2]


async def test_trace_events_tell_connecting_from_sending() -> None:
    events: list[str] = []

    async def trace(name: str, info: Any) -> None:
        events.append(name)

    async with scripted(ok_json) as server, _lane_client() as client:
        for _ in range(2):
            request = client.build_request("POST", server.url + "/x", content=b"{}")
            request.extensions["trace"] = trace
            await client.send(request)
    assert events[:2] == ["connection.connect_tcp.started", "connection.connect_tcp.complete"]
    sends = [e for e in events if e == "http11.send_request_headers.started"]
    assert len(sends) == 2  # the second request reused the connection: no connect events
    assert events.count("connection.connect_tcp.started") == 1


async def test_one_lane_refuses_a_second_request_in_flight() -> None:
    async def slow(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.2)
        return await ok_json(seen, writer)

    async with scripted(slow) as server, _lane_client() as client:
        first = asyncio.create_task(client.get(server.url + "/one"))
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="one request at a time"):
            await client.get(server.url + "/two")
        assert (await first).content == JSON_BODY


async def test_lanes_of_h11_connections_share_the_load_over_real_http() -> None:
    async def ok_after_a_while(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.01)
        return await ok_json(seen, writer)

    lanes = _Lanes(3, lambda: H11Lane(verify=tls_context()))
    async with scripted(ok_after_a_while) as server, httpx.AsyncClient(transport=lanes) as client:

        async def get(i: int) -> bytes:
            response = await client.get(f"{server.url}/r{i}")
            return response.content

        bodies = await asyncio.gather(*(get(i) for i in range(30)))
    assert bodies == [JSON_BODY] * 30
    assert server.connections == 3  # at most one connection per lane, each kept alive


@pytest.mark.parametrize(
    "root",
    ["http://127.0.0.1:8000/api/v1", "https://Mac.Example.test:443/API/v1", "http://[::1]/a%20b/v2"],
)
@pytest.mark.parametrize(
    "path",
    [
        "/miniapps/com.example.shop",
        "/miniapps/com.example.shop/versions/12/compatibility/delete",
        "/miniapps/a%2Fb/attributes/x~y",
        "/miniapps/a:b@c!$&'()*+,;=",
        "/miniapps/./x",  # dot segments: httpx drops them, so the full parse handles these
        "/miniapps/..",
        "/q?x=1",  # a query or a fragment: full parse
        "/frag#x",
        "/a b",  # needs escaping: full parse
        "/%zz",  # an invalid escape: full parse (httpx escapes the '%')
        "",
    ],
)
def test_the_url_shortcut_gives_exactly_httpx_s_url(root: str, path: str) -> None:
    # UrlJoiner skips httpx's parse for paths it would leave as they are (D100); any
    # difference here would send a request somewhere else than httpx would.
    joined = UrlJoiner(root)(path)
    parsed = httpx.URL(root + path)
    assert joined == parsed
    assert str(joined) == str(parsed) and joined.raw_path == parsed.raw_path
    assert (joined.scheme, joined.host, joined.port) == (parsed.scheme, parsed.host, parsed.port)
