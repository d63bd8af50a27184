"""`reconciler apply`: plan (or read a saved plan), confirm, execute, record, summarise."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reconciler.cli.app import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, app
from reconciler.cli.common import (
    MAC_PROVIDER,
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
from reconciler.cli.fleet import (
    Fleet,
    FleetOptions,
    FleetPlan,
    open_fleet,
    open_sessions,
    plan_fleet,
    sections_of,
    split_saved,
)

if TYPE_CHECKING:
    from reconciler.cli.common import Desired
    from reconciler.engine.plan import Change, Plan
    from reconciler.engine.session import ChangeEvent
    from reconciler.providers.miniappcenter.apply import ApplyResult, ChangeResult, Executor
    from reconciler.state import State, StateStore

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
INTERRUPTED_BEFORE_WRITES = (
    "Interrupted before any write: nothing was written to the API or the state."
)
INTERRUPTED_DURING_WRITES = (
    "Interrupted: every completed write is recorded; run `reconciler apply` again."
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
    format: str = typer.Option("text", "--format", help="text | json"),
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
    from reconciler.errors import PlanError
    from reconciler.providers.miniappcenter.plan_check import check_against_state

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
    _sigterm_as_interrupt()  # outside the event loop (loading, saving): stop like Ctrl-C

    writing = False  # set once the run may write: until then an interrupt wrote nothing
    with handled_errors(machine=machine), _interrupt_exits_130(lambda: writing):
        check_provider(provider)
        desired: Desired | None = None
        saved: Plan | None = None
        if plan_file is not None:
            saved = _read_plan(plan_file)
        else:
            desired = load_desired(paths, select, target, root, provider=provider)
        if saved is not None and max_deletes is not None and saved.delete_count > max_deletes:
            raise PlanError(
                f"the saved plan deletes {saved.delete_count} object(s), more than"
                f" --max-deletes {max_deletes}; refusing it"
            )
        options = FleetOptions(sandbox, sandbox_db, config, provider, prune, max_deletes,
                               parallelism, probe_window, tuple(target))  # fmt: skip
        store = state_store(state, sandbox)
        notices = state_notices(store, say=saved is None)
        scope = _apps_written(saved, desired, prune)
        with store.lock("apply", apps=scope, timeout=lock_timeout) as lock_info:
            _begin_run(store, lock_info)
            fleet = open_fleet(
                desired, store, options, only=list(saved.endpoints) if saved else None
            )
            current_state = fleet.state
            if saved is not None and fleet.mac is not None:
                planned_for = saved.endpoints.get(MAC_PROVIDER)
                if planned_for != fleet.mac.identity:
                    raise PlanError(
                        f"the saved plan was made for {planned_for}, not {fleet.mac.identity}"
                    )
            if desired is not None:
                check_scope(desired, current_state)
                if scope is None and fleet.mac is not None:  # a prune: not locked one by one
                    _refuse_claimed(store, fleet.mac.identity, [a.id for a in desired.apps])
            if saved is not None and not _same_state(saved, current_state):
                raise PlanError(
                    "the saved plan is stale: the state changed since it was made (serial"
                    f" {saved.state_serial} -> {current_state.serial}). Run `reconciler plan"
                    " --out` again; a saved plan is never re-planned silently."
                )
            if (saved is not None and plan_file is not None and not saved.fleet_errors
                    and fleet.mac is not None):  # fmt: skip
                # Protection recorded in the state, status chains, location ids. (A plan
                # with fleet errors is never executed: it is shown with its errors below.)
                check_against_state(saved, current_state, str(plan_file))
            writing = True
            try:
                outcome = _run(fleet, store, saved, desired, options, notices,
                               auto_approve, machine, use_color(no_color))  # fmt: skip
            except BaseException:
                _finish_run(store, None, "error")
                raise
            _finish_run(store, outcome, _result_word(outcome))

    summary = outcome.result.as_dict() if outcome.plan is not None and outcome.approved else None
    if machine:
        plan_json = outcome.plan.as_dict() if outcome.plan is not None else None
        typer.echo(json.dumps({"plan": plan_json, "apply": summary}, indent=2))
    elif summary is not None:
        typer.echo(render_apply_result(summary, color=use_color(no_color)), nl=False)
    if outcome.interrupted:
        # Not approved: stopped while planning or at the prompt, before any write.
        err(INTERRUPTED_DURING_WRITES if outcome.approved else INTERRUPTED_BEFORE_WRITES)
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.plan is not None and outcome.plan.fleet_errors:
        err("Error: the plan has errors that concern the whole fleet (above); nothing was"
            " applied.")
        raise typer.Exit(EXIT_ERROR)
    if not outcome.approved:  # the user did not type "yes": nothing applied, as Terraform
        raise typer.Exit(EXIT_ERROR)
    result = outcome.result
    if result.stuck or result.unresolved:
        # One stuck app never holds the fleet: the others were applied; it is named above.
        if result.stuck:
            err(f"Not applied: {len(result.stuck)} stuck mini app(s): {', '.join(result.stuck)}")
        raise typer.Exit(EXIT_PARTIAL)
    if result.failed or result.skipped:
        raise typer.Exit(EXIT_PARTIAL if result.applied or result.adopted else EXIT_ERROR)
    raise typer.Exit(EXIT_OK)


def _apps_written(saved: Plan | None, desired: Desired | None, prune: bool) -> list[str] | None:
    """The apps this run may write, locked before the state is read (a store that locks per
    app locks these; the file store locks the whole file anyway). None: the whole state (a
    prune may delete any app the state records, known only once it is read)."""
    if saved is not None and MAC_PROVIDER not in saved.endpoints:
        return None  # another provider's records live in the workspace's own row
    if desired is not None and any(desired.others_declared.values()):
        return None
    if saved is not None:
        # changes, learned facts, and labels/protection (recorded with no API write)
        return sorted({c.app_id for c in saved.changes} | {item.app_id for item in saved.learned}
                      | set(saved.app_meta))  # fmt: skip
    if desired is None or prune:
        return None
    return sorted({a.id for a in desired.apps})


def _refuse_claimed(store: StateStore, endpoint: str, apps: list[str]) -> None:
    from reconciler.state_pg import PgStateStore

    if isinstance(store, PgStateStore):  # file states cannot see each other (D62)
        store.refuse_claimed(endpoint, apps)


def _begin_run(store: StateStore, info: Any) -> None:
    from reconciler.state_pg import PgStateStore

    if isinstance(store, PgStateStore):  # the history of runs is kept in the database only
        store.begin_run(info)


def _result_word(outcome: _Outcome) -> str:
    result = outcome.result
    if outcome.interrupted:
        return "interrupted"
    if outcome.plan is None or outcome.plan.fleet_errors:
        return "error"
    if not outcome.approved:
        return "not approved"
    if result.failed or result.skipped or result.stuck or result.unresolved:
        return "partial"
    return "applied" if outcome.plan.has_changes else "no changes"


def _finish_run(store: StateStore, outcome: _Outcome | None, word: str) -> None:
    from reconciler.state_pg import PgStateStore

    if not isinstance(store, PgStateStore):
        return
    summary: dict[str, Any] = {}
    if outcome is not None and outcome.plan is not None:
        summary["plan"] = outcome.plan.summary
        summary["changes"] = len(outcome.plan.changes)
        if outcome.approved:
            summary["apply"] = outcome.result.as_dict()["summary"]
    # The result is worth keeping even if this last write fails: it is said, not raised.
    from reconciler.errors import StateError

    try:
        store.finish_run(summary, word)
    except StateError as exc:
        err(f"Warning: the run's result was not recorded in the history: {exc}")


@dataclass
class _Outcome:
    plan: Plan | None = None
    result: ApplyResult = field(default_factory=lambda: _empty_result())
    approved: bool = False
    interrupted: bool = False


def _empty_result() -> ApplyResult:
    from reconciler.providers.miniappcenter.apply import ApplyResult

    return ApplyResult()


def _run(
    fleet: Fleet,
    store: StateStore,
    saved: Plan | None,
    desired: Desired | None,
    options: FleetOptions,
    notices: tuple[str, ...],
    auto_approve: bool,
    machine: bool,
    color: bool,
) -> _Outcome:
    import asyncio

    from reconciler.engine.render import render

    progress = _Progress(machine)
    outcome = _Outcome(plan=saved)
    executor: Executor | None = None
    current_state = fleet.state
    made: FleetPlan | None = None
    if saved is not None:
        mac_part, parts = split_saved(saved)
        made = FleetPlan(saved, mac_part, parts)

    async def execute(the_plan: FleetPlan) -> None:
        total = len(the_plan.merged.changes)
        progress.begin(total)
        try:
            if the_plan.mac is not None and fleet.mac is not None:
                await _execute_mac(the_plan.mac)
            if the_plan.parts and (executor is None or not executor.stopping):
                await _execute_others(the_plan.parts)
        finally:
            progress.end()

    async def _execute_mac(mac_plan: Plan) -> None:
        nonlocal executor
        from reconciler.providers.miniappcenter.apply import ApplyOptions, Executor

        assert fleet.mac is not None
        async with fleet.mac.client(options.parallelism) as client:
            executor = Executor(
                client,
                store,
                current_state,
                mac_plan,
                options=ApplyOptions(
                    parallelism=options.parallelism,
                    probe_window=options.probe_window,
                    verify_fingerprints=saved is not None,
                    on_result=progress.result,
                    on_start=progress.start,
                ),
            )
            _graceful_signals(lambda: executor)
            # With no changes this only records labels and protection: no API write.
            outcome.result = await executor.run()

    async def _execute_others(parts: Mapping[str, Plan]) -> None:
        from reconciler.engine.service import apply_parts
        from reconciler.errors import PlanError

        _graceful_signals(lambda: executor)
        async with AsyncExitStack() as stack:
            # Said when planning; a saved plan's endpoint is said here.
            sessions = await open_sessions(stack, fleet, options, say=saved is not None)
            for name, part in parts.items():
                session = sessions.by_name.get(name)
                if session is None or part.endpoints.get(name) != session.identity:
                    where = session.identity if session is not None else "no endpoint"
                    raise PlanError(
                        f"the plan's {name} part was made for {part.endpoints.get(name)}, not"
                        f" {where}"
                    )
            models = None
            if desired is not None:
                models = {name: desired.models(name) for name in parts}
            applied = await apply_parts(
                sessions,
                parts,
                sections_of(fleet),
                desired=models,
                parallelism=options.parallelism,
                store_write=store.record_resource,
                on_event=lambda event: _merge_event(outcome, progress, event),
            )
        for name, done in applied.items():
            outcome.result.adopted += done.adopted
            stuck = parts[name].stuck_apps
            for key in done.stuck:
                outcome.result.stuck[key] = "; ".join(str(p) for p in stuck.get(key, ()))

    try:
        # Planning and the confirmation run outside the writes' event loop: a Ctrl-C there
        # simply stops (nothing was written).
        if made is None:
            assert desired is not None
            made = asyncio.run(plan_fleet(fleet, desired, options, notices))
            outcome.plan = made.merged
        the_plan = made.merged
        asks = the_plan.has_changes and not auto_approve
        if not machine or the_plan.errors or asks:
            # JSON mode keeps stdout for the JSON: the human reads the plan on stderr
            typer.echo(render(the_plan, "text", color=color), nl=False, err=machine)
        if the_plan.fleet_errors or (asks and not _confirm()):
            return outcome
        outcome.approved = True
        if the_plan.has_changes or the_plan.learned:
            store.ensure_base(current_state)
        asyncio.run(execute(made))
    except (KeyboardInterrupt, asyncio.CancelledError):
        outcome.interrupted = True
        if executor is not None:
            others = [r for r in outcome.result.results if r.change.provider != MAC_PROVIDER]
            outcome.result = executor.result
            outcome.result.results.extend(others)
    finally:
        _sigterm_as_interrupt()  # closing a loop resets it to the default (kill)
        # Fold the journal into the state file whatever happened (it is durable already);
        # a run that recorded nothing leaves the file, its serial and saved plans alone.
        if store.dirty:
            read_format = current_state.read_format
            store.save(current_state)
            if read_format != current_state.format_version:
                err(
                    f"Note: the state file {store.describe()} was format"
                    f" {read_format}; it is now written as format"
                    f" {current_state.format_version} (providers/kinds/keys), which older"
                    " reconciler versions cannot read"
                )
    outcome.interrupted = outcome.interrupted or outcome.result.interrupted
    return outcome


def _merge_event(outcome: _Outcome, progress: _Progress, event: ChangeEvent) -> None:
    """Another provider's change result, in the one apply summary and progress."""
    from reconciler.providers.miniappcenter.apply import ChangeResult

    result = ChangeResult(event.change, event.outcome, event.message)
    outcome.result.results.append(result)
    progress.result(result)


def _graceful_signals(current: Callable[[], Executor | None]) -> None:
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
def _interrupt_exits_130(writing: Callable[[], bool]) -> Iterator[None]:
    """Ctrl-C or SIGTERM before or after the run (loading, the lock, the final save): the lock
    is released by its context manager and every recorded write is in the journal."""
    try:
        yield
    except KeyboardInterrupt:
        err(INTERRUPTED_DURING_WRITES if writing() else INTERRUPTED_BEFORE_WRITES)
        raise typer.Exit(EXIT_INTERRUPTED) from None


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
        err=True,  # stdout may be JSON or piped
    )
    if answer.strip() != "yes":
        err("Apply cancelled; nothing was changed.")
        return False
    return True


def _read_plan(path: Path) -> Plan:
    """Read and validate a saved plan WHOLE (its provider checks every field): a tampered or
    damaged file is refused here, before the endpoint, the lock or any request."""
    from reconciler.engine.plan_file import read_plan_file
    from reconciler.providers.registry import PROVIDERS

    return read_plan_file(path, PROVIDERS)


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
        from reconciler.engine.plan import SYMBOLS

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
