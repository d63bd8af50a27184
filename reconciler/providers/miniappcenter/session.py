"""The Mini App Center as the workflows reach it: through its connector on the registry, like
Akana and REST, never by importing this package.

:data:`MINIAPPCENTER_CONNECTOR` resolves the endpoint (``MAC_BASE_URL`` / ``MAC_API_TOKEN``, or
the in-process sandbox for ``--sandbox``, wired here as the other connectors wire theirs) and
opens a :class:`MiniAppCenterSession`, which the engine's service runs like every session.
Unlike the others it keeps its records typed at the state's root (``apps``, the version-id
mark) and writes its own journal lines (review flow, version probe, journal paths), so it
declares ``attach``: it plans, applies and imports on the run's whole state and store
(:class:`reconciler.engine.session.RunContext`). Its descriptor says ``state_root``: the state
file is bound to its endpoint (:meth:`MiniAppCenterConnector.binding`).
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
    from reconciler.engine.result import ChangeResult
    from reconciler.engine.session import (
        Binding,
        ChangeEvent,
        Imported,
        ProviderSession,
        RecordWrite,
        RunContext,
        Scope,
        Section,
        SectionApplied,
        Stoppable,
    )
    from reconciler.providers.miniappcenter.apply import Executor
    from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient
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
    # What the sandbox opens: ``sandbox_db``, or an in-memory database for a read-only run
    # whose file does not exist (sandbox_kit.files).
    sandbox_opens: Path | None = None

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

            opens = self.sandbox_opens or self.sandbox_db
            app = create_app(SandboxConfig(db_path=opens, token=self.token))
            transport = httpx.ASGITransport(app=app)
        return MiniAppCenterClient(
            self.endpoint,
            self.token,
            transport=transport,
            max_connections=max(parallelism, 1),
            limits=self.limits,
        )


def resolve_target(
    sandbox: bool,
    sandbox_db: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    keep_sandbox: bool = True,
) -> Target:
    """The endpoint of this run: the in-process sandbox (``--sandbox``) or the environment's.
    ``keep_sandbox=False``: a read-only run, which creates no file (sandbox_kit.files)."""
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
        from reconciler.sandbox_kit.files import sandbox_database

        db = (sandbox_db or Path(DEFAULT_SANDBOX_DB)).resolve()
        opens = sandbox_database(db, keep=keep_sandbox)
        return Target(
            endpoint=Endpoint(base_url="http://127.0.0.1/api"),
            token=SANDBOX_TOKEN,
            identity=f"sandbox:{db}",
            display=f"embedded sandbox (in-process, {db})",
            sandbox_db=db,
            limits=limits,
            sandbox_opens=opens,
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
        """Its part of the plan (its review flow and version probe); the delete budget is
        the service's (fleet-wide)."""
        from reconciler.providers.miniappcenter.planning import make_plan

        run = self._context()
        async with self.target.client(self.parallelism) as client:
            return await make_plan(
                client,
                list(desired),
                run.state,
                identity=self.identity,
                prune=scope.prune,
                max_deletes=None,
                in_scope=in_scope_filter(scope.selectors, sorted(scope.targets), scope.only),
                declared=scope.declared,
                parallelism=self.parallelism,
                probe_window=run.probe_window,
                notices=tuple(scope.notices),
                endpoint_setting=self.target.setting,
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

        async with self._executor(
            plan,
            run.store,
            run.state,
            verify_fingerprints=run.verify_fingerprints,
            probe_window=run.probe_window,
            on_result=on_result,
            on_start=lambda change: on_event(ChangeEvent(change, "started")),
            stop=run.stop,
        ) as running:
            done = await running.run()
        return SectionApplied(
            adopted=done.adopted,
            stuck=list(done.stuck),
            reasons=dict(done.stuck),
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
        run.state.apps[ref] = result.record
        notes: tuple[str, ...] = ()
        if result.skipped:
            notes = (
                "not imported (the API returns URLs, writes need upload ids):"
                f" {', '.join(result.skipped)}",
            )
        # the schema line is the import workflow's, one rule for every provider
        return Imported(ref, render_manifest(result.app), notes)

    @asynccontextmanager
    async def _executor(
        self,
        plan: Plan,
        store: StateStore,
        state: State,
        *,
        verify_fingerprints: bool,
        probe_window: int,
        on_result: Callable[[ChangeResult], None],
        on_start: Callable[[Change], None],
        stop: Stoppable | None,
    ) -> AsyncIterator[Executor]:
        """The executor of ``plan`` (it polls ``stop`` before each change), its client open
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
                    stop=stop,
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

    @property
    def name(self) -> str:
        return PROVIDER

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        return bool(env.get(BASE_URL_ENV, "").strip())

    def _target(
        self, env: Mapping[str, str], sandbox_dir: Path | None, keep_sandbox: bool = True
    ) -> Target:
        """``--sandbox``: the in-process sandbox's file is ``--sandbox-db`` (its variable in
        ``env``), else ``sandbox.db`` in ``sandbox_dir``."""
        from reconciler.limits import SANDBOX_DB_ENV

        db = None
        if sandbox_dir is not None:
            named = env.get(SANDBOX_DB_ENV, "").strip()
            db = Path(named) if named else sandbox_dir / Path(DEFAULT_SANDBOX_DB).name
        return resolve_target(sandbox_dir is not None, db, env, keep_sandbox=keep_sandbox)

    def binding(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        keep_sandbox: bool = True,
    ) -> Binding:
        """What the state file is bound to (the endpoint resolved and checked; nothing
        connected)."""
        from reconciler.engine.session import Binding

        target = self._target(env, sandbox_dir, keep_sandbox)
        return Binding(target.identity, target.display)

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool = True,
    ) -> AbstractAsyncContextManager[ProviderSession]:
        """Its session (nothing is sent before a plan, a write or an import asks)."""
        target = self._target(env, sandbox_dir, keep_sandbox)
        return _opened(MiniAppCenterSession(target, parallelism))

    # --- optional hooks the workflows ask of any connector that has them -----------------
    def check_saved(self, saved: Plan, run: RunContext, source: str) -> None:
        """A saved plan against the run's state: protection, status chains, location ids
        (the workflow's stale-serial guard has accepted it)."""
        from reconciler.providers.miniappcenter.plan_check import check_against_state

        check_against_state(saved, run.state, source)

    def check_ref(self, ref: str) -> str:
        """Refuse what cannot be a mini app id, before any request. The id is its natural
        key: the import refuses a managed one or an existing file before reading."""
        from reconciler.providers.miniappcenter.ids import check_app_id

        check_app_id(ref)
        return ref



@asynccontextmanager
async def _opened(session: MiniAppCenterSession) -> AsyncIterator[ProviderSession]:
    yield session


MINIAPPCENTER_CONNECTOR = MiniAppCenterConnector()

if TYPE_CHECKING:  # mypy checks that it keeps the protocols the engine relies on
    from reconciler.engine.session import BindsStateFile, Connector

    _CONFORMS: Connector = MINIAPPCENTER_CONNECTOR
    _BINDS: BindsStateFile = MINIAPPCENTER_CONNECTOR
