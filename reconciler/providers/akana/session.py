"""The Akana provider as the engine's service runs it (:mod:`reconciler.engine.session`):
:data:`AKANA_CONNECTOR` opens an :class:`AkanaSession` on the platform the environment names,
or on the in-process sandbox; the session plans, applies, classifies drift and imports.

Crash safety of creates. An app create is the one write whose result cannot be found again
from the state alone (the platform assigns the AppID), so before its POST the session records
an intent, ``resources["akana_pending_create"][NAME] = {"business_id": ...}``, and clears it
once the app's record is durable. A run killed in between leaves the intent: the next plan
lists the app's organization and takes the one live app of that Name over as its own (an
adoption, as ``adopt: true`` would), or plans the create again when there is none. Without the
intent that app would be "exists on the server but is not managed" and need a human.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

from reconciler.engine.drift import DriftReport
from reconciler.engine.plan import AppMeta, Change, Fact, Plan, PlanProblem
from reconciler.engine.session import (
    ChangeEvent,
    Connector,
    Imported,
    Outcome,
    ProviderSession,
    RecordWrite,
    Scope,
    Section,
    SectionApplied,
)
from reconciler.errors import StateError
from reconciler.manifest.loader import LoadedApp
from reconciler.providers.akana.apply import (
    ChangeResult,
    apply_changes,
    record_adoptions,
    record_meta,
)
from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import (
    BASE_URL_ENV,
    AkanaConfig,
    akana_config_from_env,
    akana_endpoint,
)
from reconciler.providers.akana.diff import Adoption, diff
from reconciler.providers.akana.drift import classify
from reconciler.providers.akana.fetch import READ_CONCURRENCY, read_live
from reconciler.providers.akana.importer import import_named
from reconciler.providers.akana.live import app_fingerprint, fingerprints, live_app
from reconciler.providers.akana.model import AkanaApp
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.vocabulary import PROVIDER, ROOT_KIND, app_address
from reconciler.transport.config import ClientLimits, limits_from_env
from reconciler.transport.redact import Secret

# The intents of app creates not yet known to be recorded (see the module's docstring).
PENDING_KIND: Final = "akana_pending_create"
SANDBOX_DB_NAME: Final = "akana-sandbox.db"
_SHOWN: Final = 200  # at most this much of a state value in a message


class AkanaSession:
    """One run's connection to one Akana platform (see :class:`ProviderSession`)."""

    def __init__(
        self,
        client: AkanaClient,
        *,
        identity: str,
        display: str,
        business_id: str | None = None,
        parallelism: int = 4,
    ) -> None:
        self._client = client
        self._identity = identity
        self._display = display
        self._business_id = business_id
        self._parallelism = parallelism

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def display(self) -> str:
        return self._display

    def __repr__(self) -> str:
        return f"AkanaSession({self._display!r})"

    # --- binding ---------------------------------------------------------------------------

    def bind(self, section: Section) -> None:
        if section.endpoint is None:
            section.endpoint = self._identity
        elif section.endpoint != self._identity:
            raise StateError(
                f"the state's Akana section was made for {_shown(section.endpoint)}, not"
                f" {self._identity}; use one state file per Akana platform (--state PATH or"
                " RECONCILER_STATE)"
            )

    # --- plan ------------------------------------------------------------------------------

    async def plan(self, desired: Sequence[Any], section: Section, scope: Scope) -> Plan:
        apps = [_akana_app(item) for item in desired]
        akana = AkanaSection.from_resources(section.resources)
        pending = _pending(section)
        declared = {app.name for app in apps}
        # An app whose create was interrupted is taken over when found (not left unmanaged).
        resuming = {name for name in pending if name not in akana.apps}
        wanted = [
            app.model_copy(update={"adopt": True}) if app.name in resuming else app
            for app in apps
        ]
        live = await read_live(
            self._client,
            wanted,
            akana,
            self._business_id,
            also_list=[pending[name] for name in sorted(resuming)],
            # --parallelism apps read at once (each app is two GETs, one after the other).
            concurrency=max(1, self._parallelism),
        )

        def in_scope(name: str) -> bool:
            if name in scope.declared:  # declared, only outside this selection: never pruned
                return False
            record = akana.apps.get(name)
            return scope.includes(name, record.labels if record is not None else {})

        result = diff(wanted, live, akana, prune=scope.prune, in_scope=in_scope)
        warnings = [PlanProblem(notice) for notice in scope.notices]
        warnings += result.warnings
        errors = list(result.errors)
        learned: list[Fact] = list(result.learned)
        for name in sorted(resuming):
            named = live.named(name)
            if not named:
                continue  # never created: a declared app is planned as a create again
            address = app_address(name)
            if len(named) > 1:
                if name not in declared:  # the diff says so for a declared one
                    ids = ", ".join(a.id for a in named)
                    errors.append(PlanProblem(
                        f"an interrupted apply was creating this app and {len(named)} apps of"
                        f" that name exist ({ids}); delete the extra ones", name, address, "app"))
                continue
            warnings.append(PlanProblem(
                f"an interrupted apply was creating this app: found as AppID {named[0].id},"
                " taken over as created by this reconciler", name, address))
            if name not in declared:
                learned.append(Adoption(name, named[0].id, {}))
        changes = result.changes
        return Plan(
            endpoints={PROVIDER: self._identity},
            changes=changes,
            warnings=tuple(warnings),
            errors=tuple(errors),
            fingerprints=fingerprints(changes, live),
            apps=tuple(sorted({*result.apps, *(f.app_id for f in learned)})),
            app_meta=dict(result.app_meta),
            learned=tuple(learned),
        )

    # --- apply -----------------------------------------------------------------------------

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
        akana = AkanaSection.from_resources(section.resources)
        if desired is None:  # a saved plan: refused whole before its first write if stale
            from reconciler.errors import PlanError
            from reconciler.providers.akana.plan_check import stale_saved_plan

            if (stale := await stale_saved_plan(self._client, plan, akana)) is not None:
                raise PlanError(stale)
        writer = _Writer(section, akana, record, plan.app_meta)
        out = SectionApplied()
        stuck = plan.stuck_apps
        out.stuck = sorted(stuck)

        # What was learnt by reading goes in first (no API write), a stuck app's too.
        out.adopted = record_adoptions(akana, [f for f in plan.learned if f.adopts])
        record_meta(akana, plan.app_meta)
        await writer.sync()

        mine = [c for c in plan.changes if c.provider == PROVIDER]
        moved = await self._moved(plan, akana) if desired is None else {}
        creating = {
            c.app_id for c in mine
            if c.kind == ROOT_KIND and c.action == "create" and c.app_id not in stuck
            and c.app_id not in moved
        }
        # Every other intent was resolved by the plan (adopted, recorded or not found).
        for name in sorted(_pending(section)):
            if name not in stuck and name not in creating:
                await writer.intent(name, None)

        def event(change: Change, outcome: Outcome, message: str | None) -> None:
            item = ChangeEvent(change, outcome, message)
            out.events.append(item)
            on_event(item)

        runnable: list[Change] = []
        for change in mine:
            if change.app_id in stuck:
                why = "; ".join(problem.message for problem in stuck[change.app_id])
                event(change, "skipped", f"its app is stuck: {why}")
            elif change.app_id in moved:
                event(change, "failed", moved[change.app_id])
            elif desired is None and (wrong := _mistargeted(change, akana)) is not None:
                event(change, "failed", wrong)
            else:
                runnable.append(change)

        async def before_write(change: Change) -> None:
            on_event(ChangeEvent(change, "started"))  # shown, not a result: not in out.events
            if change.kind == ROOT_KIND and change.action == "create":
                business_id = (change.after or {}).get("business_id")
                await writer.intent(
                    change.app_id, {"business_id": business_id if business_id else None}
                )

        async def settled(result: ChangeResult) -> None:
            if result.status == "done":
                await writer.app(result.change.app_id)
                if result.change.kind == ROOT_KIND and result.change.action == "create":
                    await writer.intent(result.change.app_id, None)
            outcome: Outcome = "applied" if result.status == "done" else result.status
            event(result.change, outcome, result.note)

        await apply_changes(
            self._client,
            runnable,
            akana,
            parallelism=parallelism,
            app_meta=plan.app_meta,
            before_write=before_write,
            settled=settled,
        )
        await writer.sync()  # labels and protection of apps with nothing to write
        return out

    async def _moved(self, plan: Plan, akana: AkanaSection) -> dict[str, str]:
        """A saved plan's apps that changed on the platform since it was made (re-read, a few
        apps at a time), with why: their changes are refused, the others applied."""
        gate = asyncio.Semaphore(max(1, self._parallelism))

        async def now(server_id: str | None) -> str | None:
            if server_id is None:
                return None
            async with gate:
                detail = await self._client.get_app(server_id)
                if detail is None:
                    return None
                return app_fingerprint(live_app(detail, await self._client.list_versions(
                    server_id)))

        checks: list[tuple[str, str, str | None]] = []
        for address, expected in sorted(plan.fingerprints.items(), key=lambda i: str(i[0])):
            name = address.key
            if address.provider != PROVIDER or address.parent is not None or name is None:
                continue
            planned = next((str(c.before["id"]) for c in plan.changes if c.address == address
                            and c.before is not None and c.before.get("id")), None)
            record = akana.apps.get(name)
            checks.append((name, expected, planned or (record.id if record else None)))
        found = await asyncio.gather(*(now(server_id) for _, _, server_id in checks))
        return {
            name: "the app changed on the platform since the plan was made: plan again"
            for (name, expected, _), fingerprint in zip(checks, found, strict=True)
            if fingerprint != expected
        }

    # --- drift and import ------------------------------------------------------------------

    def drift(self, plan: Plan, section: Section) -> DriftReport:
        return classify(plan, AkanaSection.from_resources(section.resources))

    async def import_resource(self, ref: str, section: Section) -> Imported:
        name, text, record = await import_named(self._client, ref, self._business_id)
        akana = AkanaSection.from_resources(section.resources)
        for other, known in akana.apps.items():
            if known.id == record.id and other != name:
                raise StateError(
                    f"the state already records AppID {record.id} as the Akana app"
                    f" {_shown(other)!r}; `reconciler state rm` it first to import it again"
                )
        existing = akana.apps.get(name)
        if existing is not None and existing.id != record.id:
            raise StateError(
                f"the state already records another Akana app named {_shown(name)!r} (AppID"
                f" {existing.id}); `reconciler state rm` it first"
            )
        section.resources.setdefault(ROOT_KIND, {})[name] = record.model_dump(mode="json")
        return Imported(key=name, manifest=text)


