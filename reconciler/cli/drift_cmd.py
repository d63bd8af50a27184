"""`reconciler drift`: compare live with the manifests and the last apply. Read-only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler.cli.app import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, app
from reconciler.cli.common import (
    NoColorOpt,
    ParallelismOpt,
    ProbeWindowOpt,
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

if TYPE_CHECKING:
    from reconciler.engine.drift import DriftReport


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
) -> None:
    """Detect changes made outside the tool. Exit 0 in sync, 2 drift, 1 could not check.

    Never writes to the API or to the state file.
    """
    import asyncio

    from reconciler.engine.render import render_drift

    if format not in ("text", "json", "markdown"):
        raise typer.BadParameter("must be text, json or markdown", param_hint="--format")
    with handled_errors(machine=format == "json"):
        desired = load_desired(paths, select, target, root)
        where = resolve_target(sandbox, sandbox_db)
        err(f"Endpoint: {where.display}")
        store = state_store(state, where.sandbox_db is not None)
        current_state = store.load(where.identity)
        notices = state_notices(store)
        check_scope(desired, current_state)

        async def run() -> DriftReport:
            from reconciler.providers.miniappcenter.drift import classify
            from reconciler.providers.miniappcenter.planning import make_plan

            async with where.client(parallelism) as client:
                plan = await make_plan(
                    client,
                    desired.apps,
                    current_state,
                    identity=where.identity,
                    in_scope=in_scope_filter(desired.selectors, target),
                    declared=desired.declared,
                    parallelism=parallelism,
                    probe_window=probe_window,
                    notices=notices,
                    endpoint_setting=where.setting,
                )
            return classify(plan, current_state)

        report = asyncio.run(run())
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_drift(report, "json", color=False), encoding="utf-8")
        err(f"Saved the drift report to {out}")
    color = use_color(no_color) and format == "text"
    typer.echo(render_drift(report, format, color=color), nl=False)  # type: ignore[arg-type]
    if report.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_OK if report.in_sync else EXIT_CHANGES)
