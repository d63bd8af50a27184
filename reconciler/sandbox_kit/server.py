"""Serving a sandbox: one uvicorn server on an already listening socket, shared by every
provider's sandbox (a provider's sandbox never imports another's)."""

from __future__ import annotations

import copy
import logging
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from reconciler.sandbox_kit.faults import DroppedConnection


class ListenError(OSError):
    """The server cannot listen on host:port (busy port, unknown host, no permission)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host, self.port, self.reason = host, port, reason


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with the access log on stderr like everything else it logs.

    stdout carries only the two ``export`` lines, so that it can be captured or eval'ed.
    """
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


class _DroppedConnectionLogFilter(logging.Filter):
    """One line instead of a traceback for each injected dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DroppedConnection):
            record.msg, record.args = "injected fault: connection dropped", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _install_log_filter() -> None:
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedConnectionLogFilter) for f in error_logger.filters):
        error_logger.addFilter(_DroppedConnectionLogFilter())


def make_app_server(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for ``app`` and its already listening socket (``port=0`` picks a free
    port). Binding here, before ``run``, lets callers learn the real port and print it before
    serving; connections made in between wait in the listen backlog."""
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        log_config=_log_config(),
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    _install_log_filter()
    return uvicorn.Server(uv_config), _listen(host, port, uv_config.backlog)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    # Not uvicorn's Config.bind_socket: its socket has proto 0, so asyncio never sets
    # TCP_NODELAY on accepted connections, and Nagle plus delayed ACKs add ~40 ms to every
    # request on a kept-alive connection. getaddrinfo gives proto=IPPROTO_TCP.
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:  # socket.gaierror: an unknown host
        raise ListenError(host, port, _reason(exc)) from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(host, port, _reason(exc)) from exc
    sock.set_inheritable(True)
    return sock


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
