"""`drift`: compare live with the manifests and the last apply, across the providers.
Never writes to the API or to the state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.workflows.desired import check_provider, check_scope, load_desired
from reconciler.workflows.fleet import (
    FleetOptions,
    open_fleet,
    open_sessions,
    reads_shown,
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
    import dataclasses

    check_provider(options.provider)
    # drift writes nothing: the in-process sandboxes create no file or folder either.
    options = dataclasses.replace(options, keep_sandbox=False)
    desired = load_desired(paths, select, options.targets, roots, provider=options.provider)
    store = state_store(state, options.sandbox)
    fleet = open_fleet(desired, store, options, reporter)
    notices = state_notices(store, reporter, desired.providers)
    check_scope(desired, fleet.state)

    async def run() -> DriftReport:
        from contextlib import AsyncExitStack

        from reconciler.engine.service import (
            is_stuck,
            merge_drift,
            plan_parts,
            raise_if_all_stuck,
            stuck_report,
        )
        from reconciler.engine.session import RunContext

        sections = sections_of(fleet)
        run = RunContext(state=fleet.state, probe_window=options.probe_window)
        async with AsyncExitStack() as stack:
            sessions = await open_sessions(stack, fleet, options, reporter, run=run)
            models = {name: desired.models(name) for name in fleet.names}
            scope = scope_of(desired, options, [*notices, *fleet.notices])
            with reads_shown(reporter) as on_read:
                parts = await plan_parts(sessions, models, sections, scope, on_read=on_read)
        ordered = [(name, parts[name]) for name in fleet.names]
        stuck = [part for _, part in ordered if is_stuck(part)]
        if len(stuck) == len(ordered):  # nothing could be checked: the first error, exit 1
            raise_if_all_stuck(stuck)
        return merge_drift([
            stuck_report(part)
            if is_stuck(part)
            else sessions.by_name[name].drift(part, sections[name])
            for name, part in ordered
        ])

    return asyncio.run(run())
