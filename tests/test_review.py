"""Learning an unknown review status by steps the server refuses (reconciler/review.py).

Pure rules first, then the rule proven against the sandbox over all 5 x 5 (current, desired)
pairs: the version ends at its desired status whenever refused steps can tell, is never moved
away from its desired status, and otherwise the plan names the remaining statuses for that
version's app only.
"""

from __future__ import annotations

import itertools

import pytest

from reconciler.providers.miniappcenter.model import MiniApp, MiniAppSpec
from reconciler.providers.miniappcenter.review import (
    STATUSES,
    after_step,
    distance,
    probe_step,
    status_path,
    undecidable,
)
from reconciler.providers.miniappcenter.vocabulary import LEARN_STATUS
from reconciler.state import UNKNOWN, AppRecord, VersionRecord
from tests.fixtures_pipeline import Mac

APP = "com.test.review"
FIELDS = {"platform_id": "iOS", "main_name": "start", "main_type": "Panel"}

# What refused steps can learn from "no idea" (all five), for each (current, desired):
# the status the version ends in, or the statuses that stay possible (undecidable).
EXPECTED: dict[tuple[str, str], str | frozenset[str]] = {}
for _current in STATUSES:
    EXPECTED[(_current, "ready")] = "ready"
    EXPECTED[(_current, "pending")] = frozenset(STATUSES)  # every step could leave pending
for _current in ("in_review", "waiting_for_review"):
    EXPECTED[(_current, "rejected")] = "rejected"
for _current in ("pending", "rejected", "ready"):
    EXPECTED[(_current, "rejected")] = frozenset({"pending", "rejected", "ready"})
for _current in ("waiting_for_review", "pending", "rejected"):
    EXPECTED[(_current, "in_review")] = "in_review"
for _current in ("in_review", "ready"):
    EXPECTED[(_current, "in_review")] = frozenset({"in_review", "ready"})
for _current in ("pending", "rejected", "in_review"):
    EXPECTED[(_current, "waiting_for_review")] = "waiting_for_review"
for _current in ("waiting_for_review", "ready"):
    EXPECTED[(_current, "waiting_for_review")] = frozenset({"waiting_for_review", "ready"})
assert len(EXPECTED) == 25


# --- pure rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("desired", STATUSES)
def test_a_probe_step_never_moves_a_version_away_from_its_desired_status(desired: str) -> None:
    # every subset of candidates: whatever step is chosen, from each candidate that accepts
    # it the version gets exactly one step closer to `desired`
    for size in range(1, len(STATUSES) + 1):
        for candidates in itertools.combinations(STATUSES, size):
            step = probe_step(candidates, desired)
            if step is None:
                continue
            for status in candidates:
                moved = after_step({status}, step, "accepted")
                for target in moved:
                    before, after = distance(status, desired), distance(target, desired)
                    assert before is not None and after == before - 1, (candidates, step)
                    assert status != desired  # never a step from where it should stay


def test_after_step_keeps_both_outcomes_when_the_answer_is_lost() -> None:
    pool = {"pending", "in_review"}
    assert after_step(pool, "send_to_review", "accepted") == {"waiting_for_review"}
    assert after_step(pool, "send_to_review", "refused") == {"in_review"}
    assert after_step(pool, "send_to_review", "unknown") == {
        "pending", "in_review", "waiting_for_review"
    }


def test_undecidable_sets() -> None:
    assert undecidable(STATUSES, "pending")
    assert not undecidable(STATUSES, "ready")
    assert undecidable({"in_review", "ready"}, "in_review")
    assert not undecidable({"ready"}, "pending")  # one candidate: known (if unreachable)


def test_status_path_is_the_review_flow() -> None:
    assert status_path("rejected", "ready") == [
        ("send_to_review", "waiting_for_review"), ("in_review", "in_review"), ("ready", "ready")
    ]
    assert status_path("ready", "pending") is None


# --- against the sandbox: all 25 pairs -----------------------------------------------------


def _app(status: str) -> MiniApp:
    return MiniApp(
        id=APP,
        spec=MiniAppSpec(
            name="Review", superapp_id="com.test.super", type="Web",
            versions=[{"code": "1.0", **FIELDS, "status": status}],
        ),
    )


@pytest.mark.parametrize(("current", "desired"), sorted(EXPECTED))
async def test_unknown_status_is_learnt_against_the_sandbox(
    mac: Mac, current: str, desired: str
) -> None:
    mac.sandbox.create_miniapp(
        {"id": APP, "name": "Review", "superapp_id": "com.test.super", "type": "Web"}
    )
    version_id, _ = mac.sandbox.create_version(APP, {"code": "1.0", **FIELDS})
    for step, _target in status_path("pending", current) or []:
        mac.sandbox.step_version(APP, version_id, step)
    assert mac.sandbox.version_status(APP, version_id) == current
    # The state knows the version but not its status (a crash, or adopted after a loss).
    store = mac.store
    state = store.read()
    state.apps[APP] = AppRecord(
        versions={"1.0": VersionRecord(id=version_id, status=UNKNOWN)}
    )
    store.save(state)

    expected = EXPECTED[(current, desired)]
    plan, result, _ = await mac.apply([_app(desired)])
    live_status = mac.sandbox.version_status(APP, version_id)
    if current == desired:
        assert live_status == desired  # never moved away, whatever else happens
    if isinstance(expected, str):
        assert result.ok, [(r.change.address, r.message) for r in result.results]
        assert live_status == expected
        assert mac.state().apps[APP].versions["1.0"].status == expected
        after = await mac.plan([_app(desired)])
        assert after.changes == () and after.errors == ()
        return
    # Undecidable: nothing moved, and the plan names the remaining statuses, for this app only.
    assert live_status == current
    follow_up = await mac.plan([_app(desired)])
    (error,) = follow_up.errors
    assert error.scope == "version" and error.app_id == APP
    named = error.message.split("one of ")[1].split(", and no step")[0].split(", ")
    assert set(named) == expected and current in named
    assert f"state set-status {APP} 1.0 STATUS" in error.message
    # and the run before already went as far as it could: the change that learns was planned
    # only where some step could help
    learned = [c for c in plan.changes if c.key == LEARN_STATUS]
    assert bool(learned) == (expected != frozenset(STATUSES))
