"""Sandbox fixtures: a config, a real uvicorn server on loopback, and the in-process ASGI app.

Servers run in a background thread on a port the OS picks (bound before the thread starts, so
there is no free-port race). At a test's teardown its server is told to stop; uvicorn needs
~0.1 s to wind down (a fixed sleep in ``Server.shutdown``), so by default the test does not
wait for it: a session fixture joins every server thread at the end and fails if one is still
running. ``RunningSandbox.stop()`` stops synchronously when a test needs it (restarts).
"""

from __future__ import annotations

import dataclasses
import ssl
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

from reconciler.providers.miniappcenter.sandbox import SandboxConfig, SandboxStore, create_app
from reconciler.providers.miniappcenter.sandbox.server import base_url, make_server

TEST_TOKEN = "test-token"
TIMEOUT_S = 10.0
# Built once: httpx.Client() would load the CA bundle again for every client (~50 ms each).
_TLS = ssl.create_default_context()
_stopping: list[threading.Thread] = []


def http_client(base_url: str, **kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", TIMEOUT_S)
    kwargs.setdefault("verify", _TLS)
    return httpx.Client(base_url=base_url, **kwargs)


@dataclass
class RunningSandbox:
    base_url: str  # like the docs' $BASE_URL: http://127.0.0.1:PORT/api (paths add /v1/...)
    token: str
    store: SandboxStore  # the server's own store (same db), for what the API cannot show
    config: SandboxConfig
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def client(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client on ``/api/v1`` sending the token."""
        headers = {"APIKey-Auth": self.token, "Accept": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        return http_client(self.v1, headers=headers, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", TIMEOUT_S)
        kwargs.setdefault("verify", _TLS)
        headers = {"APIKey-Auth": self.token, "Accept": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.AsyncClient(base_url=self.v1, headers=headers, **kwargs)

    def stop(self, *, wait: bool = True) -> None:
        self._server.should_exit = True
        if wait:
            _join(self._thread)
        elif self._thread not in _stopping:
            _stopping.append(self._thread)


def _join(thread: threading.Thread) -> None:
    thread.join(TIMEOUT_S)
    if thread.is_alive():  # pragma: no cover - would mean a hung shutdown
        raise RuntimeError(f"sandbox server thread {thread.name} did not stop")


def join_stopping_servers() -> None:
    while _stopping:
        _join(_stopping.pop())


@contextmanager
def run_sandbox(
    config: SandboxConfig, *, wait_on_exit: bool = True, port: int = 0
) -> Iterator[RunningSandbox]:
    """Serve ``config`` on 127.0.0.1 (``port``: 0 for a free one) until the block exits."""
    server, sock = make_server(config, "127.0.0.1", port, log_level="warning", access_log=False)
    port = sock.getsockname()[1]
    app = cast(Starlette, server.config.app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    running = RunningSandbox(
        base_url("127.0.0.1", port), config.token, app.state.store, config, server, thread
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.002)
        yield running
    finally:
        running.stop(wait=wait_on_exit)
        if wait_on_exit:
            sock.close()


@pytest.fixture(scope="session", autouse=True)
def _sandbox_servers_joined() -> Iterator[None]:
    yield
    join_stopping_servers()


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(db_path=tmp_path / "sandbox.db", token=TEST_TOKEN)


@pytest.fixture
def sandbox_server_factory(
    sandbox_config: SandboxConfig,
) -> Iterator[Callable[..., RunningSandbox]]:
    """``factory(latency_ms=200, ...)``: start a server with those config overrides
    (``port=N`` to serve where a stopped one served: the same endpoint, restarted)."""
    with ExitStack() as stack:

        def start(*, port: int = 0, **overrides: Any) -> RunningSandbox:
            config = dataclasses.replace(sandbox_config, **overrides)
            return stack.enter_context(run_sandbox(config, wait_on_exit=False, port=port))

        yield start


@pytest.fixture
def sandbox_server(
    request: pytest.FixtureRequest, sandbox_server_factory: Callable[..., RunningSandbox]
) -> RunningSandbox:
    """A running server; ``@pytest.mark.parametrize("sandbox_server", [{...}], indirect=True)``
    overrides its config."""
    overrides: dict[str, Any] = getattr(request, "param", None) or {}
    return sandbox_server_factory(**overrides)


@pytest.fixture
def sandbox_asgi_app(sandbox_config: SandboxConfig) -> Iterator[Starlette]:
    """The app for in-process tests (``httpx.ASGITransport``); its store is closed afterwards."""
    app = create_app(sandbox_config)
    yield app
    app.state.store.close()
