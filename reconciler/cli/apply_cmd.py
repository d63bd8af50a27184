"""`reconciler apply`: plan (or read a saved plan), confirm, execute, record, summarise."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reconciler.cli.app import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, app
from reconciler.cli.common import (
    EXIT_INTERRUPTED,
    ConfigOpt,
    LockTimeoutOpt,
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
    said_on_this_terminal,
    target_keys,
    use_color,
)
from reconciler.cli.location import anchored

if TYPE_CHECKING:
    from reconciler.engine.plan import Change, Plan
    from reconciler.workflows.report import ChangeResult, Stoppable

INTERRUPTED_BEFORE_WRITES = (
    "Interrupted before any write: nothing was written to the API or the state."
)
INTERRUPTED_DURING_WRITES = (
    "Interrupted: every completed write is recorded; run `reconciler apply` again."
)
# A saved plan is never applied twice (stale once anything was written): plan again.
INTERRUPTED_SAVED_PLAN = (
    "Interrupted: every completed write is recorded; run `reconciler plan` again for what is left."
)


@app.command()
def apply(
    paths: list[Path] = typer.Argument(None, help="Manifest files or folders."),
    plan_file: Path | None = typer.Option(
        None, "--plan", help="Apply exactly this saved plan (from `plan --out`)."
    ),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="Do not ask for confirmation (CI)."
    ),
    format: str = typer.Option(
        "text", "--format",
        help="text | json | jsonl (a stream: one JSON object a line per change event, then"
        " a summary; the plan for review goes to stderr).",
    ),
    select: list[str] = SelectOpt,
    target: list[str] = TargetOpt,
    root: list[Path] = RootOpt,
    prune: bool = PruneOpt,
    max_deletes: int | None = MaxDeletesOpt,
    parallelism: int = ParallelismOpt,
    probe_window: int = ProbeWindowOpt,
    state: Path | None = StateOpt,
    lock_timeout: float = LockTimeoutOpt,
    sandbox: bool = SandboxOpt,
    sandbox_db: Path | None = SandboxDbOpt,
    no_color: bool = NoColorOpt,
    config: Path | None = ConfigOpt,
    provider: str | None = ProviderOpt,
) -> None:
    """Make live = manifests: plan, confirm (or --auto-approve), execute in dependency order."""
    from reconciler.engine.render import render_apply_result
    from reconciler.workflows.apply import run_apply
    from reconciler.workflows.fleet import FleetOptions

    if format not in ("text", "json", "jsonl"):
        raise typer.BadParameter("must be text, json or jsonl", param_hint="--format")
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
    machine = format in ("json", "jsonl")
    _sigterm_as_interrupt()  # outside the event loop (loading, saving): stop like Ctrl-C

    location, sandbox_db = anchored(paths or [], state, sandbox, sandbox_db)
    options = FleetOptions(sandbox, sandbox_db, config, provider, prune, max_deletes,
                           parallelism, probe_window, target_keys(target))  # fmt: skip
    console = _Console(machine, use_color(no_color),
                       events=_Events() if format == "jsonl" else None)  # fmt: skip
    during = INTERRUPTED_DURING_WRITES if plan_file is None else INTERRUPTED_SAVED_PLAN
    with handled_errors(machine=machine), _interrupt_exits_130(lambda: console.writing, during):
        outcome = run_apply(
            paths or [], plan_file=plan_file, select=select, roots=root, state=location,
            lock_timeout=lock_timeout, auto_approve=auto_approve, options=options,
            reporter=console,
        )  # fmt: skip

    summary = outcome.result.as_dict() if outcome.plan is not None and outcome.approved else None
    if format == "jsonl":
        console.events.summary(summary, interrupted=outcome.interrupted)  # type: ignore[union-attr]
    elif machine:
        plan_json = outcome.plan.as_dict() if outcome.plan is not None else None
        typer.echo(json.dumps({"plan": plan_json, "apply": summary}, indent=2))
    elif summary is not None:
        typer.echo(render_apply_result(summary, color=use_color(no_color),
                                       saved_plan=plan_file is not None), nl=False)  # fmt: skip
    if outcome.interrupted:
        # Not approved: stopped while planning or at the prompt, before any write.
        err(during if outcome.approved else INTERRUPTED_BEFORE_WRITES)
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.plan is not None and outcome.plan.fleet_errors:
        err("Error: the plan has errors that concern the whole fleet (above); nothing was"
            " applied.")
        raise typer.Exit(EXIT_ERROR)
    if not outcome.approved:  # the user did not type "yes": nothing applied, as Terraform
        raise typer.Exit(EXIT_ERROR)
    result = outcome.result
    if outcome.store_error is not None:
        # Some writes were applied and recorded before the state store failed: partly applied.
        err(f"Error: {outcome.store_error}")
        raise typer.Exit(EXIT_PARTIAL)
    if result.stuck_providers:
        # One provider down never holds the others: they were applied; its error is above.
        names = ", ".join(result.stuck_providers)
        err(f"Not applied: stuck provider(s) (their error above): {names}")
        if result.stuck:
            err(f"Not applied: {len(result.stuck)} stuck app(s): {', '.join(result.stuck)}")
        raise typer.Exit(EXIT_PARTIAL)
    if result.stuck or result.unresolved:
        # One stuck app never holds the fleet: the others were applied; it is named above.
        if result.stuck:
            err(f"Not applied: {len(result.stuck)} stuck app(s): {', '.join(result.stuck)}")
        raise typer.Exit(EXIT_PARTIAL)
    if result.failed or result.skipped:
        raise typer.Exit(EXIT_PARTIAL if result.applied or result.adopted else EXIT_ERROR)
    raise typer.Exit(EXIT_OK)


def _graceful_signals(current: Callable[[], Stoppable | None]) -> None:
    """While changes run: Ctrl-C or SIGTERM (a CI cancellation) starts no new change and lets
    the writes in flight finish and be recorded. Only a second Ctrl-C, a person insisting,
    aborts at once; SIGTERM never does (runners send it after SIGINT, and a write cut off
    mid-flight is exactly what graceful stopping avoids)."""
    import asyncio

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal(sig: int) -> None:
        executor = current()
        if executor is not None and not executor.stopping:
            err("Stopping: finishing the writes in flight (press Ctrl-C again to abort).")
            executor.request_stop()
        elif (sig == signal.SIGINT or executor is None) and main_task is not None:
            # No executor: another provider's writes, each recorded once done; what was in
            # flight is found again by reading at the next run.
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on some platforms: Ctrl-C then aborts at once.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)


def _sigterm_as_interrupt() -> None:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # ValueError: not the main thread (tests calling main() from a thread)
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _interrupt_exits_130(writing: Callable[[], bool], during: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM before or after the run (loading, the lock, the final save): the lock
    is released by its context manager and every recorded write is in the journal."""
    try:
        yield
    except KeyboardInterrupt:
        err(during if writing() else INTERRUPTED_BEFORE_WRITES)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _confirm() -> bool:
    if not sys.stdin.isatty():
        from reconciler.errors import ConfigError

        raise ConfigError(
            "refusing to apply without confirmation: stdin is not a terminal. Review the plan"
            " and pass --auto-approve (CI), or run interactively."
        )
    try:
        answer: str = typer.prompt(
            "Do you want to perform these actions? Only 'yes' will be accepted",
            default="",
            show_default=False,
            err=True,  # stdout may be JSON or piped
        )
    except typer.Abort:
        # click turns Ctrl-C (and Ctrl-D) at a prompt into Abort, which exited 1 with
        # "Aborted.": stopped before any write, like a Ctrl-C while planning (exit 130).
        typer.echo("", err=True)  # end the prompt's line
        raise KeyboardInterrupt from None
    if answer.strip() != "yes":
        err("Apply cancelled; nothing was changed.")
        return False
    return True


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
        if self.machine:
            return
        from reconciler.engine.plan import SYMBOLS

        change = result.change
        line = f"{result.outcome:8} {SYMBOLS[change.action]} {change.address}"
        if result.message:  # a failure's reason, or a note (what the server normalized)
            line += f": {result.message}"
        if self.bar is not None:
            # Count, draw, then print: printing redraws the bar as last drawn, so without the
            # refresh the bar under each line was a step behind ("0/9" until the timer's
            # refresh caught up, which a busy run starves).
            self.bar.advance(self.task)
            self.bar.refresh()
            self.bar.console.print(line, markup=False, highlight=False)
        else:
            err(line)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class _Events:
    """``--format jsonl``: one JSON object a line on stdout, flushed, as each thing happens
    (like ``terraform apply -json``): ``planned`` per change, ``started`` and then ``applied``,
    ``adopted``, ``failed`` or ``skipped`` per change run, and one ``summary`` at the end."""

    def emit(self, event: str, **fields: Any) -> None:
        typer.echo(json.dumps({"type": event, **fields}, ensure_ascii=False, default=str))
        sys.stdout.flush()

    @staticmethod
    def _change(change: Change) -> dict[str, Any]:
        return {"address": str(change.address), "kind": change.kind, "action": change.action,
                "provider": change.provider}  # fmt: skip

    def planned(self, plan: Plan) -> None:
        for change in plan.changes:
            self.emit("planned", **self._change(change))

    def started(self, change: Change) -> None:
        self.emit("started", **self._change(change))

    def result(self, result: ChangeResult) -> None:
        fields = self._change(result.change)
        if result.message:
            fields["message"] = result.message
        self.emit(str(result.outcome), **fields)

    def summary(self, summary: dict[str, Any] | None, *, interrupted: bool) -> None:
        counts = dict((summary or {}).get("summary", {}))
        approved = summary is not None
        self.emit("summary", approved=approved, interrupted=interrupted, **counts)


