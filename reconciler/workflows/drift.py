"""`drift`: compare live with the manifests and the last apply, across the providers.
Never writes to the API or to the state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.workflows.desired import check_provider, check_scope, load_desired, root_provider
from reconciler.workflows.fleet import (
    FleetOptions,
    open_fleet,
    open_sessions,
    root_scope,
    scope_of,
    sections_of,
)
from reconciler.workflows.target import state_notices, state_store

if TYPE_CHECKING:
    from reconciler.engine.drift import DriftReport
    from reconciler.workflows.report import Reporter


def check_drift(
    paths: Sequence[Path],
    *,
    select: Sequence[str],
    roots: Sequence[Path],
    state: Path | str | None,
    options: FleetOptions,
    reporter: Reporter,
) -> DriftReport:
    """One drift report for every provider taking part (``options`` never prunes)."""
    import asyncio

    check_provider(options.provider)
    desired = load_desired(paths, select, options.targets, roots, provider=options.provider)
    store = state_store(state, options.sandbox)
    fleet = open_fleet(desired, store, options, reporter)
    notices = state_notices(store, reporter, desired.providers)
    check_scope(desired, fleet.state)

    async def run() -> DriftReport:
        from contextlib import AsyncExitStack

        from reconciler.engine.plan import Plan
        from reconciler.engine.service import (
            is_stuck,
            merge_drift,
            plan_parts,
            raise_if_all_stuck,
            stuck_part,
            stuck_report,
        )
        from reconciler.engine.session import provider_wide
        from reconciler.errors import ReconcilerError

        reports: list[DriftReport] = []
        stuck: list[Plan] = []  # the parts of providers that could not be read
        taking_part = len(fleet.others) + (fleet.root is not None)
        if fleet.root is not None:
            try:
                report = await fleet.root.drift_root(
                    desired.root_models,
                    fleet.state,
                    root_scope(desired, options, changed=False),
                    probe_window=options.probe_window,
                    notices=[*notices, *fleet.notices],
                )
            except ReconcilerError as exc:
                if not provider_wide(exc):
                    raise
                part = stuck_part(root_provider(), fleet.root.identity, exc)
                stuck.append(part)
                report = stuck_report(part)
            reports.append(report)
        if fleet.others:
            sections = sections_of(fleet)
            async with AsyncExitStack() as stack:
                sessions = await open_sessions(stack, fleet, options, reporter)
                models = {name: desired.models(name) for name in fleet.others}
                scope = scope_of(desired, options, [*notices, *fleet.notices])
                parts = await plan_parts(sessions, models, sections, scope)
                stuck += [part for part in parts.values() if is_stuck(part)]
                reports += [
                    stuck_report(part)
                    if is_stuck(part)
                    else sessions.by_name[name].drift(part, sections[name])
                    for name, part in parts.items()
                ]
        if len(stuck) == taking_part:  # nothing could be checked: the first error, exit 1
            raise_if_all_stuck(stuck)
        return merge_drift(reports)

    return asyncio.run(run())
