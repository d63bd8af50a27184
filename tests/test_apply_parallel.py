"""The writes of one app run concurrently within `--parallelism`, ordered where they must be
(issue 14), and each write journals only the resource it changed. Concurrency is counted by
a transport that sees every request start and end (never timed)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler.engine.plan import Plan
from reconciler.providers.miniappcenter.apply import ApplyOptions, ApplyResult, Executor
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient, RetryPolicy
from reconciler.providers.miniappcenter.model import MiniApp
from reconciler.providers.miniappcenter.sandbox import SandboxConfig, create_app
from reconciler.providers.miniappcenter.schedule import critical_path, write_waits
from reconciler.state import FileStateStore
from tests.fixtures_pipeline import IDENTITY, TOKEN, Fault, FaultTransport, Mac, instant_sleep
from tests.test_apply import APP, app

VERSION = {
    "code": "1.0.0", "platform_id": "iOS", "main_name": "s", "main_type": "Panel",
    "compatibility": [1, 2, 3], "status": "ready",
}


@dataclass
class Tracing(httpx.AsyncBaseTransport):
    """Every request's start and end, in order, and the most writes ever in flight at once.
    It yields to the loop before passing a request on (the in-process sandbox never does),
    so that whatever may run alongside a write gets to start."""

    inner: httpx.AsyncBaseTransport
    events: list[tuple[str, str, str]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        write = request.method != "GET"
        self.events.append(("start", request.method, request.url.path))
        if write:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            return await self.inner.handle_async_request(request)
        finally:
            if write:
                self.in_flight -= 1
            self.events.append(("end", request.method, request.url.path))

    def order(self, event: str, method: str, path_end: str) -> list[int]:
        return [
            i for i, (e, m, p) in enumerate(self.events)
            if e == event and m == method and p.endswith(path_end)
        ]


async def execute(
    mac: Mac, desired: list[MiniApp], *, parallelism: int, save: bool = True
) -> tuple[Plan, ApplyResult, Tracing]:
    """Plan, then execute through a tracing transport (the plan's reads are not traced)."""
    plan = await mac.plan(desired)
    store = FileStateStore(mac.state_path)
    state = store.load(IDENTITY)
    tracing = Tracing(FaultTransport(
        httpx.ASGITransport(app=create_app(SandboxConfig(db_path=mac.db, token=TOKEN))),
        mac.faults,
    ))
    client = MiniAppCenterClient(
        Endpoint(base_url="http://127.0.0.1/api"), TOKEN, transport=tracing,
        retry=RetryPolicy(sleep=instant_sleep, jitter=False),
    )
    async with client:
        executor = Executor(
            client, store, state, plan, options=ApplyOptions(parallelism=parallelism)
        )
        result = await executor.run()
    if save:
        store.save(state)
    else:
        store._close_journal()
    return plan, result, tracing


def wide_app(count: int, **spec: Any) -> MiniApp:
    base: dict[str, Any] = {
        "attributes": {f"ATTR{i:03}": f"value {i}" for i in range(count)},
        "icon": None,
        "versions": [VERSION],
    }
    return app(**(base | spec))


async def test_independent_writes_of_one_app_share_the_parallel_slots(mac: Mac) -> None:
    plan, result, tracing = await execute(mac, [wide_app(20)], parallelism=4)
    assert result.ok and len(plan.changes) > 20
    # one app, four slots: four of its writes were in flight together, never more
    assert tracing.most_in_flight == 4
    assert (await mac.plan([wide_app(20)])).changes == ()


async def test_one_slot_still_runs_one_write_at_a_time(mac: Mac) -> None:
    _, result, tracing = await execute(mac, [wide_app(8)], parallelism=1)
    assert result.ok and tracing.most_in_flight == 1


async def test_an_apps_writes_wait_for_what_they_need(mac: Mac) -> None:
    _, result, tracing = await execute(mac, [wide_app(10)], parallelism=8)
    assert result.ok and tracing.most_in_flight > 1
    created = tracing.order("end", "POST", "/miniapps")
    assert len(created) == 1
    children = [
        i for i, (event, method, path) in enumerate(tracing.events)
        if event == "start" and method != "GET" and f"/miniapps/{APP}/" in path
    ]
    assert children and min(children) > created[0]  # the app exists before its parts
    version_made = tracing.order("end", "POST", "/versions")
    compat_started = tracing.order("start", "POST", "/compatibility")
    assert len(compat_started) == 3 and min(compat_started) > version_made[0]
    compat_ended = tracing.order("end", "POST", "/compatibility")
    steps = [
        (tracing.order("start", "POST", f"/{step}"), tracing.order("end", "POST", f"/{step}"))
        for step in ("send_to_review", "in_review", "ready")
    ]
    assert all(len(start) == 1 and len(end) == 1 for start, end in steps)
    # review steps after every compatibility, each after the one before
    assert steps[0][0][0] > max(compat_ended)
    assert steps[0][1][0] < steps[1][0][0] and steps[1][1][0] < steps[2][0][0]


async def test_a_failed_write_still_skips_only_its_dependents(mac: Mac) -> None:
    mac.faults.append(Fault("POST", r"/miniapps/[^/]+/versions$", "400"))
    _, result, tracing = await execute(mac, [wide_app(12)], parallelism=4)
    outcomes = {str(r.change.address): r.outcome for r in result.results}
    version = f"miniapp[{APP}].version[1.0.0]"
    assert outcomes[version] == "failed"
    dependents = [a for a in outcomes if a.startswith(version + ".")]
    assert len(dependents) == 6 and all(outcomes[a] == "skipped" for a in dependents)
    others = [a for a in outcomes if a != version and a not in dependents]
    assert len(others) > 12 and all(outcomes[a] == "applied" for a in others)
    assert not tracing.order("start", "POST", "/compatibility")


async def test_an_attribute_write_journals_that_attribute_only(mac: Mac) -> None:
    await execute(mac, [wide_app(40)], parallelism=4)
    changed = wide_app(40)
    assert changed.spec.attributes is not None
    attributes = dict(changed.spec.attributes) | {"ATTR007": "new value"}
    _, result, _ = await execute(
        mac, [wide_app(0, attributes=attributes)], parallelism=4, save=False
    )
    assert result.ok and result.applied == 1
    journal = mac.state_path.with_name("state.json.journal").read_text().splitlines()
    assert [json.loads(line) for line in journal] == [
        {"app": APP, "path": ["attributes", "ATTR007"], "record": "new value"}
    ]
    replayed = FileStateStore(mac.state_path).load(IDENTITY).apps[APP]
    assert replayed.attributes == attributes


def test_the_critical_path_of_a_wide_app_is_its_version_chain() -> None:
    from reconciler.providers.miniappcenter.diff import build_plan  # noqa: F401 - the plan is made by the diff

    # create -> version -> compatibilities (together) -> 3 review steps
    plan = asyncio.run(_plan_only(wide_app(1000)))
    changes = list(plan.changes)
    assert len(changes) > 1000
    assert critical_path(changes) == 6
    waits = write_waits(changes)
    attribute = next(i for i, c in enumerate(changes) if c.kind == "attribute")
    assert waits[attribute] == (0,)  # an attribute waits for the app's create only


async def _plan_only(desired: MiniApp) -> Plan:
    import tempfile
    from pathlib import Path

    from reconciler.providers.miniappcenter.sandbox import SandboxStore

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "sandbox.db"
        create_app(SandboxConfig(db_path=db, token=TOKEN))
        store = SandboxStore(db)
        try:
            return await Mac(db=db, state_path=Path(folder) / "s.json", sandbox=store).plan(
                [desired]
            )
        finally:
            store.close()