class _Writer:
    """Keeps the section's JSON in step with the typed records, one durable write at a time."""

    def __init__(
        self,
        section: Section,
        akana: AkanaSection,
        record: RecordWrite,
        app_meta: Mapping[str, AppMeta],
    ) -> None:
        self.section, self.akana, self.record, self.app_meta = section, akana, record, app_meta

    async def app(self, name: str) -> None:
        """Record the app's record as it now is (None once deleted)."""
        found = self.akana.apps.get(name)
        if found is not None and name in self.app_meta:
            record_meta(self.akana, {name: self.app_meta[name]})
        data = found.model_dump(mode="json") if found is not None else None
        await self._put(ROOT_KIND, name, data)

    async def intent(self, name: str, data: Mapping[str, Any] | None) -> None:
        await self._put(PENDING_KIND, name, data)

    async def sync(self) -> None:
        """Record every app whose record differs from the section's (adoptions, labels)."""
        current = self.section.resources.get(ROOT_KIND, {})
        for name in sorted({*current, *self.akana.apps}):
            found = self.akana.apps.get(name)
            data = found.model_dump(mode="json") if found is not None else None
            if current.get(name) != data:
                await self._put(ROOT_KIND, name, data)

    async def _put(self, kind: str, name: str, data: Mapping[str, Any] | None) -> None:
        await self.record(kind, name, data)
        records = self.section.resources.setdefault(kind, {})
        if data is None:
            records.pop(name, None)
            if not records:
                del self.section.resources[kind]
        else:
            records[name] = dict(data)


