"""The workflows shared by every provider that runs through a session (plan, apply, drift):
split the manifests by provider, run each provider's part concurrently, merge the parts into
one plan, and enforce the fleet-wide guards on the whole.

The workflows give it the providers' connectors (from the composition root) and the state; this
module never imports a provider. One plan covers every provider; apply runs each provider's
part with its own session and makes every completed write durable through the state store
(``record_resource``) before it is reported done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine.drift import DriftItem, DriftReport
from reconciler.engine.plan import Plan, PlanProblem, StuckProvider, delete_budget_problem
from reconciler.engine.provider import split_by_provider as split_by_provider
from reconciler.engine.session import (
    ChangeEvent,
    Connector,
    ProviderSession,
    RunContext,
    Scope,
    Section,
    SectionApplied,
    provider_wide,
)
from reconciler.errors import ConfigError, ReconcilerError

# provider, kind, natural key, the record as JSON (None: removed) -> durable when done
StoreWrite = Callable[[str, str, str, Mapping[str, Any] | None], Awaitable[None]]


@dataclass(frozen=True)
class Sessions:
    """The sessions open for one run, by provider name, and what each is bound to."""

    by_name: Mapping[str, ProviderSession] = field(default_factory=dict)


async def open_sessions(
    stack: AsyncExitStack,
    connectors: Mapping[str, Connector],
    names: Iterable[str],
    env: Mapping[str, str],
    *,
    sandbox_dir: Path | None,
    config: Path | None,
    parallelism: int,
    settings: Mapping[str, str] | None = None,
    keep_sandbox: bool = True,
) -> Sessions:
    """Open the sessions of ``names`` (closed, logged out, when ``stack`` closes). A provider
    the run needs whose endpoint is not configured is an error naming what to set
    (``settings``: by provider, its variables as its registry descriptor lists them)."""
    opened: dict[str, ProviderSession] = {}
    for name in sorted(set(names)):
        connector = connectors[name]
        if sandbox_dir is None and not connector.configured(env, config):
            setting = (settings or {}).get(name)
            what = f": set {setting}," if setting else ";"
            raise ConfigError(
                f"the manifests or the state need the {name} provider, but no {name} endpoint"
                f" is configured{what} or pass --sandbox"
            )
        opened[name] = await stack.enter_async_context(
            connector.connect(
                env,
                sandbox_dir=sandbox_dir,
                config=config,
                parallelism=parallelism,
                keep_sandbox=keep_sandbox,
            )
        )
    return Sessions(opened)


def attach(sessions: Sessions, run: RunContext) -> None:
    """Give ``run`` to every session that asks for the run's context (``attach``): a
    provider whose records are typed across resources and which journals its own writes."""
    for session in sessions.by_name.values():
        attach_to = getattr(session, "attach", None)
        if attach_to is not None:
            attach_to(run)


async def plan_parts(
    sessions: Sessions,
    desired: Mapping[str, Sequence[Any]],
    sections: Mapping[str, Section],
    scope: Scope,
    *,
    on_read: Callable[[str], None] | None = None,
) -> dict[str, Plan]:
    """Each session's part of the plan, read concurrently (each binds its section first).
    ``on_read`` is told the provider's name after each of its live reads is answered (the
    shared transport counts them, whichever client sends them)."""
    for name, session in sessions.by_name.items():
        session.bind(sections[name])

    async def one(name: str) -> tuple[str, Plan]:
        session = sessions.by_name[name]
        if on_read is not None:  # this provider's task only: gather runs each in its own
            from reconciler.transport.guard import READ_SEEN

            READ_SEEN.set(lambda: on_read(name))
        try:
            return name, await session.plan(desired.get(name, ()), sections[name], scope)
        except ReconcilerError as exc:
            if not provider_wide(exc):
                raise
            return name, stuck_part(name, session.identity, exc)

    done = await asyncio.gather(*(one(name) for name in sorted(sessions.by_name)))
    return dict(done)


def stuck_part(name: str, identity: str, error: ReconcilerError) -> Plan:
    """The plan part of a provider whose endpoint could not be read: no change, its error
    (scope "provider"), and the error itself kept to be raised when every provider of the
    run is stuck (then nothing was read at all: the run stops as it always did)."""
    stuck = StuckProvider.of(name, error)
    return Plan(
        endpoints={name: identity}, changes=(), errors=(stuck.problem,), stuck_providers=(stuck,)
    )


def raise_if_all_stuck(parts: Sequence[Plan]) -> None:
    """A run whose every provider is stuck read nothing: its first error is raised as is
    (exit 1, the message a single-provider run always gave)."""
    if parts and all(part.stuck_providers for part in parts):
        stuck = parts[0].stuck_providers[0]
        if stuck.error is not None:
            raise stuck.error
        raise ConfigError(str(stuck.problem))


def is_stuck(part: Plan) -> bool:
    return bool(part.stuck_providers)


def stuck_report(part: Plan) -> DriftReport:
    """A stuck provider's drift report: nothing checked, its error named (exit 1)."""
    return DriftReport(
        endpoint="; ".join(part.endpoints.values()),
        items=(),
        errors=part.errors,
        stuck_providers=part.stuck_providers,
    )


