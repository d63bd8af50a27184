"""The Mini App Center's plan vocabulary: its resource kinds, their order, its writes, the
review state machine, and the facts its plans learn by reading."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from reconciler.address import Address

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan

PROVIDER = "miniappcenter"  # the provider's name in plans and state
ROOT_KIND = "miniapp"
# Root kind of this provider's addresses (see reconciler.address).
ROOT_KINDS: Mapping[str, str] = {ROOT_KIND: PROVIDER}
Kind = Literal["miniapp", "attribute", "location", "version", "compatibility", "status"]

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

# Version ids read, at most, by one probe in one run (`--probe-window N`): see recover.py.
# Defined in reconciler.limits, which `--help` imports without this module (D45).
from reconciler.limits import DEFAULT_PROBE_WINDOW as DEFAULT_PROBE_WINDOW  # noqa: E402


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

# The closed vocabulary of writes: (kind, action, step). Apply maps each to exactly one
# client operation (``apply.DISPATCH``); a saved plan naming anything else is refused before
# any write. Versions are never deleted (the API cannot).
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
    def address(self) -> Address:
        app = Address(PROVIDER, ROOT_KIND, self.app_id)
        return app if self.code is None else app.child("version", self.code)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": str(self.address), "app_id": self.app_id}
        if self.code is not None:
            out.update(code=self.code, version_id=self.version_id, fresh=self.fresh)
        if self.probed is not None:
            out.update(probed=list(self.probed), reads=self.reads)
        return out

    def describe(self) -> str:
        """``adopt ...``: on the server, unknown to the state (nothing is written)."""
        if self.code is None:
            return "adopt (exists on the server, unknown to the state)"
        how = "our unanswered create" if self.fresh else "exists on the server"
        return (
            f"adopt id {self.version_id} ({how}; found by reading {self.reads} version id(s))"
        )

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


def learned_of(plan: Plan) -> tuple[Learned, ...]:
    """This provider's facts in ``plan`` (a plan may carry other providers' too)."""
    return tuple(item for item in plan.learned if isinstance(item, Learned))
