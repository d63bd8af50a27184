"""Every shell example of the documentation, run as written against the in-process sandboxes.

Each page (README.md and ``docs/**/*.md``, tests/docs_pages.py) is read for its fenced blocks;
each runs in a fresh copy of the demo fleet (the working directory holds ``manifests/``,
``schema/`` and ``examples/rest/``, plus the page's ``<!-- file: PATH -->`` blocks):

- a ```console block: each ``$ reconciler ...`` line runs in-process and the lines under it
  must be in what it prints (``check_console``);
- a ```bash block: run by bash with ``-e`` in that folder, the ``reconciler`` of this
  environment first on PATH; a line whose comment says ``exit N`` must exit N, every other
  line 0. ``pip install -e ...`` of this repository is skipped: it is what is under test;
- a block after ``<!-- norun: REASON -->`` is not run here; REASON says what runs it instead
  (the tests below run the ones that need a prepared fleet).

No example may change the demo fleet's own manifests. tests/test_examples.py checks that every
``reconciler ...`` line names real commands and flags.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.docs_pages import REPO, Block, pages, read_page, rel

PAGES = {rel(p): read_page(p) for p in pages()}
RUNNABLE = [b for page in PAGES.values() for b in page.runnable()]
CLEARED = ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
           "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "RECONCILER_CONFIG", "NO_COLOR",
           "RECONCILER_WORKSPACE", "TENANT_BASE_URL", "TENANT_USERNAME", "TENANT_PASSWORD",
           "TENANT_API_KEY")  # fmt: skip


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in CLEARED:
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "schema", tmp_path / "schema")
    shutil.copytree(REPO / "examples" / "rest", tmp_path / "examples" / "rest")
    # A clone is a git work tree: the state lives at its root (.reconciler/), wherever the
    # commands are run from.
    (tmp_path / ".git").mkdir()
    return tmp_path


def page_block(page: str, marker: str, fence: str) -> str:
    """The first ``fence`` block of ``page`` whose text contains ``marker``."""
    found = [b.text for b in PAGES[page].blocks if b.fence == fence and marker in b.text]
    assert found, f"{page} has no ```{fence} block with {marker!r}"
    return found[0]


def run(capsys: pytest.CaptureFixture[str], line: str) -> tuple[int, list[str]]:
    """One ``reconciler ...`` command line, in-process: exit code, stdout + stderr lines."""
    argv = shlex.split(line)
    assert argv[0] == "reconciler", line
    code = main(argv[1:])
    out, err = capsys.readouterr()
    return code, (out + err).splitlines()


def check_console(block: str, capsys: pytest.CaptureFixture[str]) -> int:
    """Run each ``$ reconciler`` line and find the lines the page shows under it.

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


# --- every block, generically -----------------------------------------------------------------

_PIP_SELF = re.compile(r"pip install -e (\.|'\.\[[a-z,]+\]')(?=\s|$)")
_EXIT = re.compile(r"#.*\bexit (\d+)\b")


def bash_script(block: str) -> str:
    """The block as a bash script that checks each annotated line's exit code."""
    out = ["set -e"]
    for number, line in enumerate(block.splitlines(), 1):
        line = _PIP_SELF.sub(":", line)  # the package under test is installed already
        want = _EXIT.search(line) if line.startswith("reconciler ") else None
        if want is None:
            out.append(line)
            continue
        command = line.split("  #")[0].split(" #")[0]
        out.append(
            f"rc=0; {command} || rc=$?; [ \"$rc\" = {want.group(1)} ] || {{ echo \"line"
            f" {number}: exit $rc, the page says {want.group(1)}\" >&2; exit 97; }}"
        )
    return "\n".join(out) + "\n"


