"""Pure diff: desired + current (live) + last-applied (state) -> Plan.

No I/O here. Rules (see README "How the plan is computed"):
- a field left out of a manifest is not managed: never diffed, never sent;
- plain fields compare normalised live values with desired ones;
- image fields and version ``metadata`` are written as upload ids but read back as URLs, so
  they compare the desired upload id with the last-applied one, and the live URL with the URL
  recorded at that apply (a different URL means someone changed it outside);
- attributes and locations, when listed, are the whole set (locations matched by name);
- versions are matched by code; they cannot be deleted through the API, only reported;
- compatibility and review status are not readable, so they compare with the state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from deepdiff import DeepDiff

from reconciler.address import Address
from reconciler.engine.normalization import agrees
from reconciler.engine.plan import (
    AppMeta,
    Change,
    FieldChange,
    Plan,
    PlanProblem,
    delete_budget_problem,
    order_changes,
    unpruned_problem,
)
from reconciler.providers.miniappcenter.addresses import (
    app_address,
    attribute_address,
    compatibility_address,
    location_address,
    status_address,
    version_address,
)
from reconciler.providers.miniappcenter.model import (
    APP_IMAGE_FIELDS,
    VERSION_OBJECT_FIELDS,
    LiveApp,
    MiniApp,
    ProbeMiss,
    Version,
    object_key,
    version_fields,
)
from reconciler.providers.miniappcenter.review import (
    STATUSES,
    describe_unknown,
    probe_step,
    status_path,
)
from reconciler.providers.miniappcenter.vocabulary import (
    DEFAULT_PROBE_WINDOW,
    LEARN_STATUS,
    LEVELS,
    PROVIDER,
    Learned,
    exists_not_found,
)
from reconciler.state import EXISTS, UNKNOWN, AppRecord, ObjectRef, State, VersionRecord

__all__ = ["PlanOptions", "build_plan", "field_changes", "orphan_ids", "status_path"]

CHANGED_OUTSIDE = "changed outside since the last apply"
DELETED_OUTSIDE = "deleted outside since the last apply"


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    max_deletes: int | None = None
    # Every app id the manifests declare, before --select/--target narrowed them: an app
    # outside the selection is not an orphan, whatever labels the state remembers.
    declared: frozenset[str] = frozenset()
    # Narrowing (--select / --target): which apps known only to the state are in scope.
    in_scope: Callable[[str, AppRecord], bool] = field(default=lambda _id, _rec: True)
    # Said first among the warnings (e.g. "no state file was found at PATH").
    notices: tuple[str, ...] = ()
    # Shown in messages that tell how to widen a version probe.
    probe_window: int = DEFAULT_PROBE_WINDOW
    # What the user sets to choose the endpoint (named when it may be the wrong one).
    endpoint_setting: str = "MAC_BASE_URL"
    # Apps a read of which failed after the retries (app id -> why): no change is planned
    # for them, and an app-scoped error makes apply skip only them (exit 3).
    unread: Mapping[str, str] = field(default_factory=dict)


def build_plan(
    desired: Sequence[MiniApp],
    live: Mapping[str, LiveApp | None],
    state: State,
    *,
    endpoint: str,
    options: PlanOptions | None = None,
    fingerprints: Mapping[Address, str] | None = None,
) -> Plan:
    options = options or PlanOptions()
    changes: list[Change] = []
    warnings: list[PlanProblem] = [PlanProblem(text) for text in options.notices]
    errors: list[PlanProblem] = []
    learned: list[Learned] = []
    apps: list[str] = []

    for app in desired:
        apps.append(app.id)
        if app.id in options.unread:
            errors.append(_unread_error(app.id, options.unread[app.id]))
            continue
        diff = _AppDiff(app, live.get(app.id), state.app(app.id), options.probe_window)
        diff.run()
        changes.extend(order_changes(diff.changes, LEVELS))
        warnings.extend(diff.warnings)
        errors.extend(diff.errors)
        learned.extend(diff.learned)
    warnings.extend(_first_contact(desired, live, state, endpoint, options.endpoint_setting))

    orphans = orphan_ids(desired, state, options.declared, options.in_scope)
    unpruned: list[str] = []
    for app_id in orphans:
        record = state.apps[app_id]
        if app_id in options.unread:
            if options.prune:
                apps.append(app_id)
                errors.append(_unread_error(app_id, options.unread[app_id]))
            continue
        if live.get(app_id) is None:
            continue  # already gone; nothing to delete
        if not options.prune:
            unpruned.append(app_id)
            continue
        apps.append(app_id)
        change = _app_delete(app_id, live[app_id], reason="no manifest declares it (--prune)")
        changes.append(change)
        if record.protect:
            errors.append(_protect_error(app_id, change.address))
    kept = unpruned_problem("mini app(s)", unpruned)
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
        # A state never saved has no lineage yet (a fresh one is made on every load).
        state_lineage=state.lineage if state.serial else None,
        state_serial=state.serial,
        fingerprints=dict(fingerprints or {}),
        apps=tuple(apps),
        app_meta={
            app.id: AppMeta(protect=app.protect, labels=dict(app.labels))
            for app in desired
            if not app.absent
        },
        learned=tuple(learned),
    )


def _first_contact(
    desired: Sequence[MiniApp],
    live: Mapping[str, LiveApp | None],
    state: State,
    endpoint: str,
    setting: str,
) -> list[PlanProblem]:
    """A state that never recorded this endpoint, and not one declared app there: either a
    first apply, or a base URL that points somewhere else (a plan to create the whole fleet
    must not look like a normal plan)."""
    present = [app.id for app in desired if not app.absent]
    if state.apps or state.serial or not present:
        return []
    if any(live.get(app_id) is not None for app_id in present):
        return []
    return [
        PlanProblem(
            f"none of the {len(present)} declared mini app(s) exists at {endpoint}, and the"
            " state has never recorded this endpoint: this is either a first apply, or"
            f" {setting} points at the wrong server. Check it before applying."
        )
    ]


def orphan_ids(
    desired: Sequence[MiniApp],
    state: State,
    declared: frozenset[str],
    in_scope: Callable[[str, AppRecord], bool],
) -> list[str]:
    """Apps the state manages that no manifest declares (``declared``: every id before any
    narrowing) and that are in scope: the prune candidates, sorted."""
    known = {app.id for app in desired} | declared
    return [
        app_id
        for app_id, record in sorted(state.apps.items())
        if app_id not in known and in_scope(app_id, record)
    ]


# --- addresses ---------------------------------------------------------------------------


# --- field-level differences -------------------------------------------------------------


# The JSON values a flat record holds, by exact type (a subclass, e.g. an enum, goes to
# DeepDiff, whose type rules for it are its own).
_SCALARS: Final = frozenset({str, bool, int, float, type(None)})
# Keys DeepDiff would print in a form other than root['key'] (quotes, escapes), or that the
# path parser below would split: such records take DeepDiff's path, so the output is the same.
# DeepDiff's default ``threshold_to_diff_deeper``.
_DIFF_DEEPER: Final = 0.33
_AWKWARD_KEY: Final = re.compile(r"[\[\]'\"\\]")


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Field-level differences between two flat-or-nested records.

    Every record the diff builds is flat (a field name -> a JSON scalar): those are compared
    directly, one key at a time. DeepDiff is kept for anything nested (a saved plan's
    ``before``/``after`` is only checked against this, never trusted to be flat), where its
    list-order handling earns its cost: it takes ~0.5 ms per call even for one key (D48).
    """
    if before == after:
        return ()
    if _flat(before) and _flat(after):
        return _flat_changes(before, after)
    return _deepdiff_changes(before, after)


