"""What the state holds, whatever store keeps it: the records, the state itself, a lock's
holder, and the bounds on what a damaged state can make us read. Both stores (the file,
:mod:`reconciler.state.file`, and PostgreSQL, :mod:`reconciler.state.pg`) build on this
module and never on each other; the store protocol and the choice of a store are
:mod:`reconciler.state.store`.
"""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

STATE_FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # 1 is migrated to 2 on the next save
# The Mini App Center's section of the state, and the kind of its root records.
MAC_PROVIDER = "miniappcenter"
MAC_ROOT_KIND = "miniapp"
VERSION_ID_MARK = "version_id"  # the name of the Mini App Center's version-id mark
DEFAULT_STATE_DIR = ".reconciler"
UNKNOWN = "unknown"  # a status or version whose outcome an interrupted write left unknown
EXISTS = "exists"  # a version the server said exists (duplicate code) at an id not yet found
# The Mini App Center's review statuses (its review flow: providers/miniappcenter/review.py).
# A recorded status outside these (and UNKNOWN) is damage, refused when the state is read.
REVIEW_STATUSES = ("pending", "waiting_for_review", "in_review", "rejected", "ready")
# Bounds on what a damaged file can make us read: a real state of a few thousand apps is a
# few MB, a record a few levels deep.
MAX_STATE_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_LOCK_BYTES = 64 * 1024
MAX_KEY_CHARS = 255  # a natural key (an app id, an app name)

