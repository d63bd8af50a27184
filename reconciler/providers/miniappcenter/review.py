"""The review flow, and how an unknown review status is learnt without a human. Pure.

The API never returns a version's review status, but it enforces the flow: a step sent from
the wrong status is refused with no effect. So an unknown status (a lost state, a crash or an
ambiguous answer mid-step) is narrowed by sending steps and watching which the server refuses,
under one rule: a step is sent only if, from every status the version may be in where the
server would accept it, it moves the version one step closer to its desired status. A version
already where the manifest wants it is therefore never moved, and nothing is ever moved away.
Where no such step tells the remaining statuses apart, the status stays unknown and the plan
says which statuses remain and why (see README "When things go wrong").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable

from reconciler.providers.miniappcenter.vocabulary import STATUS_STEPS

STATUSES: tuple[str, ...] = ("pending", "waiting_for_review", "in_review", "rejected", "ready")
STEPS: tuple[str, ...] = ("send_to_review", "in_review", "ready", "rejected")


def status_path(current: str, desired: str) -> list[tuple[str, str]] | None:
    """Shortest list of (step, resulting status) from ``current`` to ``desired``; None when
    the API's review flow cannot get there (ready -> pending, for instance)."""
    if current == desired:
        return []
    queue: deque[tuple[str, list[tuple[str, str]]]] = deque([(current, [])])
    seen = {current}
    while queue:
        status, path = queue.popleft()
        for (source, step), target in STATUS_STEPS.items():
            if source != status or target in seen:
                continue
            next_path = [*path, (step, target)]
            if target == desired:
                return next_path
            seen.add(target)
            queue.append((target, next_path))
    return None


def distance(current: str, desired: str) -> int | None:
    path = status_path(current, desired)
    return None if path is None else len(path)


def step_target(status: str, step: str) -> str | None:
    """Where ``step`` takes a version in ``status``, or None when the server refuses it."""
    return STATUS_STEPS.get((status, step))


def probe_step(candidates: Collection[str], desired: str) -> str | None:
    """The next step to send to learn an unknown status, or None when no step is both safe
    (accepted only where it brings the version one step closer to ``desired``) and useful
    (accepted from at least one candidate). Among several, the one whose accepting statuses
    are nearest to ``desired`` goes first: it needs no further step when accepted."""
    best: tuple[int, str] | None = None
    for step in STEPS:
        sources = [c for c in candidates if step_target(c, step) is not None]
        if not sources:
            continue
        if not all(_closer(c, step, desired) for c in sources):
            continue
        nearest = min(distance(c, desired) or 0 for c in sources)
        if best is None or nearest < best[0]:
            best = (nearest, step)
    return best[1] if best else None


def _closer(status: str, step: str, desired: str) -> bool:
    target = step_target(status, step)
    before, after = distance(status, desired), None if target is None else distance(target, desired)
    return before is not None and after is not None and after == before - 1


def after_step(candidates: Iterable[str], step: str, outcome: str) -> frozenset[str]:
    """The statuses a version may be in after ``step`` was ``accepted``, ``refused`` (by the
    review flow) or ``unknown`` (no answer: either)."""
    pool = frozenset(candidates)
    moved = frozenset(t for c in pool if (t := step_target(c, step)) is not None)
    stayed = frozenset(c for c in pool if step_target(c, step) is None)
    if outcome == "accepted":
        return moved
    if outcome == "refused":
        return stayed
    return pool | moved


def undecidable(candidates: Collection[str], desired: str) -> bool:
    """True when several statuses remain and no safe step can tell them apart."""
    return len(set(candidates)) > 1 and probe_step(candidates, desired) is None


def describe_unknown(candidates: Collection[str], desired: str, app_id: str, code: str) -> str:
    """Why a status cannot be learnt by reading or by refused steps: which statuses remain,
    and the one command a person runs after looking (the only fact no read can give)."""
    remaining = ", ".join(sorted(set(candidates), key=STATUSES.index))
    return (
        f"review status unknown: it is one of {remaining}, and no step can tell these apart"
        f" without possibly moving the version away from '{desired}' (the API never returns"
        " review status). Look it up in the Mini App Center, then record it with `reconciler"
        f" state set-status {app_id} {code} STATUS`"
    )
