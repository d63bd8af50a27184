"""The fleet's apply result: every provider's change results, merged by the workflows from
each session's events, and what the run could not do (stuck keys, unresolved steps, stuck
providers). Neutral: nothing here is one provider's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.engine.plan import Change

Outcome = Literal["applied", "failed", "skipped"]


@dataclass(frozen=True)
class ChangeResult:
    change: Change
    outcome: Outcome
    message: str | None = None
    stuck: bool = False  # skipped because its whole app is stuck (the plan says why)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.change.provider,
            "address": str(self.change.address),
            "kind": self.change.kind,  # the plan's word for it (was "resource")
            "action": self.change.action,
            "app_id": self.change.app_id,
            "outcome": self.outcome,
        }
        if self.message:
            out["message"] = self.message
        if self.stuck:
            out["stuck"] = True
        return out


@dataclass
class ApplyResult:
    results: list[ChangeResult] = field(default_factory=list)
    interrupted: bool = False
    # Apps skipped whole because the plan could not be made for them (app -> why).
    stuck: dict[str, str] = field(default_factory=dict)
    # What the plan could not settle and apply did not touch (a review status no read or
    # refused step can tell): everything else was applied.
    unresolved: list[str] = field(default_factory=list)
    adopted: int = 0  # apps and versions recorded from what was learnt by reading
    probe_reads: int = 0  # version reads spent looking for unknown versions during apply
    # Providers whose endpoint could not be read when planning (provider -> why): none of
    # their resources was applied; the other providers' were.
    stuck_providers: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def applied(self) -> int:
        return self.count("applied")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def ok(self) -> bool:
        return (
            self.failed == 0
            and self.skipped == 0
            and not self.interrupted
            and not self.stuck
            and not self.unresolved
            and not self.stuck_providers
        )

    def as_dict(self) -> dict[str, Any]:
        # Only when there is one: a run with every provider read keeps its document as it was.
        stuck = (
            {
                "stuck_providers": [
                    {"provider": name, "reason": why} for name, why in self.stuck_providers.items()
                ]
            }
            if self.stuck_providers
            else {}
        )
        return {
            **stuck,
            "summary": {
                "applied": self.applied,
                "failed": self.failed,
                "skipped": self.skipped,
                "adopted": self.adopted,
                "stuck_apps": len(self.stuck),
                "unresolved": len(self.unresolved),
                "probe_reads": self.probe_reads,
            },
            "interrupted": self.interrupted,
            "unresolved": list(self.unresolved),
            "stuck_apps": [
                {"app_id": app_id, "reason": reason} for app_id, reason in self.stuck.items()
            ],
            "results": [r.as_dict() for r in self.results],
        }
