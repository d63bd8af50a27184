"""Serving the tenant sandbox over HTTP (``reconciler sandbox serve --api tenant``, fixtures).

The listening socket and uvicorn's logging are every sandbox's (``sandbox_kit``: TCP_NODELAY,
access log on stderr, one line per injected dropped connection).
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket
from collections.abc import Mapping
from pathlib import Path

import uvicorn

from reconciler.providers.rest.sandbox.app import create_tenant_app
from reconciler.providers.rest.sandbox.config import (
    DEFAULT_ACCESS_SECONDS,
    DEFAULT_REFRESH_SECONDS,
    TenantSandboxConfig,
)
from reconciler.sandbox_kit.server import make_app_server

# What `serve` prints and reads: the same names the example project file points at.
BASE_URL_ENV = "TENANT_BASE_URL"
USERNAME_ENV = "TENANT_USERNAME"
PASSWORD_ENV = "TENANT_PASSWORD"
API_KEY_ENV = "TENANT_API_KEY"
ACCESS_SECONDS_ENV = "TENANT_SANDBOX_ACCESS_SECONDS"
REFRESH_SECONDS_ENV = "TENANT_SANDBOX_REFRESH_SECONDS"


def make_tenant_server(
    config: TenantSandboxConfig,
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for the tenant sandbox and its listening socket (``port=0``: any)."""
    return make_app_server(
        create_tenant_app(config), host, port, log_level=log_level, access_log=access_log
    )


def tenant_base_url(host: str, port: int) -> str:
    """The API's origin (its paths start with /api/)."""
    url_host = f"[{host}]" if ":" in host else host
    return f"http://{url_host}:{port}"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw[:40]!r}") from None
    if not 0 < value < 10**9:
        raise ValueError(f"{name} must be a positive number of seconds")
    return value


def tenant_config_from_env(
    db_path: str | Path, env: Mapping[str, str] | None = None, **faults: object
) -> TenantSandboxConfig:
    """Credentials from ``TENANT_USERNAME`` / ``TENANT_PASSWORD`` / ``TENANT_API_KEY`` (random
    when unset), lifetimes from ``TENANT_SANDBOX_ACCESS_SECONDS`` / ``..._REFRESH_SECONDS``.
    ``ValueError`` with a message naming the variable when one is bad."""
    env = os.environ if env is None else env
    username = env.get(USERNAME_ENV) or "tenant-user"
    password = env.get(PASSWORD_ENV) or secrets.token_urlsafe(18)
    api_key = env.get(API_KEY_ENV) or secrets.token_urlsafe(24)
    return TenantSandboxConfig(
        db_path=db_path,
        users={username: password},
        api_keys={api_key: "tenant"},
        access_seconds=_seconds(env, ACCESS_SECONDS_ENV, DEFAULT_ACCESS_SECONDS),
        refresh_seconds=_seconds(env, REFRESH_SECONDS_ENV, DEFAULT_REFRESH_SECONDS),
        **faults,  # type: ignore[arg-type]
    )


def serve_tenant(config: TenantSandboxConfig, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve until interrupted; first prints the ``export`` lines a user can paste."""
    server, sock = make_tenant_server(config, host, port)
    try:
        actual_port = sock.getsockname()[1]
        ((username, password),) = config.users.items()
        (api_key,) = config.api_keys
        # Printing the credentials is the point: the user asked for paste-able lines.
        for name, value in (
            (BASE_URL_ENV, tenant_base_url(host, actual_port)),
            (USERNAME_ENV, username),
            (PASSWORD_ENV, password),
            (API_KEY_ENV, api_key),
        ):
            print(f"export {name}={shlex.quote(value)}", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
