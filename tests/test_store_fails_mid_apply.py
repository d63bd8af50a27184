"""The state store failing in the middle of an apply: some writes were applied and recorded,
then the store fails (PostgreSQL down, the state file's disk full). The run exits 3 (partly
applied) naming the record it could not make, never 1 (which says nothing was applied); a
store failing before any write still exits 1."""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bench.fleet import make_fleet, write_manifests
from reconciler.cli.main import main
from reconciler.state import FileStateStore
from tests.fixtures_postgres import PgServer
from tests.fixtures_sandbox import RunningSandbox

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    write_manifests(make_fleet(4), tmp_path / "manifests")
    return tmp_path


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    """The state's disk fills up after ``batches`` journal writes: every later journal
    write and the final save of the state file fail with ENOSPC."""
    calls = itertools.count()
    full = batches == 0
    real_append = FileStateStore._append_lines

    def append(self: FileStateStore, lines: Sequence[bytes]) -> None:
        nonlocal full
        full = full or next(calls) >= batches
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, lines)

    real_replace = FileStateStore._replace

    def replace(self: FileStateStore, payload: str) -> None:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(self, payload)

    monkeypatch.setattr(FileStateStore, "_append_lines", append)
    monkeypatch.setattr(FileStateStore, "_replace", replace)


def test_a_state_file_failing_after_some_recorded_writes_exits_3_naming_the_record(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _disk_full_after(monkeypatch, 3)
    code = main(["apply", "manifests", "--sandbox", "--auto-approve", "--parallelism", "1"])
    err = capsys.readouterr().err
    assert code == 3, err[-3000:]
    assert "cannot record a completed write of com.bench.fleet.app" in err
    assert "Error: cannot write the state file" in err and "Traceback" not in err
    # the disk has room again: the next run converges
    monkeypatch.undo()
    monkeypatch.chdir(fleet)
    assert main(["apply", "manifests", "--sandbox", "--auto-approve"]) in (0, 3)
    assert main(["plan", "manifests", "--sandbox", "--detailed-exitcode"]) == 0


def test_a_state_file_failing_before_any_write_exits_1(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _disk_full_after(monkeypatch, 0)
    code = main(["apply", "manifests", "--sandbox", "--auto-approve"])
    err = capsys.readouterr().err
    assert code == 1, err[-3000:]
    assert "cannot write the state file" in err and "applied  +" not in err


def test_postgresql_down_mid_apply_exits_3_naming_the_failing_record(
    tmp_path: Path, own_pg_server: PgServer,
    sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory(latency_ms=60)
    write_manifests(make_fleet(8), tmp_path / "fleet")
    url = own_pg_server.url(own_pg_server.create_db())
    env = {**os.environ, "MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": server.token,
           "RECONCILER_STATE": url, "NO_COLOR": "1", "PYTHONPATH": str(REPO),
           "RECONCILER_PG_LEASE_SECONDS": "2"}  # fmt: skip
    cli = [sys.executable, "-m", "reconciler.cli.main", "apply", str(tmp_path / "fleet"),
           "--auto-approve", "--parallelism", "2"]  # fmt: skip
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if sum(1 for x in lines if x.startswith("applied")) == 6:
            break
    own_pg_server.stop()  # down for longer than the lease: the run cannot ride it out
    lines.extend(proc.stderr)
    code = proc.wait(timeout=300)
    down_until = time.monotonic()
    own_pg_server.start()
    err = "".join(lines)
    assert code == 3, err[-3000:]
    assert "Traceback" not in err
    named = [x for x in lines if "cannot record a completed write of com.bench.fleet" in x
             or "cannot confirm the lease" in x]  # fmt: skip
    assert named, err[-3000:]
    assert down_until > 0
    # the database is back: the next unattended runs converge
    again = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode in (0, 3), again.stderr[-3000:]
    plan = subprocess.run([*cli[:3], "plan", str(tmp_path / "fleet"), "--detailed-exitcode"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
