"""`reconciler plan`: fetch, diff, print the plan (and save it with --out)."""

from __future__ import annotations

from pathlib import Path

import typer

from reconciler.cli.app import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, app
from reconciler.cli.common import (
    ConfigOpt,
    MaxDeletesOpt,
    NoColorOpt,
    ParallelismOpt,
    ProbeWindowOpt,
    ProviderOpt,
    PruneOpt,
    RootOpt,
    SandboxDbOpt,
    SandboxOpt,
    SelectOpt,
    StateOpt,
    TargetOpt,
    check_provider,
    check_scope,
    err,
    handled_errors,
    load_desired,
    state_notices,
    state_store,
    use_color,
)
from reconciler.cli.fleet import FleetOptions, open_fleet, plan_fleet
from reconciler.errors import UsageError


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
    config: Path | None = ConfigOpt,
    provider: str | None = ProviderOpt,
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
        check_provider(provider)
        desired = load_desired(paths, select, target, root, changes, provider)
        options = FleetOptions(sandbox, sandbox_db, config, provider, prune, max_deletes,
                               parallelism, probe_window, tuple(target))  # fmt: skip
        store = state_store(state, sandbox)
        fleet = open_fleet(desired, store, options)
        check_scope(desired, fleet.state)
        notices = state_notices(store)

        made = asyncio.run(plan_fleet(fleet, desired, options, notices))
        result = made.merged
        if out is not None and len(result.endpoints) > 1:
            raise UsageError(
                f"this plan spans {len(result.endpoints)} providers"
                f" ({', '.join(sorted(result.endpoints))}); a saved plan covers one provider:"
                " add --provider NAME and save one plan per provider"
            )
        if changes is not None:
            from reconciler.engine.plan import Incremental

            others = sum(len(v) for v in desired.others.values())
            touched = len(desired.only or ()) + others
            narrowed = Incremental(changes.ref, changes.commit, changes.file_count, touched)
            result = dataclasses.replace(result, incremental=narrowed)
            noun = "resource(s)" if others else "mini app(s)"
            err(f"Incremental: {touched} {noun} touched by {changes.file_count} manifest"
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
