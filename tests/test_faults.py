"""Faults at scale: a read that fails after the retries stops only its own app; what a run
learnt by reading is kept; a damaged review status in the state is named as damage."""

from __future__ import annotations

import pytest

from reconciler.errors import ApiError
from tests.fixtures_pipeline import Fault, Mac
from tests.test_apply import APP, OTHER, app

pytestmark = pytest.mark.asyncio


async def test_a_failed_app_read_makes_only_that_app_stuck(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    # Every read of OTHER fails, whatever the retries: 503 each time.
    mac.faults.append(Fault("GET", rf"/miniapps/{OTHER}$", "500", times=1000))
    desired = [app(name="Renamed"), app(OTHER, name="Tea!", icon=None)]
    plan, result, _ = await mac.apply(desired)
    stuck = plan.stuck_apps
    assert list(stuck) == [OTHER]
    assert "could not be read" in stuck[OTHER][0].message
    assert "HTTP 500" in stuck[OTHER][0].message
    assert [c.app_id for c in plan.changes] == [APP]  # nothing planned from an unread app
    assert result.stuck == {OTHER: stuck[OTHER][0].message}
    assert mac.sandbox.get_miniapp(APP)["name"] == "Renamed"
    assert mac.sandbox.get_miniapp(OTHER)["name"] == "Tea"


async def test_a_failed_version_read_makes_only_that_app_stuck(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    mac.faults.append(Fault("GET", rf"/miniapps/{OTHER}/versions/", "500", times=1000))
    plan = await mac.plan([app(name="Renamed"), app(OTHER, name="Tea!", icon=None)])
    assert list(plan.stuck_apps) == [OTHER]
    assert {c.app_id for c in plan.changes} == {APP}


async def test_when_every_read_fails_the_run_fails(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    mac.faults.append(Fault("GET", r"/miniapps/[^/]+$", "500", times=1000))
    with pytest.raises(ApiError):
        await mac.plan([app(), app(OTHER, name="Tea", icon=None)])


async def test_a_refused_read_still_fails_the_run(mac: Mac) -> None:
    await mac.apply([app(), app(OTHER, name="Tea", icon=None)])
    mac.faults.append(Fault("GET", rf"/miniapps/{OTHER}$", "400", times=1000))
    with pytest.raises(ApiError):
        await mac.plan([app(), app(OTHER, name="Tea", icon=None)])
