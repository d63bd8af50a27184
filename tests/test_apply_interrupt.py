"""Kill `reconciler apply` mid-way (SIGINT, SIGKILL) and show the next apply completes with no
duplicate and no lost id. Real processes, a real sandbox server over loopback HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.state import FileStateStore, mac_records
from tests.fixtures_sandbox import RunningSandbox

REPO = Path(__file__).resolve().parent.parent
APPLIED_BEFORE_KILL = 12


def _env(server: RunningSandbox, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MAC_BASE_URL=server.base_url,
        MAC_API_TOKEN=server.token,
        RECONCILER_STATE=str(state),
        NO_COLOR="1",
    )
    return env


def _reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli.main", *args]


def _apply_and_kill(fleet: Path, env: dict[str, str], sig: int) -> int:
    """Start an apply, wait until some writes are done, then send ``sig``."""
    proc = subprocess.Popen(
        _reconciler("apply", str(fleet), "--auto-approve", "--parallelism", "2"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    applied = 0
    try:
        for line in proc.stderr:
            if line.startswith("applied"):
                applied += 1
                if applied == APPLIED_BEFORE_KILL:
                    proc.send_signal(sig)
                    break
        proc.stderr.read()
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test itself fails
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_killed_apply_resumes_without_duplicates(
    sig: int, tmp_path: Path, sandbox_server_factory: Callable[..., RunningSandbox]
) -> None:
    server = sandbox_server_factory(latency_ms=30)
    fleet = tmp_path / "fleet"
    # The demo fleet's mini apps (its Akana part needs an Akana endpoint; this is about the
    # Mini App Center's journal).
    for part in ("cafe", "payments"):
        shutil.copytree(REPO / "manifests" / part, fleet / part)
    state = tmp_path / "state.json"
    env = _env(server, state)

    code = _apply_and_kill(fleet, env, sig)
    graceful = sig != signal.SIGKILL
    if graceful:
        # Ctrl-C / a CI cancellation: no new change starts, the writes in flight finish and
        # are recorded, the state is saved and the lock released.
        assert code == 130
        assert not state.with_name("state.json.lock").exists()
        assert not state.with_name("state.json.journal").exists()
    else:
        assert code == -signal.SIGKILL
        # The killed run's lock file is left behind, but the OS lock it held died with it:
        # the next apply takes it over and says so; nobody runs `state unlock` (D113).
        lock = json.loads(state.with_name("state.json.lock").read_text())
        assert lock["os_lock"] is True

    # A graceful stop leaves nothing unknown; a kill -9 may leave a version create or a review
    # step in flight. Either way no person is asked: the next apply reads what it can't know
    # (versions above the id mark, statuses by refused steps) and converges.
    unknown = _unknowns(state)
    if graceful:
        assert unknown == []

    final = subprocess.run(
        _reconciler("apply", str(fleet), "--auto-approve"), env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert final.returncode == 0, final.stderr + final.stdout
    if not graceful:
        assert f"took over the state lock left by a run that is gone (lock {lock['id']}" in (
            final.stderr
        )
    assert "set-status" not in final.stderr + final.stdout
    assert "adopt-version" not in final.stderr + final.stdout
    assert _unknowns(state) == []
    plan = subprocess.run(
        _reconciler("plan", str(fleet), "--detailed-exitcode"), env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert plan.returncode == 0, plan.stdout

    # no duplicates: each manifest version exists exactly once, each location once
    manifests = subprocess.run(
        _reconciler("validate", str(fleet), "--format", "json"), env=env, capture_output=True,
        text=True, timeout=60, check=True,
    )
    assert json.loads(manifests.stdout)["valid"]
    saved = json.loads(state.read_text())
    for app_id, record in mac_records(saved).items():
        assert server.store.count_versions(app_id) == len(record["versions"])
        names = [loc["name"] for loc in server.store.list_locations(app_id)]
        assert len(names) == len(set(names)), names
        for version in record["versions"].values():
            assert version["id"] is not None


def _unknowns(state: Path) -> list[str]:
    """Versions whose create or status the state does not know (journal included: after a
    SIGKILL it is not folded yet, and its lines are per resource, replayed by the store)."""
    replayed = FileStateStore(state).read()
    return [
        f"{app_id} {code}"
        for app_id, record in replayed.apps.items()
        for code, version in record.versions.items()
        if version.status == "unknown" or version.create_outcome
    ]


def test_ctrl_c_stops_an_in_process_sandbox_apply(tmp_path: Path) -> None:
    """The in-process sandbox never yields to the event loop by itself: the executor does,
    between changes, so a Ctrl-C is seen while the apply runs, not after it."""
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    for i in range(150):
        (fleet / f"app{i}.yaml").write_text(
            "apiVersion: miniappcenter/v1\nkind: MiniApp\n"
            f"metadata: {{id: com.bench.app{i}}}\n"
            "spec:\n  name: App\n  superapp_id: com.bench.super\n  type: Web\n"
            "  attributes: {A: '1', B: '2'}\n"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAC_", "RECONCILER_"))}
    stdout = (tmp_path / "stdout.txt").open("w")  # a file: a full pipe would block the plan
    proc = subprocess.Popen(
        _reconciler("apply", "fleet", "--sandbox", "--auto-approve", "--parallelism", "2"),
        cwd=tmp_path, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    applied = 0
    for line in proc.stderr:
        if line.startswith("applied"):
            applied += 1
            if applied == APPLIED_BEFORE_KILL:
                proc.send_signal(signal.SIGINT)
                break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    stdout.close()
    out = (tmp_path / "stdout.txt").read_text()
    assert "Apply interrupted" in out
    assert "skipped" in rest  # most of the 450 changes never started
    final = subprocess.run(
        _reconciler("apply", "fleet", "--sandbox", "--auto-approve"), cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert final.returncode == 0, final.stderr
