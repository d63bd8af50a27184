"""Drift: classify every difference between live, the manifests and the last-applied state.

Pure: it reads a Plan (desired vs live, already computed by the diff) and the State, and says
for each difference *why* it exists:

- ``changed_outside``: live differs from what was last applied, the manifest did not change
  (someone renamed the app in the backoffice);
- ``pending``: the manifest changed and was not applied yet;
- ``missing``: something applied before is gone from the server (deleted outside, itself or
  with its app);
- ``unmanaged``: a live attribute or location of a managed app that no manifest declares.

It never writes to the API or to the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.drift import DriftItem, DriftKind, DriftReport
from reconciler.engine.plan import Change, Plan
from reconciler.providers.miniappcenter.addresses import version_address
from reconciler.providers.miniappcenter.diff import DELETED_OUTSIDE
from reconciler.providers.miniappcenter.model import object_key
from reconciler.providers.miniappcenter.vocabulary import PROVIDER
from reconciler.state import AppRecord, State, VersionRecord


@dataclass
class _Classifier:
    state: State
    # Apps deleted outside: whatever the state knew of them went with them, so recreating
    # it is "missing", not "pending" (only what the manifest added since is pending).
    gone: frozenset[str] = frozenset()
    items: list[DriftItem] = field(default_factory=list)

    def record(self, app_id: str) -> AppRecord | None:
        return self.state.app(app_id)

    def add(self, kind: DriftKind, change: Change, **kw: Any) -> None:
        self.items.append(
            DriftItem(
                kind=kind,
                address=change.address,
                app_id=change.app_id,
                resource=change.kind,
                **kw,
            )
        )

    def change(self, change: Change) -> None:
        # A closed table by kind (never a name looked up from plan data).
        handlers = {
            "miniapp": self._miniapp,
            "attribute": self._attribute,
            "location": self._location,
            "version": self._version,
            "compatibility": self._compatibility,
            "status": self._status,
        }
        handlers[change.kind](change, self.record(change.app_id))

    # --- per resource ------------------------------------------------------------------

    def _miniapp(self, change: Change, record: AppRecord | None) -> None:
        if change.action == "create":
            kind: DriftKind = "missing" if change.reason == DELETED_OUTSIDE else "pending"
            self.add(kind, change, expected=change.after, live=None,
                     last_applied=_app_last(record))
            return
        if change.action == "delete":
            self.add("pending", change, expected=None, live=change.before,
                     last_applied=_app_last(record))
            return
        for name, expected in (change.after or {}).items():
            live = (change.before or {}).get(name)
            # images compare upload ids: same id applied, different URL live = outside
            last = _last_field(record, name)
            kind = "changed_outside" if last == _applied_form(expected) else "pending"
            self.add(kind, change, field=name, expected=expected, live=live, last_applied=last)

    def _attribute(self, change: Change, record: AppRecord | None) -> None:
        applied = (record.attributes or {}) if record else {}
        key = change.key or ""
        last = applied.get(key)
        expected = (change.after or {}).get("value")
        live = (change.before or {}).get("value")
        if change.action == "create":
            kind: DriftKind = "missing" if key in applied else "pending"
        elif change.action == "delete":
            kind = "pending" if key in applied else "unmanaged"
        else:
            kind = "changed_outside" if last == expected else "pending"
        self.add(kind, change, field="value", expected=expected, live=live, last_applied=last)

    def _location(self, change: Change, record: AppRecord | None) -> None:
        applied = (record.locations or {}) if record else {}
        known = applied.get(change.key or "")
        last = known.geo_point if known else None
        expected = (change.after or {}).get("geo_point")
        live = (change.before or {}).get("geo_point")
        if change.action == "create":
            kind: DriftKind = "missing" if known else "pending"
        elif change.action == "delete":
            applied_here = known is not None and known.id == change.target_id
            kind = "pending" if applied_here else "unmanaged"
        else:
            kind = "changed_outside" if last == expected else "pending"
        self.add(kind, change, field="geo_point", expected=expected, live=live, last_applied=last)

    def _applied_version(self, change: Change, record: AppRecord | None) -> VersionRecord | None:
        """The version as last applied, when its app was deleted outside since."""
        if change.app_id not in self.gone or record is None:
            return None
        version = record.versions.get(change.version_code or "")
        return version if version is not None and version.id is not None else None

    def _version(self, change: Change, record: AppRecord | None) -> None:
        version = record.versions.get(change.version_code or "") if record else None
        if change.action == "create":
            gone = change.reason == DELETED_OUTSIDE or self._applied_version(change, record)
            kind: DriftKind = "missing" if gone else "pending"
            self.add(kind, change, expected=change.after, live=None, last_applied=None)
            return
        for name, expected in (change.after or {}).items():
            live = (change.before or {}).get(name)
            last: Any = None
            if version is not None:
                ref = version.objects.get(name)
                last = ref.object_id if ref else version.fields.get(name)
            kind = "changed_outside" if last == _applied_form(expected) else "pending"
            self.add(kind, change, field=name, expected=expected, live=live, last_applied=last)

    def _compatibility(self, change: Change, record: AppRecord | None) -> None:
        # Not readable from the API: only the manifest can differ from the state, unless the
        # app was deleted outside with the compatibilities applied to its versions.
        version = self._applied_version(change, record)
        wanted = (change.after or {}).get("superapp_version")
        applied = version is not None and wanted in (version.compatibility or ())
        kind: DriftKind = "missing" if change.action == "create" and applied else "pending"
        self.add(kind, change, expected=change.after, live=None, last_applied=change.before)

    def _status(self, change: Change, record: AppRecord | None) -> None:
        # A version gone with its app lost the status applied to it: stepping it again is
        # repairing, not a manifest change.
        version = self._applied_version(change, record)
        self.add(
            "missing" if version is not None and version.status is not None else "pending",
            change,
            field="status",
            expected=(change.after or {}).get("status"),
            live=None,  # the API does not return it
            last_applied=(change.before or {}).get("status"),
        )


def _app_last(record: AppRecord | None) -> dict[str, Any] | None:
    return dict(record.fields) if record else None


def _applied_form(value: Any) -> Any:
    """A manifest value as the state records it (a file is remembered by its digest)."""
    return object_key(value) if isinstance(value, str) else value


def _last_field(record: AppRecord | None, name: str) -> Any:
    if record is None:
        return None
    if name in record.objects:
        return record.objects[name].object_id
    return record.fields.get(name)


def classify(plan: Plan, state: State) -> DriftReport:
    """Every planned change, explained against the last-applied state."""
    gone = frozenset(
        c.app_id
        for c in plan.changes
        if c.kind == "miniapp" and c.action == "create" and c.reason == DELETED_OUTSIDE
    )
    classifier = _Classifier(state, gone)
    for change in plan.changes:
        classifier.change(change)
    # Status steps of one version (or the change that learns it) are one difference.
    version_of = {
        c.address: (c.app_id, c.version_code or "") for c in plan.changes if c.kind == "status"
    }
    finals = {key: None for key in version_of.values()}
    for change in plan.changes:
        if change.kind == "status":
            finals[version_of[change.address]] = (change.after or {}).get("status")
    items: list[DriftItem] = []
    seen_status: set[tuple[str, str]] = set()
    for item in classifier.items:
        if item.resource == "status" and item.address in version_of:
            key = version_of[item.address]
            if key in seen_status:
                continue
            seen_status.add(key)
            address = version_address(*key)
            final = finals[key]
            item = DriftItem(
                kind=item.kind,
                address=address.child("status"),
                app_id=item.app_id,
                resource="status",
                field="status",
                expected=final,
                live=None,
                last_applied=item.last_applied,
            )
        items.append(item)
    return DriftReport(
        endpoint=plan.endpoints[PROVIDER],
        items=tuple(items),
        warnings=plan.warnings,
        errors=plan.errors,
        apps_checked=len(plan.apps),
    )

