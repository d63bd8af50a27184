"""Where a run talks to and keeps its state: the Mini App Center's endpoint and token (from
the environment, or the embedded sandbox for --sandbox) and the state store.

This is the only module that reads the Mini App Center's endpoint from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.limits import DEFAULT_SANDBOX_DB, MAC_PROVIDER

if TYPE_CHECKING:
    from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient
    from reconciler.state import StateStore
    from reconciler.transport.config import ClientLimits
    from reconciler.workflows.report import Reporter

__all__ = [
    "DEFAULT_SANDBOX_DB", "MAC_PROVIDER", "SANDBOX_TOKEN", "Target", "resolve_target",
    "state_notices", "state_store",
]  # fmt: skip

SANDBOX_TOKEN = "local-sandbox-token"  # the in-process sandbox is private to this process


@dataclass(frozen=True)
class Target:
    """Where the commands talk to, and with which credentials."""

    endpoint: Endpoint
    token: str = field(repr=False)
    identity: str  # what the state file is bound to
    display: str  # what we tell the user (never the token)
    sandbox_db: Path | None = None
    limits: ClientLimits | None = None  # MAC_REQUEST_DEADLINE, MAC_MAX_RESPONSE_BYTES

    @property
    def setting(self) -> str:
        """What the user sets to choose this endpoint (named when it may be wrong)."""
        return "--sandbox-db" if self.sandbox_db is not None else "MAC_BASE_URL"

    def client(self, parallelism: int) -> MiniAppCenterClient:
        from reconciler.providers.miniappcenter.client import MiniAppCenterClient
        transport = None
        if self.sandbox_db is not None:
            import httpx

            # The one sandbox a workflow wires in (--sandbox), as the Akana and REST
            # connectors wire theirs: imported here, so it loads only for sandbox runs.
            from reconciler.providers.miniappcenter.sandbox import SandboxConfig, create_app

            app = create_app(SandboxConfig(db_path=self.sandbox_db, token=self.token))
            transport = httpx.ASGITransport(app=app)
        return MiniAppCenterClient(
            self.endpoint,
            self.token,
            transport=transport,
            max_connections=max(parallelism, 1),
            limits=self.limits,
        )


def resolve_target(sandbox: bool, sandbox_db: Path | None) -> Target:
    from reconciler.errors import ConfigError
    from reconciler.providers.miniappcenter.client import (
        Endpoint,
        check_endpoint_security,
        endpoint_from_env,
    )
    from reconciler.transport.config import limits_from_env

    limits = limits_from_env(os.environ)  # checked before anything runs

    if sandbox:
        db = (sandbox_db or Path(DEFAULT_SANDBOX_DB)).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        return Target(
            endpoint=Endpoint(base_url="http://127.0.0.1/api"),
            token=SANDBOX_TOKEN,
            identity=f"sandbox:{db}",
            display=f"embedded sandbox (in-process, {db})",
            sandbox_db=db,
            limits=limits,
        )
    env = dict(os.environ)
    if not env.get("MAC_BASE_URL"):
        raise ConfigError(
            "no API endpoint configured: set MAC_BASE_URL (and MAC_API_TOKEN), or pass"
            " --sandbox to use the embedded local sandbox"
        )
    endpoint = endpoint_from_env(env)
    check_endpoint_security(endpoint.base_url)
    token = env.get("MAC_API_TOKEN", "")
    if not token:
        raise ConfigError("MAC_API_TOKEN is not set: the Mini App Center needs an API token")
    return Target(
        endpoint=endpoint,
        token=token,
        identity=endpoint.base_url,
        display=endpoint.display,
        limits=limits,
    )


def state_store(state: Path | str | None, target_is_sandbox: bool) -> StateStore:
    from reconciler.state import DEFAULT_STATE_DIR, default_state_path, open_state_store

    if state is not None:
        return open_state_store(state)
    if target_is_sandbox:
        return open_state_store(Path.cwd() / DEFAULT_STATE_DIR / "sandbox-state.json")
    return open_state_store(default_state_path())


def state_notices(store: StateStore, reporter: Reporter | None) -> tuple[str, ...]:
    """A missing state file is said, never silent: a deleted CI cache or a mistyped
    RECONCILER_STATE must not look like a normal run. Said to ``reporter`` (None: not said,
    a saved plan carries its own) and returned for the plan's warnings (JSON, Markdown)."""
    if store.exists():
        return ()
    notices = (
        f"no state file was found at {store.describe()}: starting from the API. Mini apps and"
        " REST objects that exist there are adopted (an Akana app only with adopt: true), and"
        " their versions found by reading (a first run, or a lost state file: check --state /"
        " RECONCILER_STATE if you expected one)",
    )
    if reporter is not None:
        for notice in notices:
            reporter.say(f"Warning: {notice}")
    return notices
