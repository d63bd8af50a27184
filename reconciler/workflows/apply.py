"""`apply`: plan (or read a saved plan), confirm, execute every provider's part through its
session (the engine's service) and record it, into one result; locks and the history of runs
around it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.workflows.desired import check_provider, check_scope, load_desired, root_provider
from reconciler.workflows.fleet import (
    Fleet,
    FleetOptions,
    FleetPlan,
    connectors,
    open_fleet,
    open_sessions,
    plan_fleet,
    sections_of,
    split_saved,
)
from reconciler.workflows.target import state_notices, state_store

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
    from reconciler.engine.result import ApplyResult
    from reconciler.engine.session import ChangeEvent, SectionApplied
    from reconciler.state import State, StateStore
    from reconciler.workflows.desired import Desired
    from reconciler.workflows.report import ApplyReporter


@dataclass
class ApplyOutcome:
    """What a run did: the plan shown (None: stopped before one was made), the result of
    its changes, whether it was approved and whether it was interrupted."""

    plan: Plan | None = None
    # The fleet's apply result: every provider's change results merged in.
    result: ApplyResult = field(default_factory=lambda: _empty_result())
    approved: bool = False
    interrupted: bool = False
    # The state store failed after some writes were applied and recorded (the error): the
    # run exits 3, not 1, since 1 says nothing was applied.
    store_error: str | None = None


def run_apply(
    paths: Sequence[Path],
    *,
    plan_file: Path | None,
    select: Sequence[str],
    roots: Sequence[Path],
    state: Path | str | None,
    lock_timeout: float,
    auto_approve: bool,
    options: FleetOptions,
    reporter: ApplyReporter,
) -> ApplyOutcome:
    """Apply the manifests ``paths`` (narrowed as ``plan`` narrows them) or exactly the saved
    plan ``plan_file``, under the state's lock, and record the run in the history."""
    from reconciler.errors import PlanError

    check_provider(options.provider)
    desired: Desired | None = None
    saved: Plan | None = None
    if plan_file is not None:
        saved = read_plan(plan_file)
    else:
        desired = load_desired(paths, select, options.targets, roots, provider=options.provider)
    max_deletes = options.max_deletes
    if saved is not None and max_deletes is not None and saved.delete_count > max_deletes:
        raise PlanError(
            f"the saved plan deletes {saved.delete_count} object(s), more than"
            f" --max-deletes {max_deletes}; refusing it"
        )
    store = state_store(state, options.sandbox)
    scope = _apps_written(saved, desired, options.prune)
    with store.lock("apply", apps=scope, timeout=lock_timeout) as lock_info:
        if (notice := lock_info.takeover_notice()) is not None:
            reporter.say(notice)
        # Judged under the lock: a holder we waited for may have written the first state.
        notices = state_notices(
            store,
            reporter if saved is None else None,
            desired.providers if desired is not None else list(saved.endpoints) if saved else None,
        )
        _begin_run(store, lock_info)
        fleet = open_fleet(
            desired, store, options, reporter, only=list(saved.endpoints) if saved else None
        )
        current_state = fleet.state
        if saved is not None and fleet.binding is not None:
            # The state file is bound to this endpoint: a plan made for another is refused
            # before anything else is judged.
            planned_for = saved.endpoints.get(root_provider())
            if planned_for != fleet.identity:
                raise PlanError(f"the saved plan was made for {planned_for}, not {fleet.identity}")
        if desired is not None:
            check_scope(desired, current_state)
            if scope is None and fleet.binding is not None:  # a prune: not locked one by one
                _refuse_claimed(store, fleet.identity, desired.root_keys)
        if saved is not None and not _same_state(saved, current_state):
            raise PlanError(
                "the saved plan is stale: the state changed since it was made (serial"
                f" {saved.state_serial} -> {current_state.serial}). Run `reconciler plan"
                " --out` again; a saved plan is never re-planned silently."
            )
        if saved is not None and plan_file is not None and not saved.fleet_errors:
            # What the provider's records contradict (protection, status chains, ids),
            # before anything is shown or written. (A plan with fleet errors is never
            # executed: it is shown with its errors below.)
            _check_saved(saved, current_state, str(plan_file))
        reporter.may_write()
        try:
            outcome = _run(fleet, store, saved, desired, options, notices, auto_approve, reporter)
        except BaseException:
            _finish_run(store, None, "error", reporter)
            raise
        _finish_run(store, outcome, _result_word(outcome), reporter)
    return outcome


def read_plan(path: Path) -> Plan:
    """Read and validate a saved plan WHOLE (its provider checks every field): a tampered or
    damaged file is refused here, before the endpoint, the lock or any request."""
    from reconciler.engine.plan_file import read_plan_file
    from reconciler.providers.registry import PROVIDERS

    return read_plan_file(path, PROVIDERS)