def _pending(section: Section) -> dict[str, str | None]:
    """The recorded create intents: app name -> the organization it was created in."""
    out: dict[str, str | None] = {}
    for name, data in (section.resources.get(PENDING_KIND) or {}).items():
        business_id = data.get("business_id") if isinstance(data, dict) else None
        out[name] = business_id if isinstance(business_id, str) and business_id else None
    return out


def _akana_app(item: Any) -> AkanaApp:
    app = item.app if isinstance(item, LoadedApp) else item
    if not isinstance(app, AkanaApp):
        raise TypeError(f"the Akana provider plans akana/v1 App manifests, not {type(app)!r}")
    return app


def _shown(text: str) -> str:
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."


# --- the connector ---------------------------------------------------------------------------


class AkanaConnector:
    """Opens an :class:`AkanaSession` from ``AKANA_*`` or on the in-process sandbox."""

    @property
    def name(self) -> str:
        return PROVIDER

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        return bool(env.get(BASE_URL_ENV, "").strip())

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool = True,
    ) -> AbstractAsyncContextManager[ProviderSession]:
        # The fleet-wide limits (MAC_REQUEST_DEADLINE, MAC_MAX_RESPONSE_BYTES): checked
        # before anything is sent, applied to every request (logins included).
        limits = limits_from_env(env)
        if sandbox_dir is not None:
            return _sandbox_session(sandbox_dir, parallelism, limits, keep_sandbox)
        return _env_session(akana_config_from_env(env), parallelism, limits)


