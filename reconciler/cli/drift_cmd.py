"""`reconciler drift`: compare live with the manifests and the last apply. Read-only."""

from __future__ import annotations

from pathlib import Path

import typer

from reconciler.cli.app import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, app
from reconciler.cli.common import (
    ConfigOpt,
    NoColorOpt,
    ParallelismOpt,
    ProbeWindowOpt,
    ProviderOpt,
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

DRIFT_INTERRUPTED = "Interrupted: nothing was written (drift never writes)."


@app.command()
def drift(
    paths: list[Path] = typer.Argument(..., help="Manifest files or folders."),
    format: str = typer.Option("text", "--format", help="text | json | markdown"),
    out: Path | None = typer.Option(None, "--out", help="Also save the report as JSON here."),
    select: list[str] = SelectOpt,
    target: list[str] = TargetOpt,
    root: list[Path] = RootOpt,
    parallelism: int = ParallelismOpt,
    probe_window: int = ProbeWindowOpt,
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
    sandbox_db: Path | None = SandboxDbOpt,
    no_color: bool = NoColorOpt,
    config: Path | None = ConfigOpt,
    provider: str | None = ProviderOpt,
) -> None:
    """Detect changes made outside the tool. Exit 0 in sync, 2 drift, 1 could not check.

    Never writes to the API or to the state file.
    """
    from reconciler.engine.render import render_drift
    from reconciler.workflows.drift import check_drift
    from reconciler.workflows.fleet import FleetOptions

    if format not in ("text", "json", "markdown"):
        raise typer.BadParameter("must be text, json or markdown", param_hint="--format")
    location, sandbox_db = anchored(paths, state, sandbox, sandbox_db)
    options = FleetOptions(sandbox, sandbox_db, config, provider, False, None,
                           parallelism, probe_window, target_keys(target))  # fmt: skip
    reporter = StderrReporter()
    with handled_errors(machine=format == "json"), interrupt_exits_130(DRIFT_INTERRUPTED):
        report = check_drift(
            paths, select=select, roots=root, state=location, options=options,
            reporter=reporter,
        )  # fmt: skip
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_drift(report, "json", color=False), encoding="utf-8")
        err(f"Saved the drift report to {out}")
    color = use_color(no_color) and format == "text"
    said = said_on_this_terminal(reporter)
    typer.echo(render_drift(report, format, color=color, said=said), nl=False)  # type: ignore[arg-type]
    if report.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_OK if report.in_sync else EXIT_CHANGES)
