"""Fetch + diff in one call: the plan step shared by `plan`, `apply` and `drift`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.client import MiniAppCenterClient
from reconciler.diff import PlanOptions, build_plan, orphan_ids
from reconciler.fetch import LiveState, fetch_live, requests_for
from reconciler.model import MiniApp
from reconciler.plan import Plan
from reconciler.state import AppRecord, State


def everything(_app_id: str, _record: AppRecord) -> bool:
    return True


async def read_live(
    client: MiniAppCenterClient,
    desired: Sequence[MiniApp],
    state: State,
    *,
    in_scope: Callable[[str, AppRecord], bool] = everything,
    declared: frozenset[str] = frozenset(),
    parallelism: int = 16,
    all_locations: bool = False,
) -> LiveState:
    """Read what the manifests reference, plus apps only the state knows (prune candidates)
    in scope. ``declared``: every id the manifests declare, before any narrowing."""
    orphans = orphan_ids(desired, state, declared, in_scope)
    requests = requests_for(desired, state, orphans, all_locations=all_locations)
    return await fetch_live(client, requests, parallelism=parallelism)


async def make_plan(
    client: MiniAppCenterClient,
    desired: Sequence[MiniApp],
    state: State,
    *,
    identity: str,
    prune: bool = False,
    max_deletes: int | None = None,
    in_scope: Callable[[str, AppRecord], bool] = everything,
    declared: frozenset[str] = frozenset(),
    parallelism: int = 16,
) -> Plan:
    live = await read_live(
        client, desired, state, in_scope=in_scope, declared=declared, parallelism=parallelism
    )
    return build_plan(
        desired,
        live.apps,
        state,
        endpoint=identity,
        options=PlanOptions(
            prune=prune, max_deletes=max_deletes, in_scope=in_scope, declared=declared
        ),
        fingerprints=live.fingerprints,
    )
