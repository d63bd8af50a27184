"""`reconciler state ...`: inspect and repair the state file (never calls the API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler.cli.app import app
from reconciler.cli.common import SandboxOpt, StateOpt, err, handled_errors, root_words

if TYPE_CHECKING:
    from reconciler.state import State, StateStore

state_app = typer.Typer(
    help="Inspect and repair the state file (what was last applied). Never calls the API.",
    no_args_is_help=True,
)
app.add_typer(state_app, name="state")


def _shown(text: str, limit: int = 200) -> str:
    """A user-given address or code echoed back: bounded, control characters made visible."""
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _store(state: Path | None, sandbox: bool) -> StateStore:
    from reconciler.cli.location import anchored
    from reconciler.workflows.target import state_store

    location, _ = anchored([], state, sandbox, None)
    return state_store(location, sandbox)


@contextmanager
def _editing(state: Path | None, sandbox: bool, operation: str) -> Iterator[State]:
    """The state under the lock; saved when the block ends without error."""
    with handled_errors():
        store = _store(state, sandbox)
        with store.lock(operation) as lock_info:
            if (notice := lock_info.takeover_notice()) is not None:
                typer.echo(notice, err=True)
            current = store.read()
            yield current
            store.save(current)


@state_app.command("list")
def list_apps(state: Path | None = StateOpt, sandbox: bool = SandboxOpt) -> None:
    """List the mini apps (and other providers' resources) the state manages."""
    from reconciler.address import root_address

    with handled_errors():
        current = _store(state, sandbox).read()
    for app_id, record in sorted(current.apps.items()):
        flags = " (protected)" if record.protect else ""
        typer.echo(f"{app_id}\t{len(record.versions)} version(s){flags}")
    others = 0
    for name, section in sorted(current.providers.items()):
        for kind, records in sorted(section.resources.items()):
            for key, data in sorted(records.items()):
                flags = " (protected)" if data.get("protect") is True else ""
                typer.echo(f"{root_address(name, kind, key)}\tid {data.get('id')}{flags}")
                others += 1
    more = f", {others} other resource(s)" if others else ""
    noun, _ = root_words()
    err(f"{len(current.apps)} {noun}(s){more}; endpoint {current.endpoint}; serial"
        f" {current.serial}")  # fmt: skip


@state_app.command("show")
def show(app_id: str, state: Path | None = StateOpt, sandbox: bool = SandboxOpt) -> None:
    """Print what the state recorded for one resource, as JSON: any address `state list`
    prints (``state show 'akana_app[Name]'``), or a bare key."""
    from reconciler.errors import StateError

    with handled_errors():
        current = _store(state, sandbox).read()
        found = _lookup(current, app_id)
        if found is None:
            miss = _did_you_mean(current, app_id)
            raise StateError(f"{_shown(app_id)} is not in the state{miss}")
    typer.echo(json.dumps(found, indent=2))


def _lookup(current: State, text: str) -> dict[str, object] | None:
    """The record ``text`` names: a state-root key (``shop``), its address (``miniapp[shop]``)
    or another provider's root address (``akana_app[Name]``); None: none recorded."""
    from reconciler.address import AddressError, parse_address
    from reconciler.providers.registry import ROOT_KINDS
    from reconciler.workflows.desired import root_provider

    record = current.app(text)
    if record is not None:
        return record.model_dump(mode="json")
    try:
        address = parse_address(text, ROOT_KINDS)
    except AddressError:
        return None
    if address.parent is not None or address.key is None or address.instance is not None:
        return None
    if address.provider == root_provider():
        record = current.app(address.key)
        return None if record is None else record.model_dump(mode="json")
    return _other_record(current, text)


def _recorded_addresses(current: State) -> list[str]:
    """Every address `state list` prints, in the order it prints them."""
    from reconciler.address import root_address

    names = sorted(current.apps)
    for name, section in sorted(current.providers.items()):
        for kind, records in sorted(section.resources.items()):
            names += [str(root_address(name, kind, key)) for key in sorted(records)]
    return names


def _did_you_mean(current: State, text: str) -> str:
    """``; did you mean X?`` for the closest recorded address (or key), else a pointer to
    `state list`: a typo is common, and the list can be long."""
    import difflib

    from reconciler.address import AddressError, parse_address
    from reconciler.providers.registry import ROOT_KINDS

    known = _recorded_addresses(current)
    # Compare keys too, so that a wrong kind (miniapp[X] for akana_app[X]) still finds X.
    by_key: dict[str, str] = {}
    for name in known:
        try:
            key = parse_address(name, ROOT_KINDS).key
        except AddressError:
            key = name
        by_key.setdefault(key or name, name)
    try:
        asked_key = parse_address(text, ROOT_KINDS).key or text
    except AddressError:
        asked_key = text
    close = difflib.get_close_matches(text, known, n=1, cutoff=0.6) or [
        by_key[k] for k in difflib.get_close_matches(asked_key, list(by_key), n=1, cutoff=0.6)
    ]
    if close:
        return f"; did you mean {_shown(close[0])}?"
    return "; `reconciler state list` prints what it holds" if known else " (the state is empty)"


@state_app.command("rm")
def rm(
    app_id: str,
    version: str | None = typer.Option(None, "--version", help="Forget only this version code."),
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
) -> None:
    """Forget an app (or one version) WITHOUT deleting it from the API."""
    from reconciler.cli.common import target_keys
    from reconciler.errors import StateError

    with _editing(state, sandbox, "state rm") as current:
        if current.app(app_id) is None and target_keys([app_id], root_only=True) != (app_id,):
            app_id = target_keys([app_id], root_only=True)[0]  # miniapp[shop]: the app shop
        record = current.app(app_id)
        if record is None and version is None and _forget_other(current, app_id):
            return
        if record is None:
            raise StateError(
                f"{_shown(app_id)} is not in the state{_did_you_mean(current, app_id)}"
            )
        if version is None:
            del current.apps[app_id]
            what = app_id
        else:
            if version not in record.versions:
                raise StateError(f"{_shown(app_id)} has no version {_shown(version)} in the state")
            del record.versions[version]
            what = f"{app_id} version {version}"
    err(f"Forgot {what} (nothing was deleted from the {root_words()[1]}).")


def _other_record(current: State, text: str) -> dict[str, object] | None:
    """Another provider's record at the root address ``text`` (None: not one recorded)."""
    from reconciler.address import AddressError, parse_address
    from reconciler.providers.registry import ROOT_KINDS

    try:
        address = parse_address(text, ROOT_KINDS)
    except AddressError:
        return None
    section = current.providers.get(address.provider)
    records = section.resources.get(address.kind, {}) if section is not None else {}
    if address.parent is not None or address.key is None:
        return None
    return records.get(address.key)


def _forget_other(current: State, text: str) -> bool:
    """``state rm akana_app[Name]``: forget another provider's resource by its address."""
    from reconciler.address import AddressError, parse_address
    from reconciler.providers.registry import ROOT_KINDS

    try:
        address = parse_address(text, ROOT_KINDS)
    except AddressError:
        return False
    section = current.providers.get(address.provider)
    records = section.resources.get(address.kind, {}) if section is not None else {}
    if address.parent is not None or address.key not in records:
        return False
    del records[address.key]
    err(f"Forgot {address} (nothing was deleted on the server).")
    return True


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
            raise StateError(f"{_shown(app_id)} version {_shown(code)} is not in the state")
        record.versions[code].status = status
        record.versions[code].status_candidates = None  # a person looked: it is known
    err(f"Recorded {app_id} version {code} as {status}.")


def _check_status(status: str | None) -> None:
    from reconciler.providers.registry import PROVIDERS
    from reconciler.workflows.desired import root_provider

    STATUSES: tuple[str, ...] = tuple(getattr(PROVIDERS[root_provider()], "statuses", ()))
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="STATUS")


