"""The client's default transport: one request per connection ("lane") at a time.

httpcore's own pool bounced most concurrent requests with ConnectionNotAvailable (see
``reconciler.transport.http._Lanes``); these tests pin the lanes' contract and that nothing
bounces over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import httpx
import pytest

from reconciler.errors import TransportError
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient, RetryPolicy
from reconciler.transport.http import _Lanes
from tests.fixtures_sandbox import RunningSandbox


class _Gate:
    """Inner lanes whose answers wait for ``open``; counts requests in flight."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.in_flight = 0
        self.most = 0
        self.lanes = 0

    def make(self) -> httpx.AsyncBaseTransport:
        self.lanes += 1

        async def handler(request: httpx.Request) -> httpx.Response:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            try:
                await self.open.wait()
                if request.url.path == "/boom":
                    raise httpx.ReadError("boom", request=request)
                return httpx.Response(200, text="ok")
            finally:
                self.in_flight -= 1

        return httpx.MockTransport(handler)


async def _get(client: httpx.AsyncClient, url: str) -> str:
    # Closed as ApiSession.call closes it: that gives the lane back.
    response = await client.get(url)
    await response.aclose()
    return response.text


async def test_lanes_bound_concurrency_and_are_reused() -> None:
    gate = _Gate()
    async with httpx.AsyncClient(transport=_Lanes(3, gate.make)) as client:
        tasks = [asyncio.create_task(_get(client, "http://x/")) for _ in range(10)]
        await asyncio.sleep(0.01)
        assert gate.in_flight == 3
        gate.open.set()
        texts = await asyncio.gather(*tasks)
    assert texts == ["ok"] * 10
    assert gate.most == 3
    assert gate.lanes == 3  # made lazily, then reused


async def test_a_failed_request_gives_its_lane_back() -> None:
    gate = _Gate()
    gate.open.set()
    async with httpx.AsyncClient(transport=_Lanes(1, gate.make)) as client:
        with pytest.raises(httpx.ReadError):
            await client.get("http://x/boom")
        assert await _get(client, "http://x/") == "ok"


async def test_no_free_lane_within_the_pool_timeout_is_a_pool_timeout() -> None:
    gate = _Gate()
    timeout = httpx.Timeout(5.0, pool=0.05)
    async with httpx.AsyncClient(transport=_Lanes(1, gate.make), timeout=timeout) as client:
        first = asyncio.create_task(_get(client, "http://x/"))
        await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("http://x/")
        gate.open.set()
        assert await first == "ok"


async def test_pool_timeout_is_a_retryable_connect_failure_for_the_client() -> None:
    gate = _Gate()

    async def instant(_delay: float) -> None:
        return None

    client = MiniAppCenterClient(
        Endpoint(base_url="http://127.0.0.1/api"),
        "token",
        transport=_Lanes(1, gate.make),
        timeout=0.05,
        retry=RetryPolicy(max_attempts=2, sleep=instant, jitter=False),
    )
    async with client:
        first = asyncio.create_task(client.get_miniapp("com.example.one"))
        await asyncio.sleep(0.01)
        with pytest.raises(TransportError, match="could not connect"):
            await client.get_miniapp("com.example.two")
        gate.open.set()
        first.cancel()


async def test_concurrent_reads_over_real_http_never_bounce(
    sandbox_server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: RunningSandbox = sandbox_server_factory(latency_ms=5)
    bounced = 0
    original = httpcore.AsyncHTTP11Connection.handle_async_request

    async def counting(self: Any, request: Any) -> Any:
        nonlocal bounced
        try:
            return await original(self, request)
        except httpcore.ConnectionNotAvailable:
            bounced += 1
            raise

    monkeypatch.setattr(httpcore.AsyncHTTP11Connection, "handle_async_request", counting)
    client = MiniAppCenterClient(
        Endpoint(base_url=server.base_url), server.token, max_connections=4
    )
    async with client:
        found = await asyncio.gather(
            *(client.get_miniapp(f"com.example.app{i}") for i in range(60))
        )
    assert found == [None] * 60
    assert client.stats.reads == 60 and client.stats.retries == 0
    assert bounced == 0


async def test_cookies_a_server_sets_are_still_sent_back() -> None:
    # The jar skips answers without Set-Cookie (CPU); one that sets a cookie still counts.
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        if len(seen) == 2:
            return httpx.Response(200, json={"data": {"id": "a"}}, headers={"Set-Cookie": "s=1"})
        return httpx.Response(200, json={"data": {"id": "a"}})

    client = MiniAppCenterClient(
        Endpoint("http://127.0.0.1/api"), "lanes-token-1234", transport=httpx.MockTransport(handler)
    )
    async with client:
        for _ in range(3):
            await client.get_miniapp("com.example.a")
    assert seen == [None, None, "s=1"]
