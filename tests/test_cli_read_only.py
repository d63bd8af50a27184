"""`plan` and `drift` write nothing, on the in-process sandboxes too: no file or folder
appears in a fresh checkout, while `apply` still creates and keeps the sandboxes' files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.test_cli_habits import REPO, fleet  # noqa: F401 (a fixture)


@pytest.fixture
def checkout(fleet: Path) -> Path:  # noqa: F811
    """The demo fleet with REST objects, as a fresh git checkout (the state's root)."""
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "manifests" / "rest")
    subprocess.run(["git", "init", "-q", str(fleet)], check=True)
    return fleet


def tree(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root)) for path in root.rglob("*") if ".git" not in path.parts
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_and_drift_on_the_sandboxes_create_nothing(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(checkout)
    code, out, err = cli(capsys, "plan", "manifests", "--sandbox")
    assert code == 0, err
    # The endpoints shown are the files an apply would use, though none exists yet.
    for name in ("sandbox.db", "akana-sandbox.db", "tenant-sandbox.db"):
        assert f"{checkout / '.reconciler' / name})" in err
    assert "Plan: " in out
    assert tree(checkout) == before
    code, _, err = cli(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")
    assert code == 2, err
    code, _, err = cli(capsys, "drift", "manifests", "--sandbox")
    assert code == 2, err
    assert tree(checkout) == before


def test_apply_keeps_the_files_and_plan_then_reads_them(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 0, err
    kept = tree(checkout)
    for name in ("sandbox.db", "akana-sandbox.db", "tenant-sandbox.db", "sandbox-state.json"):
        assert f".reconciler/{name}" in kept
    code, out, err = cli(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")
    assert code == 0, err + out  # read from the kept files: nothing left to do
    code, _, err = cli(capsys, "drift", "manifests", "--sandbox")
    assert code == 0, err
    assert tree(checkout) == kept


# --- apply --format jsonl: every provider reports each change's start ------------------------


def test_apply_jsonl_has_a_started_line_before_each_result_of_every_provider(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    code, out, err = cli(capsys, "apply", "manifests", "--sandbox", "--auto-approve",
                         "--format", "jsonl")  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    results = [(i, e) for i, e in enumerate(events) if e["type"] in ("applied", "failed")]
    assert {e["provider"] for _, e in results} == {"miniappcenter", "akana", "rest"}
    for index, event in results:
        starts = [i for i, e in enumerate(events)
                  if e["type"] == "started" and e["address"] == event["address"]]  # fmt: skip
        assert len(starts) == 1, event
        assert starts[0] < index, event
    assert sum(e["type"] == "started" for e in events) == len(results)
    summary = events[-1]
    assert summary["type"] == "summary" and summary["applied"] == len(results)


# --- the plan's live reads, counted per provider, shown on a terminal only --------------------


def test_a_plan_on_a_terminal_shows_its_reads_and_erases_them(checkout: Path) -> None:
    from reconciler.cli.read_status import ERASE
    from tests.test_cli_habits import run_cli, run_on_terminal

    code, shown = run_on_terminal("plan", "manifests", "--sandbox", cwd=checkout)
    assert code == 0, shown
    status = shown.index("Reading live state: ")
    assert shown.index(ERASE, status) < shown.index("Plan: ")  # erased before the report
    # Redirected: no status line, no terminal control sequence.
    done = run_cli("plan", "manifests", "--sandbox", cwd=checkout)
    assert done.returncode == 0, done.stderr
    assert "Reading live state" not in done.stderr and "\x1b" not in done.stderr


class Counting:
    """A reporter that shows reads: what the workflows tell it."""

    def __init__(self) -> None:
        self.reads: dict[str, int] = {}
        self.ended = 0

    def say(self, message: str) -> None:
        pass

    def progress_read(self, provider: str) -> None:
        assert not self.ended  # every read is counted while planning, none after
        self.reads[provider] = self.reads.get(provider, 0) + 1

    def progress_read_end(self) -> None:
        self.ended += 1


@pytest.mark.parametrize("command", ["plan", "drift"])
def test_every_providers_reads_are_counted_by_the_shared_transport(
    checkout: Path, command: str
) -> None:
    from reconciler.workflows.drift import check_drift
    from reconciler.workflows.fleet import FleetOptions
    from reconciler.workflows.plan import make_plan

    options = FleetOptions(True, None, None, None, False, None, 4, 0, ())
    reporter = Counting()
    run = make_plan if command == "plan" else check_drift
    run([Path("manifests")], select=(), roots=[Path("manifests")], state=None,
        options=options, reporter=reporter)  # fmt: skip
    assert set(reporter.reads) == {"miniappcenter", "akana", "rest"}
    assert all(count >= 1 for count in reporter.reads.values())
    assert reporter.ended == 1


def test_the_status_line_says_each_providers_count_and_is_erased() -> None:
    import io

    from reconciler.cli.read_status import ERASE, ReadStatus

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    status = ReadStatus(terminal)
    status.read("rest")
    status.read("akana")  # within the redraw interval: counted, not drawn
    assert terminal.getvalue() == f"{ERASE}Reading live state: rest 1 request(s) answered"
    status.end()
    assert terminal.getvalue().endswith(ERASE)
    redirected = io.StringIO()
    quiet = ReadStatus(redirected)
    quiet.read("rest")
    quiet.end()
    assert redirected.getvalue() == ""


def test_the_registry_passes_the_flag_only_to_a_connector_that_takes_it() -> None:
    from typing import Any

    from reconciler.providers.registry import DESCRIPTORS, LazyConnector

    calls: list[Any] = []

    class Older:  # a plugin written before read-only runs
        def connect(self, env: Any, *, sandbox_dir: Any, config: Any, parallelism: int) -> Any:
            calls.append("older")

    class Newer:
        def connect(self, env: Any, *, sandbox_dir: Any, config: Any, parallelism: int,
                    keep_sandbox: bool = True) -> Any:  # fmt: skip
            calls.append(keep_sandbox)

    for connector in (Older(), Newer()):
        lazy = LazyConnector(DESCRIPTORS[0])
        lazy._connector = connector  # type: ignore[assignment]
        lazy.connect({}, sandbox_dir=None, config=None, parallelism=1, keep_sandbox=False)
        lazy.connect({}, sandbox_dir=None, config=None, parallelism=1)
    assert calls == ["older", "older", False, True]
