"""Damaged state files (issue 11 §5): every damage is a clear StateError naming the file, what
is wrong and how to recover, from every command that reads the state; never an internal
error, and the failing command changes no file (bytes compared before and after)."""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli.main import main
from reconciler.errors import LockError, StateError
from reconciler.state import MAX_JSON_DEPTH, MAX_STATE_BYTES, AppRecord, FileStateStore, mac_records

from .test_cli_pipeline import write_app

APP = "com.genexus.verdant.coffeemuffins"
IDENTITY = "sandbox:x"
Damage = Callable[[Path], None]


# --- damages ---------------------------------------------------------------------------------


def _non_utf8(path: Path) -> None:
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + b"\xff\xfe\xc3" + data[middle:])


def _nesting_bomb(path: Path) -> None:
    path.write_bytes(b"[" * 200_000 + b"]" * 200_000 + b"\n")


def _deep_inside(path: Path) -> None:  # valid JSON, nested below the recursion limit
    deep = "[" * (MAX_JSON_DEPTH + 50) + "]" * (MAX_JSON_DEPTH + 50)
    data = {"format_version": 1, "apps": {APP: {"fields": {"x": "DEEP"}}}}
    path.write_text(json.dumps(data).replace('"DEEP"', deep))


def _huge_int(path: Path) -> None:
    path.write_text('{"format_version": 1, "serial": ' + "9" * 5000 + "}\n")


def _apps_list(path: Path) -> None:
    path.write_text('{"format_version": 1, "apps": []}\n')


def _version_id_text(path: Path) -> None:
    data = json.loads(path.read_text())
    mac_records(data)[APP]["versions"]["1.0.0"]["id"] = "x"
    path.write_text(json.dumps(data))


def _version_id(value: object) -> Damage:
    def damage(path: Path) -> None:
        data = json.loads(path.read_text())
        mac_records(data)[APP]["versions"]["1.0.0"]["id"] = value
        path.write_text(json.dumps(data))

    return damage


def _location_id_bool(path: Path) -> None:
    data = json.loads(path.read_text())
    mac_records(data)[APP]["locations"]["Central"]["id"] = True
    path.write_text(json.dumps(data))


def _bad_app_id(path: Path) -> None:
    path.write_text('{"format_version": 1, "apps": {"../../x\\u0000": {}}}\n')


def _huge_format_version(path: Path) -> None:
    path.write_text('{"format_version": "' + "v" * 100_000 + '"}\n')


def _directory(path: Path) -> None:
    if path.exists():
        path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


def _fifo(path: Path) -> None:  # opening it for reading would block forever
    if path.exists():
        path.unlink()
    os.mkfifo(path)


def _huge(path: Path) -> None:  # sparse: costs no disk
    with open(path, "ab") as handle:
        handle.truncate(MAX_STATE_BYTES + 1)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


STATE_DAMAGES: dict[str, Damage] = {
    "non-utf8": _non_utf8,
    "nesting-bomb": _nesting_bomb,
    "deep-inside": _deep_inside,
    "huge-int": _huge_int,
    "apps-list": _apps_list,
    "version-id-text": _version_id_text,
    "version-id-true": _version_id(True),
    "version-id-zero": _version_id(0),
    "version-id-negative": _version_id(-3),
    "version-id-numeric-text": _version_id("7"),
    "location-id-true": _location_id_bool,
    "bad-app-id": _bad_app_id,
    "huge-format-version": _huge_format_version,
    "directory": _directory,
    "fifo": _fifo,
    "huge": _huge,
    "empty": _empty,
    "a-list": lambda p: p.write_text("[1, 2]"),
}


def _journal_line(text: str) -> Damage:
    """A bad complete line, followed by a good one (so it is not a torn tail)."""

    def damage(path: Path) -> None:
        good = path.read_text().splitlines()[-1]
        path.write_text(text + "\n" + good + "\n")

    return damage


