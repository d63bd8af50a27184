"""The Mini App Center as the workflows reach it: through its connector on the registry, like
Akana and REST, never by importing this package.

:data:`MINIAPPCENTER_CONNECTOR` resolves the endpoint (``MAC_BASE_URL`` / ``MAC_API_TOKEN``, or
the in-process sandbox for ``--sandbox``, wired here as the other connectors wire theirs) and
opens a :class:`MiniAppCenterSession`. Unlike the other providers it keeps its records at the
state's root (``apps``, the version-id mark) and writes its own journal lines (review flow,
version probe, journal paths), so besides the neutral :class:`ProviderSession` properties the
session offers the workflows the operations of a *state-root* provider
(:class:`reconciler.engine.session.StateRootSession`): plan, execute, classify drift, check a
saved plan and import, each given the whole state and its store.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.limits import DEFAULT_SANDBOX_DB
from reconciler.providers.miniappcenter.vocabulary import PROVIDER, ROOT_KIND

if TYPE_CHECKING:
    from reconciler.engine.drift import DriftReport
    from reconciler.engine.plan import Change, Plan
    from reconciler.engine.session import (
        ChangeEvent,
        Imported,
        ProviderSession,
        RecordWrite,
        RootScope,
        RunContext,
        Scope,
        Section,
        SectionApplied,
        StateRootSession,
    )
    from reconciler.providers.miniappcenter.apply import ApplyResult, ChangeResult, Executor
    from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient
    from reconciler.providers.miniappcenter.fetch import LiveState
    from reconciler.state import State, StateStore
    from reconciler.transport.config import ClientLimits

SANDBOX_TOKEN = "local-sandbox-token"  # the in-process sandbox is private to this process
BASE_URL_ENV = "MAC_BASE_URL"
TOKEN_ENV = "MAC_API_TOKEN"


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
        return "--sandbox-db" if self.sandbox_db is not None else BASE_URL_ENV

    def client(self, parallelism: int) -> MiniAppCenterClient:
        from reconciler.providers.miniappcenter.client import MiniAppCenterClient

        transport = None
        if self.sandbox_db is not None:
            import httpx

            # Imported here, as the Akana and REST connectors import theirs: the sandbox
            # (Starlette) loads only for --sandbox runs.
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


def resolve_target(
    sandbox: bool, sandbox_db: Path | None, env: Mapping[str, str] | None = None
) -> Target:
    """The endpoint of this run: the in-process sandbox (``--sandbox``) or the environment's."""
    from reconciler.errors import ConfigError
    from reconciler.providers.miniappcenter.client import (
        Endpoint,
        check_endpoint_security,
        endpoint_from_env,
    )
    from reconciler.transport.config import limits_from_env

    env = dict(os.environ) if env is None else env
    limits = limits_from_env(env)  # checked before anything runs

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
    if not env.get(BASE_URL_ENV):
        raise ConfigError(
            f"no API endpoint configured: set {BASE_URL_ENV} (and {TOKEN_ENV}), or pass"
            " --sandbox to use the embedded local sandbox"
        )
    endpoint = endpoint_from_env(env)
    check_endpoint_security(endpoint.base_url)
    token = env.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"{TOKEN_ENV} is not set: the Mini App Center needs an API token")
    return Target(
        endpoint=endpoint,
        token=token,
        identity=endpoint.base_url,
        display=endpoint.display,
        limits=limits,
    )


