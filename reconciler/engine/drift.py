"""A drift report: every difference between live, the manifests and the last-applied state,
and why it exists. Provider-neutral data; each provider classifies its own differences.

- ``changed_outside``: live differs from what was last applied, the manifest did not change;
- ``pending``: the manifest changed and was not applied yet;
- ``missing``: something applied before is gone from the server;
- ``unmanaged``: something live that no manifest declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.address import Address
from reconciler.engine.plan import PlanProblem, StuckProvider

DriftKind = Literal["changed_outside", "pending", "missing", "unmanaged"]
KINDS: tuple[DriftKind, ...] = ("changed_outside", "missing", "unmanaged", "pending")
KIND_LABELS: Mapping[str, str] = {
    "changed_outside": "changed outside",
    "missing": "missing",
    "unmanaged": "unmanaged",
    "pending": "pending",
}


@dataclass(frozen=True)
class DriftItem:
    kind: DriftKind
    address: Address
    app_id: str
    resource: str
    field: str | None = None
    expected: Any = None  # what the manifests say
    live: Any = None  # what the server has
    last_applied: Any = None  # what this tool applied last (None when never)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "address": str(self.address),
            "app_id": self.app_id,
            "resource": self.resource,
        }
        if self.field is not None:
            out["field"] = self.field
        out.update(expected=self.expected, live=self.live, last_applied=self.last_applied)
        return out


@dataclass(frozen=True)
class DriftReport:
    endpoint: str
    items: tuple[DriftItem, ...]
    warnings: tuple[PlanProblem, ...] = ()
    errors: tuple[PlanProblem, ...] = ()
    apps_checked: int = 0
    # Providers whose endpoint could not be read: nothing of theirs was checked.
    stuck_providers: tuple[StuckProvider, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.items

    @property
    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {kind: 0 for kind in KINDS}
        for item in self.items:
            counts[item.kind] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "endpoint": self.endpoint,
            "in_sync": self.in_sync,
            "apps_checked": self.apps_checked,
            "summary": self.summary,
            "items": [item.as_dict() for item in self.items],
            "warnings": [str(w) for w in self.warnings],
            "errors": [str(e) for e in self.errors],
            # Only when there is one: a report with every provider read stays as it was.
            **(
                {"stuck_providers": [item.as_dict() for item in self.stuck_providers]}
                if self.stuck_providers
                else {}
            ),
        }
