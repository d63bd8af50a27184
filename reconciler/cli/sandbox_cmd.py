"""`reconciler sandbox serve`: run one provider's local sandbox over HTTP.

Which sandboxes there are, and what the help says of each, comes from the registry's
descriptors (plain data: no provider is imported for it, a plugin's sandbox is listed by
itself). The sandbox package is imported inside the command so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from reconciler.cli.app import EXIT_ERROR, EXIT_USAGE, app
from reconciler.cli.common import interrupt_exits_130
from reconciler.limits import SANDBOX_DB_ENV

DEFAULT_DB = Path(".reconciler") / "sandbox.db"


def sandboxes() -> dict[str, str]:
    """``--api`` name -> what its help says, from the registry's descriptors (the provider
    that binds the state first: its sandbox is the default)."""
    from reconciler.providers.registry import DESCRIPTORS

    ordered = sorted(DESCRIPTORS, key=lambda d: not d.state_root)
    return {d.sandbox_api: d.sandbox_help or d.name for d in ordered if d.sandbox_api}


def _listed() -> dict[str, str]:
    """What the help lists: none when the registry cannot load (a broken plugin), which
    every command, this one included, then names as a clear error when it runs."""
    from reconciler.errors import ConfigError

    try:
        return sandboxes()
    except ConfigError:
        return {}


_SANDBOXES = _listed()
_DEFAULT_API = next(iter(_SANDBOXES), "")

SERVE_STOPPED = "Stopped: every write it answered is kept in its database."

sandbox_app = typer.Typer(
    help="The providers' local sandboxes: each documented API over HTTP, stored in SQLite.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public interface


@sandbox_app.command("serve")
def serve_command(
    api: str = typer.Option(
        _DEFAULT_API,
        "--api",
        metavar="API",
        help="Which sandbox to serve: "
        + "; ".join(f"{name}: {what}" for name, what in _SANDBOXES.items())
        + ".",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    db: Path | None = typer.Option(
        None,
        "--db",
        metavar="PATH",
        help="SQLite database (default: the sandbox's own, see --api).",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        metavar="T",
        help="API token clients must send, for a sandbox that takes one (default: see --api;"
        " a new random token is printed at start).",
    ),
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0, help="Delay every request."),
    fail_rate: float = typer.Option(
        0.0, "--fail-rate", min=0, max=1, help="Fraction answered 503 or dropped (half each)."
    ),
    ambiguous_rate: float = typer.Option(
        0.0, "--ambiguous-rate", min=0, max=1, help="Fraction of writes done, then answered 502."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible faults."),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", min=0.001, help="Requests per second; beyond it 429 + Retry-After."
    ),
    session_seconds: float = typer.Option(
        1800.0, "--session-seconds", min=1,
        help="Session lifetime (seconds), for a sandbox with session logins.",
    ),
    drop_assumptions: list[str] = typer.Option(
        [],
        "--drop-assumption",
        metavar="NAME",
        help="Turn off a behaviour the sandbox adds beyond the API's docs, to test a client"
        " without it (repeatable; miniappcenter: unique-version-codes, refuse-unknown-fields,"
        " review-flow; akana: unique-app-names, unique-version-names; tenant:"
        " fixed-point-decimals).",
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host. The sandbox speaks plain HTTP: the token and all "
        "data would travel in clear to anyone who can reach it.",
    ),
) -> None:
    """Serve one provider's sandbox; prints the `export ...` lines its clients need."""
    from reconciler.errors import ConfigError

    try:
        known = sandboxes()  # the descriptors: no provider is loaded to check the name
    except ConfigError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if api not in known:
        typer.echo(
            f"Error: unknown --api {api[:40]!r}: use one of {', '.join(known)}.", err=True
        )
        raise typer.Exit(EXIT_USAGE)
    if not is_loopback(host) and not allow_remote:
        typer.echo(
            f"Error: refusing to listen on non-loopback host {host!r}: the sandbox serves plain "
            "HTTP, so its API token and data would be exposed to the network. Use "
            "--host 127.0.0.1, or pass --allow-remote if you really mean it.",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)

    from reconciler.engine.provider import SandboxServe
    from reconciler.errors import UsageError

    serving = sandbox_providers()[api]
    known = dict(getattr(serving, "sandbox_assumptions", {}))
    unknown = sorted(set(drop_assumptions) - set(known))
    if unknown:
        offered = ", ".join(sorted(known)) or "none"
        typer.echo(
            f"Error: the {api} sandbox has no assumption {unknown[0][:40]!r} to drop"
            f" (it has: {offered}).",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    options = SandboxServe(
        host=host, port=port, db=db,
        default_db=db or Path(os.environ.get(SANDBOX_DB_ENV) or DEFAULT_DB),
        token=token, latency_ms=latency_ms, fail_rate=fail_rate, ambiguous_rate=ambiguous_rate,
        seed=seed, rate_limit=rate_limit, session_seconds=session_seconds,
        drop_assumptions=frozenset(drop_assumptions),
    )  # fmt: skip
    try:
        with _listen_errors(port), interrupt_exits_130(SERVE_STOPPED):
            # uvicorn catches Ctrl-C (SIGINT, SIGTERM), shuts down, then raises it again
            serving.serve_sandbox(options)
    except UsageError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def sandbox_providers() -> dict[str, Any]:
    """``--api`` name -> the provider whose sandbox it serves (from the registry)."""
    from reconciler.providers.registry import DESCRIPTORS, PROVIDERS

    return {d.sandbox_api: PROVIDERS[d.name] for d in DESCRIPTORS if d.sandbox_api}


@contextlib.contextmanager
def _listen_errors(port: int) -> Iterator[None]:
    """A port or host the server cannot listen on: nothing was served and no export line
    printed, so a plain error (exit 1), not a crash."""
    from reconciler.sandbox_kit.server import ListenError

    try:
        yield
    except ListenError as exc:
        hint = "pick another --port (0: any free port)" if port else "check --host"
        typer.echo(f"Error: {exc}; {hint}.", err=True)
        raise typer.Exit(EXIT_ERROR) from None
