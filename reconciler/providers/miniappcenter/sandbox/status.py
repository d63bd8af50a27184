"""The version review state machine, as data.

The real server's status codes are not published; these names are the sandbox's own and are
stored verbatim in SQLite, so tests can assert them through ``SandboxStore.version_status``.
"""

from __future__ import annotations

from typing import Final

PENDING: Final = "pending"
WAITING_FOR_REVIEW: Final = "waiting_for_review"
IN_REVIEW: Final = "in_review"
REJECTED: Final = "rejected"
READY: Final = "ready"

STATUSES: Final = (PENDING, WAITING_FOR_REVIEW, IN_REVIEW, REJECTED, READY)
# Each step is also the last segment of its URL: POST .../versions/{id}/{step}.
STEPS: Final = ("send_to_review", "in_review", "rejected", "ready")

TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (PENDING, "send_to_review"): WAITING_FOR_REVIEW,
    (REJECTED, "send_to_review"): WAITING_FOR_REVIEW,
    (WAITING_FOR_REVIEW, "in_review"): IN_REVIEW,
    (IN_REVIEW, "ready"): READY,
    (IN_REVIEW, "rejected"): REJECTED,
}

# Each step has one target status: where it takes a version on a server that does not
# enforce the flow (the `review-flow` assumption dropped).
STEP_TARGETS: Final[dict[str, str]] = {step: target for (_, step), target in TRANSITIONS.items()}


def next_status(current: str, step: str) -> str | None:
    """The status after ``step``, or None when the step is not allowed from ``current``."""
    return TRANSITIONS.get((current, step))


def allowed_steps(current: str) -> list[str]:
    return [step for (status, step) in TRANSITIONS if status == current]