class MiniAppCenterSession:
    """One run's Mini App Center endpoint. Its client is opened per operation (planning
    and writing run in two event loops, docs/decisions.md D112)."""

    def __init__(self, target: Target, parallelism: int) -> None:
        self.target = target
        self.parallelism = parallelism
        self._run: RunContext | None = None

    # --- ProviderSession ----------------------------------------------------------------
    @property
    def identity(self) -> str:
        return self.target.identity

    @property
    def display(self) -> str:
        return self.target.display

    def bind(self, section: Section) -> None:
        """The state file itself is bound to this endpoint when it is loaded
        (``StateStore.load(identity)``): nothing more to bind."""

    def attach(self, run: RunContext) -> None:
        """Its records are typed at the state's root and its executor journals its own
        lines: it plans, applies and imports on the run's whole state and store."""
        self._run = run

    def _context(self) -> RunContext:
        run = self._run
        if run is None:
            raise RuntimeError("the Mini App Center session needs attach(run) before use")
        return run

    async def plan(self, desired: Sequence[Any], section: Section, scope: Scope) -> Plan:
        """Its part of the plan; the delete budget is the service's (fleet-wide)."""
        from reconciler.engine.session import RootScope

        run = self._context()
        return await self.plan_root(
            desired,
            run.state,
            RootScope(scope.selectors, sorted(scope.targets), scope.declared, scope.only),
            prune=scope.prune,
            max_deletes=None,
            probe_window=run.probe_window,
            notices=scope.notices,
        )

    async def apply(
        self,
        plan: Plan,
        section: Section,
        *,
        desired: Sequence[Any] | None,
        parallelism: int,
        record: RecordWrite,
        on_event: Callable[[ChangeEvent], None],
    ) -> SectionApplied:
        """Run its part with its executor, which journals each write through the run's
        store itself (``record`` is not used: its records grow version by version)."""
        from reconciler.engine.session import ChangeEvent, SectionApplied

        run = self._context()

        def on_result(result: ChangeResult) -> None:
            on_event(ChangeEvent(result.change, result.outcome, result.message, result.stuck))

        async with self.executor(
            plan,
            run.store,
            run.state,
            verify_fingerprints=run.verify_fingerprints,
            probe_window=run.probe_window,
            on_result=on_result,
            on_start=run.on_start or (lambda _change: None),
        ) as running:
            done = await running.run()
        return SectionApplied(
            adopted=done.adopted,
            stuck=list(done.stuck),
            interrupted=done.interrupted,
            unresolved=list(done.unresolved),
            probe_reads=done.probe_reads,
        )

    def drift(self, plan: Plan, section: Section) -> DriftReport:
        from reconciler.providers.miniappcenter.drift import classify

        return classify(plan, self._context().state)

    async def import_resource(self, ref: str, section: Section) -> Imported:
        """Import mini app ``ref``: the run's hints give its version ids (``versions``,
        code -> id: the API cannot list them) and the manifest's ``labels``; the record is
        put in the run's state, saved by the caller."""
        from reconciler.engine.session import Imported
        from reconciler.errors import ReconcilerError
        from reconciler.providers.miniappcenter.fetch import FetchRequest, fetch_live
        from reconciler.providers.miniappcenter.ids import check_app_id
        from reconciler.providers.miniappcenter.importer import import_app
        from reconciler.providers.miniappcenter.manifest import render_manifest

        check_app_id(ref)
        run = self._context()
        hints = run.hints.get(ref, {})
        versions = {str(k): int(v) for k, v in dict(hints.get("versions") or {}).items()}
        labels = {str(k): str(v) for k, v in dict(hints.get("labels") or {}).items()}
        async with self.target.client(8) as client:
            live = await fetch_live(
                client, [FetchRequest(ref, locations=True, versions=dict(versions))]
            )
        live_app = live.apps.get(ref)
        if live_app is None:
            raise ReconcilerError(f"mini app {ref} does not exist on the server")
        if live_app.missing_versions:
            wrong = ", ".join(f"{code}={versions[code]}" for code in live_app.missing_versions)
            raise ReconcilerError(f"{ref}: no version with that code and id on the server: {wrong}")
        result = import_app(live_app, labels)
        schema = None if run.out is None else _schema_path(run.out / f"{ref}.yaml")
        run.state.apps[ref] = result.record
        return Imported(ref, render_manifest(result.app, schema=schema))

    # --- a state-root provider ----------------------------------------------------------
    @property
    def setting(self) -> str:
        return self.target.setting

    async def plan_root(
        self,
        desired: Sequence[Any],
        state: State,
        scope: RootScope,
        *,
        prune: bool,
        max_deletes: int | None,
        probe_window: int,
        notices: Sequence[str],
    ) -> Plan:
        """Read and diff this provider's part (its review flow and version probe)."""
        from reconciler.providers.miniappcenter.planning import make_plan

        async with self.target.client(self.parallelism) as client:
            return await make_plan(
                client,
                list(desired),
                state,
                identity=self.identity,
                prune=prune,
                max_deletes=max_deletes,
                in_scope=in_scope_filter(scope.selectors, scope.targets, scope.only),
                declared=scope.declared,
                parallelism=self.parallelism,
                probe_window=probe_window,
                notices=tuple(notices),
                endpoint_setting=self.setting,
            )

    async def drift_root(
        self,
        desired: Sequence[Any],
        state: State,
        scope: RootScope,
        *,
        probe_window: int,
        notices: Sequence[str],
    ) -> DriftReport:
        from reconciler.providers.miniappcenter.drift import classify

        plan = await self.plan_root(
            desired, state, scope, prune=False, max_deletes=None, probe_window=probe_window,
            notices=notices,
        )  # fmt: skip
        return classify(plan, state)

    @asynccontextmanager
    async def executor(
        self,
        plan: Plan,
        store: StateStore,
        state: State,
        *,
        verify_fingerprints: bool,
        probe_window: int,
        on_result: Callable[[ChangeResult], None],
        on_start: Callable[[Change], None],
    ) -> AsyncIterator[Executor]:
        """The executor of ``plan`` (stoppable: a graceful stop asks it), its client open
        while the block runs; ``await executor.run()`` runs the writes."""
        from reconciler.providers.miniappcenter.apply import ApplyOptions, Executor

        async with self.target.client(self.parallelism) as client:
            yield Executor(
                client,
                store,
                state,
                plan,
                options=ApplyOptions(
                    parallelism=self.parallelism,
                    probe_window=probe_window,
                    verify_fingerprints=verify_fingerprints,
                    on_result=on_result,
                    on_start=on_start,
                ),
            )


