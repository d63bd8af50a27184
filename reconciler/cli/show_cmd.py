"""`reconciler show PLAN.json`: render a saved plan as `plan` would have printed it."""

from __future__ import annotations

from pathlib import Path

import typer

from reconciler.cli.app import EXIT_OK, app
from reconciler.cli.common import NoColorOpt, handled_errors, use_color


@app.command()
def show(
    plan_file: Path = typer.Argument(..., metavar="PLAN", help="A plan saved by `plan --out`."),
    format: str = typer.Option("text", "--format", help="text | markdown | json"),
    no_color: bool = NoColorOpt,
) -> None:
    """Show a saved plan (as text, Markdown or JSON) after validating it whole, as apply
    does: what is shown is what `apply --plan` would run. Reads the file only: never the
    API or the state."""
    from reconciler.engine.render import render
    from reconciler.workflows.apply import read_plan

    if format not in ("text", "json", "markdown"):
        raise typer.BadParameter("must be text, markdown or json", param_hint="--format")
    with handled_errors(machine=format == "json"):
        plan = read_plan(plan_file)
    color = use_color(no_color) and format == "text"
    typer.echo(render(plan, format, color=color), nl=False)  # type: ignore[arg-type]
    raise typer.Exit(EXIT_OK)
