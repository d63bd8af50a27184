"""Hostile or broken servers (issue 11 §6): a real socket server on loopback that drips,
floods, bombs and lies. The client must end every call with a clear error, within its
per-request deadline, holding a bounded amount of memory. Bounds are asserted on memory
(tracemalloc) and on bytes read, never on wall time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli.main import main
from reconciler.errors import (
    AmbiguousWriteError,
    ApiError,
    ConfigError,
    ReconcilerError,
    TransportError,
)
from reconciler.providers.miniappcenter.client import (
    Endpoint,
    MiniAppCenterClient,
    MiniAppCreate,
    RetryPolicy,
)
from reconciler.transport.config import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_DEADLINE,
    ClientLimits,
    limits_from_env,
)

from .hostile_server import HostileServer, Mode, hostile_server

TOKEN = "hostile-test-token-90ff"
APP = "com.example.shop"
CAP = 1024 * 1024  # the response cap these tests configure (the default is 32 MiB)
LIMITS = ClientLimits(request_deadline=1.0, max_response_bytes=CAP)
# Peak traced memory of one call (server included): measured 0.3-2.5 MiB with the 1 MiB cap;
# without the fixes, 1-2.4 GiB (bounded only by the test server's own limits).
MEMORY_BOUND = 12 * 1024 * 1024


async def _no_sleep(_delay: float) -> None:
    return None


def client_for(server: HostileServer, **retry: Any) -> MiniAppCenterClient:
    policy = RetryPolicy(**{"max_attempts": 1, "sleep": _no_sleep, **retry})
    # a per-read timeout far above the deadline: only the overall deadline can stop a drip
    return MiniAppCenterClient(
        Endpoint(server.base_url), TOKEN, retry=policy, timeout=60.0, limits=LIMITS
    )


async def peak_memory(call: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        await call()
    except BaseException as exc:  # handed back to the test
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


READ_EXPECTATIONS: dict[str, tuple[type[ReconcilerError], str]] = {
    "slow_headers": (TransportError, "too slow"),
    "slow_body": (TransportError, "too slow"),
    "endless_chunked": (TransportError, "larger than"),
    "gzip_bomb": (TransportError, "larger than"),
    "huge_error": (ApiError, "HTTP 500"),
    "gzip_bomb_error": (ApiError, "HTTP 400"),
    "garbage_status": (TransportError, "no valid HTTP answer"),
    "endless_headers": (TransportError, "no valid HTTP answer"),
    "long_status": (TransportError, "no valid HTTP answer"),
    "close_mid_body": (TransportError, "no complete answer"),
    "nesting_bomb": (ApiError, "unexpected response body"),
    "endless_informational": (TransportError, "too slow"),
}


@pytest.mark.parametrize("mode", sorted(READ_EXPECTATIONS))
async def test_a_read_from_a_hostile_server_ends_in_a_clear_bounded_error(mode: Mode) -> None:
    kind, words = READ_EXPECTATIONS[mode]
    async with hostile_server(mode) as server, client_for(server) as client:
        error, peak = await peak_memory(lambda: client.get_miniapp(APP))
    assert isinstance(error, kind), repr(error)
    message = str(error)
    assert words in message and f"/miniapps/{APP}" in message
    assert len(message) < 3000 and TOKEN not in message and "\x1b" not in message
    assert peak < MEMORY_BOUND, f"peak {peak:,} bytes"
    # what the server got to send is bounded by what we read: we stop, we do not drain
    assert server.bytes_sent < 64 * 1024 * 1024


async def test_the_too_slow_message_names_the_deadline_and_its_setting() -> None:
    async with hostile_server("slow_body") as server, client_for(server) as client:
        with pytest.raises(TransportError) as caught:
            await client.get_miniapp(APP)
    assert "1s" in str(caught.value) and "RECONCILER_REQUEST_DEADLINE" in str(caught.value)


async def test_the_size_message_names_the_cap_and_its_setting() -> None:
    async with hostile_server("gzip_bomb") as server, client_for(server) as client:
        with pytest.raises(TransportError) as caught:
            await client.get_miniapp(APP)
    assert "1 MiB" in str(caught.value) and "RECONCILER_MAX_RESPONSE_BYTES" in str(caught.value)


async def test_a_control_answer_from_the_same_server_works() -> None:
    async with hostile_server("ok") as server, client_for(server) as client:
        app = await client.get_miniapp(APP)
    assert app is not None and app.name == "Shop"


@pytest.mark.parametrize(
    "mode",
    ["slow_headers", "slow_body", "gzip_bomb", "garbage_status", "close_mid_body", "huge_error"],
)
async def test_a_write_cut_by_a_hostile_answer_is_ambiguous_and_not_retried(mode: Mode) -> None:
    async with hostile_server(mode) as server, client_for(server, max_attempts=5) as client:
        error, peak = await peak_memory(
            lambda: client.create_miniapp(MiniAppCreate(id=APP, name="Shop"))
        )
    assert isinstance(error, AmbiguousWriteError), repr(error)
    assert "may or may not have happened" in str(error)
    assert server.requests == 1  # never retried blindly
    assert peak < MEMORY_BOUND


async def test_reads_are_retried_within_the_overall_deadline() -> None:
    async with hostile_server("slow_body") as server:
        client = client_for(server, max_attempts=10, deadline=2.5, sleep=asyncio.sleep,
                            base_delay=0.01, max_delay=0.01)  # fmt: skip
        async with client:
            with pytest.raises(TransportError) as caught:
                await client.get_miniapp(APP)
    # 1 s per attempt inside a 2.5 s budget: retried, but far fewer than max_attempts
    assert 2 <= server.requests <= 4
    assert "gave up" in str(caught.value)


async def test_an_error_body_keeps_only_a_bounded_excerpt() -> None:
    async with hostile_server("huge_error") as server, client_for(server) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_miniapp(APP)
    assert caught.value.status == 500
    assert len(caught.value.text) < 4000 and caught.value.text.startswith("xxx")


# --- configuration -----------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    limits = ClientLimits()
    assert limits.request_deadline == DEFAULT_REQUEST_DEADLINE == 120.0
    assert limits.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 32 * 1024 * 1024
    assert limits_from_env({}) == limits


def test_limits_come_from_the_environment() -> None:
    env = {"RECONCILER_REQUEST_DEADLINE": "7.5", "RECONCILER_MAX_RESPONSE_BYTES": "1048576"}
    assert limits_from_env(env) == ClientLimits(request_deadline=7.5, max_response_bytes=1 << 20)


def test_the_older_limit_names_are_still_read_and_the_engines_win() -> None:
    older = {"MAC_REQUEST_DEADLINE": "7.5", "MAC_MAX_RESPONSE_BYTES": "1048576"}
    assert limits_from_env(older) == ClientLimits(request_deadline=7.5, max_response_bytes=1 << 20)
    both = {**older, "RECONCILER_REQUEST_DEADLINE": "3", "RECONCILER_MAX_RESPONSE_BYTES": "2048"}
    assert limits_from_env(both) == ClientLimits(request_deadline=3.0, max_response_bytes=2048)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAC_REQUEST_DEADLINE", "0"),
        ("MAC_REQUEST_DEADLINE", "-1"),
        ("MAC_REQUEST_DEADLINE", "soon"),
        ("MAC_REQUEST_DEADLINE", "nan"),
        ("MAC_REQUEST_DEADLINE", "inf"),
        ("MAC_MAX_RESPONSE_BYTES", "1.5"),
        ("MAC_MAX_RESPONSE_BYTES", "0"),
        ("MAC_MAX_RESPONSE_BYTES", "lots"),
        ("RECONCILER_REQUEST_DEADLINE", "soon"),
        ("RECONCILER_MAX_RESPONSE_BYTES", "0"),
    ],
)
def test_bad_limits_are_config_errors_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        limits_from_env({name: value})


# --- the command line --------------------------------------------------------------------


@contextlib.contextmanager
def served_in_a_thread(mode: Mode) -> Iterator[HostileServer]:
    """The hostile server on its own loop in a thread, for a CLI that runs its own loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[HostileServer] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with hostile_server(mode) as server:
            holder.append(server)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("mode", ["slow_body", "gzip_bomb", "garbage_status"])
