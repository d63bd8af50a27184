"""`reconciler sandbox serve`: run the local Mini App Center over HTTP.

The sandbox package is imported inside the command so that ``reconciler --help`` stays fast.
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
from reconciler.limits import MAC_PROVIDER, SANDBOX_DB_ENV

DEFAULT_DB = Path(".reconciler") / "sandbox.db"
DEFAULT_AKANA_DB = Path(".reconciler") / "akana-sandbox.db"
DEFAULT_AKANA_EMAIL = "admin@sandbox.local"
APIS = ("miniappcenter", "akana", "tenant")

sandbox_app = typer.Typer(
    help="The local Mini App Center (sandbox): the documented API over HTTP, stored in SQLite.",
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
        MAC_PROVIDER,
        "--api",
        metavar="API",
        help="Which API to serve: miniappcenter (default), akana (apps, session login) or"
        " tenant (the JWT + Api-Key tenant API; credentials from $TENANT_USERNAME,"
        " $TENANT_PASSWORD and $TENANT_API_KEY, else random).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    db: Path | None = typer.Option(
        None,
        "--db",
        metavar="PATH",
        help=f"SQLite database (default: $MAC_SANDBOX_DB, else {DEFAULT_DB}; with --api akana:"
        f" $AKANA_SANDBOX_DB, else {DEFAULT_AKANA_DB}).",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        metavar="T",
        help="API token clients must send as APIKey-Auth (default: $MAC_API_TOKEN, else a "
        "new random token, printed at start).",
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
        1800.0, "--session-seconds", min=1, help="akana: session cookie lifetime (seconds)."
    ),
    drop_assumptions: list[str] = typer.Option(
        [],
        "--drop-assumption",
        metavar="NAME",
        help="Turn off a behaviour the sandbox adds beyond the API's docs, to test a client"
        " without it (repeatable; miniappcenter: unique-version-codes; akana: unique-app-names).",
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host. The sandbox speaks plain HTTP: the token and all "
        "data would travel in clear to anyone who can reach it.",
    ),
) -> None:
    """Serve the sandbox; prints `export MAC_BASE_URL=...` and `export MAC_API_TOKEN=...`
    (with --api akana: `export AKANA_BASE_URL=...`, AKANA_EMAIL and AKANA_PASSWORD)."""
    if api not in APIS:  # checked before the providers load (their names are in --help)
        typer.echo(f"Error: unknown --api {api[:40]!r}: use one of {', '.join(APIS)}.", err=True)
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
        with _listen_errors(port):
            serving.serve_sandbox(options)
    except UsageError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def sandbox_providers() -> dict[str, Any]:
    """``--api`` name -> the provider whose sandbox it serves (from the registry)."""
    from reconciler.providers.registry import PROVIDERS

    apis = {name: getattr(p, "sandbox_api", None) for name, p in PROVIDERS.items()}
    return {str(api): PROVIDERS[name] for name, api in apis.items() if api}


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
