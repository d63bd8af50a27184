"""The PostgreSQL state store against a real server (tests/fixtures_postgres.py): rows,
serial, per-app locks, claims between workspaces, snapshots, history, migrate, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from reconciler.cli.main import app as cli
from reconciler.errors import LockError, StateError
from reconciler.state import AppRecord, FileStateStore, LocationRecord, State, VersionRecord
from reconciler.state_pg import PgStateStore, redact, split_url
from tests.fixtures_postgres import PgServer

ENDPOINT = "http://mac.test/api"
REPO = Path(__file__).resolve().parent.parent


def _record(n: int) -> AppRecord:
    return AppRecord(
        labels={"n": str(n)},
        fields={"name": f"App {n}"},
        locations={"Central": LocationRecord(id=n + 1, geo_point="POINT(1 2)")},
        versions={"1.0": VersionRecord(id=100 + n, status="pending", compatibility=[1])},
    )


def _with_workspace(url: str, workspace: str) -> str:
    return f"{url}&workspace={workspace}"


def _seed(url: str, apps: dict[str, AppRecord]) -> State:
    store = PgStateStore(url)
    with store.lock("seed"):
        state = store.load(ENDPOINT)
        store.ensure_base(state)
        for app_id, record in apps.items():
            asyncio.run(store.record(app_id, record))
            state.apps[app_id] = record
        store.save(state)
    return state


def test_records_are_rows_and_every_write_bumps_the_serial(pg_url: str) -> None:
    _seed(pg_url, {})
    serials = [PgStateStore(pg_url).read().serial]
    store = PgStateStore(pg_url)
    with store.lock("apply", apps=["com.a", "com.b"]):
        store.load(ENDPOINT)
        for app_id, n in (("com.a", 1), ("com.b", 2), ("com.a", 3)):
            asyncio.run(store.record(app_id, _record(n)))
            # each recorded write is its own committed transaction with a new serial
            serials.append(PgStateStore(pg_url).read().serial)
        asyncio.run(store.record("com.b", None))
        serials.append(PgStateStore(pg_url).read().serial)
    assert serials == sorted(set(serials)), serials  # strictly increasing
    with psycopg.connect(split_url(pg_url)[0]) as conn:
        rows = conn.execute(
            "SELECT workspace, provider, kind, key, record->'labels' FROM reconciler_resources"
            " ORDER BY key"
        ).fetchall()
    assert rows == [("default", "miniappcenter", "miniapp", "com.a", {"n": "3"})]
    read = PgStateStore(pg_url).read()
    assert read.apps == {"com.a": _record(3)} and read.endpoint == ENDPOINT


def test_a_recorded_write_is_durable_without_a_save(pg_url: str) -> None:
    store = PgStateStore(pg_url)
    with store.lock("apply", apps=["com.a"]):
        state = store.load(ENDPOINT)
        store.ensure_base(state)
        asyncio.run(store.record("com.a", _record(1)))
        # (a crash here: no save)
    assert PgStateStore(pg_url).read().apps["com.a"] == _record(1)


def test_disjoint_writers_of_one_workspace_lose_no_update(pg_url: str) -> None:
    before = _seed(pg_url, {}).serial
    first, second = PgStateStore(pg_url), PgStateStore(pg_url)
    with first.lock("apply", apps=["com.a"]), second.lock("apply", apps=["com.b"]):
        s1, s2 = first.load(ENDPOINT), second.load(ENDPOINT)
        asyncio.run(first.record("com.a", _record(1)))
        s1.apps["com.a"] = _record(1)
        s1.version_id_mark = 101
        asyncio.run(second.record("com.b", _record(2)))
        s2.apps["com.b"] = _record(2)
        s2.version_id_mark = 102
        first.save(s1)  # s1 never saw com.b: it must not delete it
        second.save(s2)
    read = PgStateStore(pg_url).read()
    assert set(read.apps) == {"com.a", "com.b"}
    assert read.version_id_mark == 102
    assert read.serial > before


def test_two_locks_on_disjoint_apps_coexist_and_the_same_app_names_its_holder(
    pg_url: str,
) -> None:
    holder, other = PgStateStore(pg_url), PgStateStore(pg_url)
    with holder.lock("apply", apps=["com.a", "com.b"]):
        with other.lock("apply", apps=["com.c"]):
            pass  # disjoint: no wait
        with pytest.raises(LockError) as caught, other.lock("apply", apps=["com.b", "com.z"]):
            pass
        message = str(caught.value)
        assert "mini app com.b is locked" in message
        assert f"(pid {os.getpid()})" in message and "for 'apply'" in message
        assert "--lock-timeout" in message and "state unlock` needed" in message
        # a whole-workspace edit (state rm, prune) waits for every apply of the workspace
        with pytest.raises(LockError, match="the workspace default is locked"), other.lock(
            "state rm"
        ):
            pass
    with other.lock("state rm"):
        pass  # released at the end of the block


def test_the_lock_waits_up_to_the_timeout_then_fails(pg_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "holder-done"
    code = (
        "import sys, time, pathlib; from reconciler.state_pg import PgStateStore\n"
        "s = PgStateStore(sys.argv[1])\n"
        "with s.lock('apply', apps=['com.a']):\n"
        "    print('locked', flush=True); time.sleep(1.5)\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, pg_url, str(marker)],
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=r"after waiting 0\.2s"), PgStateStore(
            pg_url
        ).lock("apply", apps=["com.a"], timeout=0.2):
            pass
        # waits for the holder to end (its 1.5 s), well within 60 s
        with PgStateStore(pg_url).lock("apply", apps=["com.a"], timeout=60):
            assert marker.exists()  # acquired only once the holder was done
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holders_lease_is_taken_over_after_it_expires_naming_the_holder(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_PG_LEASE_SECONDS", "2")
    code = (
        "import sys, time; from reconciler.state_pg import PgStateStore\n"
        "s = PgStateStore(sys.argv[1])\n"
        "with s.lock('apply', apps=['com.a']):\n"
        "    print('locked', flush=True); time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with pytest.raises(LockError, match=f"pid {proc.pid}"), PgStateStore(pg_url).lock(
        "apply", apps=["com.a"]
    ):
        pass
    proc.kill()  # SIGKILL: no cleanup runs in the holder, its lease stays until it expires
    proc.wait()
    with PgStateStore(pg_url).lock("apply", apps=["com.a"], timeout=30) as info:
        notice = info.takeover_notice()
    assert notice is not None and f"(pid {proc.pid})" in notice and "lease expired" in notice


def test_reads_take_no_lock_and_see_one_snapshot(pg_url: str) -> None:
    _seed(pg_url, {"com.a": _record(1)})
    writer = PgStateStore(pg_url)
    with writer.lock("state rm"):  # the whole workspace, exclusively
        state = PgStateStore(pg_url).load(ENDPOINT)  # does not wait
        assert set(state.apps) == {"com.a"}
        assert PgStateStore(pg_url).exists()


def test_an_app_managed_by_another_workspace_is_refused_naming_both(pg_url: str) -> None:
    _seed(_with_workspace(pg_url, "shard-a"), {"com.a": _record(1)})
    other = PgStateStore(_with_workspace(pg_url, "shard-b"))
    with other.lock("apply", apps=["com.a", "com.b"]), pytest.raises(StateError) as caught:
        other.load(ENDPOINT)
    message = str(caught.value)
    assert "com.a (workspace shard-a)" in message and "workspace shard-b" in message
    assert "Nothing was written" in message
    # the database refuses a second claim even if a caller skipped the check
    with other.lock("seed"):
        state = other.load("http://another.endpoint/api")  # another endpoint: no claim
        other.ensure_base(state)
        asyncio.run(other.record("com.a", _record(1)))  # allowed: not the same endpoint


def test_a_state_of_another_endpoint_is_refused(pg_url: str) -> None:
    _seed(pg_url, {})
    with pytest.raises(StateError, match="was made for endpoint"):
        PgStateStore(pg_url).load("http://other/api")


def test_the_password_is_never_shown(pg_server: PgServer) -> None:
    url = f"postgresql://bob:s3cr3t-pw@/nodb?host={pg_server.socket_dir}&password=s3cr3t-pw"
    assert "s3cr3t" not in redact(url) and "bob:***@" in redact(url)
    store = PgStateStore(url)
    assert "s3cr3t" not in store.describe()
    with pytest.raises(StateError) as caught:
        store.exists()  # role bob does not exist: a connection error
    assert "s3cr3t" not in str(caught.value) and "cannot connect" in str(caught.value)
    result = CliRunner().invoke(cli, ["state", "list", "--state", url])
    assert result.exit_code == 1
    assert "s3cr3t" not in result.output
    assert "cannot connect" in result.output


def test_bad_workspace_names_are_refused(pg_url: str) -> None:
    with pytest.raises(StateError, match="not a valid name"):
        PgStateStore(_with_workspace(pg_url, "a;drop"))


def test_schema_from_a_newer_reconciler_is_refused(pg_url: str) -> None:
    PgStateStore(pg_url).exists()  # creates the schema
    with psycopg.connect(split_url(pg_url)[0], autocommit=True) as conn:
        conn.execute("INSERT INTO reconciler_schema VALUES (99)")
    with pytest.raises(StateError, match="schema version 99"):
        PgStateStore(pg_url).exists()


def _file_state(path: Path) -> State:
    store = FileStateStore(path)
    state = State(endpoint=ENDPOINT, version_id_mark=150)
    state.apps = {f"com.app{i}": _record(i) for i in range(5)}
    state.providers = {}
    state.bind("otherprov", "https://other.example")
    state.providers["otherprov"].resources = {"thing": {"k1": {"x": [1, 2]}}}
    with store.lock("seed"):
        store.save(state)
        store.save(state)
    return FileStateStore(path).read()


def test_migrate_file_to_database_and_back_is_lossless(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "state.json"
    original = _file_state(source)
    runner = CliRunner()
    done = runner.invoke(cli, ["state", "migrate", "--state", str(source), "--to", pg_url])
    assert done.exit_code == 0, done.output
    assert PgStateStore(pg_url).read().to_file() == original.to_file()
    # a second migrate into it is refused (never merged)
    again = runner.invoke(cli, ["state", "migrate", "--state", str(source), "--to", pg_url])
    assert again.exit_code == 1 and "already holds a state" in again.output
    back = tmp_path / "back.json"
    done = runner.invoke(cli, ["state", "migrate", "--state", pg_url, "--to", str(back)])
    assert done.exit_code == 0, done.output
    assert FileStateStore(back).read().to_file() == original.to_file()
    assert json.loads(back.read_text()) == json.loads(source.read_text())
    # the same apps at the same endpoint cannot be imported into a second workspace
    other = runner.invoke(cli, ["state", "migrate", "--state", str(source), "--to",
                                _with_workspace(pg_url, "second")])  # fmt: skip
    assert other.exit_code == 1 and "managed by another workspace" in other.output


def test_the_first_write_after_an_import_moves_the_serial_on(
    tmp_path: Path, pg_url: str
) -> None:
    original = _file_state(tmp_path / "state.json")
    store = PgStateStore(pg_url)
    with store.lock("state migrate"):
        store.import_state(original)
    assert PgStateStore(pg_url).read().serial == original.serial
    with store.lock("apply", apps=["com.app0"]):
        store.load(ENDPOINT)
        asyncio.run(store.record("com.app0", _record(9)))
    assert PgStateStore(pg_url).read().serial > original.serial  # a saved plan goes stale


def test_file_state_history_says_where_history_is(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["state", "history", "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 1 and "keeps no run history" in result.output


def test_state_unlock_on_a_database_explains_there_is_nothing_to_unlock(pg_url: str) -> None:
    result = CliRunner().invoke(cli, ["state", "unlock", "x", "--state", pg_url])
    assert result.exit_code == 1 and "released by PostgreSQL" in result.output


def test_a_lock_is_released_when_the_block_fails(pg_url: str) -> None:
    store = PgStateStore(pg_url)
    with pytest.raises(RuntimeError), store.lock("apply", apps=["com.a"]):
        raise RuntimeError("boom")
    with PgStateStore(pg_url).lock("apply", apps=["com.a"]):
        pass
    time.sleep(0)  # keep the import used
