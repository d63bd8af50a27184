"""The Akana sandbox in this process (for ``--sandbox``): an ASGI transport, no socket.

Returns what a client needs (base URL, login, transport) without importing the client, so
the sandbox stays an independent implementation of the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
from starlette.applications import Starlette

from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.providers.akana.sandbox.config import AkanaSandboxConfig

# Loopback, so that the client's "plain http only to loopback" rule accepts it; nothing
# listens there: requests go to the ASGI app directly.
IN_PROCESS_BASE_URL: Final = "http://127.0.0.1"
IN_PROCESS_EMAIL: Final = "admin@sandbox.local"
IN_PROCESS_PASSWORD: Final = "local-sandbox-password"  # the sandbox is private to this process


@dataclass
class InProcessAkana:
    base_url: str  # AKANA_BASE_URL for the client
    email: str
    password: str = field(repr=False)
    transport: httpx.AsyncBaseTransport = field(repr=False)
    app: Starlette = field(repr=False)

    def close(self) -> None:
        """Close the sandbox's database (ASGITransport runs no lifespan to do it)."""
        self.app.state.store.close()


def in_process_akana(
    db_path: str | Path,
    *,
    session_seconds: float = 1800.0,
    password: str = IN_PROCESS_PASSWORD,
) -> InProcessAkana:
    """``password``: the sandbox user's (the CLI passes a random one per process, so nothing
    else can log in to it; users live in memory, not in the database)."""
    config = AkanaSandboxConfig(
        db_path=db_path,
        users={IN_PROCESS_EMAIL: password},
        session_seconds=session_seconds,
    )
    app = create_akana_app(config)
    return InProcessAkana(
        IN_PROCESS_BASE_URL,
        IN_PROCESS_EMAIL,
        password,
        httpx.ASGITransport(app=app),
        app,
    )