# Where a journal line points in an app's record: () the whole record; (FIELD,) one of the
# app's own fields; (COLLECTION, KEY) one attribute, location or version. A line holds only
# what one write changed, so the journal grows with the writes, not with the app's size.
JournalPath = tuple[str, ...]
_APP_FIELDS = frozenset(
    {"protect", "labels", "fields", "answered", "objects", "attributes", "locations"}
)
_COLLECTIONS = frozenset({"attributes", "locations", "versions"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Learned(_Record):
    """A record with ``answered`` (what the server held after our write): written only when
    something was learned, so a record without it reads and writes as before."""

    @model_serializer(mode="wrap")
    def _without_empty_answered(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and not data.get("answered"):
            data.pop("answered", None)
        return data


class ObjectRef(_Record):
    """An image or metadata field: the upload id we sent, and the URL the server answered."""

    object_id: str
    url: str | None = None


class LocationRecord(_Record):
    id: int
    geo_point: str


class VersionRecord(_Learned):
    id: int | None = None  # None while the create's outcome is unknown
    fields: dict[str, Any] = Field(default_factory=dict)
    # What the server held for each of ``fields`` right after our write (its normal form;
    # reconciler/engine/normalization.py). Absent: compared as sent.
    answered: dict[str, Any] = Field(default_factory=dict)
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

    @classmethod
    def found(cls, version_id: int, *, fresh: bool) -> VersionRecord:
        """A version found by reading. ``fresh``: our own unanswered create (brand new:
        pending, no compatibility yet); otherwise its status and compatibilities are unknown."""
        if fresh:
            return cls(id=version_id, compatibility=[], status="pending")
        return cls(id=version_id, status=UNKNOWN)


class AppRecord(_Learned):
    protect: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    answered: dict[str, Any] = Field(default_factory=dict)  # as VersionRecord.answered
    objects: dict[str, ObjectRef] = Field(default_factory=dict)
    attributes: dict[str, str] | None = None
    locations: dict[str, LocationRecord] | None = None
    versions: dict[str, VersionRecord] = Field(default_factory=dict)


_ProviderName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ProviderState(_Record):
    """One provider's section of the state, kept as JSON: its endpoint, its marks (counters
    the provider keeps, such as the highest id seen) and its records by kind and natural key.
    The Mini App Center's section is typed (:class:`State` ``apps``); another provider's is
    kept here whole, so a state written by a reconciler that knows more providers than this
    one loses nothing when this one saves it."""

    endpoint: str | None = None
    marks: dict[str, Annotated[int, Field(strict=True, ge=0)]] = Field(default_factory=dict)
    resources: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class State(_Record):
    format_version: int = STATE_FORMAT_VERSION
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    # The Mini App Center's section (providers.miniappcenter on disk), typed.
    endpoint: str | None = None
    # The highest version id this endpoint has ever answered (creates and reads). Version ids
    # are assigned in sequence and cannot be listed: an unknown create is looked for above it.
    version_id_mark: int = 0
    apps: dict[str, AppRecord] = Field(default_factory=dict)
    # Every other provider's section, by provider name.
    providers: dict[_ProviderName, ProviderState] = Field(default_factory=dict)
    # The format the file was read in (1: written as 2 at the next save).
    read_format: int = Field(default=STATE_FORMAT_VERSION, exclude=True)

    def to_file(self) -> dict[str, Any]:
        """The on-disk layout (format 2)."""
        mac = {
            "endpoint": self.endpoint,
            "marks": {VERSION_ID_MARK: self.version_id_mark},
            "resources": {
                MAC_ROOT_KIND: {
                    app_id: record.model_dump(mode="json") for app_id, record in self.apps.items()
                }
            },
        }
        others = {name: section.model_dump(mode="json") for name, section in self.providers.items()}
        return {
            "format_version": STATE_FORMAT_VERSION,
            "lineage": self.lineage,
            "serial": self.serial,
            "providers": {MAC_PROVIDER: mac, **dict(sorted(others.items()))},
        }

    @classmethod
    def from_file(cls, data: dict[str, Any]) -> State:
        """Read either format; raises ValidationError or _Unreadable naming the problem."""
        if data.get("format_version") == 1:
            state = cls.model_validate({**data, "format_version": STATE_FORMAT_VERSION})
            state.read_format = 1
            return state
        top = {k: v for k, v in data.items() if k != "providers"}
        providers = data.get("providers")
        if not isinstance(providers, dict):
            raise _Unreadable("has no providers section (a JSON object was expected)")
        sections = {name: ProviderState.model_validate(raw) for name, raw in providers.items()}
        mac = sections.pop(MAC_PROVIDER, ProviderState())
        unknown_kinds = set(mac.resources) - {MAC_ROOT_KIND}
        if unknown_kinds:
            raise _Unreadable(
                f"has resources of kind {_shown(sorted(unknown_kinds)[0])} under"
                f" providers.{MAC_PROVIDER}; this reconciler knows only {MAC_ROOT_KIND}"
            )
        return cls.model_validate(
            {
                **top,
                "endpoint": mac.endpoint,
                "version_id_mark": mac.marks.get(VERSION_ID_MARK, 0),
                "apps": mac_records(data),
                "providers": {
                    name: section.model_dump(mode="json") for name, section in sections.items()
                },
            }
        )

    def bind(self, provider: str, endpoint: str) -> None:
        """Record the endpoint another provider's resources live at (first use only)."""
        section = self.providers.setdefault(provider, ProviderState())
        if section.endpoint is None:
            section.endpoint = endpoint

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


def mac_records(data: dict[str, Any]) -> Any:
    """The Mini App Center's app records as the file has them (either format)."""
    if data.get("format_version") == 1:
        return data.get("apps", {})
    section = data["providers"].get(MAC_PROVIDER) or {}
    return (section.get("resources") or {}).get(MAC_ROOT_KIND, {})


class LockInfo(_Record):
    id: str
    who: str
    host: str
    pid: int
    when: str
    operation: str
    # The holder keeps an OS lock (flock) on the lock file while it runs: the kernel drops it
    # when the process dies, however it dies. False in lock files written before (D113).
    os_lock: bool = False
    # The stale lock this one replaced (its holder's process was gone), for the run to say so.
    replaced: str | None = None
    # Why it could be replaced (None: a lock file whose process is gone).
    replaced_why: str | None = None

    def describe(self) -> str:
        # Read from a file anyone may have written: escaped and bounded, as any damaged file.
        who, host, when, operation = (
            _printable(value, 80) for value in (self.who, self.host, self.when, self.operation)
        )
        return (
            f"lock {self.shown_id()} held by {who}@{host} (pid {_bounded(str(self.pid), 20)})"
            f" since {when} for '{operation}'"
        )

    def shown_id(self) -> str:
        return _printable(self.id, 80)

    def takeover_notice(self) -> str | None:
        """What a run says when it took over a dead holder's lock (None: it did not)."""
        if self.replaced is None:
            return None
        why = self.replaced_why or "its process no longer holds the lock file"
        return (
            f"Warning: took over the state lock left by a run that is gone ({self.replaced}):"
            f" {why}"
        )


class _Unreadable(Exception):
    """What is wrong with a state, journal or lock file (worded to follow its name)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _shown(value: object, limit: int = 60) -> str:
    """A value from a damaged file, safe to print: escaped (repr), and bounded."""
    return _bounded(repr(value), limit)


def _printable(text: str, limit: int = 120) -> str:
    """Text from a damaged file, without quotes: non-ASCII and control characters escaped."""
    return _bounded(ascii(text)[1:-1], limit)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "...(truncated)"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
