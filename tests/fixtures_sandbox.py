"""Sandbox fixtures: a config, a real uvicorn server on loopback, and the in-process ASGI app.

Servers run in a background thread on a port the OS picks (bound before the thread starts, so
there is no free-port race) and are always shut down at teardown.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.sandbox import SandboxConfig, SandboxStore, create_app
from reconciler.sandbox.server import base_url, make_server

TEST_TOKEN = "test-token"
START_TIMEOUT_S = 10.0


@dataclass
class RunningSandbox:
    base_url: str  # like the docs' $BASE_URL: http://127.0.0.1:PORT/api (paths add /v1/...)
    token: str
    store: SandboxStore  # the server's own store (same db), for what the API cannot show
    config: SandboxConfig

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def client(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client sending the token, no redirects, short timeout."""
        kwargs.setdefault("timeout", 10.0)
        headers = {"APIKey-Auth": self.token, "Accept": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.v1, headers=headers, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 10.0)
        headers = {"APIKey-Auth": self.token, "Accept": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.AsyncClient(base_url=self.v1, headers=headers, **kwargs)


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[RunningSandbox]:
    """Serve ``config`` on 127.0.0.1 in a thread until the block exits."""
    server, sock = make_server(config, "127.0.0.1", 0, log_level="warning", access_log=False)
    port = sock.getsockname()[1]
    app = cast(Starlette, server.config.app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)
        yield RunningSandbox(base_url("127.0.0.1", port), config.token, app.state.store, config)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        sock.close()
        if thread.is_alive():  # pragma: no cover - would mean a hung shutdown
            raise RuntimeError("the sandbox server did not stop")


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(db_path=tmp_path / "sandbox.db", token=TEST_TOKEN)


@pytest.fixture
def sandbox_server_factory(
    sandbox_config: SandboxConfig,
) -> Iterator[Callable[..., RunningSandbox]]:
    """``factory(latency_ms=200, ...)``: start a server with those config overrides."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> RunningSandbox:
            config = dataclasses.replace(sandbox_config, **overrides)
            return stack.enter_context(run_sandbox(config))

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