def fleet_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "manifests").rglob("*")) if p.is_file()
    }  # fmt: skip


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_every_shell_example_runs_as_shown(
    block: Block, fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in PAGES[rel(block.page)].files.items():
        (fleet / name).parent.mkdir(parents=True, exist_ok=True)
        (fleet / name).write_text(text, encoding="utf-8")
    before = fleet_files(fleet)
    if block.fence == "console":
        assert check_console(block.text, capsys) >= 1, block.id
    else:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                   COLUMNS="200", RECONCILER_DEBUG="1")  # fmt: skip
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-o", "pipefail", "-c", bash_script(block.text)],
            cwd=fleet, env=env, capture_output=True, text=True, timeout=600, check=False,
        )
        assert done.returncode == 0, (block.id, done.stdout[-3000:], done.stderr[-3000:])
    assert fleet_files(fleet) == before, f"{block.id} changed the demo fleet's manifests"


def test_a_skipped_block_says_why() -> None:
    """The blocks the generic runner leaves out, each with its reason (listed on failure)."""
    skipped = [(b.id, b.norun) for p in PAGES.values() for b in p.blocks if b.norun is not None]
    assert all(reason and len(reason) >= 12 for _, reason in skipped), skipped
    # a norun mark is for shell blocks only: anything else is never run anyway
    fences = {b.fence for page in PAGES.values() for b in page.blocks if b.norun is not None}
    assert fences <= {"console", "bash", "sh"}, fences
    assert RUNNABLE
    # the README's quick start and tour always run: a newcomer copies them first
    assert [b.id for b in RUNNABLE if b.page.name == "README.md"] and not [
        s for s in skipped if s[0].startswith("README.md") and "test suite" not in str(s[1])
    ], skipped


def test_the_runner_checks_exit_codes_and_fleet(tmp_path: Path) -> None:
    """The bash runner itself: an annotated exit is enforced, a wrong one fails the block."""
    ok = bash_script("reconciler --bogus  # exit 64: a usage error\n")
    bad = bash_script("reconciler --bogus  # exit 0\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = [subprocess.run(["bash", "-c", s], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False) for s in (ok, bad)]  # fmt: skip
    assert run[0].returncode == 0, run[0].stderr
    assert run[1].returncode == 97 and "exit 64, the page says 0" in run[1].stderr


def test_the_rest_import_example_writes_outside_the_demo_fleet() -> None:
    block = page_block("docs/getting-started/rest.md", "import --provider rest", "bash")
    (line,) = [x for x in block.splitlines() if x.startswith("reconciler import")]
    argv = shlex.split(line.split("  #")[0])
    assert "--out" in argv, line  # the default is manifests/imported: inside the demo fleet
    out = Path(argv[argv.index("--out") + 1])
    assert out.parts[0] != "manifests", line


# --- the blocks that need a prepared fleet ---------------------------------------------------


def test_quick_start_converges(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = page_block("README.md", "pip install -e . && reconciler plan", "bash").strip()
    commands = line.split(" && ")[1:]
    codes = [run(capsys, c) for c in commands]
    assert [c for c, _ in codes] == [0, 0, 0]
    assert "No changes. Live state matches the manifests." in codes[-1][1]
    assert any(x.startswith("Apply complete: 56 applied") for x in codes[1][1])


def test_lost_state_demo_exits_as_commented(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    block = page_block("docs/how-to/recover.md", "lose the state", "bash")
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
    block = page_block("docs/how-to/import.md", "--version 0.9.0=", "bash")
    show, forget, importing, check = [x.split("  #")[0] for x in block.strip().splitlines()]
    code, out = run(capsys, show)
    assert code == 0, out
    version_id = json.loads("\n".join(x for x in out if not x.startswith("Endpoint")))[
        "versions"]["0.9.0"]["id"]
    # the id is the sandbox's (apply order); the page quotes the one a run gives
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
    page = "docs/how-to/scheduled-drift.md"
    block = page_block(page, "$ reconciler drift manifests/ --sandbox\n", "console")
    assert check_console(block, capsys) == 1
    code, _ = run(capsys, "reconciler drift manifests/ --sandbox")
    assert code == 2  # "Exit 0 in sync, 2 drift"
