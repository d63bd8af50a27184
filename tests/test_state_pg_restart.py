"""A real PostgreSQL server restarted in the middle of an apply while other applies of the
same apps wait (or start right after it): the leases survive the restart, so no two runs ever
write the same apps at once, no review status is left unknown, and the fleet converges.
Real processes, a real sandbox server over loopback HTTP, a PostgreSQL server of the test's
own (restarted with pg_ctl on the same data directory and socket)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.fleet import make_fleet, write_manifests
from reconciler.state_pg import PgStateStore
from tests.fixtures_postgres import PgServer
from tests.fixtures_sandbox import RunningSandbox

REPO = Path(__file__).resolve().parent.parent


def _env(server: RunningSandbox, state: str) -> dict[str, str]:
    return {**os.environ, "MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": server.token,
            "RECONCILER_STATE": state, "NO_COLOR": "1", "PYTHONPATH": str(REPO),
            # short, so that the test is quick; the restart below lasts well under it
            "RECONCILER_PG_LEASE_SECONDS": "8"}  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli.main", *args]


@dataclass
class _Run:
    """An apply process whose progress lines are stamped as they arrive."""

    name: str
    proc: subprocess.Popen[str]
    applied: list[float] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.startswith("applied"):
                self.applied.append(time.monotonic())
            self.stderr.append(line)

    def tail(self) -> str:
        return "".join(self.stderr[-30:])


def _start(name: str, folder: Path, env: dict[str, str], *extra: str) -> _Run:
    proc = subprocess.Popen(
        _cli("apply", str(folder), "--auto-approve", *extra), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run = _Run(name, proc)
    run.reader = threading.Thread(target=run.read, daemon=True)
    run.reader.start()
    return run


def _finish(run: _Run) -> int:
    code = run.proc.wait(timeout=300)
    assert run.reader is not None
    run.reader.join(timeout=30)
    return code


def test_a_restart_mid_apply_never_lets_two_runs_write_the_same_apps(
    tmp_path: Path, own_pg_server: PgServer,
    sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory(latency_ms=100)
    folder = tmp_path / "fleet"
    write_manifests(make_fleet(24), folder)
    url = own_pg_server.url(own_pg_server.create_db())
    env = _env(server, url)
    first = _start("first", folder, env, "--parallelism", "2")
    deadline = time.monotonic() + 120
    while len(first.applied) < 4 and first.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(first.applied) >= 4 and first.proc.poll() is None, first.tail()
    # A second apply of the same apps waits for the first; the server restarts under both.
    waiting = _start("waiting", folder, env, "--lock-timeout", "300")
    time.sleep(1.0)
    own_pg_server.restart()
    # A third starts right after the restart: the locks the first took must still hold.
    late = _start("late", folder, env, "--lock-timeout", "300")
    runs = [first, waiting, late]
    codes = {run.name: _finish(run) for run in runs}
    assert first.proc.poll() is not None
    # No two runs ever wrote at once: each run's writes lie outside every other's.
    spans = {run.name: (min(run.applied), max(run.applied)) for run in runs if run.applied}
    for a, (a_from, a_to) in spans.items():
        for b, (b_from, b_to) in spans.items():
            assert a == b or a_to < b_from or b_to < a_from, (
                f"{a} and {b} wrote at the same time: {spans}\n"
                + "\n".join(f"--- {r.name} (exit {codes[r.name]})\n{r.tail()}" for r in runs)
            )
    # Nobody had to give up: the first rode out the restart, the others waited their turn.
    assert codes == {"first": 0, "waiting": 0, "late": 0}, f"{spans}\n" + "\n".join(
        f"--- {r.name} (exit {codes[r.name]}, {len(r.applied)} applied)\n{r.tail()}"
        for r in runs
    )
    state = PgStateStore(url).read()
    assert len(state.apps) == 24
    unknown = [
        (app_id, code) for app_id, record in state.apps.items()
        for code, version in record.versions.items() if version.status == "unknown"
    ]  # fmt: skip
    assert not unknown
    for app_id, record in state.apps.items():
        # every write recorded once: what the server has is what the state says
        assert server.store.count_versions(app_id) == len(record.versions), app_id
        names = [loc["name"] for loc in server.store.list_locations(app_id)]
        assert sorted(names) == sorted(record.locations or {}), app_id
    # and the next unattended run has nothing left to do
    plan = subprocess.run(_cli("plan", str(folder), "--detailed-exitcode"), env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
