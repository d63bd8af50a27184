"""`reconciler state ...`: inspect and repair the state file (never calls the API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler.cli.app import app
from reconciler.cli.common import SandboxOpt, StateOpt, err, handled_errors, state_store

if TYPE_CHECKING:
    from reconciler.state import FileStateStore, State

state_app = typer.Typer(
    help="Inspect and repair the state file (what was last applied). Never calls the API.",
    no_args_is_help=True,
)
app.add_typer(state_app, name="state")


def _store(state: Path | None, sandbox: bool) -> FileStateStore:
    return state_store(state, sandbox)


@contextmanager
def _editing(state: Path | None, sandbox: bool, operation: str) -> Iterator[State]:
    """The state under the lock; saved when the block ends without error."""
    with handled_errors():
        store = _store(state, sandbox)
        with store.lock(operation):
            current = store.read()
            yield current
            store.save(current)


@state_app.command("list")
def list_apps(state: Path | None = StateOpt, sandbox: bool = SandboxOpt) -> None:
    """List the mini apps the state manages."""
    with handled_errors():
        current = _store(state, sandbox).read()
    for app_id, record in sorted(current.apps.items()):
        flags = " (protected)" if record.protect else ""
        typer.echo(f"{app_id}\t{len(record.versions)} version(s){flags}")
    err(f"{len(current.apps)} mini app(s); endpoint {current.endpoint}; serial {current.serial}")


@state_app.command("show")
def show(app_id: str, state: Path | None = StateOpt, sandbox: bool = SandboxOpt) -> None:
    """Print what the state recorded for one mini app (JSON)."""
    from reconciler.errors import StateError

    with handled_errors():
        record = _store(state, sandbox).read().app(app_id)
        if record is None:
            raise StateError(f"{app_id} is not in the state")
    typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))


@state_app.command("rm")
def rm(
    app_id: str,
    version: str | None = typer.Option(None, "--version", help="Forget only this version code."),
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
) -> None:
    """Forget an app (or one version) WITHOUT deleting it from the API."""
    from reconciler.errors import StateError

    with _editing(state, sandbox, "state rm") as current:
        record = current.app(app_id)
        if record is None:
            raise StateError(f"{app_id} is not in the state")
        if version is None:
            del current.apps[app_id]
            what = app_id
        else:
            if version not in record.versions:
                raise StateError(f"{app_id} has no version {version} in the state")
            del record.versions[version]
            what = f"{app_id} version {version}"
    err(f"Forgot {what} (nothing was deleted from the Mini App Center).")


@state_app.command("unlock")
def unlock(lock_id: str, state: Path | None = StateOpt, sandbox: bool = SandboxOpt) -> None:
    """Remove a stale lock left by an apply that died (give the lock id it printed)."""
    with handled_errors():
        holder = _store(state, sandbox).unlock(lock_id)
    err(f"Removed {holder.describe()}")


@state_app.command("adopt-version")
def adopt_version(
    app_id: str,
    code: str,
    version_id: int = typer.Argument(..., min=1, help="The version's id on the server."),
    status: str | None = typer.Option(
        None, "--status", help="Its review status, if known (the API does not return it)."
    ),
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
) -> None:
    """Bind a version code to an existing server id (after an interrupted or outside create)."""
    from reconciler.state import UNKNOWN, AppRecord, VersionRecord

    _check_status(status)
    with _editing(state, sandbox, "state adopt-version") as current:
        record = current.apps.setdefault(app_id, AppRecord())
        previous = record.versions.get(code)
        if status is None and previous is not None and previous.create_outcome == UNKNOWN:
            status = "pending"  # what an interrupted create left: new versions start pending
        record.versions[code] = VersionRecord(id=version_id, status=status)
    shown = f" (status {status})" if status else " (status unknown: see `state set-status`)"
    err(f"Adopted {app_id} version {code} as id {version_id}{shown}.")


@state_app.command("set-status")
def set_status(
    app_id: str,
    code: str,
    status: str,
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
) -> None:
    """Record a version's review status as checked in the Mini App Center."""
    from reconciler.errors import StateError

    _check_status(status)
    with _editing(state, sandbox, "state set-status") as current:
        record = current.app(app_id)
        if record is None or code not in record.versions:
            raise StateError(f"{app_id} version {code} is not in the state")
        record.versions[code].status = status
        record.versions[code].status_candidates = None  # a person looked: it is known
    err(f"Recorded {app_id} version {code} as {status}.")


def _check_status(status: str | None) -> None:
    from reconciler.providers.miniappcenter.model import STATUSES

    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="STATUS")
