"""`reconciler plan`: fetch, diff, print the plan (and save it with --out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler.cli.app import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, app
from reconciler.cli.common import (
    MaxDeletesOpt,
    NoColorOpt,
    ParallelismOpt,
    ProbeWindowOpt,
    PruneOpt,
    RootOpt,
    SandboxDbOpt,
    SandboxOpt,
    SelectOpt,
    StateOpt,
    TargetOpt,
    check_scope,
    err,
    handled_errors,
    in_scope_filter,
    load_desired,
    resolve_target,
    state_notices,
    state_store,
    use_color,
)
from reconciler.limits import DEFAULT_PROBE_WINDOW

if TYPE_CHECKING:
    from reconciler.cli.common import Desired
    from reconciler.engine.plan import Plan
    from reconciler.providers.miniappcenter.client import MiniAppCenterClient
    from reconciler.state import State


@dataclass(frozen=True)
class PlanRequest:
    target: Sequence[str]
    prune: bool
    max_deletes: int | None
    parallelism: int
    probe_window: int = DEFAULT_PROBE_WINDOW
    notices: tuple[str, ...] = ()
    endpoint_setting: str = "MAC_BASE_URL"


async def compute_plan(
    client: MiniAppCenterClient,
    desired: Desired,
    state: State,
    request: PlanRequest,
    identity: str,
) -> Plan:
    """Fetch what the plan needs and diff it: shared by plan and apply."""
    from reconciler.providers.miniappcenter.planning import make_plan

    return await make_plan(
        client,
        desired.apps,
        state,
        identity=identity,
        prune=request.prune,
        max_deletes=request.max_deletes,
        in_scope=in_scope_filter(desired.selectors, request.target, desired.only),
        declared=desired.declared,
        parallelism=request.parallelism,
        probe_window=request.probe_window,
        notices=request.notices,
        endpoint_setting=request.endpoint_setting,
    )


@app.command()
def plan(
    paths: list[Path] = typer.Argument(..., help="Manifest files or folders."),
    format: str = typer.Option("text", "--format", help="text | json | markdown"),
    out: Path | None = typer.Option(None, "--out", help="Also save the plan as JSON here."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0 when no changes, 2 when there are changes."
    ),
    select: list[str] = SelectOpt,
    target: list[str] = TargetOpt,
    root: list[Path] = RootOpt,
    prune: bool = PruneOpt,
    max_deletes: int | None = MaxDeletesOpt,
    parallelism: int = ParallelismOpt,
    probe_window: int = ProbeWindowOpt,
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
    sandbox_db: Path | None = SandboxDbOpt,
    no_color: bool = NoColorOpt,
    changed_since: str | None = typer.Option(
        None,
        "--changed-since",
        metavar="REF",
        help="Plan only the mini apps whose manifests (or file: objects) changed since this"
        " git revision, e.g. origin/main in a pull request: committed, staged and working-tree"
        " changes, plus untracked files. Only those apps are read. apply --plan refuses such"
        " a plan.",
    ),
) -> None:
    """Show the create, update and delete calls that make live = manifests. Writes nothing."""
    import asyncio
    import dataclasses

    from reconciler.engine.render import render

    if format not in ("text", "json", "markdown"):
        raise typer.BadParameter("must be text, json or markdown", param_hint="--format")
    with handled_errors(machine=format == "json"):
        changes = None
        if changed_since is not None:  # git first: a wrong ref needs no endpoint to be said
            from reconciler.manifest.changed import changed_since as ask_git

            changes = ask_git(changed_since, paths)
        desired = load_desired(paths, select, target, root, changes)
        where = resolve_target(sandbox, sandbox_db)
        err(f"Endpoint: {where.display}")
        store = state_store(state, where.sandbox_db is not None)
        current_state = store.load(where.identity)
        check_scope(desired, current_state)
        notices = state_notices(store)
        request = PlanRequest(
            target, prune, max_deletes, parallelism, probe_window, notices, where.setting
        )

        async def run() -> Plan:
            async with where.client(parallelism) as client:
                return await compute_plan(client, desired, current_state, request, where.identity)

        result = asyncio.run(run())
        if changes is not None:
            from reconciler.engine.plan import Incremental

            touched = len(desired.only or ())
            narrowed = Incremental(changes.ref, changes.commit, changes.file_count, touched)
            result = dataclasses.replace(result, incremental=narrowed)
            err(f"Incremental: {touched} mini app(s) touched by {changes.file_count} manifest"
                f" file(s) changed since {changes.ref}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(result, "json", color=False), encoding="utf-8")
        err(f"Saved the plan to {out}; apply it with: reconciler apply --plan {out}")
    typer.echo(render(result, format, color=use_color(no_color) and format == "text"), nl=False)  # type: ignore[arg-type]
    if result.errors:
        raise typer.Exit(EXIT_ERROR)
    if detailed_exitcode and result.has_changes:
        raise typer.Exit(EXIT_CHANGES)
    raise typer.Exit(EXIT_OK)
