"""The state file: what this tool last applied, per endpoint.

The API cannot list mini apps or versions, does not return review status or compatibilities,
and reads image fields back as URLs while writes take upload ids. So the tool remembers:
managed app ids, version code -> id, last-applied values (object ids and the URLs the server
answered for them), compatibility sets and review status.

On disk (format 2): ``{"format_version": 2, "lineage", "serial", "providers": {PROVIDER:
{"endpoint", "marks", "resources": {KIND: {NATURAL_KEY: record}}}}}``: each provider's
endpoint and its resources keyed by kind and natural key, the server ids inside each record.
A format-1 file (one endpoint, ``apps`` at the top) is read and written as format 2 at the
next save. ``state.json`` is human-readable, versioned (``lineage`` + ``serial``), written
atomically (temp file, fsync, rename), plus ``state.json.journal``: one JSON line per resource
changed during an apply (``{"app", "path", "record"}``: the app's record at that path, e.g.
``["attributes", NAME]``; a line without ``path`` holds the whole app record), fsync'd before
the write is reported done (group commit off the event loop: reconciler/journal.py), so that
a crash or Ctrl-C loses nothing; loading replays it and the next save folds it in.
``state.json.lock`` is the exclusive lock of a running apply.

This store and the PostgreSQL one (:mod:`reconciler.state.pg`) sit behind one protocol,
:class:`reconciler.state.store.StateStore` (load / save / record / lock), and share only the
model (:mod:`reconciler.state.model`): neither imports the other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from reconciler.errors import LockError, StateError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: lock files are never taken over there
    fcntl = None  # type: ignore[assignment]
from reconciler.journal import GroupCommit
from reconciler.state.model import (
    _APP_FIELDS,
    _COLLECTIONS,
    MAC_PROVIDER,
    MAX_JSON_DEPTH,
    MAX_KEY_CHARS,
    MAX_LOCK_BYTES,
    MAX_STATE_BYTES,
    READABLE_FORMATS,
    REVIEW_STATUSES,
    STATE_FORMAT_VERSION,
    UNKNOWN,
    AppRecord,
    JournalPath,
    LockInfo,
    ProviderState,
    State,
    _printable,
    _shown,
    _Unreadable,
    _user,
    mac_records,
)


class FileStateStore:
    """State in a local JSON file with an fsync'd journal and an O_EXCL lock file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._journal: Any = None
        # The journal file is appended to by the group commit's worker thread; closing or
        # folding it (save) waits for a batch in flight.
        self._journal_lock = threading.RLock()
        self._group = GroupCommit(self._append_lines)
        self.dirty = False  # records written, or a journal replayed, since the last save

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        """Whether any state was ever saved here (a lost file must be said, never silent)."""
        return self.path.exists() or self.journal_path.exists()

    # --- load / save ---------------------------------------------------------------------

    def load(self, endpoint: str) -> State:
        state = self._read_base()
        if state.endpoint is None:
            state.endpoint = endpoint
        elif state.endpoint != endpoint:
            raise StateError(
                f"state file {self.path} was made for endpoint {_printable(state.endpoint)}, not"
                f" {endpoint}; use one state file per endpoint (--state PATH or"
                " RECONCILER_STATE)"
            )
        replayed = self._replay_journal(state)
        if replayed:
            # Unsaved journal entries mean writes happened since the last save: the state is
            # not the one a saved plan saw. One serial step per entry, so a plan saved after
            # one crash is still stale after a second.
            state.serial += replayed
            self.dirty = True
        return state

    def read(self) -> State:
        """The state whatever endpoint it was made for (for `reconciler state ...`)."""
        state = self._read_base()
        state.serial += self._replay_journal(state)
        return state

    def _base_error(self, problem: str) -> StateError:
        return StateError(
            f"state file {self.path} {problem}. Nothing was changed. Restore it from a backup"
            " (or the reconciler-state branch in GitOps), or move it aside and adopt the"
            " apps again with `reconciler import`"
        )

    def _read_base(self) -> State:
        try:
            raw = _read_regular(self.path, MAX_STATE_BYTES)
        except _Unreadable as exc:
            raise self._base_error(exc.problem) from None
        if raw is None:
            return State()
        try:
            data = _parse_json(raw)
        except _Unreadable as exc:
            raise self._base_error(exc.problem) from None
        if not isinstance(data, dict):
            raise self._base_error("is not a state record (a JSON object was expected)")
        if data.get("format_version") not in READABLE_FORMATS:
            version = data.get("format_version")
            raise StateError(
                f"state file {self.path} has format_version {_shown(version)}; this"
                f" reconciler reads {' and '.join(map(str, READABLE_FORMATS))}. Nothing was"
                " changed. Use the reconciler version that wrote it, or restore a backup"
            )
        try:
            state = State.from_file(data)
            _check_app_ids(state.apps)
            raw_apps = mac_records(data)
            where = "apps" if state.read_format == 1 else f"providers.{MAC_PROVIDER}.resources"
            for app_id, record in state.apps.items():
                _check_server_ids(f"{where}.{app_id}", raw_apps[app_id], record)
        except (ValidationError, _Unreadable) as exc:
            raise self._base_error(_invalid(exc)) from None
        return state

    def _journal_error(self, problem: str) -> StateError:
        return StateError(
            f"state journal {self.journal_path} {problem}. It holds the writes an interrupted"
            f" apply made after {self.path.name} was last saved; nothing was overwritten. Fix"
            " or delete the bad line by hand (deleting forgets those writes: check them in the"
            " Mini App Center, then `reconciler import` or `reconciler state adopt-version`),"
            " or restore both files from a backup"
        )

    def _replay_journal(self, state: State) -> int:
        try:
            raw = _read_regular(self.journal_path, MAX_STATE_BYTES)
        except _Unreadable as exc:
            raise self._journal_error(exc.problem) from None
        if raw is None:
            return 0
        lines = raw.split(b"\n")
        count = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = _parse_entry(line)
            except _Unreadable as exc:
                if number == len(lines):
                    # Not newline-terminated: a torn last line from a crash mid-append. The
                    # record it held was not yet durable, so dropping it loses nothing
                    # recorded. A terminated line was fully written: damage, not a tear.
                    break
                raise self._journal_error(f"line {number} is corrupt: {exc.problem}") from None
            try:
                entry.apply(state)
            except _Unreadable as exc:
                raise self._journal_error(f"line {number} is corrupt: {exc.problem}") from None
            count += 1
        return count

    def save(self, state: State) -> None:
        # Lines still queued describe writes that happened: into the journal first, so that
        # it "still holds this run's writes" should the save below fail.
        self._flush_journal()
        state.serial += 1
        payload = json.dumps(state.to_file(), indent=2, sort_keys=False) + "\n"
        try:
            self._replace(payload)
        except OSError as exc:
            state.serial -= 1
            kept = (
                f"; {self.journal_path.name} still holds this run's writes"
                if self.journal_path.exists()
                else ""
            )
            raise StateError(
                f"cannot write the state file {self.path}: {_why(exc)}. The previous file is"
                f" unchanged{kept}; free space or fix permissions, then run again"
            ) from None
        _fsync_dir(self.path.parent)
        state.read_format = STATE_FORMAT_VERSION
        # The journal is folded into the file we just wrote.
        self._close_journal()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)
        self.dirty = False

    def _replace(self, payload: str) -> None:
        """Write ``payload`` to a temp file, fsync, rename over the state: all or nothing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def ensure_base(self, state: State) -> None:
        """Write the state file once before the first journal entry of a brand-new state, so
        that its lineage survives a crash (a saved plan made afterwards stays applicable)."""
        if not self.path.exists():
            self.save(state)

    async def record(
        self, app_id: str, record: AppRecord | None, paths: Sequence[JournalPath] = ()
    ) -> None:
        """Journal what a completed write changed and return once it is durable: the whole
        record (``paths`` empty, or the app removed), or one line per path in ``paths``
        holding the record's value there (absent: removed). Lines of concurrent calls share
        one write and one fsync, made off the event loop (group commit)."""
        if record is None or not paths:
            lines = [_line({"app": app_id, "record": _dumped(record)})]
        else:
            lines = [
                _line({"app": app_id, "path": list(path), "record": _value_at(record, path)})
                for path in paths
            ]
        self.dirty = True  # the in-memory state changed: a save folds it whatever happens
        try:
            await self._group.append(lines)
        except OSError as exc:
            raise StateError(
                f"cannot record a completed write of {app_id} in the state journal"
                f" {self.journal_path}: {_why(exc)}; check that app in the Mini App Center"
                " before the next apply"
            ) from None

    async def record_resource(
        self, provider: str, kind: str, key: str, record: Mapping[str, Any] | None
    ) -> None:
        """Journal another provider's completed write (its record as JSON, None: removed) and
        return once it is durable: the same group commit as :meth:`record`."""
        line = _line({"provider": provider, "kind": kind, "key": key,
                      "record": None if record is None else dict(record)})  # fmt: skip
        self.dirty = True
        try:
            await self._group.append([line])
        except OSError as exc:
            raise StateError(
                f"cannot record a completed write of {provider} {kind} {key!r} in the state"
                f" journal {self.journal_path}: {_why(exc)}; check it on the server before the"
                " next apply"
            ) from None

    def _append_lines(self, lines: Sequence[bytes]) -> None:
        """One batch: append and fsync (in the group commit's worker thread)."""
        with self._journal_lock:
            try:
                if self._journal is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    _drop_torn_tail(self.journal_path)
                    self._journal = open(self.journal_path, "ab")  # noqa: SIM115
                self._journal.write(b"".join(lines))
                self._journal.flush()
                os.fsync(self._journal.fileno())
            except BaseException:
                # A failed append may have left part of a line: the next open cuts it off
                # (_drop_torn_tail) rather than gluing the next batch onto it.
                self._close_file()
                raise

    def _flush_journal(self) -> None:
        try:
            self._group.flush()
        except OSError as exc:
            raise StateError(
                f"cannot record completed writes in the state journal {self.journal_path}:"
                f" {_why(exc)}; check the apps of this run in the Mini App Center before the"
                " next apply"
            ) from None

    def _close_journal(self) -> None:
        self._flush_journal()
        self._close_file()

    def _close_file(self) -> None:
        with self._journal_lock:
            if self._journal is not None:
                with contextlib.suppress(OSError):
                    self._journal.close()
                self._journal = None

    # --- lock ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, operation: str, *, apps: Collection[str] | None = None, timeout: float = 0.0
    ) -> Iterator[LockInfo]:
        """The whole file, always (``apps`` is for stores that lock finer). A lock whose
        holder's process is gone is taken over and named in ``LockInfo.replaced``; a live
        holder is waited for up to ``timeout`` seconds, then named in the LockError (D113)."""
        info = LockInfo(
            id=str(uuid.uuid4()),
            who=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            operation=operation,
        )
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            fd = self._take_lock_file(info)
            if fd is not None:
                break
            holder = self._holder_or_error()
            if holder is None and not os.path.lexists(self.lock_path):
                continue  # released between our attempts: try again at once
            if time.monotonic() >= deadline:
                detail = holder.describe() if holder else "an unreadable lock file"
                raise LockError(
                    f"the state {self.path} is locked ({self.lock_path}): {detail}. If no other"
                    " run is active, remove it with: reconciler state unlock"
                    f" {holder.shown_id() if holder else '<ID>'}"
                )
            time.sleep(min(_LOCK_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        try:
            yield info
        finally:
            try:
                self._close_journal()
            finally:
                self._release(fd)

    def _release(self, fd: int) -> None:
        """Remove our lock file, then let go of its OS lock with the descriptor. A file at the
        path that is not ours (ours was removed by hand and a later run made its own) is that
        run's lock: removing it would let a third run in beside it."""
        try:
            if _same_file(fd, self.lock_path):
                # One we cannot remove (a read-only directory) stays with our record: its OS
                # lock goes with the descriptor, so the next run on this host takes it over.
                with contextlib.suppress(OSError):
                    os.unlink(self.lock_path)
        finally:
            os.close(fd)

    def _holder_or_error(self) -> LockInfo | None:
        try:
            return self.read_lock()
        except StateError as exc:
            raise LockError(str(exc)) from None

    def _take_lock_file(self, info: LockInfo) -> int | None:
        """The lock file's descriptor, holding its OS lock, with ``info`` written in it; None
        while a live (or not provably dead) holder has it."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return self._take_over_stale(info)
        except OSError as exc:
            raise StateError(
                f"cannot create the lock file {self.lock_path}: {_why(exc)}"
            ) from None
        try:
            # Waits: a run judging a takeover may hold this new file's OS lock for a moment
            # (it opened the path just as we created it); it fails only where the file system
            # has none.
            info.os_lock = _os_lock(fd, wait=True)
            _write_lock(fd, info)
        except BaseException as exc:
            self._release(fd)  # an empty lock file would stop every later run
            if isinstance(exc, OSError):
                raise self._unwritable(exc) from None
            raise
        return fd

    def _take_over_stale(self, info: LockInfo) -> int | None:
        """Take over a lock file whose holder's process is gone. Proven only when the holder
        said it keeps an OS lock, on this host (another host's kernel would not tell us), and
        that lock is free now. Anything less is left to its holder or to `state unlock`."""
        holder = self._holder_or_error()
        if holder is None or not holder.os_lock or holder.host != info.host:
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None  # released meanwhile: the caller tries again
        except OSError as exc:
            if _os_lock_held(self.lock_path):
                return None  # another user's live run: waited for, or named, as any holder
            raise StateError(f"cannot open the lock file {self.lock_path}: {_why(exc)}") from None
        if not _os_lock(fd) or not _same_file(fd, self.lock_path):
            # Alive; or released and replaced meanwhile (we locked a file no longer there).
            os.close(fd)
            return None
        try:
            current = LockInfo.model_validate_json(_read_fd(fd, MAX_LOCK_BYTES))
        except (ValidationError, OSError):
            current = None
        if current is None or current.id != holder.id:
            os.close(fd)  # changed hands between our two reads: judge it again
            return None
        info.os_lock = True
        info.replaced = holder.describe()
        try:
            _write_lock(fd, info)
        except BaseException as exc:
            self._release(fd)  # its holder is gone and its record half-rewritten
            if isinstance(exc, OSError):
                raise self._unwritable(exc) from None
            raise
        return fd

    def _unwritable(self, exc: OSError) -> StateError:
        return StateError(
            f"cannot write the lock file {self.lock_path}: {_why(exc)}; nothing was changed"
        )

    def _lock_problem(self, problem: str) -> str:
        return (
            f"the state {self.path} cannot be locked: its lock file {self.lock_path} {problem}."
            " If no other run is active, remove it by hand; nothing was changed"
        )

    def read_lock(self) -> LockInfo | None:
        """Who holds the lock; None when unlocked or when the lock file's content is not a
        lock record. StateError when the lock path is not a regular file (a directory, a
        FIFO) or cannot be read: such a path is never removed by us, nor waited on."""
        try:
            raw = _read_regular(self.lock_path, MAX_LOCK_BYTES, too_big_is_error=False)
        except _Unreadable as exc:
            raise StateError(self._lock_problem(exc.problem)) from None
        if raw is None:
            return None
        try:
            return LockInfo.model_validate_json(raw)
        except ValidationError:
            return None

    def unlock(self, lock_id: str) -> LockInfo:
        holder = self.read_lock()
        if not os.path.lexists(self.lock_path):  # a dangling symlink stops runs too
            raise StateError(f"the state {self.path} is not locked")
        if holder is not None and holder.id != lock_id:
            raise StateError(
                f"lock id mismatch: the state is held by {holder.describe()}; pass that id"
            )
        if _os_lock_held(self.lock_path):
            # Provably alive (D114), even with a record this version cannot read: removing
            # its lock would let a second run write beside it.
            held = holder.describe() if holder else "a lock file this version cannot read"
            raise StateError(
                f"the run holding the state is still running: {held}. It removes its lock when"
                " it ends; stop it first (or wait with --lock-timeout)"
            )
        try:
            os.unlink(self.lock_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"cannot remove the lock file {self.lock_path}: {_why(exc)}") from None
        if holder is None:
            raise StateError(f"removed an unreadable lock file {self.lock_path}")
        return holder


# How often a run waiting for a live lock holder (``--lock-timeout``) looks again.
_LOCK_POLL_SECONDS = 0.2


def _os_lock(fd: int, *, wait: bool = False) -> bool:
    """Take the OS lock on ``fd`` (without waiting unless ``wait``): False when another
    process holds it, or the platform or file system has none (then a lock is never taken
    over)."""
    if fcntl is None:  # pragma: no cover - Windows
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _os_lock_held(path: Path) -> bool:
    """Whether another process holds the OS lock on the file at ``path`` (its holder runs).
    Never follows a symlink nor blocks on a FIFO; a brief shared lock is the probe."""
    if fcntl is None:  # pragma: no cover - Windows
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _read_fd(fd: int, limit: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, limit + 1)[:limit]


def _write_lock(fd: int, info: LockInfo) -> None:
    text = info.model_dump_json(indent=2, exclude={"replaced", "replaced_why"}) + "\n"
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    data = memoryview(text.encode("utf-8"))
    while data:  # a short write (a file size limit) would leave a record nobody can read
        data = data[os.write(fd, data) :]


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied; fix its permissions (chmod/chown) or run as its owner"
    return (exc.strerror or type(exc).__name__).lower()


def _read_regular(path: Path, limit: int, *, too_big_is_error: bool = True) -> bytes | None:
    """The bytes of ``path``, None when it does not exist; :class:`_Unreadable` when it is
    not a regular file, cannot be read, or is larger than ``limit``.

    Opened non-blocking and checked with fstat on the open descriptor: a FIFO in its place
    would otherwise block the open forever, and /dev/zero would never end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise _Unreadable("is a directory, not a file") from None
    except OSError as exc:
        raise _Unreadable(f"cannot be read: {_why(exc)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _Unreadable("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable("is not a regular file (a FIFO, socket or device)")
        if info.st_size > limit and too_big_is_error:
            raise _Unreadable(
                f"is {info.st_size:,} bytes, more than the {limit:,} a state file may have"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            if not too_big_is_error:
                return b""  # not a lock record: treated as unreadable content
            raise _Unreadable(f"is more than the {limit:,} bytes a state file may have")
        return b"".join(chunks)
    except OSError as exc:
        raise _Unreadable(f"cannot be read: {_why(exc)}") from None
    finally:
        os.close(fd)


def _parse_json(raw: bytes) -> Any:
    """Strict UTF-8 JSON whose nesting stays within :data:`MAX_JSON_DEPTH`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unreadable(f"is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise _Unreadable("is not a state record: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's int-string limit
        raise _Unreadable(f"is not valid JSON ({_shown(str(exc), 80)})") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise _Unreadable(f"is not a state record: JSON nested deeper than {MAX_JSON_DEPTH}")
    return data


def _depth(data: Any) -> int:
    """Nesting depth, iteratively (a deep value must not overflow the stack here either)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


class _Entry:
    """One replayed journal line: ``value`` goes at ``path`` of the app's record."""

    def __init__(self, app_id: str, path: JournalPath, value: Any) -> None:
        self.app_id = app_id
        self.path = path
        self.value = value

    def apply(self, state: State) -> None:
        if not self.path:
            if self.value is None:
                state.apps.pop(self.app_id, None)
            else:
                state.apps[self.app_id] = self.value
            return
        record = state.apps.get(self.app_id)
        if record is None:
            # The app's first line is always its whole record: a part of an app never seen
            # means lines were lost or edited.
            raise _Unreadable(f"app {_shown(self.app_id)} has no earlier record to change")
        if len(self.path) == 1:
            setattr(record, self.path[0], self.value)
            return
        field, key = self.path
        collection = getattr(record, field)
        if self.value is not None:
            if collection is None:
                collection = {}
                setattr(record, field, collection)
            collection[key] = self.value
        elif collection is not None:
            collection.pop(key, None)


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")


def _dumped(record: AppRecord | None) -> Any:
    return record.model_dump(mode="json") if record is not None else None


def _value_at(record: AppRecord, path: JournalPath) -> Any:
    """The JSON form of what ``record`` holds at ``path`` (None: nothing there)."""
    if not _valid_path(path):
        raise ValueError(f"not a journal path: {path!r}")
    value = getattr(record, path[0])
    if len(path) == 2:
        value = (value or {}).get(path[1])
    return to_jsonable_python(value)


def _valid_path(path: Sequence[object]) -> bool:
    if len(path) == 1:
        return path[0] in _APP_FIELDS
    return len(path) == 2 and path[0] in _COLLECTIONS and isinstance(path[1], str)


def _parse_entry(line: bytes) -> _Entry | _ResourceEntry:
    """One journal line: ``{"app": <id>, "record": <AppRecord or null>}`` (the whole record)
    or ``{"app": <id>, "path": [...], "record": <the value there, or null>}``; another
    provider's: ``{"provider": ..., "kind": ..., "key": ..., "record": <JSON or null>}``."""
    entry = _parse_json(line)
    if isinstance(entry, dict) and "provider" in entry:
        return _resource_entry(entry)
    if not isinstance(entry, dict) or "app" not in entry or "record" not in entry:
        raise _Unreadable('not an {"app": ..., "record": ...} entry')
    app_id = entry["app"]
    if not isinstance(app_id, str) or resource_key_problem(app_id):
        raise _Unreadable(f"app {_shown(app_id)} is not a valid resource key")
    record = entry["record"]
    path = entry.get("path", [])
    if not isinstance(path, list) or (path and not _valid_path(path)):
        raise _Unreadable(f"path {_shown(path)} is not a place in an app record")
    if not path:
        return _Entry(app_id, (), None if record is None else _parsed_record(record))
    if len(path) == 2 and record is None:
        return _Entry(app_id, (path[0], path[1]), None)  # removed
    # Validated as the part of a record it is: the same rules as a whole record's.
    raw = {path[0]: record} if len(path) == 1 else {path[0]: {path[1]: record}}
    value = getattr(_parsed_record(raw), path[0])
    if len(path) == 2:
        return _Entry(app_id, (path[0], path[1]), value[path[1]])
    return _Entry(app_id, (path[0],), value)


class _ResourceEntry:
    """One replayed journal line of another provider: its record at (kind, key)."""

    def __init__(self, provider: str, kind: str, key: str, value: dict[str, Any] | None) -> None:
        self.provider = provider
        self.kind = kind
        self.key = key
        self.value = value

    def apply(self, state: State) -> None:
        section = state.providers.setdefault(self.provider, ProviderState())
        records = section.resources.setdefault(self.kind, {})
        if self.value is None:
            records.pop(self.key, None)
        else:
            records[self.key] = self.value


_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _resource_entry(entry: dict[str, Any]) -> _ResourceEntry:
    if set(entry) != {"provider", "kind", "key", "record"}:
        raise _Unreadable('not a {"provider", "kind", "key", "record"} entry')
    provider, kind, key, record = (entry[k] for k in ("provider", "kind", "key", "record"))
    for what, name in (("provider", provider), ("kind", kind)):
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name == MAC_PROVIDER:
            raise _Unreadable(f"{what} {_shown(name)} is not another provider's name")
    if not isinstance(key, str) or _other_key_problem(key):
        raise _Unreadable(f"key {_shown(key)} is not a valid resource key")
    if record is not None and not isinstance(record, dict):
        raise _Unreadable(f"the record of {_shown(key)} is not a JSON object")
    return _ResourceEntry(provider, kind, key, record)


def _parsed_record(raw: Any) -> AppRecord:
    try:
        parsed = AppRecord.model_validate(raw)
    except ValidationError as exc:
        raise _Unreadable(_invalid(exc)) from None
    _check_server_ids("record", raw, parsed)
    return parsed


def resource_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a natural key in the state, whatever the provider: keys name
    files, URLs and messages, so they are printable, short and never a path. Each provider's
    client checks its own id rules again before a key enters a URL."""
    if not key or len(key) > MAX_KEY_CHARS:
        return f"must be 1 to {MAX_KEY_CHARS} characters"
    if any(not char.isprintable() for char in key):
        return "must be printable (no control or invisible characters)"
    if "/" in key or "\\" in key or key in (".", ".."):
        return "must not be a path"
    return None


# Another provider's natural key is its own to define (a REST object's is
# ``ENDPOINT:PATH:KEY``: it holds ``/``, and its KEY part may be any string a manifest holds,
# up to 64 KiB); the journal asks only what the state file asks of it, plus printable text
# and a bound above what a manifest can produce.
MAX_OTHER_KEY_CHARS = 70_000


def _other_key_problem(key: str) -> str | None:
    if not key or len(key) > MAX_OTHER_KEY_CHARS:
        return f"must be 1 to {MAX_OTHER_KEY_CHARS} characters"
    if any(not char.isprintable() for char in key):
        return "must be printable (no control or invisible characters)"
    return None


def _check_app_ids(apps: dict[str, AppRecord]) -> None:
    for app_id in apps:
        if resource_key_problem(app_id):
            raise _Unreadable(f"has {_shown(app_id)} under apps, which is not a resource key")


def _check_server_ids(where: str, raw: dict[str, Any], record: AppRecord) -> None:
    """Version and location ids go into URLs and pick what a write touches: validation
    coerces ``true`` or ``"7"`` to an int and accepts 0 or -3, so the JSON value itself must
    be a positive integer. ``raw`` is the JSON object ``record`` was validated from."""
    found: list[tuple[str, object]] = [
        (f"versions.{code}.id", raw["versions"][code].get("id")) for code in record.versions
    ]
    found += [(f"locations.{name}.id", raw["locations"][name]["id"])
              for name in record.locations or {}]  # fmt: skip
    for path, value in found:
        if value is not None and (type(value) is not int or value <= 0):
            raise _Unreadable(
                f"is invalid at {_printable(where + '.' + path)}: a server id must be a"
                f" positive integer, not {_shown(value)}"
            )
    # A status outside the review flow would be planned from as if real (wrong steps, wrong
    # advice): damage, named with where it is and what to put there instead.
    for code, version in record.versions.items():
        for status in (version.status, *(version.status_candidates or ())):
            if status is not None and status != UNKNOWN and status not in REVIEW_STATUSES:
                raise _Unreadable(
                    f"is invalid at {_printable(f'{where}.versions.{code}')}: review status"
                    f" {_shown(status)} is not one of {', '.join(REVIEW_STATUSES)}; replace"
                    f" it with \"{UNKNOWN}\" and the next apply learns the real status from"
                    " the server"
                )


def _invalid(exc: ValidationError | _Unreadable) -> str:
    if isinstance(exc, _Unreadable):
        return exc.problem
    errors = exc.errors()
    first = errors[0]
    where = _printable(".".join(str(p) for p in first["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"is invalid at {where}: {first['msg']}{more}"


def _drop_torn_tail(path: Path) -> None:
    """A crash mid-append leaves a last line without its newline; appending after it would
    glue the next record onto it. A torn line is cut off (that write was never confirmed);
    a complete one (only its newline missing, replay already accepted it) is terminated."""
    try:
        with open(path, "rb+") as handle:
            data = handle.read()
            if not data or data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            if _complete_entry(data[start:]):
                handle.write(b"\n")
            else:
                handle.truncate(start)
            handle.flush()
            os.fsync(handle.fileno())
    except FileNotFoundError:
        return


def _complete_entry(line: bytes) -> bool:
    try:
        _parse_entry(line)
    except _Unreadable:
        return False
    return True


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
