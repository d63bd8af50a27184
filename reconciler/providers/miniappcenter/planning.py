"""Fetch + diff in one call: the plan step shared by `plan`, `apply` and `drift`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.engine.plan import Plan
from reconciler.providers.miniappcenter.client import MiniAppCenterClient
from reconciler.providers.miniappcenter.diff import PlanOptions, build_plan, orphan_ids
from reconciler.providers.miniappcenter.fetch import LiveState, fetch_live, requests_for
from reconciler.providers.miniappcenter.model import MiniApp
from reconciler.providers.miniappcenter.recover import recover_unknown_versions
from reconciler.providers.miniappcenter.vocabulary import DEFAULT_PROBE_WINDOW
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
    probe_window: int = DEFAULT_PROBE_WINDOW,
) -> LiveState:
    """Read what the manifests reference, plus apps only the state knows (prune candidates)
    in scope, then look for the versions the state cannot place (recover.py).
    ``declared``: every id the manifests declare, before any narrowing."""
    orphans = orphan_ids(desired, state, declared, in_scope)
    requests = requests_for(desired, state, orphans, all_locations=all_locations)
    live = await fetch_live(client, requests, parallelism=parallelism, isolate=True)
    await recover_unknown_versions(
        client, desired, state, live, window=probe_window, parallelism=parallelism
    )
    return live


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
    probe_window: int = DEFAULT_PROBE_WINDOW,
    notices: tuple[str, ...] = (),
    endpoint_setting: str = "MAC_BASE_URL",
) -> Plan:
    live = await read_live(
        client, desired, state, in_scope=in_scope, declared=declared, parallelism=parallelism,
        probe_window=probe_window,
    )
    return build_plan(
        desired,
        live.apps,
        state,
        endpoint=identity,
        options=PlanOptions(
            prune=prune, max_deletes=max_deletes, in_scope=in_scope, declared=declared,
            notices=notices, probe_window=probe_window, endpoint_setting=endpoint_setting,
            unread=live.unread,
        ),
        fingerprints=live.fingerprints,
    )
