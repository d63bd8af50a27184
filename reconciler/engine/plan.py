"""The plan: complete, immutable data, made before any write. Apply reads only this.

One action vocabulary (``create``, ``update``, ``delete``) serves the JSON, the text symbols
(``+ ~ -``) and the apply dispatch. Ordering is declared data (each provider's levels),
reversed for deletes. Nothing here knows a provider's fields.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from reconciler.address import Address, parse_address

# 2: each change names its provider and kind, addresses are parsed into one type, and the
# plan carries one endpoint per provider. A version-1 plan is refused ("re-run plan").
FORMAT_VERSION = 2

Action = Literal["create", "update", "delete"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete")
SYMBOLS: Mapping[str, str] = {"create": "+", "update": "~", "delete": "-"}
# A value a provider can know only once an earlier change of the same apply has run (the id
# of an object it creates); shown as it is, unquoted.
KNOWN_AFTER_APPLY = "(known after apply)"

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

    address: Address
    kind: str  # the resource kind, one of its provider's (the address's own kind)
    action: Action
    app_id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    key: str | None = None  # natural key: attribute field, location name, version code
    version_code: str | None = None  # for compatibility and status changes
    target_id: int | str | None = None  # server id known at plan time (location to update/delete)
    step: str | None = None  # status endpoint: send_to_review, in_review, ready, rejected
    payload: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    depends_on: tuple[Address, ...] = ()
    reason: str | None = None  # e.g. "changed outside since the last apply"

    @property
    def provider(self) -> str:
        return self.address.provider

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "kind": self.kind,
            "address": str(self.address),
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
            out["depends_on"] = [str(address) for address in self.depends_on]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], root_kinds: Mapping[str, str]) -> Change:
        return cls(
            address=parse_address(data["address"], root_kinds),
            kind=data["kind"],
            action=data["action"],
            app_id=data["app_id"],
            before=data.get("before"),
            after=data.get("after"),
            key=data.get("key"),
            version_code=data.get("version_code"),
            target_id=data.get("target_id"),
            step=data.get("step"),
            payload=data.get("payload"),
            # A null side (a field added or removed) may be absent: providers' checked models
            # dump without nulls.
            fields=tuple(
                FieldChange(f["path"], f.get("before"), f.get("after"))
                for f in data.get("fields", ())
            ),
            depends_on=tuple(
                parse_address(text, root_kinds) for text in data.get("depends_on", ())
            ),
            reason=data.get("reason"),
        )


# What an error stops: "fleet" refuses the whole plan before any write (delete budget,
# protection); "app" skips that app's changes and lets apply go on with the others; "version"
# stops nothing but the one thing it names (a review status no read or refused step can tell):
# apply does the rest. "provider" stops one provider whose endpoint could not be read (a
# stuck provider): apply applies the others. Apply exits 3 for the last three, naming them;
# plan exits 1 for all.
Scope = Literal["fleet", "app", "version", "provider"]


@dataclass(frozen=True)
class PlanProblem:
    """Something that makes the plan unappliable (errors) or worth a look (warnings)."""

    message: str
    app_id: str | None = None
    address: Address | None = None
    scope: Scope = "fleet"

    def as_dict(self, *, error: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.app_id is not None:
            out["app_id"] = self.app_id
        if self.address is not None:
            out["address"] = str(self.address)
        if error:  # what an error stops; a warning stops nothing
            out["scope"] = self.scope
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], root_kinds: Mapping[str, str]) -> PlanProblem:
        scope = data.get("scope", "fleet")
        if scope not in ("app", "fleet", "version", "provider"):
            raise ValueError(f"unknown problem scope {scope!r}")
        address = data.get("address")
        return cls(
            data["message"],
            data.get("app_id"),
            parse_address(address, root_kinds) if address is not None else None,
            scope,
        )

    def __str__(self) -> str:
        where = self.address or self.app_id
        return f"{where}: {self.message}" if where else self.message


# How much of a stuck provider's error is kept: its first line, bounded (the transport has
# redacted it already; cutting comes after that, so no prefix of a secret can survive).
STUCK_REASON_MAX = 240


@dataclass(frozen=True)
class StuckProvider:
    """A provider whose endpoint could not be read for this run (down, a login or listing
    refused, an unreadable answer): none of its resources is planned or applied; the other
    providers are."""

    provider: str
    reason: str
    # The error itself, raised again when every provider of a run is stuck (never saved).
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, provider: str, error: BaseException) -> StuckProvider:
        text = " ".join(str(error).split()) or type(error).__name__
        if len(text) > STUCK_REASON_MAX:
            text = text[: STUCK_REASON_MAX - 3] + "..."
        return cls(provider, text, error)

    @property
    def problem(self) -> PlanProblem:
        """The plan's error naming it (plan and drift exit 1; apply applies the others)."""
        return PlanProblem(
            f"provider {self.provider} was not planned: {self.reason}", scope="provider"
        )

    def as_dict(self) -> dict[str, str]:
        return {"provider": self.provider, "reason": self.reason}


