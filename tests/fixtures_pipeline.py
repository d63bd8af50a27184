"""Fixtures to run the real pipeline (fetch, diff, apply) against the in-process sandbox.

``FaultTransport`` wraps the sandbox's ASGI transport to inject one precise fault on chosen
requests (a fake, not a mock: every other request reaches the real sandbox).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from reconciler.engine.plan import Plan
from reconciler.providers.miniappcenter.apply import ApplyOptions, ApplyResult, Executor
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient, RetryPolicy
from reconciler.providers.miniappcenter.model import MiniApp
from reconciler.providers.miniappcenter.planning import make_plan
from reconciler.providers.miniappcenter.sandbox import SandboxConfig, SandboxStore, create_app
from reconciler.state import FileStateStore, State

TOKEN = "pipeline-token"
IDENTITY = "sandbox:test"

# 400: a definite refusal; 500 on a create: ambiguous (may come after the commit);
# ambiguous: the write happens, then 502; timeout_after: the write happens, the answer is lost;
# drop_before: the connection fails before anything is sent; kill_after: the write happens,
# then the process "dies" (SimulatedKill, which nothing in the tool catches).
# late_commit: no answer, and the server commits the write only just before the next POST
# (a slow server still working after the client gave up).
FaultMode = Literal[
    "400", "500", "ambiguous", "timeout_after", "drop_before", "kill_after", "late_commit"
]


class SimulatedKill(BaseException):
    """kill -9 right after a write reached the server: nothing after it runs or is saved."""


async def instant_sleep(_delay: float) -> None:
    return None


@dataclass
class Fault:
    method: str
    path: str  # regex matched against the URL path
    mode: FaultMode
    times: int = 1

    def matches(self, request: httpx.Request) -> bool:
        return (
            self.times > 0
            and request.method == self.method
            and re.search(self.path, request.url.path) is not None
        )


@dataclass
class FaultTransport(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport
    faults: list[Fault] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)  # whole, bodies included
    late: list[httpx.Request] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        self.requests.append(request)
        if request.method == "POST":
            while self.late:  # the slow server commits what it was still working on
                await (await self.inner.handle_async_request(self.late.pop(0))).aread()
        fault = next((f for f in self.faults if f.matches(request)), None)
        if fault is None:
            return await self.inner.handle_async_request(request)
        fault.times -= 1
        if fault.mode == "drop_before":
            raise httpx.ConnectError("injected: connection refused", request=request)
        if fault.mode == "late_commit":
            self.late.append(
                httpx.Request(request.method, request.url, headers=request.headers,
                              content=await request.aread())
            )
            raise httpx.ReadTimeout("injected: no answer yet", request=request)
        if fault.mode in ("500", "400"):
            return httpx.Response(
                int(fault.mode), json={"errors": [{"code": 999, "message": "injected failure"}]}
            )
        response = await self.inner.handle_async_request(request)  # the write happens
        await response.aread()
        if fault.mode == "kill_after":
            raise SimulatedKill(f"{request.method} {request.url.path}")
        if fault.mode == "timeout_after":
            raise httpx.ReadTimeout("injected: response lost", request=request)
        return httpx.Response(502, text="Bad Gateway")


@dataclass
class Mac:
    """An in-process Mini App Center plus the tool's state, for one test."""

    db: Path
    state_path: Path
    sandbox: SandboxStore
    faults: list[Fault] = field(default_factory=list)
    transports: list[FaultTransport] = field(default_factory=list)

    def client(self) -> MiniAppCenterClient:
        app = create_app(SandboxConfig(db_path=self.db, token=TOKEN))
        transport = FaultTransport(httpx.ASGITransport(app=app), self.faults)
        self.transports.append(transport)
        return MiniAppCenterClient(
            Endpoint(base_url="http://127.0.0.1/api"),
            TOKEN,
            transport=transport,
            retry=RetryPolicy(sleep=instant_sleep, jitter=False),
        )

    @property
    def store(self) -> FileStateStore:
        return FileStateStore(self.state_path)

    def state(self) -> State:
        return self.store.load(IDENTITY)

    async def plan(self, desired: Sequence[MiniApp], **options: Any) -> Plan:
        async with self.client() as client:
            return await make_plan(client, desired, self.state(), identity=IDENTITY, **options)

    async def apply(
        self,
        desired: Sequence[MiniApp],
        *,
        on_result: Callable[[Any], None] | None = None,
        **options: Any,
    ) -> tuple[Plan, ApplyResult, int]:
        """Plan and apply like `reconciler apply --auto-approve`; returns the write count."""
        store = self.store
        with store.lock("apply"):
            state = store.load(IDENTITY)
            async with self.client() as client:
                plan = await make_plan(client, desired, state, identity=IDENTITY, **options)
                assert not plan.fleet_errors, [str(e) for e in plan.fleet_errors]
                before = client.stats.writes
                executor = Executor(
                    client,
                    store,
                    state,
                    plan,
                    options=ApplyOptions(
                        parallelism=4, on_result=on_result,
                        probe_window=options.get("probe_window", 256),
                    ),
                )
                try:
                    result = await executor.run()
                finally:
                    store.save(state)
                writes = client.stats.writes - before
        return plan, result, writes


@pytest.fixture
async def mac(tmp_path: Path) -> AsyncIterator[Mac]:
    db = tmp_path / "sandbox.db"
    create_app(SandboxConfig(db_path=db, token=TOKEN))  # creates the schema
    store = SandboxStore(db)
    try:
        yield Mac(db=db, state_path=tmp_path / "state.json", sandbox=store)
    finally:
        store.close()
