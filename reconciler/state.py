"""The state file: what this tool last applied, per endpoint.

The API cannot list mini apps or versions, does not return review status or compatibilities,
and reads image fields back as URLs while writes take upload ids. So the tool remembers:
managed app ids, version code -> id, last-applied values (object ids and the URLs the server
answered for them), compatibility sets and review status.

On disk: ``state.json`` (human-readable, versioned, ``lineage`` + ``serial``), written
atomically (temp file, fsync, rename), plus ``state.json.journal``: one JSON line per app
record changed during an apply, fsync'd as each write succeeds, so that a crash or Ctrl-C
loses nothing; loading replays it and the next save folds it in. ``state.json.lock`` is the
exclusive lock of a running apply.

Everything sits behind :class:`StateStore` (load / save / record / lock) so that a shared store
(S3, a database) can be added without touching the planner.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import LockError, StateError

STATE_FORMAT_VERSION = 1
DEFAULT_STATE_DIR = ".reconciler"
UNKNOWN = "unknown"  # a status or version whose outcome an interrupted write left unknown
EXISTS = "exists"  # a version the server said exists (duplicate code) at an id not yet found


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectRef(_Record):
    """An image or metadata field: the upload id we sent, and the URL the server answered."""

    object_id: str
    url: str | None = None


class LocationRecord(_Record):
    id: int
    geo_point: str


class VersionRecord(_Record):
    id: int | None = None  # None while the create's outcome is unknown
    fields: dict[str, Any] = Field(default_factory=dict)
    objects: dict[str, ObjectRef] = Field(default_factory=dict)
    compatibility: list[int] | None = None
    status: str | None = None  # a review status, UNKNOWN, or None when never known
    # With status UNKNOWN: the statuses it may be in (None: any). An ambiguous step from A
    # to B leaves [A, B]; refused probe steps narrow it further.
    status_candidates: list[str] | None = None
    create_outcome: Literal["unknown", "exists"] | None = None
    # With a create_outcome: version ids above ``probe_from`` may be ours (the highest id
    # the server had answered when the create was sent; 0 for "exists"); ids up to
    # ``probed_to`` were already read without finding it, so the next probe goes on there.
    probe_from: int | None = None
    probed_to: int | None = None


class AppRecord(_Record):
    protect: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    objects: dict[str, ObjectRef] = Field(default_factory=dict)
    attributes: dict[str, str] | None = None
    locations: dict[str, LocationRecord] | None = None
    versions: dict[str, VersionRecord] = Field(default_factory=dict)


class State(_Record):
    format_version: int = STATE_FORMAT_VERSION
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    endpoint: str | None = None
    # The highest version id this endpoint has ever answered (creates and reads). Version ids
    # are assigned in sequence and cannot be listed: an unknown create is looked for above it.
    version_id_mark: int = 0
    apps: dict[str, AppRecord] = Field(default_factory=dict)

    def app(self, app_id: str) -> AppRecord | None:
        return self.apps.get(app_id)

    def version_mark(self) -> int:
        """The stored mark, or any recorded id above it (journal entries replayed after a
        crash carry the ids; the mark itself is folded in at the next save)."""
        return max([self.version_id_mark, *self.recorded_version_ids()])

    def note_version_id(self, version_id: int) -> None:
        self.version_id_mark = max(self.version_id_mark, version_id)

    def recorded_version_ids(self) -> set[int]:
        return {
            version.id
            for record in self.apps.values()
            for version in record.versions.values()
            if version.id is not None
        }

    def version_id(self, app_id: str, code: str) -> int | None:
        record = self.apps.get(app_id)
        version = record.versions.get(code) if record else None
        return version.id if version else None


class LockInfo(_Record):
    id: str
    who: str
    host: str
    pid: int
    when: str
    operation: str

    def describe(self) -> str:
        return (
            f"lock {self.id} held by {self.who}@{self.host} (pid {self.pid}) since {self.when}"
            f" for '{self.operation}'"
        )


class StateStore(Protocol):
    """Where state lives. The planner only ever sees a loaded :class:`State`."""

    def load(self, endpoint: str) -> State: ...

    def read(self) -> State: ...

    def save(self, state: State) -> None: ...

    def record(self, app_id: str, record: AppRecord | None) -> None: ...

    def ensure_base(self, state: State) -> None: ...

    @property
    def dirty(self) -> bool: ...

    def lock(self, operation: str) -> contextlib.AbstractContextManager[LockInfo]: ...

    def unlock(self, lock_id: str) -> LockInfo: ...

    def describe(self) -> str: ...

    def exists(self) -> bool: ...


def default_state_path(env: dict[str, str] | None = None, cwd: Path | None = None) -> Path:
    env = env if env is not None else dict(os.environ)
    if env.get("RECONCILER_STATE"):
        return Path(env["RECONCILER_STATE"])
    return (cwd or Path.cwd()) / DEFAULT_STATE_DIR / "state.json"


class FileStateStore:
    """State in a local JSON file with an fsync'd journal and an O_EXCL lock file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._journal: Any = None
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
                f"state file {self.path} was made for endpoint {state.endpoint}, not {endpoint};"
                " use one state file per endpoint (--state PATH or RECONCILER_STATE)"
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

    def _read_base(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"state file {self.path} is not valid JSON (line {exc.lineno}): {exc.msg}"
            ) from exc
        if not isinstance(data, dict) or data.get("format_version") != STATE_FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise StateError(
                f"state file {self.path} has format_version {version!r}; this reconciler"
                f" reads {STATE_FORMAT_VERSION}"
            )
        try:
            return State.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = f"state file {self.path} is invalid at {where}: {first['msg']}"
            raise StateError(message) from exc

    def _replay_journal(self, state: State) -> int:
        try:
            lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return 0
        count = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                app_id = entry["app"]
                record = entry["record"]
                parsed = None if record is None else AppRecord.model_validate(record)
            except (json.JSONDecodeError, KeyError, TypeError, ValidationError):
                if number == len(lines):
                    break  # a torn last line from a crash mid-append: the write it described
                    # had not been confirmed yet, so dropping it loses nothing recorded
                raise StateError(
                    f"state journal {self.journal_path} line {number} is corrupt"
                ) from None
            if parsed is None:
                state.apps.pop(app_id, None)
            else:
                state.apps[app_id] = parsed
            count += 1
        return count

    def save(self, state: State) -> None:
        state.serial += 1
        payload = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
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
        _fsync_dir(self.path.parent)
        # The journal is folded into the file we just wrote.
        self._close_journal()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)
        self.dirty = False

    def ensure_base(self, state: State) -> None:
        """Write the state file once before the first journal entry of a brand-new state, so
        that its lineage survives a crash (a saved plan made afterwards stays applicable)."""
        if not self.path.exists():
            self.save(state)

    def record(self, app_id: str, record: AppRecord | None) -> None:
        """Append one app's new record to the journal and fsync: durable before we go on."""
        if self._journal is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_torn_tail(self.journal_path)
            self._journal = open(self.journal_path, "a", encoding="utf-8")  # noqa: SIM115
        line = json.dumps(
            {"app": app_id, "record": record.model_dump(mode="json") if record else None},
            separators=(",", ":"),
        )
        self._journal.write(line + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self.dirty = True

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # --- lock ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        info = LockInfo(
            id=str(uuid.uuid4()),
            who=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            operation=operation,
        )
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = self.read_lock()
            detail = holder.describe() if holder else "an unreadable lock file"
            raise LockError(
                f"the state {self.path} is locked: {detail}. If no other run is active, remove"
                f" it with: reconciler state unlock {holder.id if holder else '<ID>'}"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(info.model_dump_json(indent=2) + "\n")
        try:
            yield info
        finally:
            self._close_journal()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)

    def read_lock(self) -> LockInfo | None:
        try:
            return LockInfo.model_validate_json(self.lock_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValidationError, OSError):
            return None

    def unlock(self, lock_id: str) -> LockInfo:
        holder = self.read_lock()
        if not self.lock_path.exists():
            raise StateError(f"the state {self.path} is not locked")
        if holder is not None and holder.id != lock_id:
            raise StateError(
                f"lock id mismatch: the state is held by {holder.describe()}; pass that id"
            )
        os.unlink(self.lock_path)
        if holder is None:
            raise StateError(f"removed an unreadable lock file {self.lock_path}")
        return holder


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
        entry = json.loads(line)
        record = entry["record"]
        if record is not None:
            AppRecord.model_validate(record)
        return isinstance(entry["app"], str)
    except (ValueError, KeyError, TypeError, ValidationError):
        return False


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