def _apps_written(saved: Plan | None, desired: Desired | None, prune: bool) -> list[str] | None:
    """The apps this run may write, locked before the state is read (a store that locks per
    app locks these; the file store locks the whole file anyway). None: the whole state (a
    prune may delete any app the state records, known only once it is read)."""
    if saved is not None and root_provider() not in saved.endpoints:
        return None  # another provider's records live in the workspace's own row
    if desired is not None and any(desired.others_declared.values()):
        return None
    if saved is not None:
        # changes, learned facts, and labels/protection (recorded with no API write)
        return sorted({c.app_id for c in saved.changes} | {item.app_id for item in saved.learned}
                      | set(saved.app_meta))  # fmt: skip
    if desired is None or prune:
        return None
    return sorted(set(desired.root_keys))


def _refuse_claimed(store: StateStore, endpoint: str, apps: list[str]) -> None:
    from reconciler.state_pg import PgStateStore

    if isinstance(store, PgStateStore):  # file states cannot see each other (D62)
        store.refuse_claimed(endpoint, apps)


def _begin_run(store: StateStore, info: Any) -> None:
    from reconciler.state_pg import PgStateStore

    if isinstance(store, PgStateStore):  # the history of runs is kept in the database only
        store.begin_run(info)


def _result_word(outcome: ApplyOutcome) -> str:
    result = outcome.result
    if outcome.interrupted:
        return "interrupted"
    if outcome.plan is None or outcome.plan.fleet_errors:
        return "error"
    if not outcome.approved:
        return "not approved"
    if (result.failed or result.skipped or result.stuck or result.unresolved
            or result.stuck_providers):  # fmt: skip
        return "partial"
    return "applied" if outcome.plan.has_changes else "no changes"


def _finish_run(
    store: StateStore, outcome: ApplyOutcome | None, word: str, reporter: ApplyReporter
) -> None:
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
        reporter.say(f"Warning: the run's result was not recorded in the history: {exc}")


def _empty_result() -> ApplyResult:
    from reconciler.engine.result import ApplyResult

    return ApplyResult()


def _check_saved(saved: Plan, state: State, source: str) -> None:
    """A provider may refuse a saved plan its records contradict (its connector's optional
    ``check_saved``); the stale-serial guard is the workflow's, for every provider."""
    from reconciler.engine.session import RunContext

    for name in saved.endpoints:
        check = getattr(connectors()[name], "check_saved", None)
        if check is not None:
            check(saved, RunContext(state=state), source)


