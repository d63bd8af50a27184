"""`reconciler apply` processes sharing one PostgreSQL state: disjoint shards at once, a
killed apply, overlapping shards of two workspaces, the run history. Real processes, a real
sandbox server over loopback HTTP, a real PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.fleet import make_fleet, write_manifests
from reconciler.state_pg import PgStateStore
from tests.fixtures_sandbox import RunningSandbox

REPO = Path(__file__).resolve().parent.parent


def _env(server: RunningSandbox, state: str) -> dict[str, str]:
    return {**os.environ, "MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": server.token,
            "RECONCILER_STATE": state, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli.main", *args]


def _shards(tmp_path: Path, apps: int, shards: int) -> list[Path]:
    fleet = make_fleet(apps)
    folders = []
    for shard in range(shards):
        folder = tmp_path / f"shard{shard}"
        write_manifests([a for i, a in enumerate(fleet) if i % shards == shard], folder)
        folders.append(folder)
    return folders


def _apply_all(
    folders: list[Path], envs: list[dict[str, str]]
) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(_cli("apply", str(f), "--auto-approve", "--parallelism", "4"), env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for f, e in zip(folders, envs, strict=True)
    ]  # fmt: skip
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


def _assert_converged(server: RunningSandbox, state: PgStateStore, n_apps: int) -> None:
    read = state.read()
    assert len(read.apps) == n_apps
    for app_id, record in read.apps.items():
        # every write recorded: versions and locations the server has are the state's, once
        assert server.store.count_versions(app_id) == len(record.versions)
        names = [loc["name"] for loc in server.store.list_locations(app_id)]
        assert sorted(names) == sorted(record.locations or {}), app_id


@pytest.mark.parametrize("shards", [2, 8])
def test_concurrent_applies_of_disjoint_shards_share_one_workspace(
    shards: int, tmp_path: Path, pg_url: str,
    sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory(latency_ms=5)
    folders = _shards(tmp_path, 4 * shards, shards)
    env = _env(server, pg_url)
    results = _apply_all(folders, [env] * shards)
    for done in results:
        assert done.returncode == 0, done.stderr[-2000:]
    store = PgStateStore(pg_url)
    _assert_converged(server, store, 4 * shards)
    # every run in the history, each applied
    runs = store.history(100)
    assert [r["result"] for r in runs] == ["applied"] * shards
    # and a second round plans nothing for any shard
    for folder in folders:
        plan = subprocess.run(_cli("plan", str(folder), "--detailed-exitcode"), env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert plan.returncode == 0, plan.stdout + plan.stderr
    history = subprocess.run(_cli("state", "history"), env=env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert history.returncode == 0 and history.stdout.count("\tapplied") == shards


def test_overlapping_shards_in_two_workspaces_never_both_manage_an_app(
    tmp_path: Path, pg_url: str, sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory(latency_ms=5)
    folder = _shards(tmp_path, 6, 1)[0]
    envs = [_env(server, f"{pg_url}&workspace=ci-{n}") for n in ("a", "b")]
    results = _apply_all([folder, folder], envs)
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [r.stderr[-800:] for r in results]
    refused = next(r for r in results if r.returncode == 1).stderr
    # refused at once (the other holds the apps' locks) or after it (the apps are claimed)
    assert ("is locked in the state" in refused) or ("already managed by another state"
                                                      in refused), refused
    winner = next(n for n, r in zip("ab", results, strict=True) if r.returncode == 0)
    loser = "b" if winner == "a" else "a"
    _assert_converged(server, PgStateStore(f"{pg_url}&workspace=ci-{winner}"), 6)
    # once the first is done, the second is refused by the claim, naming both workspaces
    again = subprocess.run(_cli("apply", str(folder), "--auto-approve"),
                           env=_env(server, f"{pg_url}&workspace=ci-{loser}"),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 1
    assert f"(workspace ci-{winner})" in again.stderr and f"workspace ci-{loser}" in again.stderr
    assert not PgStateStore(f"{pg_url}&workspace=ci-{loser}").read().apps


def test_a_killed_apply_leaves_no_lock_and_the_next_one_converges(
    tmp_path: Path, pg_url: str, sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory(latency_ms=30)
    folder = _shards(tmp_path, 12, 1)[0]
    env = _env(server, pg_url)
    proc = subprocess.Popen(_cli("apply", str(folder), "--auto-approve", "--parallelism", "2"),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stderr is not None
    applied = 0
    for line in proc.stderr:
        if line.startswith("applied"):
            applied += 1
            if applied == 10:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # no `state unlock`: the next apply takes the locks (waiting for the server to notice
    # the dead session, which it does when the socket closes)
    final = subprocess.run(_cli("apply", str(folder), "--auto-approve", "--lock-timeout", "30"),
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert final.returncode == 0, final.stderr[-2000:]
    _assert_converged(server, PgStateStore(pg_url), 12)
    runs = PgStateStore(pg_url).history(10)
    assert [r["result"] for r in runs] == [None, "applied"]  # the killed run never finished
    shown = subprocess.run(_cli("state", "history"), env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert "did not finish" in shown.stdout
    time.sleep(0)


def test_a_prune_in_one_workspace_ignores_other_workspaces_and_refuses_their_apps(
    tmp_path: Path, pg_url: str, sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory()
    first, second = _shards(tmp_path, 4, 2)
    env_a = _env(server, f"{pg_url}&workspace=a")
    env_b = _env(server, f"{pg_url}&workspace=b")
    for folder, env in ((first, env_a), (second, env_b)):
        done = subprocess.run(_cli("apply", str(folder), "--auto-approve", "--prune"), env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-1500:]
    # b's manifests now also declare one of a's apps: its prune apply is refused, naming both
    stolen = sorted(first.rglob("*.yaml"))[0]
    (second / stolen.name).write_text(stolen.read_text())
    done = subprocess.run(_cli("apply", str(second), "--auto-approve", "--prune"), env=env_b,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert f"{stolen.stem} (workspace a)" in done.stderr and "workspace b" in done.stderr


def test_a_saved_plan_that_only_relabels_is_applied_under_its_apps_locks(
    tmp_path: Path, pg_url: str, sandbox_server_factory: Callable[..., RunningSandbox],
) -> None:  # fmt: skip
    server = sandbox_server_factory()
    folder = _shards(tmp_path, 2, 1)[0]
    env = _env(server, pg_url)
    done = subprocess.run(_cli("apply", str(folder), "--auto-approve"), env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-1500:]
    manifest = sorted(folder.rglob("*.yaml"))[0]
    manifest.write_text(manifest.read_text().replace("shard: '0'", "shard: '9'"))
    assert "shard: '9'" in manifest.read_text()
    plan_file = tmp_path / "plan.json"
    subprocess.run(_cli("plan", str(folder), "--out", str(plan_file)), env=env, check=True,
                   capture_output=True, text=True, timeout=120)  # fmt: skip
    done = subprocess.run(_cli("apply", "--plan", str(plan_file), "--auto-approve"), env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-1500:]
    assert PgStateStore(pg_url).read().apps[manifest.stem].labels["shard"] == "9"