JOURNAL_DAMAGES: dict[str, Damage] = {
    "non-utf8": _non_utf8,
    "nesting-bomb": _journal_line("[" * 200_000 + "]" * 200_000),
    "app-not-a-string": _journal_line('{"app": 5, "record": null}'),
    "app-a-mapping": _journal_line('{"app": {"a": 1}, "record": null}'),
    "app-id-invalid": _journal_line('{"app": "../x", "record": null}'),
    "entry-a-list": _journal_line("[]"),
    "record-a-list": _journal_line('{"app": "com.a.b", "record": []}'),
    "version-id-text": _journal_line(
        '{"app": "com.a.b", "record": {"versions": {"1": {"id": "x"}}}}'
    ),
    "version-id-true": _journal_line(
        '{"app": "com.a.b", "record": {"versions": {"1": {"id": true}}}}'
    ),
    "location-id-zero": _journal_line(
        '{"app": "com.a.b", "record": {"locations": {"a": {"id": 0, "geo_point": "P"}}}}'
    ),
    "huge-int": _journal_line('{"app": "com.a.b", "record": null, "n": ' + "9" * 5000 + "}"),
    # per-resource lines (issue 14): a place no record has, a bad value there, an app the
    # journal never recorded whole
    "path-unknown": _journal_line('{"app": "com.a.b", "path": ["bogus"], "record": 1}'),
    "path-not-a-list": _journal_line('{"app": "com.a.b", "path": "versions", "record": 1}'),
    "path-too-deep": _journal_line(
        '{"app": "com.a.b", "path": ["versions", "1", "id"], "record": 1}'
    ),
    "path-version-id-text": _journal_line(
        '{"app": "com.a.b", "path": ["versions", "1"], "record": {"id": "x"}}'
    ),
    "path-location-id-zero": _journal_line(
        '{"app": "com.a.b", "path": ["locations", "a"], "record": {"id": 0, "geo_point": "P"}}'
    ),
    "path-protect-null": _journal_line(
        '{"app": "com.example.other", "path": ["protect"], "record": null}'
    ),
    "path-unknown-app": _journal_line(
        '{"app": "com.a.zzz", "path": ["attributes", "A"], "record": "1"}'
    ),
    "corrupt-last-line": lambda p: p.write_bytes(p.read_bytes()[:-3] + b"#}\n"),
    "directory": _directory,
    "fifo": _fifo,
    "huge": _huge,
}

LOCK_DAMAGES: dict[str, Damage] = {
    "non-utf8": lambda p: p.write_bytes(b'{"id": "\xff\xfe"}\n'),
    "not-a-lock": lambda p: p.write_text("[]"),
    "nesting-bomb": _nesting_bomb,
    "directory": _directory,
    "fifo": _fifo,
    "huge": _huge,
}

READING = [
    ("plan", "manifests", "--sandbox"),
    ("apply", "manifests", "--sandbox", "--auto-approve"),
    ("drift", "manifests", "--sandbox"),
    ("state", "list", "--sandbox"),
    ("state", "show", APP, "--sandbox"),
    ("state", "rm", APP, "--sandbox"),
    ("state", "set-status", APP, "1.0.0", "in_review", "--sandbox"),
    ("state", "adopt-version", APP, "9.9.9", "77", "--sandbox"),
    ("import", "com.genexus.verdant.other", "--out", "imported", "--sandbox"),
]
WRITERS = ("apply", "import", "rm", "set-status", "adopt-version")
LOCKING = [c for c in READING if c[0] in WRITERS or c[1] in WRITERS]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir after one real apply against the embedded sandbox, plus a journal."""
    root = tmp_path_factory.mktemp("applied")
    old = Path.cwd()
    saved = {k: os.environ.pop(k) for k in ("MAC_BASE_URL", "MAC_API_TOKEN",
                                             "RECONCILER_STATE", "MAC_SANDBOX_DB")
             if k in os.environ}
    os.chdir(root)
    try:
        (root / "manifests").mkdir()
        write_app(root, "Coffee")
        assert main(["apply", "manifests", "--sandbox", "--auto-approve"]) == 0
    finally:
        os.chdir(old)
        os.environ.update(saved)
    store = FileStateStore(root / ".reconciler" / "sandbox-state.json")
    asyncio.run(store.record("com.example.other", AppRecord(labels={"team": "x"})))
    asyncio.run(store.record("com.example.third", AppRecord()))
    store._close_journal()
    return root


@pytest.fixture
def workdir(applied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(applied, tmp_path / "w")
    state = tmp_path / "w" / ".reconciler" / "sandbox-state.json"
    # the state is bound to its sandbox database's path: rebind the copy to the copy's
    state.write_text(state.read_text().replace(str(applied), str(tmp_path / "w")))
    monkeypatch.chdir(tmp_path / "w")
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "w"


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file under .reconciler (but the sandbox's own database) and the manifests."""
    seen: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if "sandbox.db" in name:
            continue
        if path.is_symlink():
            seen[name] = "link:" + os.readlink(path)
        elif path.is_fifo():
            seen[name] = "fifo"
        elif path.is_dir():
            seen[name] = "dir"
        else:
            seen[name] = path.read_bytes()
    return seen


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def assert_clean(code: int, output: str, expected_file: Path) -> None:
    assert code == 1, output[-2000:]
    assert "Internal error" not in output and "Traceback" not in output, output[-2000:]
    assert str(expected_file.name) in output, output[-2000:]
    assert len(output) < 5000  # bounded: never the file's content


