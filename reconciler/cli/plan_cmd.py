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
    StderrReporter,
    TargetOpt,
    err,
    handled_errors,
    interrupt_exits_130,
    said_on_this_terminal,
    target_keys,
    use_color,
)
from reconciler.cli.location import anchored

PLAN_INTERRUPTED = "Interrupted: nothing was written (no plan file, no state, no API write)."


def _save(out: Path, text: str) -> None:
    """Written whole or not at all: an interrupted save leaves no half plan file behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


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
    from reconciler.engine.render import render
    from reconciler.workflows.fleet import FleetOptions
    from reconciler.workflows.plan import make_plan

    if format not in ("text", "json", "markdown"):
        raise typer.BadParameter("must be text, json or markdown", param_hint="--format")
    location, sandbox_db = anchored(paths, state, sandbox, sandbox_db)
    options = FleetOptions(sandbox, sandbox_db, config, provider, prune, max_deletes,
                           parallelism, probe_window, target_keys(target))  # fmt: skip
    reporter = StderrReporter()
    with handled_errors(machine=format == "json"), interrupt_exits_130(PLAN_INTERRUPTED):
        result = make_plan(
            paths, select=select, roots=root, state=location, options=options,
            reporter=reporter, changed_since=changed_since, saving=out is not None,
        )  # fmt: skip
    if out is not None:
        with interrupt_exits_130(PLAN_INTERRUPTED):
            _save(out, render(result, "json", color=False))
        err(f"Saved the plan to {out}; apply it with: reconciler apply --plan {out}")
    color = use_color(no_color) and format == "text"
    said = said_on_this_terminal(reporter)
    typer.echo(render(result, format, color=color, said=said), nl=False)  # type: ignore[arg-type]
    if result.errors:
        raise typer.Exit(EXIT_ERROR)
    if detailed_exitcode and result.has_changes:
        raise typer.Exit(EXIT_CHANGES)
    raise typer.Exit(EXIT_OK)
