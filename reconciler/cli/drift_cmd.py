"""`reconciler drift`: compare live with the manifests and the last apply. Read-only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    TargetOpt,
    check_provider,
    check_scope,
    err,
    handled_errors,
    in_scope_filter,
    load_desired,
    state_notices,
    state_store,
    use_color,
)
from reconciler.cli.fleet import FleetOptions, open_fleet, open_sessions, scope_of, sections_of

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
    config: Path | None = ConfigOpt,
    provider: str | None = ProviderOpt,
) -> None:
    """Detect changes made outside the tool. Exit 0 in sync, 2 drift, 1 could not check.

    Never writes to the API or to the state file.
    """
    import asyncio

    from reconciler.engine.render import render_drift

    if format not in ("text", "json", "markdown"):
        raise typer.BadParameter("must be text, json or markdown", param_hint="--format")
    with handled_errors(machine=format == "json"):
        check_provider(provider)
        desired = load_desired(paths, select, target, root, provider=provider)
        options = FleetOptions(sandbox, sandbox_db, config, provider, False, None,
                               parallelism, probe_window, tuple(target))  # fmt: skip
        store = state_store(state, sandbox)
        fleet = open_fleet(desired, store, options)
        notices = state_notices(store)
        check_scope(desired, fleet.state)

        async def run() -> DriftReport:
            from contextlib import AsyncExitStack

            from reconciler.engine.service import merge_drift, plan_parts

            reports: list[DriftReport] = []
            if fleet.mac is not None:
                from reconciler.providers.miniappcenter.drift import classify
                from reconciler.providers.miniappcenter.planning import make_plan

                async with fleet.mac.client(parallelism) as client:
                    plan = await make_plan(
                        client,
                        desired.apps,
                        fleet.state,
                        identity=fleet.mac.identity,
                        in_scope=in_scope_filter(desired.selectors, target),
                        declared=desired.declared,
                        parallelism=parallelism,
                        probe_window=probe_window,
                        notices=tuple([*notices, *fleet.notices]),
                        endpoint_setting=fleet.mac.setting,
                    )
                reports.append(classify(plan, fleet.state))
            if fleet.others:
                sections = sections_of(fleet)
                async with AsyncExitStack() as stack:
                    sessions = await open_sessions(stack, fleet, options)
                    models = {name: desired.models(name) for name in fleet.others}
                    scope = scope_of(desired, options, [*notices, *fleet.notices])
                    parts = await plan_parts(sessions, models, sections, scope)
                    reports += [
                        sessions.by_name[name].drift(part, sections[name])
                        for name, part in parts.items()
                    ]
            return merge_drift(reports)

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
