"""The workflows called as a library, without the CLI (D107): they print nothing, say what
they have to say through the reporter they are given, and leave confirmation and the
signal handling to it. Against the embedded sandboxes, in-process."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.engine.plan import Change, Plan
from reconciler.providers.miniappcenter.apply import ChangeResult
from reconciler.state import FileStateStore
from reconciler.workflows.apply import ApplyOutcome, run_apply
from reconciler.workflows.drift import check_drift
from reconciler.workflows.fleet import FleetOptions
from reconciler.workflows.plan import make_plan
from reconciler.workflows.report import Stoppable

FLEET = Path(__file__).resolve().parent.parent / "manifests"


class Recorder:
    """An ApplyReporter that keeps everything it is told, and answers ``approve``."""

    def __init__(self, approve: bool = True) -> None:
        self.approve = approve
        self.said: list[str] = []
        self.reviewed: list[tuple[Plan, bool]] = []
        self.asked = 0
        self.writing = False
        self.in_loop: list[bool] = []
        self.loops_closed = 0
        self.started: list[str] = []
        self.results: list[str] = []
        self.totals: list[int] = []

    def say(self, message: str) -> None:
        self.said.append(message)

    def review(self, plan: Plan, asks: bool) -> None:
        self.reviewed.append((plan, asks))

    def confirm(self) -> bool:
        self.asked += 1
        return self.approve

    def may_write(self) -> None:
        self.writing = True

    def writes_running(self, current: Callable[[], Stoppable | None]) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.in_loop.append(False)
        else:
            self.in_loop.append(True)

    def loop_closed(self) -> None:
        self.loops_closed += 1

    def progress_begin(self, total: int) -> None:
        self.totals.append(total)

    def progress_start(self, change: Change) -> None:
        self.started.append(change.address)

    def progress_result(self, result: ChangeResult) -> None:
        self.results.append(f"{result.outcome} {result.change.address}")

    def progress_end(self) -> None:
        pass


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo fleet's Mini App Center and Akana manifests in a fresh folder."""
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(FLEET, tmp_path / "manifests")
    return tmp_path / "manifests"


def options() -> FleetOptions:
    return FleetOptions(True, None, None, None, False, None, 4, 256, ())


def plan_of(manifests: Path, reporter: Recorder) -> Plan:
    return make_plan(
        [manifests], select=[], roots=[], state=None, options=options(), reporter=reporter
    )


def apply_of(manifests: Path, reporter: Recorder, *, auto_approve: bool) -> ApplyOutcome:
    return run_apply(
        [manifests], plan_file=None, select=[], roots=[], state=None, lock_timeout=0,
        auto_approve=auto_approve, options=options(), reporter=reporter,
    )  # fmt: skip


def test_plan_and_drift_print_nothing_and_say_through_the_reporter(
    fleet: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    said = Recorder()
    plan = plan_of(fleet, said)
    assert plan.has_changes and {"miniappcenter", "akana"} <= set(plan.endpoints)
    assert any(line.startswith("Endpoint: embedded sandbox") for line in said.said)
    assert any(line.startswith("Endpoint (akana): embedded Akana sandbox") for line in said.said)
    assert any(line.startswith("Warning: no state file was found") for line in said.said)
    report = check_drift(
        [fleet], select=[], roots=[], state=None, options=options(), reporter=Recorder()
    )
    assert not report.errors
    assert capfd.readouterr() == ("", "")  # stdout and stderr are the CLI's


def test_apply_asks_the_reporter_and_a_no_writes_nothing(
    fleet: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    declined = Recorder(approve=False)
    outcome = apply_of(fleet, declined, auto_approve=False)
    assert declined.asked == 1 and declined.reviewed[0][1] is True  # shown, then asked
    assert not outcome.approved and declined.results == []
    assert not FileStateStore(fleet.parent / ".reconciler" / "sandbox-state.json").exists()
    assert capfd.readouterr() == ("", "")


def test_apply_runs_with_the_reporters_hooks_and_converges(
    fleet: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = Recorder()
    outcome = apply_of(fleet, run, auto_approve=True)
    assert outcome.approved and run.asked == 0
    assert run.writing  # said before the first write: an interrupt now may leave writes
    assert run.in_loop and all(run.in_loop)  # the graceful stop is installed in the loop
    assert run.loops_closed == 1
    total = len(run.reviewed[0][0].changes)
    assert run.totals == [total] and len(run.results) == total
    assert all(line.startswith("applied") for line in run.results)
    assert capfd.readouterr() == ("", "")
    assert not plan_of(fleet, Recorder()).has_changes
