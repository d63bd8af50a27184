"""The state file: atomic saves, journal replay, endpoint binding, locking."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.errors import LockError, StateError
from reconciler.state import AppRecord, FileStateStore, State, VersionRecord

ENDPOINT = "https://mac.example.com/api"


def test_new_state_is_empty_and_bound_on_first_save(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "s" / "state.json")
    state = store.load(ENDPOINT)
    assert state.apps == {} and state.serial == 0
    store.save(state)
    data = json.loads((tmp_path / "s" / "state.json").read_text())
    assert data["format_version"] == 2
    assert data["providers"]["miniappcenter"]["endpoint"] == ENDPOINT
    assert data["serial"] == 1
    assert data["lineage"] == state.lineage


def test_serial_increments_and_lineage_stays(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = store.load(ENDPOINT)
    store.save(state)
    store.save(state)
    again = store.load(ENDPOINT)
    assert again.serial == 2
    assert again.lineage == state.lineage


def test_refuses_another_endpoint(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.save(store.load(ENDPOINT))
    with pytest.raises(StateError, match=r"was made for endpoint https://mac\.example\.com/api"):
        store.load("https://other.example.com/api")


def test_journal_replays_unsaved_records_and_changes_serial(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = store.load(ENDPOINT)
    store.save(state)  # serial 1
    recorded = AppRecord(versions={"1.0": VersionRecord(id=7, status="pending")})
    asyncio.run(store.record("com.a.b", recorded))
    asyncio.run(store.record("com.a.c", AppRecord()))
    asyncio.run(store.record("com.a.c", None))  # deleted later in the same run
    # a crash here: nothing saved, only the journal
    fresh = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert set(fresh.apps) == {"com.a.b"}
    assert fresh.version_id("com.a.b", "1.0") == 7
    assert fresh.serial == 4  # one step per replayed entry: a plan saved at 1 is stale
    store.save(fresh)
    assert not store.journal_path.exists()
    assert FileStateStore(tmp_path / "state.json").load(ENDPOINT).serial == 5


def test_torn_last_journal_line_is_dropped_but_earlier_corruption_is_an_error(
    tmp_path: Path,
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    asyncio.run(store.record("com.a.b", AppRecord()))
    with open(store.journal_path, "a") as handle:
        handle.write('{"app": "com.a.c", "rec')  # killed mid-write
    assert set(store.load(ENDPOINT).apps) == {"com.a.b"}
    store.journal_path.write_text('garbage\n{"app": "com.a.b", "record": null}\n')
    with pytest.raises(StateError, match="line 1 is corrupt"):
        store.load(ENDPOINT)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format_version": 99}', "format_version 99"),
        ('{"format_version": 1, "apps": {"x": {"bogus": 1}}}', "invalid at apps.x.bogus"),
    ],
)
def test_bad_state_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError, match=message):
        FileStateStore(path).load(ENDPOINT)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = State(apps={"com.a.b": AppRecord(labels={"team": "x"})})
    store.save(state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_lock_is_exclusive_and_names_the_holder(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    other = FileStateStore(tmp_path / "state.json")
    with store.lock("apply") as info:
        with pytest.raises(LockError) as caught, other.lock("apply"):
            pass
        message = str(caught.value)
        assert info.id in message and "reconciler state unlock" in message
        assert f"pid {info.pid}" in message
    # released on exit
    with other.lock("apply"):
        pass


def test_unlock_needs_the_right_id(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    child, dead_id = _holder(store.path, "die")  # a process that died holding the lock
    assert child.wait(timeout=30) == -signal.SIGKILL
    with pytest.raises(StateError, match="lock id mismatch"):
        store.unlock("not-the-id")
    assert store.unlock(dead_id).id == dead_id
    assert not store.lock_path.exists()
    with pytest.raises(StateError, match="not locked"):
        store.unlock(dead_id)


def test_appending_after_a_torn_line_does_not_glue_records(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    asyncio.run(store.record("com.a.b", AppRecord()))
    store._close_journal()
    with open(store.journal_path, "a") as handle:
        handle.write('{"app": "com.a.c", "rec')  # first crash, mid-append
    # the next run (under the lock) appends a confirmed write
    again = FileStateStore(tmp_path / "state.json")
    asyncio.run(again.record("com.a.d", AppRecord(versions={"1": VersionRecord(id=42)})))
    loaded = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert set(loaded.apps) == {"com.a.b", "com.a.d"}
    assert loaded.version_id("com.a.d", "1") == 42


def test_an_invalid_journal_record_is_a_clear_error(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.journal_path.write_text(
        '{"app": "x", "record": {"bogus": 1}}\n{"app": "y", "record": null}\n'
    )
    with pytest.raises(StateError, match="line 1 is corrupt"):
        store.load(ENDPOINT)


def test_a_complete_last_line_without_newline_is_kept_not_cut(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    asyncio.run(store.record("com.a.b", AppRecord(labels={"v": "1"})))
    asyncio.run(store.record("com.a.b", AppRecord(labels={"v": "2"})))
    store._close_journal()
    data = store.journal_path.read_bytes()
    store.journal_path.write_bytes(data[:-1])  # killed between the line and its newline
    assert FileStateStore(tmp_path / "state.json").load(ENDPOINT).apps["com.a.b"].labels == {
        "v": "2"
    }
    again = FileStateStore(tmp_path / "state.json")
    asyncio.run(again.record("com.a.c", AppRecord()))  # the next run appends
    loaded = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert loaded.apps["com.a.b"].labels == {"v": "2"} and "com.a.c" in loaded.apps


def test_the_lineage_survives_a_crash_of_the_first_apply(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = store.load(ENDPOINT)
    store.ensure_base(state)  # what apply does before its first write
    asyncio.run(store.record("com.a.b", AppRecord()))
    # killed here: two later loads agree on lineage and serial (a saved plan stays valid)
    first = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    second = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert (first.lineage, first.serial) == (second.lineage, second.serial) == (
        state.lineage, 2
    )
    store.ensure_base(first)  # exists: not written again
    assert FileStateStore(tmp_path / "state.json").load(ENDPOINT).serial == 2


# --- format 1 -> 2 ---------------------------------------------------------------------------

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "state_v1"


def _v1_copy(tmp_path: Path) -> Path:
    """The committed format-1 state, made by the previous release applying the demo fleet to
    a sandbox (its database and manifests are committed beside it)."""
    shutil.copytree(FIXTURE_V1 / "manifests", tmp_path / "manifests")
    (tmp_path / ".reconciler").mkdir()
    shutil.copy(FIXTURE_V1 / "sandbox.db", tmp_path / ".reconciler" / "sandbox.db")
    text = (FIXTURE_V1 / "sandbox-state.json").read_text(encoding="utf-8")
    state = tmp_path / ".reconciler" / "sandbox-state.json"
    # The fixture names the sandbox by a placeholder path: bind it to this copy.
    state.write_text(text.replace("sandbox:FIXTURE", f"sandbox:{tmp_path}"), encoding="utf-8")
    return state


def test_a_format_1_file_is_read_whole_and_written_as_format_2(tmp_path: Path) -> None:
    path = _v1_copy(tmp_path)
    v1 = json.loads(path.read_text())
    store = FileStateStore(path)
    state = store.load(v1["endpoint"])
    assert state.read_format == 1
    assert (state.lineage, state.serial) == (v1["lineage"], v1["serial"])
    assert state.version_id_mark == v1["version_id_mark"] > 0
    store.save(state)
    v2 = json.loads(path.read_text())
    assert v2["format_version"] == 2 and "apps" not in v2 and "endpoint" not in v2
    mac = v2["providers"]["miniappcenter"]
    assert mac["endpoint"] == v1["endpoint"]
    assert mac["marks"] == {"version_id": v1["version_id_mark"]}
    assert mac["resources"]["miniapp"] == v1["apps"]  # every record, byte for byte as JSON
    assert (v2["lineage"], v2["serial"]) == (v1["lineage"], v1["serial"] + 1)
    again = FileStateStore(path).load(v1["endpoint"])
    assert again.read_format == 2 and again.apps == state.apps


def test_a_format_1_state_plans_clean_and_the_next_apply_migrates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from reconciler.cli.main import main

    path = _v1_copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "MAC_SANDBOX_DB", "RECONCILER_STATE"):
        monkeypatch.delenv(var, raising=False)
    before = path.read_bytes()
    assert main(["plan", "manifests", "--sandbox", "--detailed-exitcode"]) == 0
    assert "No changes" in capsys.readouterr().out
    assert path.read_bytes() == before  # read-only commands never rewrite the state
    manifest = tmp_path / "manifests" / "cafe" / "bakeries.yaml"
    manifest.write_text(manifest.read_text().replace("COUNTRY: Uruguay", "COUNTRY: Chile", 1))
    assert main(["apply", "manifests", "--sandbox", "--auto-approve"]) == 0
    assert json.loads(path.read_text())["format_version"] == 2
    assert "was format 1; it is now written as format 2" in capsys.readouterr().err
    assert main(["plan", "manifests", "--sandbox", "--detailed-exitcode"]) == 0
    assert "No changes" in capsys.readouterr().out


def test_other_providers_sections_are_kept_whole(tmp_path: Path) -> None:
    """A state written by a reconciler that knows more providers loses nothing here."""
    path = tmp_path / "state.json"
    store = FileStateStore(path)
    state = store.load(ENDPOINT)
    state.bind("akana", "https://akana.example.com")
    state.providers["akana"].resources["akana_app"] = {"Payments": {"id": "7b9f.acme"}}
    store.save(state)
    data = json.loads(path.read_text())
    assert data["providers"]["akana"] == {
        "endpoint": "https://akana.example.com", "marks": {},
        "resources": {"akana_app": {"Payments": {"id": "7b9f.acme"}}},
    }
    again = FileStateStore(path).load(ENDPOINT)
    store.save(again)
    assert json.loads(path.read_text())["providers"]["akana"] == data["providers"]["akana"]


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ('"x"', "no providers section"),
        ('{"miniappcenter": {"resources": {"widget": {}}}}', "resources of kind 'widget'"),
        ('{"Bad Name": {}}', "invalid at providers"),
        ('{"miniappcenter": {"marks": {"version_id": "7"}}}', "invalid at"),
    ],
)
def test_a_damaged_format_2_file_is_a_clear_error(
    tmp_path: Path, providers: str, message: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format_version": 2, "providers": ' + providers + "}")
    with pytest.raises(StateError, match=message):
        FileStateStore(path).load(ENDPOINT)
# --- the journal: group commit, per-resource lines (issue 14) -------------------------------


async def test_concurrent_records_share_fsyncs_off_the_loop_and_each_returns_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    loop_thread = threading.get_ident()
    synced: list[int] = []  # journal size at each fsync
    threads: set[int] = set()
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_size)
        threads.add(threading.get_ident())

    monkeypatch.setattr(os, "fsync", counting_fsync)
    apps = [f"com.a.app{i}" for i in range(200)]

    async def one(app_id: str) -> None:
        await store.record(app_id, AppRecord(labels={"marker": app_id}))
        # returned: its line is inside what some fsync covered
        durable = store.journal_path.read_bytes()[: max(synced, default=0)]
        assert f'"marker":"{app_id}"'.encode() in durable

    await asyncio.gather(*(one(app_id) for app_id in apps))
    assert 1 <= len(synced) < len(apps) // 4  # batched: a few fsyncs for 200 lines
    assert loop_thread not in threads  # never on the event loop's thread
    store._close_journal()
    assert set(FileStateStore(store.path).load(ENDPOINT).apps) == set(apps)


def test_a_resource_line_holds_only_that_resource_and_replays_onto_the_app(
    tmp_path: Path,
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    record = AppRecord(
        labels={"team": "x"},
        attributes={f"ATTR{i}": str(i) for i in range(100)},
        versions={"1.0": VersionRecord(id=7, status="pending")},
    )
    asyncio.run(store.record("com.a.b", record))
    whole = store.journal_path.stat().st_size
    assert record.attributes is not None
    record.attributes["ATTR5"] = "changed"
    del record.attributes["ATTR6"]
    record.versions["1.0"].status = "waiting_for_review"
    record.fields["name"] = "Coffee"
    paths = [("attributes", "ATTR5"), ("attributes", "ATTR6"), ("versions", "1.0"), ("fields",)]
    asyncio.run(store.record("com.a.b", record, paths))
    store._close_journal()
    lines = store.journal_path.read_text().splitlines()[1:]
    assert len(lines) == 4  # one line per changed resource
    assert json.loads(lines[0]) == {
        "app": "com.a.b", "path": ["attributes", "ATTR5"], "record": "changed"
    }
    assert json.loads(lines[1])["record"] is None  # removed
    assert "ATTR7" not in "".join(lines)  # the other attributes are not repeated
    assert store.journal_path.stat().st_size - whole < whole // 4
    loaded = FileStateStore(store.path).load(ENDPOINT).apps["com.a.b"]
    assert loaded == record


def test_a_resource_line_for_an_app_never_recorded_is_a_clear_error(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.journal_path.write_text(
        '{"app": "com.a.b", "path": ["attributes", "A"], "record": "1"}\n'
        '{"app": "com.a.c", "record": null}\n'
    )
    with pytest.raises(StateError, match=r"line 1 is corrupt: app .com\.a\.b. has no earlier"):
        store.load(ENDPOINT)


def test_a_failed_batch_is_an_error_for_each_writer_and_the_next_batch_is_not_glued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    asyncio.run(store.record("com.a.b", AppRecord()))
    real_fsync = os.fsync

    def torn(fd: int) -> None:
        os.write(fd, b'{"app": "com.a.c", "rec')  # a partial line, then the disk fails
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", torn)

    async def two() -> list[BaseException | None]:
        return await asyncio.gather(
            store.record("com.a.d", AppRecord()), store.record("com.a.e", AppRecord()),
            return_exceptions=True,
        )

    errors = asyncio.run(two())
    assert all(isinstance(e, StateError) and "input/output error" in str(e) for e in errors)
    monkeypatch.setattr(os, "fsync", real_fsync)
    asyncio.run(store.record("com.a.f", AppRecord()))
    store._close_journal()
    assert "com.a.f" in FileStateStore(store.path).load(ENDPOINT).apps


def test_records_whose_callers_were_cancelled_still_reach_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while writes wait for their batch: the lines are not withdrawn; what the loop
    left queued is written when the journal is closed (or folded by a save)."""
    store = FileStateStore(tmp_path / "state.json")
    real_fsync = os.fsync
    release = threading.Event()

    def slow_fsync(fd: int) -> None:
        release.wait(5)  # the first batch stays in flight while the rest queue up
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)

    async def interrupted() -> None:
        first = asyncio.create_task(store.record("com.a.first", AppRecord()))
        await asyncio.sleep(0)
        queued = [
            asyncio.create_task(store.record(f"com.a.queued{i}", AppRecord())) for i in range(3)
        ]
        await asyncio.sleep(0)
        for task in (first, *queued):
            task.cancel()
        release.set()

    asyncio.run(interrupted())
    assert store.dirty
    store._close_journal()
    replayed = FileStateStore(store.path).load(ENDPOINT)
    assert set(replayed.apps) == {"com.a.first", "com.a.queued0", "com.a.queued1", "com.a.queued2"}


