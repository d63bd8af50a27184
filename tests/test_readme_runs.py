"""README.md's demo-fleet examples, run as written against the in-process sandboxes.

tests/test_examples.py checks that every ``reconciler ...`` line in the README names real
commands and flags; this runs the ones a reader copies on the demo fleet (``--sandbox``)
and compares what they print and exit with what the README quotes: each ``$ reconciler``
line of a console block with the lines under it, and the try-it bash blocks' exit codes.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3
from pathlib import Path

import pytest

from reconciler.cli.main import main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "RECONCILER_CONFIG",
                "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "schema", tmp_path / "schema")
    # A clone is a git work tree: the state lives at its root (.reconciler/), wherever the
    # commands are run from.
    (tmp_path / ".git").mkdir()
    return tmp_path


def block_after(marker: str, fence: str) -> str:
    """The first ``fence`` block whose text contains ``marker``."""
    blocks = re.findall(rf"^```{fence}\n(.*?)^```$", README, flags=re.S | re.M)
    found = [b for b in blocks if marker in b]
    assert found, f"README has no ```{fence} block with {marker!r}"
    return found[0]


def run(capsys: pytest.CaptureFixture[str], line: str) -> tuple[int, list[str]]:
    """One ``reconciler ...`` command line, in-process: exit code, stdout + stderr lines."""
    argv = shlex.split(line)
    assert argv[0] == "reconciler", line
    code = main(argv[1:])
    out, err = capsys.readouterr()
    return code, (out + err).splitlines()


def check_console(block: str, capsys: pytest.CaptureFixture[str]) -> int:
    """Run each ``$ reconciler`` line and find the lines the README shows under it.

    ``; echo $?`` makes the next quoted line the exit code; ``| grep '^#'`` keeps the
    headings; a quoted line ending in ``...`` is a prefix; a bare ``...`` skips lines.
    """
    checked = 0
    entries = re.split(r"^\$ ", block, flags=re.M)[1:]
    for entry in entries:
        command, *shown = entry.rstrip("\n").split("\n")
        command = command.split("  #")[0].strip()
        echo = command.endswith("; echo $?")
        command = command.removesuffix("; echo $?")
        grep = " | grep '^#'" in command
        command = command.replace(" | grep '^#'", "")
        code, lines = run(capsys, command)
        if grep:
            lines = [x for x in lines if x.startswith("#")]
        if echo:
            assert str(code) == shown.pop(), (command, code, lines)
        for want in (x for x in shown if x != "..."):
            if want.endswith("..."):
                assert any(x.startswith(want[:-3]) for x in lines), (command, want, lines)
            else:
                assert want in lines, (command, want, lines)
        if grep:  # the headings are the whole output, in this order
            assert lines == shown, (command, lines)
        checked += 1
    return checked


def test_selection_errors_are_the_ones_quoted(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fleet / "drafts").mkdir()  # "only commented-out YAML"
    (fleet / "drafts" / "app.yaml").write_text("# apiVersion: miniappcenter/v1\n# kind: MiniApp\n")
    assert check_console(block_after("--select team=kitchn", "console"), capsys) == 4


def test_validate_counts_the_demo_fleet(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = block_after("$ reconciler validate broken.yaml\n", "console").split("\n$ ")[0]
    assert check_console(first + "\n", capsys) == 1


def test_providers_examples_run_in_order(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = block_after("--provider akana --out akana-plan.json", "console")
    assert check_console(block, capsys) == 6
    assert (fleet / "imported" / "Payments-Reports.yaml").is_file()


def test_quick_start_converges(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = block_after("pip install -e . && reconciler plan", "bash").strip()
    commands = line.split(" && ")[1:]
    codes = [run(capsys, c) for c in commands]
    assert [c for c, _ in codes] == [0, 0, 0]
    assert "No changes. Live state matches the manifests." in codes[-1][1]
    assert any(x.startswith("Apply complete: 56 applied") for x in codes[1][1])


def test_lost_state_demo_exits_as_commented(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    block = block_after("lose the state", "bash")
    lines = [x for x in block.splitlines() if x and not x.startswith("#")]
    assert lines[1] == "rm .reconciler/sandbox-state.json"
    assert run(capsys, lines[0])[0] == 0
    (fleet / ".reconciler" / "sandbox-state.json").unlink()
    code, out = run(capsys, lines[2].split("  #")[0])
    text = " ".join(" ".join(out).split())  # a narrow terminal may wrap the summary line
    assert code == 1 and "version read(s) spent finding" in text
    assert any(re.match(r"  = miniapp\[.*\]: adopt ", x) for x in out)  # "= adopt" lines
    code, out = run(capsys, lines[3].split("  #")[0])
    assert code == 3, out  # "exit 3 only for those statuses"
    failed = [x for x in out if x.startswith("failed")]
    assert failed and all(".status: review status unknown" in x for x in failed)


def test_import_try_it_plans_no_changes(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "reconciler apply manifests/ --sandbox --auto-approve")[0] == 0
    block = block_after("--version 0.9.0=", "bash")
    show, forget, importing, check = [x.split("  #")[0] for x in block.strip().splitlines()]
    code, out = run(capsys, show)
    assert code == 0, out
    version_id = json.loads("\n".join(x for x in out if not x.startswith("Endpoint")))[
        "versions"]["0.9.0"]["id"]
    # the id is the sandbox's (apply order); the README quotes the one a run gives
    assert f"0.9.0={version_id}" in importing or "0.9.0=2" in importing
    importing = importing.replace("0.9.0=2", f"0.9.0={version_id}")
    assert run(capsys, forget)[0] == 0
    assert run(capsys, importing)[0] == 0
    validate, plan = check.split(" && ")
    assert run(capsys, validate)[0] == 0
    assert run(capsys, plan)[0] == 0


def test_drift_example_is_what_drift_prints(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "reconciler apply manifests/ --sandbox --auto-approve")[0] == 0
    # "someone renamed the app in the backoffice"
    with sqlite3.connect(fleet / ".reconciler" / "sandbox.db") as db:
        db.execute("UPDATE miniapps SET name = 'Renamed outside' "
                   "WHERE id = 'com.genexus.verdant.teatime'")  # fmt: skip
    block = block_after("$ reconciler drift manifests/ --sandbox\n", "console")
    assert check_console(block, capsys) == 1
    code, _ = run(capsys, "reconciler drift manifests/ --sandbox")
    assert code == 2  # "Exit 0 in sync, 2 drift"
