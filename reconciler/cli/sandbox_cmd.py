"""`reconciler sandbox serve`: run the local Mini App Center over HTTP.

The sandbox package is imported inside the command so that ``reconciler --help`` stays fast.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import typer

from reconciler.cli.app import EXIT_ERROR, EXIT_USAGE, app

DEFAULT_DB = Path(".reconciler") / "sandbox.db"

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
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    db: Path | None = typer.Option(
        None,
        "--db",
        metavar="PATH",
        help=f"SQLite database (default: $MAC_SANDBOX_DB, else {DEFAULT_DB}).",
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
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host. The sandbox speaks plain HTTP: the token and all "
        "data would travel in clear to anyone who can reach it.",
    ),
) -> None:
    """Serve the sandbox; prints `export MAC_BASE_URL=...` and `export MAC_API_TOKEN=...`."""
    if not is_loopback(host) and not allow_remote:
        typer.echo(
            f"Error: refusing to listen on non-loopback host {host!r}: the sandbox serves plain "
            "HTTP, so its API token and data would be exposed to the network. Use "
            "--host 127.0.0.1, or pass --allow-remote if you really mean it.",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)

    import secrets

    from reconciler.sandbox import SandboxConfig, serve
    from reconciler.sandbox.server import ListenError

    db_path = db or Path(os.environ.get("MAC_SANDBOX_DB") or DEFAULT_DB)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    config = SandboxConfig(
        db_path=db_path,
        token=token or os.environ.get("MAC_API_TOKEN") or secrets.token_urlsafe(24),
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        ambiguous_rate=ambiguous_rate,
        seed=seed,
        rate_limit=rate_limit,
    )
    try:
        serve(config, host=host, port=port)
    except ListenError as exc:
        # Nothing was served and no export line printed: a plain error, not a crash.
        hint = "pick another --port (0: any free port)" if port else "check --host"
        typer.echo(f"Error: {exc}; {hint}.", err=True)
        raise typer.Exit(EXIT_ERROR) from None
