"""What the API-talking commands share: endpoint and token resolution, the sandbox wiring,
state location, manifest loading with selection, and error printing.

This is the only module that reads the environment for the pipeline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reconciler.limits import DEFAULT_PROBE_WINDOW

if TYPE_CHECKING:
    from reconciler.manifest import LoadedApp
    from reconciler.manifest.changed import ChangedFiles
    from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient
    from reconciler.providers.miniappcenter.model import MiniApp
    from reconciler.state import State, StateStore
    from reconciler.transport.config import ClientLimits

DEFAULT_SANDBOX_DB = ".reconciler/sandbox.db"
MAC_PROVIDER = "miniappcenter"
SANDBOX_TOKEN = "local-sandbox-token"  # the in-process sandbox is private to this process

# --- shared option declarations (typer reads the defaults as option specs) -------------

SandboxOpt = typer.Option(
    False, "--sandbox", help="Use the embedded local sandbox (in-process, SQLite) as the API."
)
SandboxDbOpt = typer.Option(
    None,
    "--sandbox-db",
    envvar="MAC_SANDBOX_DB",
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
    help="State file (default: .reconciler/state.json; .reconciler/sandbox-state.json with"
    " --sandbox), or a PostgreSQL database: postgresql://USER@HOST/DB?workspace=NAME"
    " (password from PGPASSWORD or ~/.pgpass).",
)
LockTimeoutOpt = typer.Option(
    0.0,
    "--lock-timeout",
    min=0,
    max=86_400,
    metavar="SECONDS",
    help="With a PostgreSQL state: wait this long for another apply's locks before failing"
    " (default 0: fail at once, naming the holder). A file state never waits.",
)
ParallelismOpt = typer.Option(16, "--parallelism", min=1, max=256, help="Concurrent requests.")
SelectOpt = typer.Option(
    [], "--select", help="Only apps whose labels match KEY=VALUE (repeatable, all must match)."
)
TargetOpt = typer.Option([], "--target", help="Only this app id (repeatable).")
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


def check_provider(provider: str | None) -> None:
    """``--provider`` names one of the providers this reconciler manages."""
    from reconciler.errors import UsageError
    from reconciler.providers.registry import PROVIDERS

    if provider is not None and provider not in PROVIDERS:
        raise UsageError(
            f"--provider {provider[:40]!r} is not one this reconciler manages: choose one of"
            f" {', '.join(sorted(PROVIDERS))}"
        )


def err(message: str) -> None:
    """Diagnostics go to stderr so that stdout stays machine-readable."""
    typer.echo(message, err=True)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def use_color(no_color: bool = False) -> bool:
    """Colour only on a terminal, unless --no-color, NO_COLOR (https://no-color.org) or a dumb
    terminal says otherwise."""
    if no_color or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return stdout_is_tty()


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


def state_notices(store: StateStore, *, say: bool = True) -> tuple[str, ...]:
    """A missing state file is said, never silent: a deleted CI cache or a mistyped
    RECONCILER_STATE must not look like a normal run. Said on stderr (``say``) and returned
    for the plan's warnings (JSON, Markdown)."""
    if store.exists():
        return ()
    notices = (
        f"no state file was found at {store.describe()}: starting from the API. Mini apps that"
        " exist there are adopted, and their versions found by reading (a first run, or a"
        " lost state file: check --state / RECONCILER_STATE if you expected one)",
    )
    for notice in notices if say else ():
        err(f"Warning: {notice}")
    return notices


@dataclass(frozen=True)
class Desired:
    apps: list[MiniApp]  # after --select / --target
    selectors: dict[str, str]
    declared: frozenset[str]  # every id the manifests declare, before narrowing
    targets: tuple[str, ...] = ()
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # declared id -> labels
    # plan --changed-since: only these ids are read and planned (apps only the state knows
    # included, so a removed manifest still shows as a prune candidate); None: every app.
    only: frozenset[str] | None = None
    # The other providers' documents (Akana apps, REST objects) after --select/--target, and
    # every grouping key their manifests declare before narrowing (never a prune candidate).
    others: dict[str, list[LoadedApp[Any]]] = field(default_factory=dict)
    others_declared: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def declares_mini_apps(self) -> bool:
        return bool(self.declared)

    def models(self, provider: str) -> list[Any]:
        return [item.app for item in self.others.get(provider, ())]


def load_desired(
    paths: Sequence[Path],
    select: Sequence[str],
    target: Sequence[str],
    roots: Sequence[Path] = (),
    changes: ChangedFiles | None = None,
    provider: str | None = None,
) -> Desired:
    """Load + validate every manifest (all errors at once), then narrow by --select/--target
    and, for ``plan --changed-since``, to the apps ``changes`` touch.

    The declared ids travel along: an app outside the selection is never a prune candidate.
    """
    from reconciler.manifest import load_manifests, parse_selectors, require_manifests, select_apps

    selectors = parse_selectors(list(select))
    from reconciler.engine.service import split_by_provider
    from reconciler.providers.registry import MANIFEST_KINDS, PROVIDERS

    every: list[LoadedApp[Any]] = load_manifests(
        list(paths), dict(os.environ), list(roots), kinds=MANIFEST_KINDS
    )
    require_manifests(list(paths), every)
    _refuse_secrets(every)
    by_provider = split_by_provider(every, PROVIDERS)
    if provider is not None:
        by_provider = {name: items for name, items in by_provider.items() if name == provider}
    loaded: list[LoadedApp[MiniApp]] = by_provider.pop(MAC_PROVIDER, [])
    chosen = select_apps(loaded, selectors, list(target))
    only = None
    if changes is not None:
        from reconciler.manifest.changed import touched_ids

        only = touched_ids(loaded, changes)
        chosen = [item for item in chosen if item.app.id in only]
    labels = {item.app.id: dict(item.app.labels) for item in loaded}
    others: dict[str, list[LoadedApp[Any]]] = {}
    others_declared: dict[str, frozenset[str]] = {}
    wanted = set(target)
    for name, items in by_provider.items():
        kind = PROVIDERS[name]
        keyed = [(kind.resource_key(i.app), dict(kind.resource_labels(i.app)), i) for i in items]
        others_declared[name] = frozenset(key for key, _, _ in keyed)
        labels.update({key: item_labels for key, item_labels, _ in keyed})
        others[name] = [
            item
            for key, item_labels, item in keyed
            if (not wanted or key in wanted)
            and all(item_labels.get(k) == v for k, v in selectors.items())
            and (changes is None or Path(item.file).resolve() in changes.present)
        ]
    return Desired(
        apps=[item.app for item in chosen],
        selectors=selectors,
        declared=frozenset(item.app.id for item in loaded),
        targets=tuple(target),
        labels=labels,
        only=only,
        others=others,
        others_declared=others_declared,
    )


def check_scope(desired: Desired, state: State) -> None:
    """A ``--select``/``--target`` matching no declared app and no app the state records is
    an error (exit 1), never a green "No changes". Called once the state is loaded: a target
    only the state knows (``--target X --prune`` after its manifest was removed) is valid."""
    from reconciler.manifest import check_selection

    recorded = {app_id: record.labels for app_id, record in state.apps.items()}
    for section in state.providers.values():
        for records in section.resources.values():
            # Every provider keeps a resource's labels under "labels" in its record.
            recorded.update({key: _labels_of(data) for key, data in records.items()})
    check_selection(desired.selectors, desired.targets, desired.labels, recorded)


def _labels_of(record: Mapping[str, Any]) -> dict[str, str]:
    labels = record.get("labels")
    if not isinstance(labels, Mapping):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


# The environment variables whose values must never appear in a manifest (they would be
# printed in plans, PR comments and the state).
SECRET_VARIABLES = ("MAC_API_TOKEN", "AKANA_PASSWORD")


def _refuse_secrets(loaded: Sequence[LoadedApp[Any]]) -> None:
    """Defence in depth: a manifest value equal to (or holding) a secret would be printed in
    plans, PR comments and the state. Refuse before anything is shown."""
    from reconciler.errors import ManifestError, ManifestIssue

    secrets = {
        name: os.environ[name]
        for name in SECRET_VARIABLES
        if len(os.environ.get(name, "")) >= 8  # shorter: too many false alarms
    }
    if not secrets:
        return
    issues = [
        ManifestIssue(item.file, item.line, 1, "", f"contains the value of {name}; a secret"
                      " must never be written into a manifest")
        for item in loaded
        for name, value in secrets.items()
        if value in _as_text(item.app)
    ]
    if issues:
        raise ManifestError(issues)


def _as_text(model: Any) -> str:
    """Every value a checked manifest holds, as text (pydantic models and dataclasses)."""
    import dataclasses
    import json

    if hasattr(model, "model_dump_json"):
        return str(model.model_dump_json())
    if dataclasses.is_dataclass(model) and not isinstance(model, type):
        return json.dumps(dataclasses.asdict(model), default=str, ensure_ascii=False)
    return repr(model)


def in_scope_filter(
    selectors: dict[str, str], targets: Sequence[str], only: frozenset[str] | None = None
) -> Any:
    wanted = set(targets)

    def in_scope(app_id: str, record: Any) -> bool:
        if wanted and app_id not in wanted:
            return False
        if only is not None and app_id not in only:
            return False
        return all(record.labels.get(k) == v for k, v in selectors.items())

    return in_scope


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
