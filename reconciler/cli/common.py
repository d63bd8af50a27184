"""What the API-talking commands share: their option declarations, where diagnostics go
(stderr, and the :class:`Reporter` the workflows are given), colour, and error printing.
The work itself is in :mod:`reconciler.workflows`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from reconciler.limits import DEFAULT_PROBE_WINDOW, DEFAULT_SANDBOX_DB, SANDBOX_DB_ENV

# --- shared option declarations (typer reads the defaults as option specs) -------------

SandboxOpt = typer.Option(
    False, "--sandbox", help="Use the embedded local sandbox (in-process, SQLite) as the API."
)
SandboxDbOpt = typer.Option(
    None,
    "--sandbox-db",
    envvar=SANDBOX_DB_ENV,
    help=f"SQLite file of the embedded sandbox (default: {DEFAULT_SANDBOX_DB}).",
)
def _state_location(value: str) -> Path | str:
    """A file path, or a ``postgresql://`` URL kept as text (a Path would fold its ``//``).
    The commands' ``Path | None`` annotation is what typer shows; this parser wins."""
    if value.startswith(("postgresql://", "postgres://")):
        return value
    return Path(value)


StateOpt = typer.Option(
    None,
    "--state",
    envvar="RECONCILER_STATE",
    parser=_state_location,
    metavar="PATH|URL",
    help="State file (default: .reconciler/state.json, or .reconciler/sandbox-state.json with"
    " --sandbox, at the repository's root: the git work tree of the manifests, wherever you"
    " run from), or a PostgreSQL database: postgresql://USER@HOST/DB?workspace=NAME"
    " (password from PGPASSWORD or ~/.pgpass).",
)
LockTimeoutOpt = typer.Option(
    0.0,
    "--lock-timeout",
    min=0,
    max=86_400,
    metavar="SECONDS",
    help="Wait this long for another run's lock on the state (a file's, or a PostgreSQL"
    " state's per-app locks) before failing (default 0: fail at once, naming the holder).",
)
ParallelismOpt = typer.Option(16, "--parallelism", min=1, max=256, help="Concurrent requests.")
SelectOpt = typer.Option(
    [], "--select", help="Only apps whose labels match KEY=VALUE (repeatable, all must match)."
)
TargetOpt = typer.Option(
    [],
    "--target",
    help="Only this resource (repeatable): its key (an app id, an Akana app's name) or its"
    " address as the plan and `state list` print it, e.g. 'akana_app[Payments Gateway]'.",
)


def target_keys(targets: list[str], *, root_only: bool = False) -> tuple[str, ...]:
    """``--target`` values as the keys the workflows select by: an address the plan or
    `state list` prints (``akana_app[Payments Gateway]``) becomes its key; anything else is a
    key already. ``root_only``: convert only the state-root provider's addresses."""
    from reconciler.address import AddressError, parse_address
    from reconciler.providers.registry import ROOT_KINDS
    from reconciler.workflows.desired import root_provider

    keys: list[str] = []
    for text in targets:
        try:
            address = parse_address(text, ROOT_KINDS) if "[" in text else None
        except AddressError:
            address = None
        if (
            address is None
            or address.key is None
            or address.parent is not None
            or address.instance is not None
            or (root_only and address.provider != root_provider())
        ):
            keys.append(text)
        else:
            keys.append(address.key)
    return tuple(keys)
PruneOpt = typer.Option(
    False, "--prune", help="Delete apps recorded in the state that no manifest declares."
)
RootOpt = typer.Option(
    [],
    "--root",
    metavar="DIR",
    help="Also allow manifests and their file: paths under DIR (repeatable). By default only"
    " the git work tree holding the paths given (else their folders) is readable.",
)
MaxDeletesOpt = typer.Option(
    None, "--max-deletes", min=0, help="Refuse a plan with more deletes than N."
)
ProbeWindowOpt = typer.Option(
    DEFAULT_PROBE_WINDOW,
    "--probe-window",
    min=1,
    max=1_000_000,
    metavar="N",
    help="Version ids read, at most, to find one version the state cannot place (an"
    " unanswered create, a lost state); the next run reads on from where this one stopped.",
)
ConfigOpt = typer.Option(
    None,
    "--config",
    envvar="RECONCILER_CONFIG",
    metavar="PATH",
    help="Project file declaring the REST endpoints (default: ./reconciler.yaml).",
)
ProviderOpt = typer.Option(
    None,
    "--provider",
    metavar="NAME",
    help="Only this provider's resources: miniappcenter, akana or rest (a saved plan covers"
    " one provider).",
)
NoColorOpt = typer.Option(False, "--no-color", help="Plain text: no colour (like NO_COLOR=1).")