def root_section(state: State) -> Section:
    """Its section as the service and the state commands see every provider's: a snapshot
    of the typed records at the state's root, as JSON (the on-disk layout's
    ``providers.miniappcenter``). Writes go through the run's state, never through this."""
    from reconciler.state import ProviderState
    from reconciler.state.model import VERSION_ID_MARK  # the on-disk mark's name

    return ProviderState(
        endpoint=state.endpoint,
        marks={VERSION_ID_MARK: state.version_id_mark},
        resources={
            ROOT_KIND: {
                app_id: record.model_dump(mode="json") for app_id, record in state.apps.items()
            }
        },
    )


def in_scope_filter(
    selectors: Mapping[str, str], targets: Sequence[str], only: frozenset[str] | None = None
) -> Callable[[str, Any], bool]:
    """Which recorded apps a run covers (--select, --target, --changed-since)."""
    wanted = set(targets)

    def in_scope(app_id: str, record: Any) -> bool:
        if wanted and app_id not in wanted:
            return False
        if only is not None and app_id not in only:
            return False
        return all(record.labels.get(k) == v for k, v in selectors.items())

    return in_scope


class MiniAppCenterConnector:
    """Opens a :class:`MiniAppCenterSession` from ``MAC_*`` or on the in-process sandbox."""

    # Its records live at the state's root and it binds the state file (see the module).
    state_root = True

    @property
    def name(self) -> str:
        return PROVIDER

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        return bool(env.get(BASE_URL_ENV, "").strip())

    def session(
        self, sandbox: bool, sandbox_db: Path | None, parallelism: int
    ) -> MiniAppCenterSession:
        return MiniAppCenterSession(resolve_target(sandbox, sandbox_db), parallelism)

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
    ) -> AbstractAsyncContextManager[ProviderSession]:
        """The neutral way to open it (the workflows use :meth:`session`, which takes
        ``--sandbox-db`` itself): the in-process sandbox's file is ``sandbox.db`` in
        ``sandbox_dir``."""
        db = None if sandbox_dir is None else sandbox_dir / Path(DEFAULT_SANDBOX_DB).name
        target = resolve_target(sandbox_dir is not None, db, env)
        return _opened(MiniAppCenterSession(target, parallelism))

    # --- what the workflows and the CLI need of it, without importing this package -------
    def empty_result(self) -> ApplyResult:
        from reconciler.providers.miniappcenter.apply import ApplyResult

        return ApplyResult()

    def change_result(self, event: ChangeEvent) -> ChangeResult:
        """Another provider's change result, in the one apply summary and progress."""
        from reconciler.providers.miniappcenter.apply import ChangeResult

        return ChangeResult(event.change, event.outcome, event.message)

    def check_saved(self, saved: Plan, state: State, source: str) -> None:
        """A saved plan against the state: protection, status chains, location ids."""
        from reconciler.providers.miniappcenter.plan_check import check_against_state

        check_against_state(saved, state, source)

    def check_ref(self, ref: str) -> None:
        from reconciler.providers.miniappcenter.ids import check_app_id

        check_app_id(ref)

    def import_resources(
        self,
        refs: Sequence[str],
        *,
        out: Path,
        versions: Mapping[str, Mapping[str, int]],
        labels: Mapping[str, str],
        force: bool,
        store: StateStore,
        session: StateRootSession,
        say: Callable[[str], None],
    ) -> None:
        """Import mini apps ``refs`` (checked ids; ``versions``: per app, code -> version
        id, since the API cannot list them) into manifests under ``out`` and the state."""
        import asyncio

        from reconciler.errors import ConfigError, ReconcilerError
        from reconciler.providers.miniappcenter.fetch import FetchRequest, fetch_live
        from reconciler.providers.miniappcenter.importer import import_app
        from reconciler.providers.miniappcenter.manifest import render_manifest

        assert isinstance(session, MiniAppCenterSession)
        where = session.target
        targets = {app_id: out / f"{app_id}.yaml" for app_id in refs}
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing and not force:
            raise ConfigError(f"refusing to overwrite {', '.join(existing)} (use --force)")

        async def run() -> LiveState:
            requests = [
                FetchRequest(app_id, locations=True, versions=dict(versions.get(app_id, {})))
                for app_id in refs
            ]
            async with where.client(8) as client:
                return await fetch_live(client, requests)

        with store.lock("import") as lock_info:
            if (notice := lock_info.takeover_notice()) is not None:
                say(notice)
            current = store.load(where.identity)
            managed = [app_id for app_id in refs if app_id in current.apps]
            if managed:
                # Re-importing would drop version ids and protection the state keeps.
                raise ConfigError(
                    f"already managed: {', '.join(managed)}. Its manifest is the source of"
                    " truth; to adopt it again, first `reconciler state rm` it"
                )
            live = asyncio.run(run())
            results = []
            for app_id in refs:
                live_app = live.apps.get(app_id)
                if live_app is None:
                    raise ReconcilerError(f"mini app {app_id} does not exist on the server")
                if live_app.missing_versions:
                    wrong = ", ".join(
                        f"{code}={versions[app_id][code]}" for code in live_app.missing_versions
                    )
                    raise ReconcilerError(
                        f"{app_id}: no version with that code and id on the server: {wrong}"
                    )
                results.append(import_app(live_app, dict(labels)))
            out.mkdir(parents=True, exist_ok=True)
            for result in results:
                path = targets[result.app.id]
                schema = _schema_path(path)
                path.write_text(render_manifest(result.app, schema=schema), encoding="utf-8")
                current.apps[result.app.id] = result.record
                say(f"Imported {result.app.id} -> {path}")
                if result.skipped:
                    say(
                        f"  not imported (the API returns URLs, writes need upload ids):"
                        f" {', '.join(result.skipped)}"
                    )
            store.save(current)


def _schema_path(manifest: Path) -> str | None:
    """A relative path from the manifest to the repo's schema, when there is one."""
    schema = Path("schema/miniapp.schema.json")
    if not schema.exists():
        return None
    return os.path.relpath(schema.resolve(), manifest.parent.resolve())


@asynccontextmanager
async def _opened(session: MiniAppCenterSession) -> AsyncIterator[ProviderSession]:
    yield session


MINIAPPCENTER_CONNECTOR = MiniAppCenterConnector()

if TYPE_CHECKING:  # mypy checks that it keeps the protocol the workflows rely on
    from reconciler.engine.session import StateRootConnector

    _CONFORMS: StateRootConnector = MINIAPPCENTER_CONNECTOR