# --- the CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", READING, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("damage", sorted(STATE_DAMAGES))
def test_a_damaged_state_file_is_a_clear_error_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: str, command: tuple[str, ...]
) -> None:
    path = workdir / ".reconciler" / "sandbox-state.json"
    STATE_DAMAGES[damage](path)
    before = snapshot(workdir)
    code, output = run(capsys, *command)
    assert_clean(code, output, path)
    assert "restore" in output.lower() or "chmod" in output
    assert snapshot(workdir) == before


@pytest.mark.parametrize("command", READING, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("damage", sorted(JOURNAL_DAMAGES))
def test_a_damaged_journal_is_a_clear_error_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: str, command: tuple[str, ...]
) -> None:
    path = workdir / ".reconciler" / "sandbox-state.json.journal"
    JOURNAL_DAMAGES[damage](path)
    before = snapshot(workdir)
    code, output = run(capsys, *command)
    assert_clean(code, output, path)
    assert "nothing was overwritten" in output
    assert snapshot(workdir) == before


@pytest.mark.parametrize("command", READING, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("damage", sorted(LOCK_DAMAGES))
def test_a_damaged_lock_is_a_clear_error_for_writers_and_ignored_by_readers(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: str, command: tuple[str, ...]
) -> None:
    path = workdir / ".reconciler" / "sandbox-state.json.lock"
    LOCK_DAMAGES[damage](path)
    before = snapshot(workdir)
    code, output = run(capsys, *command)
    if command in LOCKING:
        assert_clean(code, output, path)
        assert "if no other run is active" in output.lower()
    else:
        assert code in (0, 2), output[-2000:]  # plan/drift/list/show never take the lock
    assert snapshot(workdir) == before


@pytest.mark.parametrize("damage", ["directory", "fifo"])
def test_unlock_refuses_a_lock_that_is_not_a_file(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = workdir / ".reconciler" / "sandbox-state.json.lock"
    LOCK_DAMAGES[damage](path)
    before = snapshot(workdir)
    code, output = run(capsys, "state", "unlock", "some-id", "--sandbox")
    assert_clean(code, output, path)
    assert snapshot(workdir) == before


@pytest.mark.parametrize("damage", ["non-utf8", "not-a-lock", "nesting-bomb", "huge"])
def test_unlock_removes_an_unreadable_lock_file_and_says_so(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = workdir / ".reconciler" / "sandbox-state.json.lock"
    LOCK_DAMAGES[damage](path)
    code, output = run(capsys, "state", "unlock", "some-id", "--sandbox")
    assert_clean(code, output, path)
    assert "removed an unreadable lock file" in output
    assert not path.exists()


# --- the store -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["state", "journal", "lock"])
def test_permission_denied_names_the_file_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.save(store.load(IDENTITY))
    asyncio.run(store.record("com.a.b", AppRecord()))
    store._close_journal()
    target = {"state": store.path, "journal": store.journal_path, "lock": store.lock_path}[which]
    target.write_text("{}") if which == "lock" else None
    real_open = os.open

    def denied(path: object, *args: object, **kwargs: object) -> int:
        if Path(str(path)) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StateError) as caught:
        if which == "lock":
            with store.lock("apply"):
                pass
        else:
            store.load(IDENTITY)
    message = str(caught.value)
    assert str(target) in message and "permission denied" in message and "chmod" in message


def test_a_torn_unterminated_last_line_is_still_dropped(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    asyncio.run(store.record("com.a.b", AppRecord()))
    store._close_journal()
    with open(store.journal_path, "ab") as handle:
        handle.write(b'{"app": "com.a.c", "record": {"labels": {"k": "\xc3')  # cut mid-char
    assert set(FileStateStore(store.path).load(IDENTITY).apps) == {"com.a.b"}


def test_a_terminated_corrupt_last_line_is_an_error_not_silently_dropped(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    asyncio.run(store.record("com.a.b", AppRecord()))
    store._close_journal()
    with open(store.journal_path, "a") as handle:
        handle.write('{"app": "com.a.c", "record": {"bogus": 1}}\n')  # complete, yet invalid
    with pytest.raises(StateError, match="line 2"):
        FileStateStore(store.path).load(IDENTITY)


# --- generated damage ------------------------------------------------------------------------


@functools.cache
def _real_files() -> tuple[bytes, bytes]:
    """A real state file and journal, written by the store (the same bytes every time)."""
    with tempfile.TemporaryDirectory() as folder:
        return _write_real_files(Path(folder))


def _write_real_files(folder: Path) -> tuple[bytes, bytes]:
    store = FileStateStore(folder / "seed.json")
    state = store.load(IDENTITY)
    state.lineage = "6d157581-1f57-413d-b57a-11c4385c4724"
    state.apps["com.a.b"] = AppRecord.model_validate(
        {
            "protect": True,
            "labels": {"team": "café"},
            "fields": {"name": "Coffee", "nested": [1, {"a": None}]},
            "objects": {"icon": {"object_id": "sha256:" + "0" * 64, "url": "https://x/y.png"}},
            "locations": {"Central": {"id": 3, "geo_point": "POINT(1 2)"}},
            "versions": {"1.0": {"id": 7, "compatibility": [1, 2], "status": "pending"}},
        }
    )
    store.save(state)
    unknown = AppRecord(versions={"2": {"id": None, "create_outcome": "unknown"}})
    asyncio.run(store.record("com.a.c", unknown))
    record = state.apps["com.a.b"]
    record.versions["1.0"].status = "waiting_for_review"
    record.attributes = {"COUNTRY": "Uruguay"}
    asyncio.run(store.record("com.a.b", record, [("versions", "1.0"), ("attributes", "COUNTRY")]))
    asyncio.run(store.record("com.a.b", None))
    store._close_journal()
    return store.path.read_bytes(), store.journal_path.read_bytes()


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        if kind == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del out[at : at + draw(st.integers(1, 16))]
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(["state", "journal", "both"]))
def test_generated_damage_loads_or_is_a_state_error(
    tmp_path: Path, data: st.DataObject, which: str
) -> None:
    base, journal = _real_files()
    if which in ("state", "both"):
        base = data.draw(damaged(base))
    if which in ("journal", "both"):
        journal = data.draw(damaged(journal))
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    store = FileStateStore(work / "state.json")
    store.path.write_bytes(base)
    store.journal_path.write_bytes(journal)
    try:
        state = store.load(IDENTITY)
    except StateError as exc:
        message = str(exc)
        assert "state.json" in message and len(message) < 1500
    else:
        # whatever loaded can be saved and read back (no value the writer chokes on)
        copy = FileStateStore(work / "copy.json")
        copy.save(state)
        assert copy.read().apps.keys() == state.apps.keys()
    assert store.path.read_bytes() == base and store.journal_path.read_bytes() == journal


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_lock_file_content_is_a_lock_error(tmp_path: Path, content: bytes) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.lock_path.write_bytes(content)
    with pytest.raises(LockError) as caught, store.lock("apply"):
        pass
    assert "state.json.lock" in str(caught.value) or "held by" in str(caught.value)
    assert store.lock_path.read_bytes() == content


# --- writing fails cleanly too ---------------------------------------------------------------


def test_a_failed_save_is_a_state_error_and_leaves_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = store.load(IDENTITY)
    store.save(state)
    asyncio.run(store.record("com.a.b", AppRecord()))
    before = (store.path.read_bytes(), store.journal_path.read_bytes())

    def full(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(StateError) as caught:
        store.save(state)
    message = str(caught.value)
    assert "no space left on device" in message and "state.json.journal still holds" in message
    assert state.serial == 1  # unchanged by the failed save
    assert (store.path.read_bytes(), store.journal_path.read_bytes()) == before


def test_a_failed_journal_append_is_a_state_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStateStore(tmp_path / "state.json")

    def broken(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StateError, match=r"cannot record a completed write of com\.a\.b"):
        asyncio.run(store.record("com.a.b", AppRecord()))
