"""The plan: complete, immutable data, made before any write. Apply reads only this.

One action vocabulary (``create``, ``update``, ``delete``) serves the JSON, the text symbols
(``+ ~ -``) and the apply dispatch. Ordering is declared data (:data:`LEVELS`), reversed for
deletes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Re-exported: the CLI reads it from reconciler.limits without importing this module (D45).
from reconciler.limits import DEFAULT_PROBE_WINDOW as DEFAULT_PROBE_WINDOW

FORMAT_VERSION = 1

Action = Literal["create", "update", "delete"]
Resource = Literal["miniapp", "attribute", "location", "version", "compatibility", "status"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete")
SYMBOLS: Mapping[str, str] = {"create": "+", "update": "~", "delete": "-"}

# Dependency order inside one app. Creates and updates run by ascending level; deletes by
# descending level (a version's compatibilities go before its app, the app goes last).
LEVELS: Mapping[str, int] = {
    "miniapp": 0,
    "attribute": 1,
    "location": 1,
    "version": 2,
    "compatibility": 3,
    "status": 4,
}

# The key of the one status change that learns an unknown review status (review.py).
LEARN_STATUS = "learn"


def exists_not_found(first: int, last: int, reads: int, window: int) -> str:
    """Why a version the server says exists is still unknown, and the two ways on: both the
    plan and apply say it the same way."""
    return (
        "the server refused this version's code as a duplicate, so it exists, but reading"
        f" version ids {first}-{last} ({reads} reads) did not find it. The next run reads on"
        f" from id {last + 1}; or widen the search now with `reconciler apply --probe-window"
        f" {max(window * 8, 2048)}`"
    )


# Review status steps: (from, step endpoint) -> to. The API's own state machine.
STATUS_STEPS: Mapping[tuple[str, str], str] = {
    ("pending", "send_to_review"): "waiting_for_review",
    ("rejected", "send_to_review"): "waiting_for_review",
    ("waiting_for_review", "in_review"): "in_review",
    ("in_review", "ready"): "ready",
    ("in_review", "rejected"): "rejected",
}
STEPS: tuple[str, ...] = ("send_to_review", "in_review", "ready", "rejected")

# The closed vocabulary of writes: (resource, action, step). Apply maps each to exactly one
# client operation (``reconciler.apply.DISPATCH``); a saved plan naming anything else is
# refused before any write. Versions are never deleted (the API cannot).
OPERATIONS: frozenset[tuple[str, str, str | None]] = frozenset(
    {
        ("miniapp", "create", None),
        ("miniapp", "update", None),
        ("miniapp", "delete", None),
        ("attribute", "create", None),
        ("attribute", "update", None),
        ("attribute", "delete", None),
        ("location", "create", None),
        ("location", "update", None),
        ("location", "delete", None),
        ("version", "create", None),
        ("version", "update", None),
        ("compatibility", "create", None),
        ("compatibility", "delete", None),
        *(("status", "update", step) for step in STEPS),
        ("status", "update", None),  # key "learn": learn an unknown status (review.py)
    }
)


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Change:
    """One API write. ``payload`` is the exact body apply sends (None when there is none)."""

    address: str
    resource: Resource
    action: Action
    app_id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    key: str | None = None  # natural key: attribute field, location name, version code
    version_code: str | None = None  # for compatibility and status changes
    target_id: int | None = None  # server id known at plan time (location to update/delete)
    step: str | None = None  # status endpoint: send_to_review, in_review, ready, rejected
    payload: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    depends_on: tuple[str, ...] = ()
    reason: str | None = None  # e.g. "changed outside since the last apply"

    @property
    def level(self) -> int:
        return LEVELS[self.resource]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "resource": self.resource,
            "action": self.action,
            "app_id": self.app_id,
            "before": _plain(self.before),
            "after": _plain(self.after),
        }
        if self.fields:
            out["fields"] = [f.as_dict() for f in self.fields]
        for name in ("key", "version_code", "target_id", "step", "reason"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.payload is not None:
            out["payload"] = _plain(self.payload)
        if self.depends_on:
            out["depends_on"] = list(self.depends_on)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            address=data["address"],
            resource=data["resource"],
            action=data["action"],
            app_id=data["app_id"],
            before=data.get("before"),
            after=data.get("after"),
            key=data.get("key"),
            version_code=data.get("version_code"),
            target_id=data.get("target_id"),
            step=data.get("step"),
            payload=data.get("payload"),
            fields=tuple(
                FieldChange(f["path"], f["before"], f["after"]) for f in data.get("fields", ())
            ),
            depends_on=tuple(data.get("depends_on", ())),
            reason=data.get("reason"),
        )


# What an error stops: "fleet" refuses the whole plan before any write (delete budget,
# protection); "app" skips that app's changes and lets apply go on with the others; "version"
# stops nothing but the one thing it names (a review status no read or refused step can tell):
# apply does the rest. Apply exits 3 for the last two, naming them; plan exits 1 for all.
Scope = Literal["fleet", "app", "version"]


@dataclass(frozen=True)
class PlanProblem:
    """Something that makes the plan unappliable (errors) or worth a look (warnings)."""

    message: str
    app_id: str | None = None
    address: str | None = None
    scope: Scope = "fleet"

    def as_dict(self, *, error: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.app_id is not None:
            out["app_id"] = self.app_id
        if self.address is not None:
            out["address"] = self.address
        if error:  # what an error stops; a warning stops nothing
            out["scope"] = self.scope
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanProblem:
        scope = data.get("scope", "fleet")
        if scope not in ("app", "fleet", "version"):
            raise ValueError(f"unknown problem scope {scope!r}")
        return cls(data["message"], data.get("app_id"), data.get("address"), scope)

    def __str__(self) -> str:
        where = self.address or self.app_id
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Learned:
    """A fact about the server learnt by reading, which apply records in the state without
    any API write: an app or version to adopt, or how far a probe for a version has read."""

    app_id: str
    code: str | None = None  # None: the mini app itself
    version_id: int | None = None  # the version found (None: not found in the ids read)
    fresh: bool = False  # our own unanswered create: status pending, no compatibility yet
    probed: tuple[int, int] | None = None  # (first, last) version id read
    reads: int = 0

    @property
    def adopts(self) -> bool:
        return self.code is None or self.version_id is not None

    @property
    def address(self) -> str:
        app = f"miniapp[{self.app_id}]"
        return app if self.code is None else f"{app}.version[{self.code}]"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "app_id": self.app_id}
        if self.code is not None:
            out.update(code=self.code, version_id=self.version_id, fresh=self.fresh)
        if self.probed is not None:
            out.update(probed=list(self.probed), reads=self.reads)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Learned:
        probed = data.get("probed")
        return cls(
            app_id=data["app_id"],
            code=data.get("code"),
            version_id=data.get("version_id"),
            fresh=bool(data.get("fresh", False)),
            probed=(int(probed[0]), int(probed[1])) if probed is not None else None,
            reads=int(data.get("reads", 0)),
        )


@dataclass(frozen=True)
class AppMeta:
    protect: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"protect": self.protect, "labels": dict(self.labels)}


@dataclass(frozen=True)
class Plan:
    endpoint: str
    changes: tuple[Change, ...]
    warnings: tuple[PlanProblem, ...] = ()
    errors: tuple[PlanProblem, ...] = ()
    # What the plan was made against, so that a saved plan can be refused once stale.
    state_lineage: str | None = None
    state_serial: int | None = None
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    apps: tuple[str, ...] = ()  # every app the plan looked at, in order
    # Labels and protection of each app the manifests keep: they live only in the state,
    # and a saved plan must carry them (apply --plan has no manifests).
    app_meta: Mapping[str, AppMeta] = field(default_factory=dict)
    learned: tuple[Learned, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {action: 0 for action in ACTIONS}
        for change in self.changes:
            counts[change.action] += 1
        if self.adoptions:  # only then: the documented three keys stay as they were
            counts["adopt"] = len(self.adoptions)
        return counts

    @property
    def adoptions(self) -> tuple[Learned, ...]:
        return tuple(item for item in self.learned if item.adopts)

    @property
    def has_changes(self) -> bool:
        """Writes to make, or adoptions to record (the state is then what changes)."""
        return bool(self.changes) or bool(self.adoptions)

    @property
    def fleet_errors(self) -> tuple[PlanProblem, ...]:
        return tuple(e for e in self.errors if e.scope == "fleet")

    @property
    def stuck_apps(self) -> dict[str, list[PlanProblem]]:
        """Apps whose changes apply skips (app-scoped errors), with why."""
        out: dict[str, list[PlanProblem]] = {}
        for error in self.errors:
            if error.scope == "app" and error.app_id is not None:
                out.setdefault(error.app_id, []).append(error)
        return out

    @property
    def unresolved(self) -> tuple[PlanProblem, ...]:
        """Errors that stop only what they name; apply does everything else."""
        return tuple(e for e in self.errors if e.scope == "version")

    @property
    def probe_reads(self) -> int:
        return sum(item.reads for item in self.learned)

    @property
    def delete_count(self) -> int:
        return sum(1 for c in self.changes if c.action == "delete")

    def changes_by_app(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.app_id, []).append(change)
        return grouped

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "endpoint": self.endpoint,
            "summary": self.summary,
            "changes": [c.as_dict() for c in self.changes],
            "warnings": [str(w) for w in self.warnings],
            "errors": [str(e) for e in self.errors],
            "details": {
                "warnings": [w.as_dict() for w in self.warnings],
                "errors": [e.as_dict(error=True) for e in self.errors],
            },
            "state": {"lineage": self.state_lineage, "serial": self.state_serial},
            "fingerprints": dict(sorted(self.fingerprints.items())),
            "apps": list(self.apps),
            "app_meta": {k: v.as_dict() for k, v in self.app_meta.items()},
            "learned": [item.as_dict() for item in self.learned],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported plan format_version {data.get('format_version')!r}"
                f" (this reconciler reads {FORMAT_VERSION})"
            )
        details = data.get("details", {})
        state = data.get("state") or {}
        return cls(
            endpoint=data["endpoint"],
            changes=tuple(Change.from_dict(c) for c in data.get("changes", ())),
            warnings=tuple(PlanProblem.from_dict(w) for w in details.get("warnings", ())),
            errors=tuple(PlanProblem.from_dict(e) for e in details.get("errors", ())),
            state_lineage=state.get("lineage"),
            state_serial=state.get("serial"),
            fingerprints=dict(data.get("fingerprints", {})),
            apps=tuple(data.get("apps", ())),
            app_meta={
                app_id: AppMeta(bool(meta.get("protect")), dict(meta.get("labels") or {}))
                for app_id, meta in (data.get("app_meta") or {}).items()
            },
            learned=tuple(Learned.from_dict(item) for item in data.get("learned", ())),
        )


def order_changes(changes: Iterable[Change]) -> list[Change]:
    """Deterministic dependency order for the changes of ONE app.

    Creates and updates by ascending level, then deletes by descending level; inside a level
    the diff's own order is kept (it emits natural keys sorted). Then every change is moved
    after what it ``depends_on`` (a status step after a compatibility delete of its version),
    keeping that order otherwise: a stable topological sort.
    """
    items = list(changes)
    writes = [c for c in items if c.action != "delete"]
    deletes = [c for c in items if c.action == "delete"]
    writes.sort(key=lambda c: c.level)
    deletes.sort(key=lambda c: -c.level)
    ordered = writes + deletes
    # Kahn's algorithm, always taking the ready change that comes first in level order.
    position = {c.address: i for i, c in enumerate(ordered)}
    waiting_on = [0] * len(ordered)
    unblocks: dict[int, list[int]] = {}
    for i, change in enumerate(ordered):
        for dependency in set(change.depends_on):
            j = position.get(dependency)
            if j is not None:
                waiting_on[i] += 1
                unblocks.setdefault(j, []).append(i)
    ready = [i for i, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    out: list[Change] = []
    while ready:
        i = heapq.heappop(ready)
        out.append(ordered[i])
        for k in unblocks.get(i, ()):
            waiting_on[k] -= 1
            if waiting_on[k] == 0:
                heapq.heappush(ready, k)
    if len(out) < len(ordered):  # a cycle cannot come from the diff; keep level order
        emitted = {id(c) for c in out}
        out.extend(c for c in ordered if id(c) not in emitted)
    return out


_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:  # most values: skip the slow ABC checks (a 20 MB plan: 2x)
        return value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    return value
