"""Serving the Akana sandbox over HTTP (``reconciler sandbox serve --api akana``, tests)."""

from __future__ import annotations

import shlex
import socket

import uvicorn

from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.providers.akana.sandbox.config import AkanaSandboxConfig
from reconciler.sandbox_kit.server import make_app_server


def make_akana_server(
    config: AkanaSandboxConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for the Akana sandbox and its listening socket (``port=0``: any)."""
    return make_app_server(
        create_akana_app(config), host, port, log_level=log_level, access_log=access_log
    )


def akana_base_url(host: str, port: int) -> str:
    """What ``AKANA_BASE_URL`` is for a sandbox: the host root (the client adds ``/api``)."""
    url_host = f"[{host}]" if ":" in host else host
    return f"http://{url_host}:{port}"


def serve_akana(
    config: AkanaSandboxConfig, email: str, host: str = "127.0.0.1", port: int = 8080
) -> None:
    """Serve until interrupted; first prints the ``export`` lines a user can paste."""
    server, sock = make_akana_server(config, host, port)
    try:
        actual_port = sock.getsockname()[1]
        print(f"export AKANA_BASE_URL={akana_base_url(host, actual_port)}", flush=True)
        print(f"export AKANA_EMAIL={shlex.quote(email)}", flush=True)
        # Printing the password is the point: the user asked for paste-able lines.
        print(f"export AKANA_PASSWORD={shlex.quote(config.users[email])}", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