def _client_connections(parallelism: int) -> int:
    return max(parallelism, READ_CONCURRENCY, 1)


@asynccontextmanager
async def _env_session(
    config: AkanaConfig, parallelism: int, limits: ClientLimits
) -> AsyncIterator[ProviderSession]:
    # Closing the client logs out, whatever ended the block.
    async with AkanaClient(
        config, max_connections=_client_connections(parallelism), limits=limits
    ) as client:
        yield AkanaSession(
            client,
            identity=config.endpoint.base_url,
            display=config.endpoint.display,
            business_id=config.business_id,
            parallelism=parallelism,
        )


@asynccontextmanager
async def _sandbox_session(
    sandbox_dir: Path, parallelism: int, limits: ClientLimits, keep_sandbox: bool
) -> AsyncIterator[ProviderSession]:
    # Imported here: the sandbox (Starlette) loads only for --sandbox runs.
    from reconciler.providers.akana.sandbox.inprocess import in_process_akana
    from reconciler.sandbox_kit.files import sandbox_database

    db = (sandbox_dir / SANDBOX_DB_NAME).resolve()
    opens = sandbox_database(db, keep=keep_sandbox)
    # A password nobody else knows: the sandbox's users live in this process only.
    sandbox = in_process_akana(opens, password=secrets.token_urlsafe(24))
    try:
        config = AkanaConfig(
            akana_endpoint(sandbox.base_url), sandbox.email, Secret(sandbox.password)
        )
        async with AkanaClient(
            config, transport=sandbox.transport,
            max_connections=_client_connections(parallelism), limits=limits,
        ) as client:
            yield AkanaSession(
                client,
                identity=f"sandbox:{db}",
                display=f"embedded Akana sandbox (in-process, {db})",
                parallelism=parallelism,
            )
    finally:
        sandbox.close()


AKANA_CONNECTOR: Final = AkanaConnector()
_CHECKED: Connector = AKANA_CONNECTOR  # mypy checks the protocol here


def _mistargeted(change: Change, akana: AkanaSection) -> str | None:
    """A saved change writes the server object its ``before.id`` names: that must be the id
    the state records for the change's address (an edit moving it to another app's object
    would update or delete what no reviewer saw). An object the state does not record (an
    adoption's, an app left by an interrupted create) is left to the fingerprint check."""
    target = (change.before or {}).get("id")
    if change.action == "create" or not isinstance(target, str):
        return None
    record = akana.apps.get(change.app_id)
    if record is None:
        return None
    if change.kind == ROOT_KIND:
        recorded: str | None = record.id
    else:
        version = record.versions.get(change.key or "")
        recorded = version.id if version is not None else None
    if recorded is None or recorded == target:
        return None
    return (
        f"{change.address}: the saved plan names a server id the state does not record for"
        " it; refusing it: run `reconciler plan` again"
    )
