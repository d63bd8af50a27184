"""Pure diff: desired REST objects + what the collections hold live + the state's section ->
a Plan of creates, updates (PATCH of the changed managed fields) and deletes.

No I/O. Rules (docs/decisions.md D80-D82):
- a field left out of ``spec.body`` is not managed: never compared, never sent; ``ignore``
  paths are removed from both sides before comparing;
- an object is found live by its natural key (``spec.key``) in its collection; declared and
  found but not recorded, it is adopted (a fact apply records, no write);
- only recorded objects are deleted by ``--prune``, and only while the live object is the one
  recorded (same server id); ``ensure: absent`` deletes what it declares;
- ``protect`` (manifest or state) refuses any delete;
- a managed field the live object does not have is not planned (the server ignores fields
  it does not know: the update would never converge) but warned about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.address import Address
from reconciler.engine.plan import (
    KNOWN_AFTER_APPLY,
    AppMeta,
    Change,
    FieldChange,
    Plan,
    PlanProblem,
    delete_budget_problem,
    unpruned_problem,
)
from reconciler.providers.rest.model import (
    Ref,
    RestObject,
    key_text,
    live_managed,
    managed_fields,
)
from reconciler.providers.rest.model import server_id as addressable_id
from reconciler.providers.rest.records import (
    RestRecord,
    Section,
    changed_outside,
    read_records,
    unchanged,
)
from reconciler.providers.rest.vocabulary import (
    PROVIDER,
    ROOT_KIND,
    Adopt,
    address_key,
    as_target_id,
    object_address,
)

CHANGED_OUTSIDE = "changed outside since the last apply"
DELETED_OUTSIDE = "deleted outside since the last apply"
ADOPTED = "exists on the server, unknown to the state: adopted"
PRUNED = "no manifest declares it (--prune)"
ABSENT = "ensure: absent"

JsonObject = Mapping[str, Any]
Collection = tuple[str, str]  # (endpoint name, collection path)


@dataclass(frozen=True)
class LiveRest:
    """What :func:`reconciler.providers.rest.fetch.read_live` read: every object of each
    collection listed, and why a collection could not be read."""

    objects: Mapping[Collection, Sequence[JsonObject]] = field(default_factory=dict)
    unreadable: Mapping[Collection, str] = field(default_factory=dict)
    reads: int = 0


@dataclass(frozen=True)
class RestPlanOptions:
    prune: bool = False
    max_deletes: int | None = None
    # Every address key the manifests declare before any narrowing: not an orphan.
    declared: frozenset[str] = frozenset()
    in_scope: Callable[[str, RestRecord], bool] = field(default=lambda _key, _record: True)
    notices: tuple[str, ...] = ()


def collections_needed(
    desired: Sequence[RestObject], section: Section
) -> list[Collection]:
    """Each (endpoint, path) a plan must list once: declared ones and recorded ones."""
    needed = {(obj.endpoint, obj.path) for obj in desired}
    needed |= {(obj.endpoint, ref.path) for obj in desired for ref in obj.refs.values()}
    needed |= {(r.endpoint, r.path) for r in read_records(section).values()}
    return sorted(needed)


def build_plan(
    desired: Sequence[RestObject],
    live: LiveRest,
    section: Section,
    *,
    endpoint: str,
    options: RestPlanOptions | None = None,
    state_lineage: str | None = None,
    state_serial: int | None = None,
) -> Plan:
    """``endpoint``: the identity of the endpoints the plan is made for (plan.endpoints)."""
    options = options or RestPlanOptions()
    records = read_records(section)
    changes: list[Change] = []
    warnings = [PlanProblem(text) for text in options.notices]
    errors: list[PlanProblem] = []
    learned: list[Adopt] = []
    keys: list[str] = []

    key_fields, clash = _key_fields(desired)
    errors.extend(clash)
    indexes: dict[Collection, dict[str, JsonObject]] = {}
    # Why a collection could not be indexed: an error of each of its objects (app-scoped),
    # never of the fleet: one unreadable collection must not hold the others (nor the other
    # providers' apps).
    unindexed: dict[Collection, str] = {}
    for collection, key_field in key_fields.items():
        index, problem = _index(live, collection, key_field)
        if problem is None:
            indexes[collection] = index
        else:
            unindexed[collection] = problem

    resolver = _Resolver(desired, live, key_fields, indexes)
    for obj in desired:
        key = address_key(obj.endpoint, obj.path, obj.key)
        keys.append(key)
        collection = (obj.endpoint, obj.path)
        address = object_address(*collection, obj.key)
        if collection not in indexes:
            why = unindexed.get(collection, "not read")
            errors.append(
                PlanProblem(
                    f"its collection could not be read: {why}", key, address, scope="app"
                )
            )
            continue
        resolved, needs, problems = ({}, [], []) if obj.absent else resolver.resolve(obj)
        if problems:
            errors.extend(PlanProblem(text, key, address, scope="app") for text in problems)
            continue
        one = _ObjectDiff(
            obj, key, address, indexes[collection].get(obj.key), records.get(key), resolved
        )
        one.run()
        one.depend_on(needs)
        changes.extend(one.changes)
        warnings.extend(one.warnings)
        errors.extend(one.errors)
        learned.extend(one.learned)

    known = set(keys) | options.declared
    unpruned: list[str] = []
    for key, record in records.items():
        if key in known or not options.in_scope(key, record):
            continue
        collection = (record.endpoint, record.path)
        index, problem = _index(live, collection, record.key_field)
        if problem is not None:
            warnings.append(PlanProblem(f"not checked for --prune: {problem}", key))
            continue
        found = index.get(record.key)
        if found is None:
            continue  # already gone
        if found.get("id") != record.id:
            warnings.append(
                PlanProblem(
                    f"the live object with this key has id {_id_text(found)}, not the recorded"
                    f" {record.id}: it was replaced outside, and is not this tool's to delete",
                    key,
                )
            )
            continue
        if not options.prune:
            unpruned.append(key)
            continue
        keys.append(key)
        address = Address(PROVIDER, ROOT_KIND, key)
        change = _delete(key, record.key_field, address, found, record.fields.keys(), (), PRUNED)
        if change is None:
            errors.append(_id_problem(key, address))
            continue
        changes.append(change)
        if record.protect:
            errors.append(_protect_error(key, address))
    changes = _order_deletes(changes, desired)
    kept = unpruned_problem("REST object(s)", unpruned)
    if kept is not None:
        warnings.append(kept)
    budget = delete_budget_problem(changes, options.max_deletes)
    if budget is not None:
        errors.append(budget)
    return Plan(
        endpoints={PROVIDER: endpoint},
        changes=tuple(changes),
        warnings=tuple(warnings),
        errors=tuple(errors),
        state_lineage=state_lineage,
        state_serial=state_serial,
        apps=tuple(keys),
        app_meta={
            address_key(o.endpoint, o.path, o.key): AppMeta(o.protect, dict(o.labels))
            for o in desired
            if not o.absent
        },
        learned=tuple(learned),
    )


def _key_fields(desired: Sequence[RestObject]) -> tuple[dict[Collection, str], list[PlanProblem]]:
    """The one natural-key field of each declared collection; two would find different
    objects (refused, naming where each is declared)."""
    chosen: dict[Collection, RestObject] = {}
    problems: list[PlanProblem] = []
    for obj in desired:
        collection = (obj.endpoint, obj.path)
        first = chosen.setdefault(collection, obj)
        if first.key_field != obj.key_field:
            problems.append(
                PlanProblem(
                    f"{obj.endpoint} {obj.path}: objects name different key fields"
                    f" ({first.key_field} at {first.where()}, {obj.key_field} at {obj.where()});"
                    " one collection has one natural key"
                )
            )
    return {c: o.key_field for c, o in chosen.items()}, problems


def _index(
    live: LiveRest, collection: Collection, key_field: str
) -> tuple[dict[str, JsonObject], str | None]:
    endpoint, path = collection
    if collection in live.unreadable:
        return {}, f"{endpoint} {path}: {live.unreadable[collection]}"
    if collection not in live.objects:
        return {}, f"{endpoint} {path}: not read"
    index: dict[str, JsonObject] = {}
    for obj in live.objects[collection]:
        key = key_text(obj.get(key_field))
        if key is None:
            continue
        if key in index:
            return {}, (
                f"{endpoint} {path}: two objects have {key_field}={key[:80]!r} (ids"
                f" {_id_text(index[key])} and {_id_text(obj)}); {key_field} cannot identify them"
            )
        index[key] = obj
    return index, None


def _id_text(obj: JsonObject) -> str:
    return str(obj.get("id"))[:64]


def _protect_error(key: str, address: Address) -> PlanProblem:
    return PlanProblem(
        "refusing to delete a protected REST object (protect: true). To delete it, first"
        " apply its manifest with `protect: false`, then delete it.",
        key,
        address,
    )


def _id_problem(key: str, address: Address) -> PlanProblem:
    return PlanProblem(
        "the live object's id is neither an integer nor a string of letters, digits, - and _"
        " (up to 64): it cannot be put in the object's URL",
        key,
        address,
        scope="app",
    )


def _server_id(obj: JsonObject) -> int | str | None:
    return addressable_id(obj)


def _delete(
    key: str,
    key_field: str,
    address: Address,
    live: JsonObject,
    names: Any,
    ignore: Sequence[str],
    reason: str,
) -> Change | None:
    target = _server_id(live)
    if target is None:
        return None
    return Change(
        address=address,
        kind=ROOT_KIND,
        action="delete",
        app_id=key,
        before=live_managed(live, list(names), ignore),
        after=None,
        key=key_field,
        target_id=as_target_id(target),
        reason=reason,
    )


class _Resolver:
    """The values of an object's references: the target's field when the target is live
    (declared or not), "known after apply" when a manifest declares it and it is created in
    this run; a target neither live nor declared is a problem of the referencing object."""

    def __init__(
        self,
        desired: Sequence[RestObject],
        live: LiveRest,
        key_fields: Mapping[Collection, str],
        indexes: Mapping[Collection, dict[str, JsonObject]],
    ) -> None:
        self.declared = {(o.endpoint, o.path, o.key): o for o in desired if not o.absent}
        self.live = live
        self.key_fields = key_fields
        self.indexes = dict(indexes)

    def _index(
        self, collection: Collection, key_field: str
    ) -> tuple[dict[str, JsonObject], str | None]:
        if collection in self.indexes and self.key_fields.get(collection) == key_field:
            return self.indexes[collection], None
        return _index(self.live, collection, key_field)

    def resolve(self, obj: RestObject) -> tuple[dict[str, Any], list[Address], list[str]]:
        """(body field -> value or a pending reference, the targets created in this run,
        problems)."""
        values: dict[str, Any] = {}
        needs: list[Address] = []
        problems: list[str] = []
        for name, ref in obj.refs.items():
            target = self.declared.get((obj.endpoint, ref.path, ref.key))
            key_field = ref.key_field or (target.key_field if target else None)
            shown = f"{name}: the reference to {obj.endpoint} {ref.path}{ref.key[:80]}"
            if key_field is None:
                problems.append(f"{shown} names no key field and no manifest declares it")
                continue
            index, why = self._index((obj.endpoint, ref.path), key_field)
            if why is not None:
                problems.append(f"{shown} cannot be resolved: {why}")
                continue
            found = index.get(ref.key)
            if found is not None:
                if ref.field not in found:
                    problems.append(f"{shown}: the object has no field {ref.field!r}")
                    continue
                values[name] = found[ref.field]
            elif target is not None:
                values[name] = PendingRef(ref, object_address(obj.endpoint, ref.path, ref.key))
                needs.append(values[name].address)
            else:
                problems.append(
                    f"{shown}: no such object on the server (and no manifest declares it);"
                    " a referenced object outside the manifests must exist"
                )
        return values, needs, problems


@dataclass(frozen=True)
class PendingRef:
    """A reference to an object created in the same run: its value is known after apply."""

    ref: Ref
    address: Address


def _order_deletes(changes: list[Change], desired: Sequence[RestObject]) -> list[Change]:
    """A delete waits for the changes of the objects whose manifests reference its object
    (they stop pointing at it, or go first), so a server's foreign key never blocks it."""
    referrers: dict[str, list[Address]] = {}
    by_key = {change.app_id: change for change in changes}
    for obj in desired:
        source = by_key.get(address_key(obj.endpoint, obj.path, obj.key))
        if source is None:
            continue
        for ref in obj.refs.values():
            target = address_key(obj.endpoint, ref.path, ref.key)
            referrers.setdefault(target, []).append(source.address)
    out: list[Change] = []
    for change in changes:
        waits = referrers.get(change.app_id, [])
        if change.action == "delete" and waits:
            change = dataclasses.replace(
                change, depends_on=tuple(dict.fromkeys((*change.depends_on, *waits)))
            )
        out.append(change)
    return out


