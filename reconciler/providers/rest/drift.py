"""Drift of REST objects: why each planned difference exists, from the plan and the section.

- an update of a field the manifest still says as last sent, whose live value is no longer
  what the server answered then: ``changed_outside`` (per field);
- an update of fields the manifest changed (or of an adopted object): ``pending``;
- a create of a recorded object: ``missing``; of an unrecorded one: ``pending``;
- a delete (``ensure: absent`` or ``--prune``): ``pending``.
"""

from __future__ import annotations

from reconciler.engine.drift import DriftItem, DriftKind, DriftReport
from reconciler.engine.plan import Plan
from reconciler.providers.rest.records import Section, changed_outside, read_records
from reconciler.providers.rest.vocabulary import PROVIDER, ROOT_KIND


def classify(plan: Plan, section: Section) -> DriftReport:
    records = read_records(section)
    items: list[DriftItem] = []
    for change in plan.changes:
        if change.provider != PROVIDER:
            continue
        record = records.get(change.app_id)
        if change.action == "create":
            kind: DriftKind = "missing" if record is not None else "pending"
            items.append(
                DriftItem(kind, change.address, change.app_id, ROOT_KIND, expected=change.after)
            )
        elif change.action == "delete":
            items.append(
                DriftItem(
                    "pending",
                    change.address,
                    change.app_id,
                    ROOT_KIND,
                    live=change.before,
                    last_applied=record.fields if record else None,
                )
            )
        else:
            for item in change.fields:
                applied = record.fields.get(item.path) if record else None
                outside = changed_outside(record, item.path, item.after, item.before)
                items.append(
                    DriftItem(
                        "changed_outside" if outside else "pending",
                        change.address,
                        change.app_id,
                        ROOT_KIND,
                        field=item.path,
                        expected=item.after,
                        live=item.before,
                        last_applied=applied,
                    )
                )
    return DriftReport(
        endpoint=plan.endpoints.get(PROVIDER, ""),
        items=tuple(items),
        warnings=plan.warnings,
        errors=plan.errors,
        apps_checked=len(plan.apps),
    )