def _run(
    fleet: Fleet,
    store: StateStore,
    saved: Plan | None,
    desired: Desired | None,
    options: FleetOptions,
    notices: tuple[str, ...],
    auto_approve: bool,
    reporter: ApplyReporter,
) -> ApplyOutcome:
    import asyncio

    from reconciler.engine.service import is_stuck
    from reconciler.engine.session import StopSignal

    outcome = ApplyOutcome(plan=saved)
    current_state = fleet.state
    made: FleetPlan | None = None
    if saved is not None:
        made = FleetPlan(saved, split_saved(saved))
    stop = StopSignal()
    started: list[Plan] = []  # the parts whose writes started (for an interrupted run)

    async def execute(the_plan: FleetPlan) -> None:
        total = len(the_plan.merged.changes)
        reporter.progress_begin(total)
        try:
            await _execute(the_plan.parts)
        finally:
            reporter.progress_end()

    async def _execute(parts: Mapping[str, Plan]) -> None:
        from reconciler.engine.service import apply_parts
        from reconciler.engine.session import RunContext
        from reconciler.errors import PlanError

        run = RunContext(
            state=current_state,
            store=store,
            probe_window=options.probe_window,
            verify_fingerprints=saved is not None,
            stop=stop,
        )
        async with AsyncExitStack() as stack:
            # Said when planning; a saved plan's endpoint is said here.
            sessions = await open_sessions(
                stack, fleet, options, reporter, say=saved is not None, run=run
            )
            for name, part in parts.items():
                session = sessions.by_name.get(name)
                if session is None or part.endpoints.get(name) != session.identity:
                    where = session.identity if session is not None else "no endpoint"
                    raise PlanError(
                        f"the plan's {name} part was made for {part.endpoints.get(name)}, not"
                        f" {where}"
                    )
            # A session given the run's context polls the graceful stop; the others' writes
            # are cancelled by a stop (each completed one is recorded already).
            stoppable = any(
                hasattr(sessions.by_name[name], "attach") and not is_stuck(part)
                for name, part in parts.items()
            )
            reporter.writes_running(lambda: stop if stoppable else None)
            models = None
            if desired is not None:
                models = {name: desired.models(name) for name in parts}
            started.extend(part for part in parts.values() if not is_stuck(part))
            applied = await apply_parts(
                sessions,
                parts,
                sections_of(fleet),
                desired=models,
                parallelism=options.parallelism,
                store_write=store.record_resource,
                on_event=lambda event: _merge_event(outcome, reporter, event),
                before_write=_lease_check(store),
            )
        for name, done in applied.items():
            _merge_applied(outcome.result, parts[name], done)

    from reconciler.transport.session_auth import carried_sessions

    # One login per run: the plan's sessions are carried into the writes' event loop.
    run_sessions = ExitStack()
    carrier = run_sessions.enter_context(carried_sessions())
    try:
        # Planning and the confirmation run outside the writes' event loop: a Ctrl-C there
        # simply stops (nothing was written).
        if made is None:
            assert desired is not None
            made = asyncio.run(plan_fleet(fleet, desired, options, notices, reporter))
            outcome.plan = made.merged
        the_plan = made.merged
        outcome.result.stuck_providers = {
            item.provider: item.reason for item in the_plan.stuck_providers
        }
        asks = the_plan.has_changes and not auto_approve
        reporter.review(the_plan, asks)
        if the_plan.fleet_errors or (asks and not reporter.confirm()):
            return outcome
        outcome.approved = True
        if the_plan.has_changes or the_plan.learned:
            store.ensure_base(current_state)
        carrier.last_phase()  # the writes' clients log out when they close
        asyncio.run(execute(made))
    except (KeyboardInterrupt, asyncio.CancelledError):
        outcome.interrupted = True
        # The results reported before the interruption are in already; what the plan could
        # not settle was not touched either.
        for part in started:
            outcome.result.unresolved.extend(
                str(problem) for problem in part.unresolved
                if str(problem) not in outcome.result.unresolved
            )
    finally:
        run_sessions.close()  # logs out of a session the writes did not take over
        reporter.loop_closed()  # closing a loop resets the signal handlers it installed
        # Fold the journal into the state file whatever happened (it is durable already);
        # a run that recorded nothing leaves the file, its serial and saved plans alone.
        if store.dirty:
            read_format = current_state.read_format
            if (_saved(store, current_state, outcome)
                    and read_format != current_state.format_version):  # fmt: skip
                reporter.say(
                    f"Note: the state file {store.describe()} was format"
                    f" {read_format}; it is now written as format"
                    f" {current_state.format_version} (providers/kinds/keys), which older"
                    " reconciler versions cannot read"
                )
    outcome.interrupted = outcome.interrupted or outcome.result.interrupted
    return outcome


def _saved(store: StateStore, state: State, outcome: ApplyOutcome) -> bool:
    """Save the state at the end of a run; a store failing after writes were applied is the
    run's error (exit 3, said after the summary), not a failure of the whole run (exit 1)."""
    from reconciler.errors import StateError

    try:
        store.save(state)
    except StateError as exc:
        if not (outcome.result.applied or outcome.result.adopted):
            raise
        outcome.store_error = str(exc)
        return False
    return True


def _merge_event(outcome: ApplyOutcome, reporter: ApplyReporter, event: ChangeEvent) -> None:
    """A provider's change result, in the one apply summary and progress."""
    from reconciler.engine.result import ChangeResult

    if event.outcome == "started":  # a write starts: shown, not a result
        reporter.progress_start(event.change)
        return
    result = ChangeResult(event.change, event.outcome, event.message, event.stuck)
    outcome.result.results.append(result)
    reporter.progress_result(result)


def _merge_applied(result: ApplyResult, part: Plan, done: SectionApplied) -> None:
    """A provider's part, done, in the fleet's result."""
    result.adopted += done.adopted
    result.probe_reads += done.probe_reads
    result.interrupted = result.interrupted or done.interrupted
    result.unresolved.extend(done.unresolved)
    stuck = part.stuck_apps
    for key in done.stuck:
        result.stuck[key] = done.reasons.get(key) or "; ".join(str(p) for p in stuck.get(key, ()))


def _same_state(saved: Plan, current: State) -> bool:
    if saved.state_serial != current.serial:
        return False
    if current.serial == 0:
        return saved.state_lineage is None  # planned before any state existed
    return saved.state_lineage == current.lineage


def _lease_check(store: object) -> Callable[[], Awaitable[None]] | None:
    """What the shared transport awaits before each request that may write, for every
    provider: a store that leases what a run writes (PostgreSQL) confirms this run still
    holds its lease, or refuses the write. None for a store without leases."""
    check = getattr(store, "before_write", None)
    if check is None:
        return None

    async def confirm() -> None:
        await check(None)  # the run's lease as a whole (a write's app is not known here)

    return confirm