def merge_plans(
    parts: Sequence[Plan],
    *,
    max_deletes: int | None,
    state_lineage: str | None,
    state_serial: int | None,
) -> Plan:
    """One plan of every provider's part, in the order given; the delete budget is checked
    on the whole (a fleet-wide guard: one provider's deletes count against the others')."""
    endpoints: dict[str, str] = {}
    for part in parts:
        endpoints.update(part.endpoints)
    changes = tuple(change for part in parts for change in part.changes)
    errors = [error for part in parts for error in part.errors]
    over = delete_budget_problem(changes, max_deletes)
    if over is not None and not any(str(over) == str(e) for e in errors):
        errors.insert(0, over)
    app_meta: dict[str, Any] = {}
    fingerprints: dict[Any, str] = {}
    for part in parts:
        app_meta.update(part.app_meta)
        fingerprints.update(part.fingerprints)
    return Plan(
        endpoints=endpoints,
        changes=changes,
        warnings=tuple(_unique(w for part in parts for w in part.warnings)),
        errors=tuple(errors),
        state_lineage=state_lineage,
        state_serial=state_serial,
        fingerprints=fingerprints,
        apps=tuple(app for part in parts for app in part.apps),
        app_meta=app_meta,
        learned=tuple(fact for part in parts for fact in part.learned),
        incremental=next((p.incremental for p in parts if p.incremental is not None), None),
        stuck_providers=tuple(item for part in parts for item in part.stuck_providers),
    )


def _unique(problems: Iterable[PlanProblem]) -> list[PlanProblem]:
    """A notice every provider repeats (a missing state file) is said once."""
    seen: set[str] = set()
    out: list[PlanProblem] = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            out.append(problem)
    return out


async def apply_parts(
    sessions: Sessions,
    parts: Mapping[str, Plan],
    sections: Mapping[str, Section],
    *,
    desired: Mapping[str, Sequence[Any]] | None,
    parallelism: int,
    store_write: StoreWrite,
    on_event: Callable[[ChangeEvent], None],
    before_write: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, SectionApplied]:
    """Run each provider's part with its session, concurrently. Every completed write is put
    in the in-memory section and made durable (``store_write``) before it is reported.
    ``before_write`` is awaited before each request that may write, whoever sends it (the
    shared transport asks it): a store that leases what it writes refuses there."""

    async def one(name: str) -> tuple[str, SectionApplied]:
        section = sections[name]
        if before_write is not None:  # this part's task only: gather runs each in its own
            from reconciler.transport.guard import WRITE_GATE

            WRITE_GATE.set(before_write)

        async def record(kind: str, key: str, data: Mapping[str, Any] | None) -> None:
            records = section.resources.setdefault(kind, {})
            if data is None:
                records.pop(key, None)
            else:
                records[key] = dict(data)
            await store_write(name, kind, key, data)

        applied = await sessions.by_name[name].apply(
            parts[name],
            section,
            desired=None if desired is None else desired.get(name, ()),
            parallelism=parallelism,
            record=record,
            on_event=on_event,
        )
        return name, applied

    # A stuck provider's part is not run: its endpoint could not be read when planning.
    names = [
        name for name in sorted(parts) if name in sessions.by_name and not is_stuck(parts[name])
    ]
    done = await asyncio.gather(*(one(name) for name in names))
    return dict(done)


def merge_drift(reports: Sequence[DriftReport]) -> DriftReport:
    """One drift report of every provider's."""
    if len(reports) == 1:
        return reports[0]
    items: list[DriftItem] = [item for report in reports for item in report.items]
    return DriftReport(
        endpoint="; ".join(report.endpoint for report in reports),
        items=tuple(items),
        warnings=tuple(_unique(w for report in reports for w in report.warnings)),
        errors=tuple(e for report in reports for e in report.errors),
        apps_checked=sum(report.apps_checked for report in reports),
        stuck_providers=tuple(item for report in reports for item in report.stuck_providers),
    )
