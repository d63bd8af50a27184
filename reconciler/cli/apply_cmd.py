"""`reconciler apply`: plan (or read a saved plan), confirm, execute, record, summarise."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reconciler.cli.app import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, app
from reconciler.cli.common import (
    MaxDeletesOpt,
    ParallelismOpt,
    PruneOpt,
    SandboxDbOpt,
    SandboxOpt,
    SelectOpt,
    StateOpt,
    TargetOpt,
    err,
    handled_errors,
    load_desired,
    resolve_target,
    state_store,
    use_color,
)
from reconciler.cli.plan_cmd import PlanRequest, compute_plan

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult, ChangeResult
    from reconciler.model import MiniApp
    from reconciler.plan import Change, Plan
    from reconciler.state import State

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@app.command()
def apply(
    paths: list[Path] = typer.Argument(None, help="Manifest files or folders."),
    plan_file: Path | None = typer.Option(
        None, "--plan", help="Apply exactly this saved plan (from `plan --out`)."
    ),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="Do not ask for confirmation (CI)."
    ),
    format: str = typer.Option("text", "--format", help="text | json"),
    select: list[str] = SelectOpt,
    target: list[str] = TargetOpt,
    prune: bool = PruneOpt,
    max_deletes: int | None = MaxDeletesOpt,
    parallelism: int = ParallelismOpt,
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
    sandbox_db: Path | None = SandboxDbOpt,
) -> None:
    """Make live = manifests: plan, confirm (or --auto-approve), execute in dependency order."""
    from reconciler.errors import PlanError
    from reconciler.render import render_apply_result

    if format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--format")
    if plan_file is not None and paths:
        raise typer.BadParameter("give manifest paths or --plan FILE, not both")
    if plan_file is None and not paths:
        raise typer.BadParameter("give manifest paths, or --plan FILE", param_hint="PATHS")
    if plan_file is not None and (select or target or prune):
        # A saved plan is applied exactly as reviewed: narrowing belongs to `plan`.
        raise typer.BadParameter(
            "--select, --target and --prune shape a plan; pass them to `reconciler plan`",
            param_hint="--plan",
        )
    machine = format == "json"
    _sigterm_as_interrupt()

    with handled_errors():
        desired: list[MiniApp] = []
        selectors: dict[str, str] = {}
        saved: Plan | None = None
        if plan_file is not None:
            saved = _read_plan(plan_file)
        else:
            desired, selectors = load_desired(paths, select, target)
        where = resolve_target(sandbox, sandbox_db)
        err(f"Endpoint: {where.display}")
        if saved is not None and saved.endpoint != where.identity:
            raise PlanError(
                f"the saved plan was made for {saved.endpoint}, not {where.identity}"
            )
        if saved is not None and max_deletes is not None and saved.delete_count > max_deletes:
            raise PlanError(
                f"the saved plan deletes {saved.delete_count} object(s), more than"
                f" --max-deletes {max_deletes}; refusing it"
            )
        store = state_store(state, where.sandbox_db is not None)
        with store.lock("apply"):
            current_state = store.load(where.identity)
            if saved is not None and not _same_state(saved, current_state):
                raise PlanError(
                    "the saved plan is stale: the state changed since it was made (serial"
                    f" {saved.state_serial} -> {current_state.serial}). Run `reconciler plan"
                    " --out` again; a saved plan is never re-planned silently."
                )
            request = PlanRequest(paths or [], select, target, prune, max_deletes, parallelism)
            result, interrupted, the_plan = _run(
                where, store, current_state, saved, desired, request, selectors, auto_approve,
                machine,
            )
    if the_plan is None:  # the user did not type "yes": nothing applied, as Terraform
        raise typer.Exit(EXIT_ERROR)
    summary = result.as_dict()
    if machine:
        typer.echo(json.dumps({"plan": the_plan.as_dict(), "apply": summary}, indent=2))
    else:
        typer.echo(render_apply_result(summary, color=use_color()), nl=False)
    if interrupted:
        err("Interrupted: every completed write is recorded; run `reconciler apply` again.")
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.failed or result.skipped:
        raise typer.Exit(EXIT_PARTIAL if result.applied else EXIT_ERROR)
    raise typer.Exit(EXIT_OK)


def _run(
    where: Any,
    store: Any,
    current_state: Any,
    saved: Plan | None,
    desired: list[MiniApp],
    request: PlanRequest,
    selectors: dict[str, str],
    auto_approve: bool,
    machine: bool,
) -> tuple[ApplyResult, bool, Plan | None]:
    import asyncio

    from reconciler.apply import ApplyOptions, ApplyResult, Executor
    from reconciler.render import render

    progress = _Progress(machine)
    executor: Executor | None = None

    async def run() -> tuple[ApplyResult, Plan | None]:
        nonlocal executor
        async with where.client(request.parallelism) as client:
            the_plan = saved
            if the_plan is None:
                the_plan = await compute_plan(
                    client, desired, current_state, request, selectors, where.identity
                )
            if not machine or the_plan.errors:
                typer.echo(render(the_plan, "text", color=use_color()), nl=False, err=machine)
            if the_plan.errors:
                from reconciler.errors import PlanError

                raise PlanError("the plan has errors; nothing was applied")
            executor = Executor(
                client,
                store,
                current_state,
                the_plan,
                desired=desired,
                options=ApplyOptions(
                    parallelism=request.parallelism,
                    verify_fingerprints=saved is not None,
                    on_result=progress.result,
                    on_start=progress.start,
                ),
            )
            if not the_plan.has_changes:
                await executor.run()  # records labels/protection, writes nothing
                return executor.result, the_plan
            if not auto_approve and not _confirm():
                return ApplyResult(), None
            progress.begin(len(the_plan.changes))
            try:
                return await executor.run(), the_plan
            finally:
                progress.end()

    interrupted = False
    try:
        result, the_plan = asyncio.run(run())
    except KeyboardInterrupt:
        interrupted = True
        result = executor.result if executor is not None else ApplyResult()
        result.interrupted = True
        the_plan = saved or (executor.plan if executor is not None else None)
    finally:
        # Fold the journal into the state file whatever happened (it is durable already);
        # a run that recorded nothing leaves the file, its serial and saved plans alone.
        if store.dirty:
            store.save(current_state)
    return result, interrupted, the_plan


def _same_state(saved: Plan, current: State) -> bool:
    if saved.state_serial != current.serial:
        return False
    if current.serial == 0:
        return saved.state_lineage is None  # planned before any state existed
    return saved.state_lineage == current.lineage


def _confirm() -> bool:
    if not sys.stdin.isatty():
        from reconciler.errors import ConfigError

        raise ConfigError(
            "refusing to apply without confirmation: stdin is not a terminal. Review the plan"
            " and pass --auto-approve (CI), or run interactively."
        )
    answer: str = typer.prompt(
        "Do you want to perform these actions? Only 'yes' will be accepted",
        default="",
        show_default=False,
    )
    if answer.strip() != "yes":
        err("Apply cancelled; nothing was changed.")
        return False
    return True


def _read_plan(path: Path) -> Plan:
    from reconciler.errors import PlanError
    from reconciler.plan import Plan

    try:
        return Plan.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"plan file {path} is not a valid saved plan: {exc}") from None


def _sigterm_as_interrupt() -> None:
    """CI runners cancel jobs with SIGTERM: stop like Ctrl-C, recording what was done."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # ValueError: not the main thread (tests calling main() from a thread)
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, handler)


class _Progress:
    """A rich progress bar on a terminal; one plain line per change otherwise (CI logs)."""

    def __init__(self, machine: bool) -> None:
        self.machine = machine
        self.bar: Any = None
        self.task: Any = None

    def begin(self, total: int) -> None:
        if self.machine or not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("[bold]Applying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("", total=total)

    def start(self, change: Change) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=change.app_id)

    def result(self, result: ChangeResult) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)
        if self.machine:
            return
        from reconciler.plan import SYMBOLS

        change = result.change
        line = f"{result.outcome:8} {SYMBOLS[change.action]} {change.address}"
        if result.message and result.outcome != "applied":
            line += f": {result.message}"
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False)
        else:
            err(line)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.stop()