# --- a lock whose holder died (kill -9) is taken over; a live holder's never is ---------------

_HOLDER = """
import os, sys, time
from reconciler.state import FileStateStore
manager = FileStateStore(sys.argv[1]).lock("apply")
info = manager.__enter__()
print(info.id, flush=True)
if sys.argv[2] == "die":
    os.kill(os.getpid(), 9)  # as `kill -9` would: nothing runs after this
elif sys.argv[2] == "release-soon":
    time.sleep(0.3)
    manager.__exit__(None, None, None)
else:
    sys.stdin.readline()  # alive until told
    manager.__exit__(None, None, None)
"""


def _holder(path: Path, how: str) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), how],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def test_a_lock_left_by_a_killed_run_is_taken_over_and_named(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child, dead_id = _holder(path, "die")
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert json.loads(path.with_name("state.json.lock").read_text())["id"] == dead_id
    store = FileStateStore(path)
    with store.lock("apply") as info:
        # Nobody holds the lock file's OS lock any more: its process is gone, which the
        # kernel knows. No person is asked to run `state unlock`.
        assert info.replaced is not None and dead_id in info.replaced
        assert json.loads(store.lock_path.read_text())["id"] == info.id
        # and it is ours now, exclusively
        with pytest.raises(LockError, match=info.id), FileStateStore(path).lock("apply"):
            pass
    assert not store.lock_path.exists()


def test_a_live_holder_in_another_process_is_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child, live_id = _holder(path, "live")
    try:
        with pytest.raises(LockError, match=live_id), FileStateStore(path).lock("apply"):
            pass
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
    with FileStateStore(path).lock("apply") as info:
        assert info.replaced is None


def test_a_file_state_waits_for_a_live_holder_within_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child, held_id = _holder(path, "release-soon")
    with FileStateStore(path).lock("apply", timeout=60) as info:
        assert info.id != held_id and info.replaced is None
    assert child.wait(timeout=30) == 0


@pytest.mark.parametrize(
    "record",
    [
        # written before locks were OS locks: nothing tells whether its process lives
        {"host": socket.gethostname()},
        # another host's: its process may be alive there
        {"host": "build-agent-7", "os_lock": True},
    ],
    ids=["older-lock-file", "another-host"],
)
def test_a_lock_that_cannot_be_proven_dead_still_stops_the_run(
    tmp_path: Path, record: dict[str, object]
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    holder = {
        "id": "0d6e3c1a-held", "who": "ci", "pid": 4242, "when": "2026-11-28T10:00:00+00:00",
        "operation": "apply", **record,
    }  # fmt: skip
    store.lock_path.write_text(json.dumps(holder))
    with pytest.raises(LockError, match="0d6e3c1a-held"), store.lock("apply"):
        pass
    assert json.loads(store.lock_path.read_text())["id"] == "0d6e3c1a-held"  # left alone


# --- review: the lock under real concurrency --------------------------------------------------


def _release(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.wait(timeout=30) == 0


def test_state_unlock_refuses_a_holder_whose_process_still_runs(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child, live_id = _holder(path, "live")
    try:
        # Removing it would let a second run in beside a live one: two writers of one state.
        with pytest.raises(StateError, match=f"still running.*{live_id}"):
            FileStateStore(path).unlock(live_id)
        assert json.loads(path.with_name("state.json.lock").read_text())["id"] == live_id
    finally:
        _release(child)


def test_a_holder_never_removes_a_lock_file_that_is_not_its_own(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child, _ = _holder(path, "live")
    path.with_name("state.json.lock").unlink()  # as `rm` by a person would
    with FileStateStore(path).lock("apply") as info:
        _release(child)  # the first holder ends: the lock file at the path is ours, not its
        assert json.loads(path.with_name("state.json.lock").read_text())["id"] == info.id
        with pytest.raises(LockError, match=info.id), FileStateStore(path).lock("apply"):
            pass
    assert not path.with_name("state.json.lock").exists()


_PROBER = """
import fcntl, os, sys, threading
path = sys.argv[1]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("ready", flush=True)
while not stop.is_set():
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        continue
    try:  # as a run judging a takeover does: lock, read, let go
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.read(fd, 100)
    except OSError:
        pass
    os.close(fd)
"""


def test_a_new_holder_keeps_its_os_lock_while_other_runs_probe_the_lock_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    prober = subprocess.Popen(
        [sys.executable, "-c", _PROBER, str(path.with_name("state.json.lock"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert prober.stdout is not None and prober.stdout.readline().strip() == "ready"
    without = 0
    try:
        for _ in range(1500):
            with FileStateStore(path).lock("apply") as info:
                # A prober holding the new file's OS lock for a moment must not leave this
                # run without one: if it then died, nobody could prove it gone.
                without += not info.os_lock
    finally:
        assert prober.stdin is not None
        prober.stdin.close()
        prober.wait(timeout=30)
    assert without == 0


_FULL_DISK_TAKER = """
import resource, sys
from reconciler.errors import StateError
from reconciler.state import FileStateStore
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write fails, as on a full disk
try:
    with FileStateStore(sys.argv[1]).lock("apply"):
        print("locked")
except StateError as exc:
    print("StateError:", exc)
"""


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_TAKER, str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.startswith("StateError: cannot write the lock file"), done
    assert "Traceback" not in done.stderr
    # An empty lock file left here would stop every later run until a person removed it.
    assert not path.with_name("state.json.lock").exists()


def test_state_unlock_removes_a_dangling_symlink_that_stops_runs(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.lock_path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(LockError, match="state unlock"), store.lock("apply"):
        pass  # the lock says: remove it with `state unlock`
    with pytest.raises(StateError, match="removed an unreadable lock file"):
        store.unlock("any")
    assert not os.path.lexists(store.lock_path)
    assert not (tmp_path / "nowhere").exists()


def test_state_migrate_says_when_it_took_over_a_dead_runs_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli.main import main

    source = tmp_path / "state.json"
    FileStateStore(source).save(State(endpoint=ENDPOINT))
    child, dead_id = _holder(source, "die")
    assert child.wait(timeout=30) == -signal.SIGKILL
    code = main(["state", "migrate", "--state", str(source), "--to", str(tmp_path / "copy.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    # as apply, import and the state edits do: a lock taken over is never taken silently
    assert "took over the state lock" in err and dead_id in err


def test_a_hostile_lock_record_is_shown_escaped_and_bounded(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    hostile = {
        "id": "0d6e\x1b[2J", "who": "a" * 50_000, "host": "h\x1b]0;pwned\x07", "pid": 9**3000,
        "when": "t\r\nApply complete: 0 applied", "operation": "apply",
    }  # fmt: skip
    store.lock_path.write_text(json.dumps(hostile))
    with pytest.raises(LockError) as caught, store.lock("apply"):
        pass
    message = str(caught.value)
    # nothing that moves the cursor, retitles the terminal or fakes a line of output
    assert all(char.isprintable() for char in message), repr(message[:200])
    assert len(message) < 2_000
    assert "0d6e" in message and "held by" in message


def test_a_lock_file_that_cannot_be_removed_ends_the_run_cleanly(tmp_path: Path) -> None:
    # A directory nobody may remove files from (chattr +i stops root too; a chmod would not).
    locked_dir = tmp_path / "ro"
    locked_dir.mkdir()
    store = FileStateStore(locked_dir / "state.json")
    dead = {
        "id": "0d6e3c1a-dead", "who": "ci", "host": socket.gethostname(), "pid": 4242,
        "when": "2026-11-28T10:00:00+00:00", "operation": "apply", "os_lock": True,
    }  # fmt: skip
    store.lock_path.write_text(json.dumps(dead))
    if shutil.which("chattr") is None or subprocess.run(
        ["chattr", "+i", str(locked_dir)], capture_output=True
    ).returncode:
        pytest.skip("needs chattr +i (root, ext4)")
    try:
        with store.lock("apply") as info:
            assert info.replaced is not None
        # it ended without an OSError; its record stays, and its OS lock went with it
        assert json.loads(store.lock_path.read_text())["id"] == info.id
        with FileStateStore(store.path).lock("apply") as again:
            assert again.replaced is not None and info.id in again.replaced
    finally:
        subprocess.run(["chattr", "-i", str(locked_dir)], check=True)


def test_a_live_holder_whose_lock_file_we_may_not_write_is_named_not_a_permission_error(
    tmp_path: Path,
) -> None:
    # Another user's run on a shared state directory: its lock file is not ours to write.
    path = tmp_path / "state.json"
    child, live_id = _holder(path, "live")
    lock_file = path.with_name("state.json.lock")
    try:
        if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(lock_file)], capture_output=True
        ).returncode:
            pytest.skip("needs chattr +i (root, ext4) to stand for another user's file")
        try:
            with pytest.raises(LockError, match=f"is locked .*{live_id}"), FileStateStore(
                path
            ).lock("apply"):
                pass
        finally:
            subprocess.run(["chattr", "-i", str(lock_file)], check=True)
    finally:
        _release(child)