@state_app.command("history")
def history(
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="The last N runs."),
    format: str = typer.Option("text", "--format", help="text | json"),
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
) -> None:
    """The apply runs recorded: who, host, when, plan summary, result (PostgreSQL state)."""
    from reconciler.errors import StateError
    from reconciler.state_pg import PgStateStore

    if format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--format")
    with handled_errors():
        store = _store(state, sandbox)
        if not isinstance(store, PgStateStore):
            raise StateError(
                f"the state {store.describe()} is a file: it keeps no run history. Its history"
                " is the git log of the reconciler-state branch (GitOps); a PostgreSQL state"
                " (--state postgresql://...) records every apply"
            )
        runs = store.history(limit)
    if format == "json":
        typer.echo(json.dumps(runs, indent=2))
        return
    for run in runs:
        plan = run["summary"].get("plan") if run["summary"] else None
        counts = ", ".join(f"{k} {v}" for k, v in (plan or {}).items() if v) or "-"
        result = run["result"] or "did not finish (killed, or still running)"
        typer.echo(
            f"#{run['id']}\t{run['started']}\t{run['who']}@{run['host']} (pid {run['pid']})"
            f"\t{run['operation']}\t{counts}\t{result}"
        )
    err(f"{len(runs)} run(s) in {store.describe()}")


@state_app.command("migrate")
def migrate(
    to: str = typer.Option(..., "--to", metavar="PATH|URL", help="Where to copy the state."),
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
) -> None:
    """Copy the state to another store (file -> PostgreSQL or back), lossless; the source is
    left as it is. The destination must hold no state yet."""
    from reconciler.cli.common import _state_location
    from reconciler.errors import StateError
    from reconciler.state import FileStateStore, open_state_store
    from reconciler.state_pg import PgStateStore

    with handled_errors():
        source = _store(state, sandbox)
        target = open_state_store(_state_location(to))
        if target.describe() == source.describe():
            raise StateError("--to names the state being migrated")
        if not source.exists():
            raise StateError(f"there is no state at {source.describe()} to migrate")
        if target.exists():
            raise StateError(
                f"{target.describe()} already holds a state; migrate into an empty one"
            )
        with source.lock("state migrate") as held, target.lock("state migrate") as made:
            for notice in (held.takeover_notice(), made.takeover_notice()):
                if notice is not None:
                    err(notice)
            current = source.read()
            before = current.to_file()
            if isinstance(target, PgStateStore):
                target.import_state(current)
            elif isinstance(target, FileStateStore):
                # save() counts one more write: the copy keeps the source's serial.
                current.serial -= 1
                target.save(current)
            copied = target.read().to_file()
        if copied != before:
            raise StateError(
                f"the copy in {target.describe()} does not read back as the source; the"
                " source is unchanged"
            )
    err(
        f"Migrated {len(current.apps)} {root_words()[0]}(s), lineage {current.lineage} serial"
        f" {current.serial}, from {source.describe()} to {target.describe()}. Point --state /"
        " RECONCILER_STATE at the new one; the old one is left as it was."
    )
