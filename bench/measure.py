"""The measurements themselves. Each function is importable (tests/test_bench_smoke.py runs
them at N=5 against the in-process sandbox) and returns plain dicts of figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from reconciler.apply import ApplyOptions, Executor
from reconciler.client import Endpoint, MiniAppCenterClient
from reconciler.model import MiniApp
from reconciler.pipeline import make_plan
from reconciler.state import FileStateStore

IDENTITY = "bench"
ClientFactory = Callable[[int], MiniAppCenterClient]


def http_client_factory(base_url: str, token: str) -> ClientFactory:
    """Clients the way the CLI builds them: one pool sized to ``--parallelism``."""

    def make(parallelism: int) -> MiniAppCenterClient:
        return MiniAppCenterClient(
            Endpoint(base_url=base_url), token, max_connections=max(parallelism, 1)
        )

    return make


def _redundant(by_request: dict[str, int]) -> dict[str, int]:
    return {key: count for key, count in by_request.items() if count != 1}


async def apply_fleet(
    make_client: ClientFactory, apps: list[MiniApp], state_path: Path, parallelism: int
) -> dict[str, Any]:
    """`reconciler apply --auto-approve` of ``apps``: plan, then execute; timed separately."""
    store = FileStateStore(state_path)
    with store.lock("apply"):
        state = store.load(IDENTITY)
        async with make_client(parallelism) as client:
            start = time.perf_counter()
            plan = await make_plan(
                client, apps, state, identity=IDENTITY, parallelism=parallelism
            )
            planned = time.perf_counter()
            plan_reads = client.stats.reads
            assert not plan.errors, [str(e) for e in plan.errors[:3]]
            writes_before, reads_before = client.stats.writes, client.stats.reads
            executor = Executor(
                client, store, state, plan, desired=apps,
                options=ApplyOptions(parallelism=parallelism),
            )
            result = await executor.run()
            executed = time.perf_counter()
            store.save(state)
            saved = time.perf_counter()
            stats = client.stats
            writes = stats.writes - writes_before
    longest_chain = max((len(c) for c in plan.changes_by_app().values()), default=0)
    return {
        "apps": len(apps),
        "changes": len(plan.changes),
        "summary": plan.summary,
        "applied": result.applied,
        "failed": result.failed,
        "skipped": result.skipped,
        "writes": writes,
        "one_write_per_change": writes == len(plan.changes) and result.ok,
        "apply_reads": stats.reads - reads_before,
        "plan_reads": plan_reads,
        "retries": stats.retries,
        "longest_chain": longest_chain,
        "plan_s": planned - start,
        "execute_s": executed - planned,
        "save_s": saved - executed,
        "total_s": saved - start,
    }


async def plan_converged(
    make_client: ClientFactory, apps: list[MiniApp], state_path: Path, parallelism: int
) -> dict[str, Any]:
    """`reconciler plan` of an already applied fleet: must find nothing, read each once."""
    state = FileStateStore(state_path).load(IDENTITY)
    async with make_client(parallelism) as client:
        start = time.perf_counter()
        plan = await make_plan(client, apps, state, identity=IDENTITY, parallelism=parallelism)
        wall = time.perf_counter() - start
        stats = client.stats
        by_request = dict(stats.by_request)
    return {
        "apps": len(apps),
        "wall_s": wall,
        "changes": len(plan.changes),
        "errors": len(plan.errors),
        "requests": stats.reads + stats.writes,
        "reads": stats.reads,
        "writes": stats.writes,
        "retries": stats.retries,
        "distinct_requests": len(by_request),
        "redundant": _redundant(by_request),
        "no_resource_read_twice": all(count == 1 for count in by_request.values()),
        "read_paths": [key.split(" ", 1)[1] for key in by_request if key.startswith("GET ")],
    }


def sequential_reads(
    base_url: str, token: str, paths: list[str], *, transport: httpx.BaseTransport | None = None
) -> dict[str, Any]:
    """The baseline: the same GETs, one after another, with a plain httpx.Client (keep-alive)."""
    headers = {"APIKey-Auth": token, "Accept": "application/json"}
    root = base_url.rstrip("/") + "/v1"
    statuses: dict[int, int] = {}
    with httpx.Client(headers=headers, timeout=30, transport=transport) as client:
        start = time.perf_counter()
        for path in paths:
            # The stats key is the path under the endpoint root (/miniapps/...).
            response = client.get(root + path.removeprefix("/api/v1"))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        wall = time.perf_counter() - start
    return {"requests": len(paths), "wall_s": wall, "statuses": statuses}


def run(coro: Any) -> Any:
    return asyncio.run(coro)
