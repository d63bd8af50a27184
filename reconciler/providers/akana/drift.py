"""Drift of Akana apps: why each difference between live, the manifests and the last-applied
state (the Akana section) exists. Pure: it reads a plan and the section."""

from __future__ import annotations

from reconciler.engine.drift import DriftItem, DriftKind, DriftReport
from reconciler.engine.plan import Change, Plan
from reconciler.providers.akana.diff import UNMANAGED
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.vocabulary import PROVIDER, ROOT_KIND


def classify(plan: Plan, section: AkanaSection) -> DriftReport:
    """Every Akana change of ``plan`` classified (other providers' changes are ignored):

    - an update's field is ``changed_outside`` when the manifest still says what was last
      applied (so live moved), else ``pending``;
    - a create is ``missing`` when the state records it (it was deleted outside), else
      ``pending``; a version delete is ``pending`` (the manifest dropped it);
    - an app delete (``ensure: absent``, ``--prune``) is ``pending``;
    - an app refused as not managed is ``unmanaged``.
    """
    items: list[DriftItem] = []
    for change in plan.changes:
        if change.provider == PROVIDER:
            items.extend(_items(change, section))
    for error in plan.errors:
        if error.message == UNMANAGED and error.address is not None and error.app_id:
            items.append(DriftItem("unmanaged", error.address, error.app_id, ROOT_KIND))
    errors = tuple(
        e for e in plan.errors if e.address is None or e.address.provider == PROVIDER
    )
    return DriftReport(
        endpoint=plan.endpoints.get(PROVIDER, ""),
        items=tuple(items),
        warnings=plan.warnings,
        errors=tuple(e for e in errors if e.message != UNMANAGED),
        apps_checked=len(plan.apps),
    )


def _items(change: Change, section: AkanaSection) -> list[DriftItem]:
    record = section.apps.get(change.app_id)
    last: dict[str, object] | None = None
    if record is not None:
        if change.kind == ROOT_KIND:
            last = record.fields
        elif change.key in record.versions:
            last = record.versions[change.key].fields

    def item(kind: DriftKind, field: str | None = None, **values: object) -> DriftItem:
        return DriftItem(kind, change.address, change.app_id, change.kind, field, **values)

    if change.action == "create":
        return [item("missing" if last is not None else "pending", expected=change.after)]
    if change.action == "delete":
        return [item("pending", live=change.before)]
    out: list[DriftItem] = []
    for fc in change.fields:
        applied = None if last is None else last.get(fc.path)
        moved = last is not None and fc.path in last and applied == fc.after
        out.append(
            item("changed_outside" if moved else "pending", fc.path, expected=fc.after,
                 live=fc.before, last_applied=applied)
        )
    return out
