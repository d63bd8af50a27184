"""Tenant sandbox fixtures: a config with 2-second access tokens, a real uvicorn server on
loopback (as tests/fixtures_sandbox.py), and the project-file endpoint pointing at it."""

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

from reconciler.providers.rest.config import (
    ApiKeyHeader,
    Credentials,
    JwtAuth,
    RestEndpoint,
)
from reconciler.providers.rest.sandbox import (
    TenantSandboxConfig,
    make_tenant_server,
    tenant_base_url,
)
from reconciler.providers.rest.sandbox.app import TenantApi
from reconciler.providers.rest.sandbox.scripted import ScriptedFaults
from reconciler.transport.redact import Secret

TENANT_USER = "alice"
TENANT_PASSWORD = "pw-correct-horse-battery"
TENANT_KEY = "key-tenant-one-0123456789"
OTHER_KEY = "key-tenant-two-9876543210"
TIMEOUT_S = 10.0


@dataclass
class RunningTenant:
    base_url: str  # the origin: http://127.0.0.1:PORT (API paths start with /api/)
    config: TenantSandboxConfig
    app: Starlette
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def api(self) -> TenantApi:
        return cast(TenantApi, self.app.state.api)

    @property
    def faults(self) -> ScriptedFaults:
        return cast(ScriptedFaults, self.app.state.faults)

    def http(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", TIMEOUT_S)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def tokens(self) -> dict[str, str]:
        with self.http() as client:
            answer = client.post(
                "/api/token/", json={"username": TENANT_USER, "password": TENANT_PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            return cast(dict[str, str], answer.json())

    def endpoint(
        self, *, api_key: bool = True, page_size_param: str | None = "page_size"
    ) -> RestEndpoint:
        return RestEndpoint(
            name="shop",
            base_url=self.base_url,
            auth=JwtAuth("/api/token/", "/api/token/refresh/", "T_USER", "T_PASSWORD"),
            api_key=ApiKeyHeader("Api-Key", "T_KEY") if api_key else None,
            file="reconciler.yaml",
            line=2,
            page_size_param=page_size_param,
        )


def credentials(api_key: str | None = TENANT_KEY, password: str = TENANT_PASSWORD) -> Credentials:
    return Credentials(Secret(TENANT_USER), Secret(password), Secret(api_key) if api_key else None)


@contextmanager
def run_tenant(config: TenantSandboxConfig) -> Iterator[RunningTenant]:
    server, sock = make_tenant_server(config, "127.0.0.1", 0, log_level="warning", access_log=False)
    port = sock.getsockname()[1]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"tenant-{port}", daemon=True
    )
    thread.start()
    running = RunningTenant(
        tenant_base_url("127.0.0.1", port),
        config,
        cast(Starlette, server.config.app),
        server,
        thread,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the tenant sandbox did not start")
            time.sleep(0.002)
        yield running
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)
        sock.close()


@pytest.fixture
def tenant_config(tmp_path: Path) -> TenantSandboxConfig:
    return TenantSandboxConfig(
        db_path=tmp_path / "tenant.db",
        users={TENANT_USER: TENANT_PASSWORD},
        api_keys={TENANT_KEY: "tenant_one", OTHER_KEY: "tenant_two"},
        access_seconds=2.0,
        # These tests ask for page sizes (the default, DRF's, takes no parameter: see
        # tests/test_realrest_contract.py).
        page_size_param="page_size",
    )


@pytest.fixture
def tenant_factory(tenant_config: TenantSandboxConfig) -> Iterator[Callable[..., RunningTenant]]:
    """``factory(access_seconds=..., latency_ms=...)``: a server with those overrides."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> RunningTenant:
            config = dataclasses.replace(tenant_config, **overrides)
            return stack.enter_context(run_tenant(config))

        yield start


@pytest.fixture
def tenant(tenant_factory: Callable[..., RunningTenant]) -> RunningTenant:
    return tenant_factory()