def err(message: str) -> None:
    """Diagnostics go to stderr so that stdout stays machine-readable."""
    typer.echo(message, err=True)


WARNING_PREFIX = "Warning: "


class StderrReporter:
    """What a workflow says goes to stderr, one line each (a :class:`Reporter`). The
    warnings said are remembered (:attr:`warned`), so that a report printed to the same
    terminal afterwards does not say them twice (see :func:`said_on_this_terminal`)."""

    def __init__(self) -> None:
        from reconciler.cli.read_status import ReadStatus

        self.warned: set[str] = set()
        self.reads = ReadStatus()  # the plan's live reads, on a terminal only

    def say(self, message: str) -> None:
        if message.startswith(WARNING_PREFIX):
            self.warned.add(message.removeprefix(WARNING_PREFIX))
        self.reads.clear()  # a line said while reading replaces the status line
        err(message)

    def progress_read(self, provider: str) -> None:
        """A live read of ``provider`` was answered while planning."""
        self.reads.read(provider)

    def progress_read_end(self) -> None:
        self.reads.end()


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def said_on_this_terminal(reporter: StderrReporter, *, stdout: bool = True) -> set[str]:
    """The warnings ``reporter`` said on stderr that a text report would repeat where they
    were already read: stdout and stderr on one terminal (``stdout``: the report goes to
    stdout; else to stderr, always the same stream). Redirected, each stream keeps all."""
    if not stdout or (sys.stdout.isatty() and sys.stderr.isatty()):
        return set(reporter.warned)
    return set()


def use_color(no_color: bool = False) -> bool:
    """Colour only on a terminal, unless --no-color, NO_COLOR (https://no-color.org) or a dumb
    terminal says otherwise."""
    if no_color or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return stdout_is_tty()


@contextmanager
def handled_errors(*, machine: bool = False) -> Iterator[None]:
    """Turn our errors into a clear message and exit 1: never a traceback.

    ``machine``: the command was asked for JSON, which is printed whatever the exit code, so
    stdout gets ``{"errors": [...]}`` and the human text goes to stderr.
    """
    import json

    from reconciler.cli.app import EXIT_USAGE
    from reconciler.errors import ManifestError, ReconcilerError, UsageError

    try:
        yield
    except UsageError as exc:  # a malformed option value: as click's own usage errors
        err(f"Error: {exc}")
        if machine:
            typer.echo(json.dumps({"errors": [{"message": str(exc)}]}, indent=2))
        raise typer.Exit(EXIT_USAGE) from None
    except ManifestError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=machine)
        if exc.omitted:
            typer.echo(exc.more_line, err=machine)
        if machine:
            document: dict[str, object] = {"errors": [i.as_dict() for i in exc.issues]}
            if exc.omitted:
                document["omitted_errors"] = exc.omitted
            typer.echo(json.dumps(document, indent=2))
        err(f"{exc.total} manifest error(s); nothing was sent to the API.")
        raise typer.Exit(1) from None
    except ReconcilerError as exc:
        err(f"Error: {exc}")
        if machine:
            typer.echo(json.dumps({"errors": [{"message": str(exc)}]}, indent=2))
        raise typer.Exit(1) from None


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@contextmanager
def interrupt_exits_130(said: str) -> Iterator[None]:
    """Ctrl-C: exit 130 (as a shell reports a SIGINT) after one line, ``said``, telling what
    was written; never click's bare exit or a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        err(said)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def root_words() -> tuple[str, str]:
    """(noun, title) of the state-root provider, as its registry entry names them: what the
    state commands say of the resources at the state's root ("mini app", "Mini App Center")."""
    from reconciler.providers.registry import PROVIDERS
    from reconciler.workflows.desired import root_provider

    entry = PROVIDERS[root_provider()]
    return str(getattr(entry, "noun", "resource")), entry.title
