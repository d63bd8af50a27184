"""Running the sandbox over HTTP with uvicorn (``reconciler sandbox serve`` and test fixtures)."""

from __future__ import annotations

import shlex
import socket

import uvicorn

from reconciler.providers.miniappcenter.sandbox.app import create_app
from reconciler.providers.miniappcenter.sandbox.config import SandboxConfig
from reconciler.sandbox_kit.server import make_app_server


def make_server(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server and its already listening socket (``port=0`` picks a free port).

    Binding here, before ``run``, lets callers learn the real port and print it before
    serving; connections made in between wait in the listen backlog.
    """
    return make_app_server(
        create_app(config), host, port, log_level=log_level, access_log=access_log
    )


def base_url(host: str, port: int) -> str:
    url_host = f"[{host}]" if ":" in host else host
    return f"http://{url_host}:{port}/api"


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until interrupted. First prints the two ``export`` lines a user can paste."""
    server, sock = make_server(config, host, port)
    try:
        actual_port = sock.getsockname()[1]
        print(f"export MAC_BASE_URL={base_url(host, actual_port)}", flush=True)
        # Printing the token here is the point: the user asked for a paste-able line.
        print(f"export MAC_API_TOKEN={shlex.quote(config.token)}", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
