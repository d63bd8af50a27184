"""`plan`: load and narrow the manifests, open who takes part and the state, read live and
make one plan across the providers. Writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.workflows.desired import (
    check_provider,
    check_scope,
    load_desired,
    root_noun,
)
from reconciler.workflows.fleet import FleetOptions, open_fleet, plan_fleet
from reconciler.workflows.target import state_notices, state_store

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
    from reconciler.workflows.report import Reporter


def make_plan(
    paths: Sequence[Path],
    *,
    select: Sequence[str],
    roots: Sequence[Path],
    state: Path | str | None,
    options: FleetOptions,
    reporter: Reporter,
    changed_since: str | None = None,
    saving: bool = False,
) -> Plan:
    """The plan that makes live = manifests. ``changed_since``: plan only what the manifests
    changed since that git revision touch; ``saving``: the plan is to be saved (one provider
    only)."""
    import asyncio
    import dataclasses

    from reconciler.errors import UsageError

    changes = None
    if changed_since is not None:  # git first: a wrong ref needs no endpoint to be said
        from reconciler.manifest.changed import changed_since as ask_git

        changes = ask_git(changed_since, list(paths))
    check_provider(options.provider)
    # plan writes nothing: the in-process sandboxes create no file or folder either.
    options = dataclasses.replace(options, keep_sandbox=False)
    desired = load_desired(paths, select, options.targets, roots, changes, options.provider)
    store = state_store(state, options.sandbox)
    fleet = open_fleet(desired, store, options, reporter)
    taking_part = sorted(fleet.names)
    if saving and len(taking_part) > 1:  # said before anything is read from an API
        raise UsageError(_one_provider_per_saved_plan(taking_part))
    check_scope(desired, fleet.state)
    notices = state_notices(store, reporter, desired.providers)

    made = asyncio.run(plan_fleet(fleet, desired, options, notices, reporter))
    result = made.merged
    if saving and len(result.endpoints) > 1:
        raise UsageError(_one_provider_per_saved_plan(sorted(result.endpoints)))
    if changes is not None:
        from reconciler.engine.plan import Incremental

        others = sum(len(v) for v in desired.others.values())
        touched = len(desired.only or ()) + others
        narrowed = Incremental(changes.ref, changes.commit, changes.file_count, touched)
        result = dataclasses.replace(result, incremental=narrowed)
        noun = "resource(s)" if others else f"{root_noun()}(s)"
        reporter.say(f"Incremental: {touched} {noun} touched by {changes.file_count} manifest"
                     f" file(s) changed since {changes.ref}")
    return result


def _one_provider_per_saved_plan(names: Sequence[str]) -> str:
    return (
        f"this plan spans {len(names)} providers ({', '.join(names)}); a saved plan covers one"
        " provider: add --provider NAME and save one plan per provider"
    )