class Fact(Protocol):
    """A fact about the server a provider learnt by reading, which apply records in the state
    without any API write (an object to adopt, how far a search has read)."""

    @property
    def address(self) -> Address: ...

    @property
    def app_id(self) -> str: ...

    @property
    def adopts(self) -> bool: ...

    @property
    def reads(self) -> int: ...

    def as_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str:
        """What adopting it means, for the plan's ``= address: ...`` line."""
        ...


@dataclass(frozen=True)
class AppMeta:
    protect: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"protect": self.protect, "labels": dict(self.labels)}


@dataclass(frozen=True)
class Incremental:
    """A plan narrowed to the mini apps changed since a git revision (plan --changed-since):
    the others were neither read nor planned, so apply --plan refuses it."""

    changed_since: str  # the revision as given
    commit: str  # what it resolved to
    files: int  # manifest files changed
    apps: int  # mini apps those changes touch (see reconciler.manifest.changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed_since": self.changed_since,
            "commit": self.commit,
            "files": self.files,
            "apps": self.apps,
        }


@dataclass(frozen=True)
class Plan:
    endpoints: Mapping[str, str]  # provider -> the endpoint's identity the plan was made for
    changes: tuple[Change, ...]
    warnings: tuple[PlanProblem, ...] = ()
    errors: tuple[PlanProblem, ...] = ()
    # What the plan was made against, so that a saved plan can be refused once stale.
    state_lineage: str | None = None
    state_serial: int | None = None
    # What each resource read as (a hash), by address: apply re-reads to refuse a stale plan.
    fingerprints: Mapping[Address, str] = field(default_factory=dict)
    apps: tuple[str, ...] = ()  # every app the plan looked at, in order
    # Labels and protection of each app the manifests keep: they live only in the state,
    # and a saved plan must carry them (apply --plan has no manifests).
    app_meta: Mapping[str, AppMeta] = field(default_factory=dict)
    learned: tuple[Fact, ...] = ()
    incremental: Incremental | None = None
    # Providers whose endpoint could not be read: named, not planned (their error is in
    # ``errors`` with scope "provider").
    stuck_providers: tuple[StuckProvider, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {action: 0 for action in ACTIONS}
        for change in self.changes:
            counts[change.action] += 1
        if self.adoptions:  # only then: the documented three keys stay as they were
            counts["adopt"] = len(self.adoptions)
        return counts

    @property
    def adoptions(self) -> tuple[Fact, ...]:
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

    def group_of(self, address: Address, app_id: str) -> str:
        """How plans group and head what they show: the app id when the plan covers one
        provider (as it always was), else the root address (``akana_app[x]``), since two
        providers may each have a resource called ``x``."""
        if len(self.endpoints) <= 1:
            return app_id
        root = address.root
        return str(Address(root.provider, root.kind, root.key))

    def changes_by_group(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(self.group_of(change.address, change.app_id), []).append(change)
        return grouped

    def changes_by_app(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.app_id, []).append(change)
        return grouped

    def as_dict(self) -> dict[str, Any]:
        # "incremental" only when it is: a full plan's document stays as it was.
        narrowed = {"incremental": self.incremental.as_dict()} if self.incremental else {}
        # Only when there is one: a plan with every provider read stays as it was.
        stuck = (
            {"stuck_providers": [item.as_dict() for item in self.stuck_providers]}
            if self.stuck_providers
            else {}
        )
        return {
            **narrowed,
            **stuck,
            "format_version": FORMAT_VERSION,
            "endpoints": dict(sorted(self.endpoints.items())),
            "summary": self.summary,
            "changes": [c.as_dict() for c in self.changes],
            "warnings": [str(w) for w in self.warnings],
            "errors": [str(e) for e in self.errors],
            "details": {
                "warnings": [w.as_dict() for w in self.warnings],
                "errors": [e.as_dict(error=True) for e in self.errors],
            },
            "state": {"lineage": self.state_lineage, "serial": self.state_serial},
            "fingerprints": {
                str(address): value
                for address, value in sorted(self.fingerprints.items(), key=lambda i: str(i[0]))
            },
            "apps": list(self.apps),
            "app_meta": {k: v.as_dict() for k, v in self.app_meta.items()},
            "learned": [item.as_dict() for item in self.learned],
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        root_kinds: Mapping[str, str],
        read_fact: Callable[[Mapping[str, Any]], Fact],
    ) -> Plan:
        """The plan in ``data`` (already validated whole by the providers' checks)."""
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported plan format_version {data.get('format_version')!r}"
                f" (this reconciler reads {FORMAT_VERSION})"
            )
        details = data.get("details", {})
        state = data.get("state") or {}
        return cls(
            endpoints=dict(data["endpoints"]),
            changes=tuple(Change.from_dict(c, root_kinds) for c in data.get("changes", ())),
            warnings=tuple(
                PlanProblem.from_dict(w, root_kinds) for w in details.get("warnings", ())
            ),
            errors=tuple(PlanProblem.from_dict(e, root_kinds) for e in details.get("errors", ())),
            state_lineage=state.get("lineage"),
            state_serial=state.get("serial"),
            fingerprints={
                parse_address(text, root_kinds): value
                for text, value in (data.get("fingerprints") or {}).items()
            },
            apps=tuple(data.get("apps", ())),
            app_meta={
                app_id: AppMeta(bool(meta.get("protect")), dict(meta.get("labels") or {}))
                for app_id, meta in (data.get("app_meta") or {}).items()
            },
            learned=tuple(read_fact(item) for item in data.get("learned", ())),
            incremental=_incremental(data.get("incremental")),
        )


def _incremental(data: Any) -> Incremental | None:
    if not isinstance(data, Mapping):
        return None
    return Incremental(
        str(data.get("changed_since")),
        str(data.get("commit")),
        int(data.get("files") or 0),
        int(data.get("apps") or 0),
    )


def order_changes(changes: Iterable[Change], levels: Mapping[str, int]) -> list[Change]:
    """Deterministic dependency order for the changes of ONE app; ``levels`` is the
    provider's dependency level of each kind.

    Creates and updates by ascending level, then deletes by descending level; inside a level
    the diff's own order is kept (it emits natural keys sorted). Then every change is moved
    after what it ``depends_on`` (a status step after a compatibility delete of its version),
    keeping that order otherwise: a stable topological sort.
    """
    items = list(changes)
    writes = [c for c in items if c.action != "delete"]
    deletes = [c for c in items if c.action == "delete"]
    writes.sort(key=lambda c: levels[c.kind])
    deletes.sort(key=lambda c: -levels[c.kind])
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


def delete_budget_problem(changes: Iterable[Change], max_deletes: int | None) -> PlanProblem | None:
    """The fleet-wide guard of ``--max-deletes``: a plan deleting more than the budget is
    refused whole (a missing manifest folder must not empty the fleet)."""
    deletes = sum(1 for c in changes if c.action == "delete")
    if max_deletes is None or deletes <= max_deletes:
        return None
    return PlanProblem(
        f"the plan deletes {deletes} object(s), more than --max-deletes {max_deletes};"
        " refusing it (check for a missing manifest folder, or raise the limit deliberately)"
    )


def unpruned_problem(noun: str, keys: Sequence[str]) -> PlanProblem | None:
    """The warning that recorded resources no manifest declares are kept without --prune
    (``noun``: "mini app(s)", "Akana app(s)", ...); None when there are none."""
    if not keys:
        return None
    return PlanProblem(
        f"{len(keys)} {noun} recorded in the state are in no manifest and will NOT be deleted"
        f" without --prune: {', '.join(keys)}"
    )
