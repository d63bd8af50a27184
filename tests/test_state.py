"""The state file: atomic saves, journal replay, endpoint binding, locking."""

from __future__ import annotations

import json
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
    assert data["format_version"] == 1
    assert data["endpoint"] == ENDPOINT
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
    store.record("com.a.b", AppRecord(versions={"1.0": VersionRecord(id=7, status="pending")}))
    store.record("com.a.c", AppRecord())
    store.record("com.a.c", None)  # deleted later in the same run
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
    store.record("com.a.b", AppRecord())
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
    manager = store.lock("apply")
    info = manager.__enter__()  # simulate a process that died holding the lock
    with pytest.raises(StateError, match="lock id mismatch"):
        store.unlock("not-the-id")
    assert store.unlock(info.id).id == info.id
    assert not store.lock_path.exists()
    with pytest.raises(StateError, match="not locked"):
        store.unlock(info.id)


def test_appending_after_a_torn_line_does_not_glue_records(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.record("com.a.b", AppRecord())
    store._close_journal()
    with open(store.journal_path, "a") as handle:
        handle.write('{"app": "com.a.c", "rec')  # first crash, mid-append
    # the next run (under the lock) appends a confirmed write
    again = FileStateStore(tmp_path / "state.json")
    again.record("com.a.d", AppRecord(versions={"1": VersionRecord(id=42)}))
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
    store.record("com.a.b", AppRecord(labels={"v": "1"}))
    store.record("com.a.b", AppRecord(labels={"v": "2"}))
    store._close_journal()
    data = store.journal_path.read_bytes()
    store.journal_path.write_bytes(data[:-1])  # killed between the line and its newline
    assert FileStateStore(tmp_path / "state.json").load(ENDPOINT).apps["com.a.b"].labels == {
        "v": "2"
    }
    again = FileStateStore(tmp_path / "state.json")
    again.record("com.a.c", AppRecord())  # the next run appends
    loaded = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert loaded.apps["com.a.b"].labels == {"v": "2"} and "com.a.c" in loaded.apps


def test_the_lineage_survives_a_crash_of_the_first_apply(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = store.load(ENDPOINT)
    store.ensure_base(state)  # what apply does before its first write
    store.record("com.a.b", AppRecord())
    # killed here: two later loads agree on lineage and serial (a saved plan stays valid)
    first = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    second = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert (first.lineage, first.serial) == (second.lineage, second.serial) == (
        state.lineage, 2
    )
    store.ensure_base(first)  # exists: not written again
    assert FileStateStore(tmp_path / "state.json").load(ENDPOINT).serial == 2