class _Console(StderrReporter):
    """What `apply` shows and asks on a terminal or in a CI log (an ``ApplyReporter``)."""

    def __init__(self, machine: bool, color: bool, events: _Events | None = None) -> None:
        super().__init__()
        self.events = events
        self.machine = machine
        self.color = color
        self.writing = False  # set once the run may write: until then an interrupt wrote nothing
        self.progress = _Progress(machine)

    def review(self, plan: Plan, asks: bool) -> None:
        if self.events is not None:
            self.events.planned(plan)
        if not self.machine or plan.errors or asks:
            from reconciler.engine.render import render

            # JSON mode keeps stdout for the JSON: the human reads the plan on stderr
            said = said_on_this_terminal(self, stdout=not self.machine)
            typer.echo(render(plan, "text", color=self.color, said=said), nl=False,
                       err=self.machine)  # fmt: skip

    def confirm(self) -> bool:
        return _confirm()

    def may_write(self) -> None:
        self.writing = True

    def writes_running(self, current: Callable[[], Stoppable | None]) -> None:
        _graceful_signals(current)

    def loop_closed(self) -> None:
        _sigterm_as_interrupt()  # closing a loop resets it to the default (kill)

    def progress_begin(self, total: int) -> None:
        self.progress.begin(total)

    def progress_start(self, change: Change) -> None:
        if self.events is not None:
            self.events.started(change)
        self.progress.start(change)

    def progress_result(self, result: ChangeResult) -> None:
        if self.events is not None:
            self.events.result(result)
        self.progress.result(result)

    def progress_end(self) -> None:
        self.progress.end()
