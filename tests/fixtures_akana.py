"""Akana sandbox fixtures: a real uvicorn server on loopback, a settable clock, a client.

Servers stop like the Mini App Center ones (``tests.fixtures_sandbox``): told to stop at
teardown, joined by that module's session fixture.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.sandbox import (
    AkanaSandboxConfig,
    AkanaSandboxStore,
    akana_base_url,
    make_akana_server,
)
from reconciler.transport.http import RetryPolicy
from reconciler.transport.redact import Secret
from tests.fixtures_sandbox import TIMEOUT_S, _stopping

EMAIL = "admin@acmepaymentscorp.example"
PASSWORD = "s3cret-Passw0rd-for-tests"
PENDING_EMAIL = "newbie@acmepaymentscorp.example"
PENDING_PASSWORD = "another-Passw0rd-42"
FED = "acmepaymentscorp"
VND = "application/vnd.soa.v83+json"


class SettableClock:
    """A clock tests move by hand (no sleeping to let a session expire)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RunningAkana:
    base_url: str  # the platform root; paths add /api/...
    store: AkanaSandboxStore
    config: AkanaSandboxConfig
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def http(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client (with a cookie jar) on the platform root."""
        kwargs.setdefault("timeout", TIMEOUT_S)
        return httpx.Client(base_url=self.base_url, **kwargs)

    @contextmanager
    def logged_in(self, email: str = EMAIL, password: str = PASSWORD) -> Iterator[httpx.Client]:
        with self.http() as client:
            response = client.post("/api/login", json={"email": email, "password": password})
            assert response.status_code == 200, response.text
            yield client

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread not in _stopping:
            _stopping.append(self._thread)


@contextmanager
def run_akana(config: AkanaSandboxConfig) -> Iterator[RunningAkana]:
    server, sock = make_akana_server(config, "127.0.0.1", 0, log_level="warning", access_log=False)
    port = sock.getsockname()[1]
    app = cast(Starlette, server.config.app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"akana-{port}", daemon=True
    )
    thread.start()
    running = RunningAkana(
        akana_base_url("127.0.0.1", port), app.state.store, config, server, thread
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Akana sandbox did not start")
            time.sleep(0.002)
        yield running
    finally:
        running.stop()


@pytest.fixture
def akana_config(tmp_path: Path) -> AkanaSandboxConfig:
    return AkanaSandboxConfig(
        db_path=tmp_path / "akana.db",
        users={EMAIL: PASSWORD, PENDING_EMAIL: PENDING_PASSWORD},
        pending_tasks={PENDING_EMAIL: "ChangePassword"},
    )


@pytest.fixture
def akana_factory(akana_config: AkanaSandboxConfig) -> Iterator[Callable[..., RunningAkana]]:
    """``factory(csrf=False, ...)``: a running sandbox with those config overrides."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> RunningAkana:
            config = dataclasses.replace(akana_config, **overrides)
            return stack.enter_context(run_akana(config))

        yield start


@pytest.fixture
def akana(akana_factory: Callable[..., RunningAkana]) -> RunningAkana:
    return akana_factory()


def client_config(
    running: RunningAkana, email: str = EMAIL, password: str = PASSWORD
) -> AkanaConfig:
    return AkanaConfig(akana_endpoint(running.base_url), email, Secret(password))


def fast_retry() -> RetryPolicy:
    """Retries without real waiting (the sleep is instant; the budget still counts)."""

    async def no_sleep(delay: float) -> None:
        return None

    return RetryPolicy(base_delay=0.01, jitter=False, sleep=no_sleep)


def akana_client(running: RunningAkana, **kwargs: Any) -> AkanaClient:
    kwargs.setdefault("retry", fast_retry())
    email = kwargs.pop("email", EMAIL)
    password = kwargs.pop("password", PASSWORD)
    return AkanaClient(client_config(running, email, password), **kwargs)


class Recorder(httpx.AsyncBaseTransport):
    """Forwards to a real transport and records each request and answer (for pinning what
    went on the wire); ``fail`` can refuse a matching request before it is sent onwards."""

    def __init__(self, fail: Callable[[httpx.Request], Exception | None] | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._fail = fail
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._fail is not None:
            error = self._fail(request)
            if error is not None:
                raise error
        response = await self._inner.handle_async_request(request)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]