def test_plan_against_a_hostile_server_exits_1_with_a_clear_message(
    mode: Mode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_cli_pipeline import write_app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests").mkdir()
    write_app(tmp_path, "Coffee")
    with served_in_a_thread(mode) as server:
        monkeypatch.setenv("MAC_BASE_URL", server.base_url)
        monkeypatch.setenv("MAC_API_TOKEN", TOKEN)
        monkeypatch.setenv("MAC_REQUEST_DEADLINE", "0.3")
        monkeypatch.setenv("MAC_MAX_RESPONSE_BYTES", str(CAP))
        monkeypatch.setenv("RECONCILER_STATE", str(tmp_path / "state.json"))
        code = main(["plan", "manifests"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "Error:" in err and "Internal error" not in err and TOKEN not in out + err
    assert len(out + err) < 5000
    assert not os.path.exists(tmp_path / "state.json")


# --- a write cut before it left is retried; after, it is ambiguous -------------------------


class Stuck(httpx.AsyncBaseTransport):
    """Reports progress through httpcore's trace events, then never answers."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await request.extensions["trace"](self.event, {})
        await asyncio.sleep(3600)  # cut by the per-request deadline
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("event", "kind", "calls"),
    [
        ("connection.connect_tcp.started", TransportError, 3),  # never left: retried
        ("http11.send_request_headers.started", AmbiguousWriteError, 1),  # maybe sent
    ],
)
async def test_a_write_cut_by_the_deadline_is_retried_only_if_it_never_left(
    event: str, kind: type[ReconcilerError], calls: int
) -> None:
    transport = Stuck(event)
    async with MiniAppCenterClient(
        Endpoint("https://mac.example.test/api"),
        TOKEN,
        transport=transport,
        retry=RetryPolicy(max_attempts=3, sleep=_no_sleep),
        limits=ClientLimits(request_deadline=0.2),
    ) as client:
        with pytest.raises(kind, match="too slow"):
            await client.create_miniapp(MiniAppCreate(id=APP, name="Shop"))
    assert transport.calls == calls