def _deepdiff_changes(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[FieldChange, ...]:
    diff = DeepDiff(dict(before), dict(after), ignore_order=True, verbose_level=2)
    out: list[FieldChange] = []
    for kind in ("values_changed", "type_changes"):
        for path, detail in diff.get(kind, {}).items():
            out.append(FieldChange(_path(path), detail.get("old_value"), detail.get("new_value")))
    for path, value in diff.get("dictionary_item_added", {}).items():
        out.append(FieldChange(_path(path), None, value))
    for path, value in diff.get("dictionary_item_removed", {}).items():
        out.append(FieldChange(_path(path), value, None))
    for kind, side in (("iterable_item_added", "after"), ("iterable_item_removed", "before")):
        for path, value in diff.get(kind, {}).items():
            pair = (None, value) if side == "after" else (value, None)
            out.append(FieldChange(_path(path), *pair))
    return tuple(sorted(out, key=lambda f: f.path))


def _flat(record: Mapping[str, Any]) -> bool:
    return all(
        type(key) is str
        and key.isprintable()
        and not _AWKWARD_KEY.search(key)
        and type(value) in _SCALARS
        for key, value in record.items()
    )


def _flat_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """What DeepDiff reports for two flat records: a changed value, or the same value of
    another type (1 -> 1.0, True -> 1: DeepDiff's ``type_changes``), an added key (before
    None), a removed key (after None); sorted by path."""
    union = len(before.keys() | after.keys())
    if union > 1 and len(before.keys() & after.keys()) / union < _DIFF_DEEPER:
        # DeepDiff's threshold_to_diff_deeper: records sharing too few keys are reported as
        # one whole-record change at the root, whose path is "".
        return (FieldChange("", dict(before), dict(after)),)
    out: list[FieldChange] = []
    for key, old in before.items():
        if key not in after:
            out.append(FieldChange(key, old, None))
            continue
        new = after[key]
        if type(old) is not type(new) or old != new:
            out.append(FieldChange(key, old, new))
    for key, new in after.items():
        if key not in before:
            out.append(FieldChange(key, None, new))
    out.sort(key=lambda f: f.path)
    return tuple(out)


def _path(deepdiff_path: str) -> str:
    # root['name'] -> name ; root['compatibility'][1] -> compatibility[1]
    text = deepdiff_path.removeprefix("root")
    parts: list[str] = []
    for chunk in text.replace("]", "").split("["):
        if not chunk:
            continue
        if chunk.startswith("'") and chunk.endswith("'"):
            parts.append(("." if parts else "") + chunk[1:-1])
        else:
            parts.append(f"[{chunk}]")
    return "".join(parts)


# --- one app -----------------------------------------------------------------------------


def _unread_error(app_id: str, why: str) -> PlanProblem:
    return PlanProblem(
        why, app_id=app_id, address=app_address(app_id), scope="app"
    )


def _protect_error(app_id: str, address: Address) -> PlanProblem:
    return PlanProblem(
        "refusing to delete a protected mini app (protect: true). To delete it, first apply"
        " its manifest with `protect: false`, then delete it.",
        app_id=app_id,
        address=address,
    )


def _app_delete(app_id: str, live: LiveApp | None, *, reason: str | None = None) -> Change:
    before = live.app.spec.app_fields() if live else None
    return Change(
        address=app_address(app_id),
        kind="miniapp",
        action="delete",
        app_id=app_id,
        before=before,
        after=None,
        reason=reason,
    )


class _AppDiff:
    """Collects the changes, warnings and errors of one desired app."""

    def __init__(
        self, app: MiniApp, live: LiveApp | None, record: AppRecord | None, probe_window: int
    ) -> None:
        self.app = app
        self.live = live
        self.record = record
        self.probe_window = probe_window
        self.changes: list[Change] = []
        self.warnings: list[PlanProblem] = []
        self.errors: list[PlanProblem] = []
        self.learned: list[Learned] = []
        self.app_addr = app_address(app.id)
        self.creating_app = False

    def run(self) -> None:
        if self.app.absent:
            self._absent()
            return
        if self.live is None:
            self._create_app()
        else:
            if self.record is None:
                # On the server, unknown to the state (a lost state file, or made outside):
                # adopted, then compared like any managed app.
                self.learned.append(Learned(self.app.id))
            self._update_app(self.live)
        self._attributes()
        self._locations()
        self._versions()

    # ensure: absent
    def _absent(self) -> None:
        if self.live is None:
            return
        change = _app_delete(self.app.id, self.live, reason="ensure: absent")
        self.changes.append(change)
        if self.app.protect or (self.record is not None and self.record.protect):
            self.errors.append(_protect_error(self.app.id, change.address))

    # the mini app itself
    def _create_app(self) -> None:
        self.creating_app = True
        fields = self.app.spec.app_fields()
        reason = DELETED_OUTSIDE if self.record is not None else None
        self.changes.append(
            Change(
                address=self.app_addr,
                kind="miniapp",
                action="create",
                app_id=self.app.id,
                before=None,
                after=fields,
                payload={"id": self.app.id, **fields},
                reason=reason,
            )
        )

    def _update_app(self, live: LiveApp) -> None:
        objects = self.record.objects if self.record else {}
        update = _FieldUpdate.of(self.app.spec.app_fields(), live.app.spec, APP_IMAGE_FIELDS,
                                 objects, self.record)
        if update is None:
            return
        self.changes.append(
            Change(
                address=self.app_addr,
                kind="miniapp",
                action="update",
                app_id=self.app.id,
                before=update.before,
                after=update.after,
                payload=update.payload,
                fields=field_changes(update.before, update.after),
                reason=CHANGED_OUTSIDE if update.outside else None,
            )
        )

    def _deps(self, *extra: Address) -> tuple[Address, ...]:
        return ((self.app_addr,) if self.creating_app else ()) + tuple(extra)

    # attributes: the whole set when listed
    def _attributes(self) -> None:
        desired = self.app.spec.attributes
        if desired is None:
            return
        current = {} if self.live is None else dict(self.live.app.spec.attributes or {})
        for name in sorted(set(desired) | set(current)):
            address = attribute_address(self.app.id, name)
            if name not in current:
                action, before, after = "create", None, {"value": desired[name]}
            elif name not in desired:
                action, before, after = "delete", {"value": current[name]}, None
            elif current[name] != desired[name]:
                action, before, after = "update", {"value": current[name]}, {"value": desired[name]}
            else:
                continue
            self.changes.append(
                Change(
                    address=address,
                    kind="attribute",
                    action=action,  # type: ignore[arg-type]
                    app_id=self.app.id,
                    key=name,
                    before=before,
                    after=after,
                    payload={"field": name, "value": desired[name]} if name in desired else None,
                    depends_on=self._deps(),
                )
            )

    # locations: the whole set when listed, matched by name
    def _locations(self) -> None:
        desired = self.app.spec.locations
        if desired is None:
            return
        live = self.live
        current = {} if live is None else {loc.name: loc for loc in live.app.spec.locations or ()}
        ids = {} if live is None else live.location_ids
        wanted = {loc.name: loc for loc in desired}
        for name in sorted(set(wanted) | set(current)):
            address = location_address(self.app.id, name)
            location_ids = ids.get(name, ())
            if name not in current:
                loc = wanted[name]
                self._location_change("create", address, name, None, loc.geo_point, None)
                continue
            # Duplicate names on the server (made outside): keep the first, delete the rest.
            for extra_id in location_ids[1:]:
                self._location_change(
                    "delete", address.duplicate(extra_id), name, current[name].geo_point, None,
                    extra_id,
                )
            if name not in wanted:
                self._location_change(
                    "delete", address, name, current[name].geo_point, None, location_ids[0]
                )
            elif current[name].geo_point != wanted[name].geo_point:
                self._location_change(
                    "update", address, name, current[name].geo_point, wanted[name].geo_point,
                    location_ids[0],
                )

    def _location_change(
        self,
        action: str,
        address: Address,
        name: str,
        before: str | None,
        after: str | None,
        target_id: int | None,
    ) -> None:
        self.changes.append(
            Change(
                address=address,
                kind="location",
                action=action,  # type: ignore[arg-type]
                app_id=self.app.id,
                key=name,
                before=None if before is None else {"geo_point": before},
                after=None if after is None else {"geo_point": after},
                target_id=target_id,
                payload=None if after is None else {"name": name, "geo_point": after},
                fields=field_changes({"geo_point": before}, {"geo_point": after})
                if action == "update"
                else (),
                depends_on=self._deps(),
            )
        )

    # versions: matched by code; never deleted (the API cannot)
    def _versions(self) -> None:
        desired = self.app.spec.versions
        recorded = self.record.versions if self.record else {}
        if desired is not None:
            for version in desired:
                self._version(version, recorded.get(version.code))
            gone = sorted(set(recorded) - {v.code for v in desired})
            for code in gone:
                self.warnings.append(
                    PlanProblem(
                        "version is no longer in the manifest, but the API cannot delete"
                        " versions: it stays on the server (remove it in the Mini App Center"
                        f" backoffice, then `reconciler state rm {self.app.id} --version {code}`)",
                        app_id=self.app.id,
                        address=version_address(self.app.id, code),
                    )
                )

    def _version(self, version: Version, record: VersionRecord | None) -> None:
        address = version_address(self.app.id, version.code)
        if record is not None and record.create_outcome is not None and self.live is None:
            record = None  # the app is gone, and so is anything its unanswered create made
        record = self._recovered(version, record, address)
        if record is not None and record.create_outcome == EXISTS:
            return  # the server has it, the probe did not find it: an app error says so
        if record is not None and record.create_outcome == UNKNOWN:
            # Not found above the mark taken before the unanswered create: it did not land.
            # Creating again is safe: a second create of a code is refused as a duplicate,
            # and apply then finds and adopts it.
            self._create_version(
                version, address, "an earlier create got no answer, and reading the version"
                " ids above it did not find it: created again",
            )
            return
        live_version = None
        if self.live is not None and record is not None and record.id is not None:
            live_version = self.live.app.version(version.code)
        if live_version is None:
            reason = None
            if record is not None and record.id is not None and self.live is not None:
                reason = DELETED_OUTSIDE
            self._create_version(version, address, reason)
            return
        assert record is not None
        updated = self._update_version(version, live_version, record, address)
        # Compatibilities and review steps wait for the version's own update: a reviewer
        # must never review the old content.
        self._compatibility(version, record.compatibility, created=updated)
        self._status(version, record, created=updated)

    def _recovered(
        self, version: Version, record: VersionRecord | None, address: Address
    ) -> VersionRecord | None:
        """The record to plan with, once what the probe learnt is taken into account.

        A version the state did not know (a lost state) or whose create went unanswered is
        looked for by reading before the plan is made (reconciler/recover.py). Found: it is
        adopted (``Learned``), and planned from what that tells. Not found after an unanswered
        create: it did not land, and is created again. Not found although the server said the
        code exists: this app is stuck for this run (the next run reads on).
        """
        live = self.live
        if live is None:
            return record
        outcome = record.create_outcome if record is not None else None
        found = live.recovered.get(version.code)
        if found is not None:
            # Our own unanswered create, found with every field we sent: it is brand new.
            fresh = outcome == UNKNOWN and found.exact
            self.learned.append(
                Learned(self.app.id, version.code, found.id, fresh, found.probed, found.reads)
            )
            return VersionRecord.found(found.id, fresh=fresh)
        if outcome is None:
            return record
        missed = live.not_found.get(version.code) or ProbeMiss((0, 0), 0)
        first, last = missed.probed
        self.learned.append(
            Learned(self.app.id, version.code, None, False, missed.probed, missed.reads)
        )
        if outcome == EXISTS:
            self.errors.append(
                PlanProblem(
                    exists_not_found(first, last, missed.reads, self.probe_window),
                    app_id=self.app.id,
                    address=address,
                    scope="app",
                )
            )
        return record

    def _create_version(self, version: Version, address: Address, reason: str | None) -> None:
        fields = version_fields(version)
        self.changes.append(
            Change(
                address=address,
                kind="version",
                action="create",
                app_id=self.app.id,
                key=version.code,
                version_code=version.code,
                before=None,
                after={"code": version.code, **fields},
                payload={"code": version.code, **fields},
                depends_on=self._deps(),
                reason=reason,
            )
        )
        self._compatibility(version, None, created=True)
        if version.status is not None:
            self._status_steps(version, "pending", version.status, address, created=True)

    def _update_version(
        self, version: Version, live: Version, record: VersionRecord, address: Address
    ) -> bool:
        """Plan the version's field update; True when there is one."""
        update = _FieldUpdate.of(version_fields(version), live, VERSION_OBJECT_FIELDS,
                                 record.objects, record)
        if update is None:
            return False
        self.changes.append(
            Change(
                address=address,
                kind="version",
                action="update",
                app_id=self.app.id,
                key=version.code,
                version_code=version.code,
                target_id=record.id,
                before=update.before,
                after=update.after,
                payload=update.payload,
                fields=field_changes(update.before, update.after),
                depends_on=self._deps(),
                reason=CHANGED_OUTSIDE if update.outside else None,
            )
        )
        return True

    def _compatibility(
        self, version: Version, recorded: list[int] | None, *, created: bool
    ) -> None:
        """``created``: the version is created or updated by this plan (wait for it)."""
        if version.compatibility is None:
            return
        desired = set(version.compatibility)
        # Unknown recorded set (adopted version): adds are idempotent, deletes are not planned.
        current = set(recorded) if recorded is not None else set()
        version_addr = version_address(self.app.id, version.code)
        deps = self._deps(version_addr) if created else self._deps()
        for sav in sorted(desired - current):
            self.changes.append(self._compat_change("create", version, sav, deps))
        if recorded is not None:
            for sav in sorted(current - desired):
                self.changes.append(self._compat_change("delete", version, sav, deps))

    def _compat_change(
        self, action: str, version: Version, sav: int, deps: tuple[Address, ...]
    ) -> Change:
        present = action == "create"
        return Change(
            address=compatibility_address(self.app.id, version.code, sav),
            kind="compatibility",
            action=action,  # type: ignore[arg-type]
            app_id=self.app.id,
            key=str(sav),
            version_code=version.code,
            before=None if present else {"superapp_version": sav},
            after={"superapp_version": sav} if present else None,
            payload={"superapp_version": sav},
            depends_on=deps,
        )

    def _status(self, version: Version, record: VersionRecord, *, created: bool) -> None:
        if version.status is None:
            return
        current = record.status
        address = version_address(self.app.id, version.code)
        if current is None or current == UNKNOWN:
            candidates = record.status_candidates or list(STATUSES)
            if len(set(candidates)) > 1:
                self._learn_status(version, version.status, candidates, address, created)
                return
            current = candidates[0]
        self._status_steps(version, current, version.status, address, created=created)

    def _learn_status(
        self, version: Version, desired: str, candidates: Sequence[str], address: Address,
        created: bool,
    ) -> None:
        """Unknown status: one change that learns it by steps the server refuses when they do
        not apply (reconciler/review.py), then takes it to ``desired``; or, when no such step
        can tell the remaining statuses apart, an error for this version's status only."""
        if probe_step(candidates, desired) is None:
            # Only this version's status waits for a person; the rest of the app applies.
            self.errors.append(
                PlanProblem(
                    describe_unknown(candidates, desired, self.app.id, version.code),
                    app_id=self.app.id,
                    address=address,
                    scope="version",
                )
            )
            return
        compat_addrs = self._compat_addresses(version)
        ordered = sorted(set(candidates), key=STATUSES.index)
        self.changes.append(
            Change(
                address=address.child("status"),
                kind="status",
                action="update",
                app_id=self.app.id,
                key=LEARN_STATUS,
                version_code=version.code,
                before={"status": UNKNOWN, "candidates": ordered},
                after={"status": desired},
                reason="review status unknown to the state: learnt by steps the server"
                " refuses when they do not apply, never moving the version away from"
                f" '{desired}'",
                depends_on=self._deps(*((address,) if created else ()), *compat_addrs),
            )
        )

    def _compat_addresses(self, version: Version) -> tuple[Address, ...]:
        return tuple(
            c.address
            for c in self.changes
            if c.kind == "compatibility" and c.version_code == version.code
        )

    def _status_steps(
        self, version: Version, current: str, desired: str, address: Address, *, created: bool
    ) -> None:
        path = status_path(current, desired)
        if path is None:
            self.errors.append(
                PlanProblem(
                    f"review status cannot go from '{current}' to '{desired}' (the API's"
                    " review flow is pending -> waiting_for_review -> in_review -> ready or"
                    " rejected; rejected -> waiting_for_review). Publish a new version instead.",
                    app_id=self.app.id,
                    address=address,
                    scope="app",
                )
            )
            return
        compat_addrs = self._compat_addresses(version)
        previous: tuple[Address, ...] = (address,) if created else ()
        status = current
        for step, target in path:
            step_addr = status_address(self.app.id, version.code, step)
            self.changes.append(
                Change(
                    address=step_addr,
                    kind="status",
                    action="update",
                    app_id=self.app.id,
                    key=step,
                    version_code=version.code,
                    step=step,
                    before={"status": status},
                    after={"status": target},
                    depends_on=self._deps(*previous, *compat_addrs),
                )
            )
            previous = (step_addr,)
            status = target


@dataclass(frozen=True)
class _FieldUpdate:
    """The managed fields of one record that differ from live, and the PUT body to send."""

    before: dict[str, Any]
    after: dict[str, Any]
    payload: dict[str, Any]
    outside: bool  # an object field was replaced outside since the last apply

    @classmethod
    def of(
        cls,
        desired: Mapping[str, Any],
        live: Any,
        object_fields: Sequence[str],
        applied_objects: Mapping[str, ObjectRef],
        record: AppRecord | VersionRecord | None = None,
    ) -> _FieldUpdate | None:
        """``record``: what was last sent and what the server answered then; a plain field
        the server holds in its own form of what was sent is unchanged (learned
        normalization, beyond the hand-written normalizers of the documented forms)."""
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        outside = False
        sent = record.fields if record is not None else None
        answered = record.answered if record is not None else None
        for name, value in desired.items():
            live_value = getattr(live, name)
            if name in object_fields:
                same, drifted = _object_unchanged(value, live_value, applied_objects.get(name))
                outside = outside or drifted
                if same:
                    continue
            elif live_value == value or agrees(name, value, live_value, sent, answered):
                continue
            before[name] = live_value
            after[name] = value
        if not after:
            return None
        # Send every managed plain field (a PUT may replace the whole record) but object
        # fields only when they change: an upload id expires minutes after the upload.
        payload = {
            name: value
            for name, value in desired.items()
            if name not in object_fields or name in after
        }
        return cls(before, after, payload, outside)


def _object_unchanged(
    desired: str, live_value: str | None, last: ObjectRef | None
) -> tuple[bool, bool]:
    """(unchanged, changed_outside) for an upload-id field read back as a URL."""
    if last is None or last.object_id != object_key(desired):
        return False, False  # never applied, or the manifest points at new content
    if last.url is not None and live_value != last.url:
        return False, True  # same manifest value, but someone replaced the file outside
    return True, False

