"""Kill `reconciler apply` of Akana apps mid-way (SIGINT, SIGKILL) against a real Akana
sandbox over loopback HTTP: the next apply converges with no duplicate app and no person
asked (the journal holds every completed write, and a create cut off before its record is
found again by its name: docs/decisions.md D87, D90)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.akana_server import AkanaServer, start_akana_sandbox

APPS = 12
APPLIED_BEFORE_KILL = 5


@pytest.fixture
def akana(tmp_path: Path) -> Iterator[tuple[AkanaServer, Path]]:
    db = tmp_path / "akana.db"
    with start_akana_sandbox(db, latency_ms=60) as server:
        yield server, db


def _fleet(folder: Path) -> Path:
    folder.mkdir()
    documents = []
    for n in range(APPS):
        documents.append(
            "apiVersion: akana/v1\nkind: App\nmetadata:\n"
            f"  name: App {n:02d}\nspec:\n  summary: number {n}\n  versions:\n"
            '    - name: "1.0"\n    - name: "2.0"\n'
        )
    (folder / "apps.yaml").write_text("---\n".join(documents))
    return folder


def _env(server: AkanaServer, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAC_", "AKANA_"))}
    env.update(
        AKANA_BASE_URL=server.base_url,
        AKANA_EMAIL=server.email,
        AKANA_PASSWORD=server.password,
        RECONCILER_STATE=str(state),
        NO_COLOR="1",
    )
    return env


def _reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli.main", *args]


def _apply_and_signal(fleet: Path, env: dict[str, str], sig: int) -> tuple[int, str]:
    proc = subprocess.Popen(
        _reconciler("apply", str(fleet), "--auto-approve", "--parallelism", "2"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        applied = 0
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("applied"):
                applied += 1
                if applied == APPLIED_BEFORE_KILL:
                    proc.send_signal(sig)
                    break
        seen.append(proc.stderr.read())
        return proc.wait(timeout=60), "".join(seen)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test itself fails
            proc.kill()
            proc.wait()


def _names_on_the_server(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(name for (name,) in conn.execute("SELECT name FROM apps"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_akana_apply_converges_on_the_next_run(
    tmp_path: Path, akana: tuple[AkanaServer, Path], sig: int
) -> None:
    server, db = akana
    fleet = _fleet(tmp_path / "fleet")
    state = tmp_path / "state.json"
    env = _env(server, state)

    code, said = _apply_and_signal(fleet, env, sig)
    assert server.password not in said
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        # The completed writes are in the journal, not yet folded into the state file.
        assert state.with_name("state.json.journal").exists()
        # The lock file stays, its OS lock died with the process: the next apply takes it
        # over by itself (D113).
        lock_id = json.loads(state.with_name("state.json.lock").read_text())["id"]
    else:
        assert code == 130, said
        assert not state.with_name("state.json.lock").exists()
    created = _names_on_the_server(db)
    assert 0 < len(created) < APPS  # really cut off mid-way

    final = subprocess.run(
        _reconciler("apply", str(fleet), "--auto-approve"), env=env, capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr + final.stdout
    assert "not managed" not in final.stderr + final.stdout  # no person asked
    if sig == signal.SIGKILL:
        assert f"took over the state lock left by a run that is gone (lock {lock_id}" in (
            final.stderr
        )
    names = _names_on_the_server(db)
    assert names == [f"App {n:02d}" for n in range(APPS)]  # each exactly once
    plan = subprocess.run(
        _reconciler("plan", str(fleet), "--detailed-exitcode"), env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
