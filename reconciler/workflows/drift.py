"""`drift`: compare live with the manifests and the last apply, across the providers.
Never writes to the API or to the state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.limits import MAC_PROVIDER
from reconciler.workflows.desired import check_provider, check_scope, in_scope_filter, load_desired
from reconciler.workflows.fleet import (
    FleetOptions,
    open_fleet,
    open_sessions,
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
    notices = state_notices(store, reporter)
    check_scope(desired, fleet.state)
    parallelism = options.parallelism

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
        parts_seen: list[Plan] = []
        if fleet.mac is not None:
            from reconciler.providers.miniappcenter.drift import classify
            from reconciler.providers.miniappcenter.planning import make_plan

            try:
                async with fleet.mac.client(parallelism) as client:
                    plan = await make_plan(
                        client,
                        desired.apps,
                        fleet.state,
                        identity=fleet.mac.identity,
                        in_scope=in_scope_filter(desired.selectors, options.targets),
                        declared=desired.declared,
                        parallelism=parallelism,
                        probe_window=options.probe_window,
                        notices=tuple([*notices, *fleet.notices]),
                        endpoint_setting=fleet.mac.setting,
                    )
            except ReconcilerError as exc:
                if not provider_wide(exc):
                    raise
                plan = stuck_part(MAC_PROVIDER, fleet.mac.identity, exc)
            parts_seen.append(plan)
            reports.append(stuck_report(plan) if is_stuck(plan) else classify(plan, fleet.state))
        if fleet.others:
            sections = sections_of(fleet)
            async with AsyncExitStack() as stack:
                sessions = await open_sessions(stack, fleet, options, reporter)
                models = {name: desired.models(name) for name in fleet.others}
                scope = scope_of(desired, options, [*notices, *fleet.notices])
                parts = await plan_parts(sessions, models, sections, scope)
                parts_seen.extend(parts.values())
                reports += [
                    stuck_report(part)
                    if is_stuck(part)
                    else sessions.by_name[name].drift(part, sections[name])
                    for name, part in parts.items()
                ]
        raise_if_all_stuck(parts_seen)  # nothing could be checked: the first error, exit 1
        return merge_drift(reports)

    return asyncio.run(run())