class _ObjectDiff:
    def __init__(
        self,
        obj: RestObject,
        key: str,
        address: Address,
        live: JsonObject | None,
        record: RestRecord | None,
        resolved: Mapping[str, Any] | None = None,
    ) -> None:
        self.resolved = dict(resolved or {})
        self.obj = obj
        self.key = key
        self.address = address
        self.live = live
        if record is not None and record.answered and obj.ignore:
            # Compared as the live values are: ignored paths removed from the answers too.
            view = live_managed(record.answered, list(record.answered), obj.ignore)
            record = record.model_copy(update={"answered": view})
        self.record = record
        self.changes: list[Change] = []
        self.warnings: list[PlanProblem] = []
        self.errors: list[PlanProblem] = []
        self.learned: list[Adopt] = []

    def depend_on(self, needs: Sequence[Address]) -> None:
        """Creates and updates run after the objects they reference are created."""
        if not needs:
            return
        self.changes = [
            dataclasses.replace(c, depends_on=tuple(dict.fromkeys((*c.depends_on, *needs))))
            if c.action != "delete"
            else c
            for c in self.changes
        ]

    def _desired(self) -> dict[str, Any]:
        """The managed fields with each reference resolved (shown "known after apply" when
        its target is created in this run)."""
        desired = managed_fields(self.obj)
        for name, value in self.resolved.items():
            desired[name] = KNOWN_AFTER_APPLY if isinstance(value, PendingRef) else value
        return desired

    def _payload(self, names: Any) -> dict[str, Any]:
        """What is sent: a resolved reference's value; a pending one as written (resolved
        by apply once its target exists)."""
        out: dict[str, Any] = {}
        for name in names:
            value = self.resolved.get(name, self.obj.body[name])
            out[name] = self.obj.body[name] if isinstance(value, PendingRef) else value
        return out

    def run(self) -> None:
        if self.obj.absent:
            self._absent()
        elif self.live is None:
            self._create()
        else:
            self._update(self.live)

    def _absent(self) -> None:
        if self.live is None:
            return
        change = _delete(
            self.key,
            self.obj.key_field,
            self.address, self.live, self.obj.body.keys(), self.obj.ignore, ABSENT
        )
        if change is None:
            self.errors.append(_id_problem(self.key, self.address))
            return
        self.changes.append(change)
        if self.obj.protect or (self.record is not None and self.record.protect):
            self.errors.append(_protect_error(self.key, self.address))

    def _create(self) -> None:
        body = self._payload(self.obj.body)
        self.changes.append(
            Change(
                address=self.address,
                kind=ROOT_KIND,
                action="create",
                app_id=self.key,
                before=None,
                after=self._desired(),
                key=self.obj.key_field,
                payload=body,
                reason=DELETED_OUTSIDE if self.record is not None else None,
            )
        )

    def _update(self, live: JsonObject) -> None:
        obj = self.obj
        server_id = _server_id(live)
        if server_id is None:
            self.errors.append(_id_problem(self.key, self.address))
            return
        desired = self._desired()
        current = live_managed(live, list(obj.body), obj.ignore)
        unknown = sorted(name for name in obj.body if name not in live)
        if unknown:
            self.warnings.append(
                PlanProblem(
                    f"the server's object has no field(s) {', '.join(unknown)}: a server"
                    " ignores fields it does not know; check their spelling (not planned)",
                    self.key,
                    self.address,
                )
            )
        # What the server normalized on the last write counts as what was sent (learned
        # from its answer, never configured).
        changed = [
            name
            for name in obj.body
            if name in live and not unchanged(self.record, name, desired[name], current[name])
        ]
        replaced = self.record is not None and self.record.id != server_id
        if self.record is None or replaced:
            self.learned.append(Adopt(self.key, self._adopted_record(live, server_id, current)))
        if not changed:
            return
        self.changes.append(
            Change(
                address=self.address,
                kind=ROOT_KIND,
                action="update",
                app_id=self.key,
                before={name: current[name] for name in changed},
                after={name: desired[name] for name in changed},
                key=obj.key_field,
                target_id=as_target_id(server_id),
                payload=self._payload(changed),
                fields=tuple(FieldChange(name, current[name], desired[name]) for name in changed),
                reason=self._why(changed, desired),
            )
        )

    def _why(self, changed: list[str], desired: Mapping[str, Any]) -> str | None:
        record = self.record
        if record is None:
            return ADOPTED
        current = self.live or {}
        if all(changed_outside(record, name, desired[name], current.get(name)) for name in changed):
            return CHANGED_OUTSIDE  # the manifest says what was sent; live left the answer
        return None

    def _adopted_record(
        self, live: JsonObject, object_id: int | str, current: Mapping[str, Any]
    ) -> dict[str, Any]:
        obj = self.obj
        return RestRecord(
            id=object_id,
            endpoint=obj.endpoint,
            path=obj.path,
            key_field=obj.key_field,
            key=obj.key,
            fields=dict(current),
            answered=dict(current),
            protect=obj.protect,
            labels=dict(obj.labels),
        ).as_json()
