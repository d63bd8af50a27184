"""The engine's service without HTTP: manifests split by provider, plans merged with the
delete budget checked on the whole fleet, drift reports merged, and a mixed plan rendered
side by side, grouped by root address."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.address import Address, root_address
from reconciler.engine.drift import DriftItem, DriftReport
from reconciler.engine.plan import Change, Plan, PlanProblem
from reconciler.engine.render import render
from reconciler.engine.service import merge_drift, merge_plans, split_by_provider
from reconciler.engine.session import Scope
from reconciler.manifest.loader import LoadedApp
from reconciler.providers.registry import PROVIDERS


def _change(provider: str, kind: str, key: str, action: str = "create") -> Change:
    address = root_address(provider, kind, key)
    after = None if action == "delete" else {"name": key}
    before = None if action == "create" else {"name": key}
    return Change(address, kind, action, key, before, after)  # type: ignore[arg-type]


def _plan(provider: str, *changes: Change, warnings: tuple[str, ...] = ()) -> Plan:
    return Plan(
        endpoints={provider: f"sandbox:{provider}"},
        changes=changes,
        warnings=tuple(PlanProblem(text) for text in warnings),
        apps=tuple(dict.fromkeys(c.app_id for c in changes)),
    )


def test_documents_are_split_by_the_provider_of_their_kind() -> None:
    loaded: list[LoadedApp[Any]] = [
        LoadedApp("mac", "a.yaml", 1, ("miniappcenter/v1", "MiniApp")),
        LoadedApp("akana", "b.yaml", 1, ("akana/v1", "App")),
        LoadedApp("mac2", "c.yaml", 3, ("miniappcenter/v1", "MiniApp")),
    ]
    split = split_by_provider(loaded, PROVIDERS)
    assert {name: [i.app for i in items] for name, items in split.items()} == {
        "miniappcenter": ["mac", "mac2"],
        "akana": ["akana"],
    }
    with pytest.raises(ValueError, match="no provider reads"):
        split_by_provider([LoadedApp("x", "d.yaml", 1, ("nope/v1", "Thing"))], PROVIDERS)


def test_the_delete_budget_counts_every_providers_deletes() -> None:
    mac = _plan("miniappcenter", _change("miniappcenter", "miniapp", "com.a", "delete"))
    akana = _plan("akana", _change("akana", "akana_app", "Pay", "delete"))
    within = merge_plans([mac, akana], max_deletes=2, state_lineage=None, state_serial=0)
    assert not within.errors and within.delete_count == 2
    over = merge_plans([mac, akana], max_deletes=1, state_lineage="L", state_serial=4)
    assert [e.scope for e in over.errors] == ["fleet"]
    assert "deletes 2 object(s), more than --max-deletes 1" in str(over.errors[0])
    assert over.endpoints == {"miniappcenter": "sandbox:miniappcenter", "akana": "sandbox:akana"}
    assert (over.state_lineage, over.state_serial) == ("L", 4)


def test_a_notice_every_provider_repeats_is_said_once() -> None:
    notice = "no state file was found"
    merged = merge_plans(
        [_plan("miniappcenter", warnings=(notice,)), _plan("akana", warnings=(notice, "other"))],
        max_deletes=None, state_lineage=None, state_serial=0,
    )  # fmt: skip
    assert [str(w) for w in merged.warnings] == [notice, "other"]


def test_a_mixed_plan_groups_by_root_address_and_one_provider_keeps_app_ids() -> None:
    same_name = [
        _change("miniappcenter", "miniapp", "pay"),
        _change("akana", "akana_app", "pay"),
    ]
    mixed = merge_plans(
        [_plan("miniappcenter", same_name[0]), _plan("akana", same_name[1])],
        max_deletes=None, state_lineage=None, state_serial=0,
    )  # fmt: skip
    text = render(mixed, "text", color=False)
    assert "# miniapp[pay]" in text and "# akana_app[pay]" in text  # two groups, not one
    assert "### Plan" in render(mixed, "markdown", color=False)
    single = _plan("miniappcenter", same_name[0])
    assert "# miniapp[pay]" in render(single, "text", color=False)
    assert "### Mini App Center plan" in render(single, "markdown", color=False)
    assert single.changes_by_group() == {"pay": [same_name[0]]}


def test_drift_reports_merge() -> None:
    item = DriftItem("changed_outside", Address("akana", "akana_app", "x"), "x", "akana_app")
    first = DriftReport("mac", (), apps_checked=2)
    second = DriftReport("akana", (item,), errors=(PlanProblem("boom"),), apps_checked=1)
    merged = merge_drift([first, second])
    assert merged.items == (item,) and merged.apps_checked == 3
    assert merged.endpoint == "mac; akana" and not merged.in_sync
    assert merge_drift([first]) is first


def test_scope_matches_targets_and_labels() -> None:
    scope = Scope(selectors={"team": "pay"}, targets=frozenset({"a"}))
    assert scope.includes("a", {"team": "pay"})
    assert not scope.includes("b", {"team": "pay"})
    assert not scope.includes("a", {"team": "cafe"})
    assert Scope().includes("anything", {})


# --- stuck providers ----------------------------------------------------------------------


def test_which_errors_make_a_provider_stuck() -> None:
    from reconciler.engine.session import ProviderUnreadable, provider_wide
    from reconciler.errors import (
        ApiError,
        ConfigError,
        PlanError,
        StateError,
        TransportError,
        UsageError,
    )

    assert provider_wide(TransportError("GET", "/api/apps", "could not connect"))
    assert provider_wide(ApiError(503, "GET", "/api/apps"))
    assert provider_wide(ConfigError("login refused after a fresh one"))
    assert provider_wide(ProviderUnreadable("every listing failed"))
    # A usage error, the state, a plan or a bug still stop the run.
    for error in (UsageError("--provider x"), StateError("damaged"), PlanError("stale"),
                  ValueError("bug")):  # fmt: skip
        assert not provider_wide(error)


def test_a_stuck_providers_reason_is_one_bounded_line() -> None:
    from reconciler.engine.plan import STUCK_REASON_MAX, StuckProvider

    stuck = StuckProvider.of("akana", ValueError("line one\nline two " + "x" * 1000))
    assert "\n" not in stuck.reason and len(stuck.reason) == STUCK_REASON_MAX
    assert stuck.reason.startswith("line one line two") and stuck.reason.endswith("...")
    assert stuck.problem.scope == "provider"
    assert str(stuck.problem).startswith("provider akana was not planned: line one")


async def test_plan_parts_names_a_stuck_provider_and_plans_the_others() -> None:
    from contextlib import AsyncExitStack

    from reconciler.engine.service import Sessions, plan_parts, raise_if_all_stuck
    from reconciler.errors import PlanError, TransportError
    from reconciler.state import ProviderState

    class Down:
        identity = display = "http://127.0.0.1:9"

        def bind(self, section: Any) -> None: ...

        async def plan(self, desired: Any, section: Any, scope: Scope) -> Plan:
            raise TransportError("GET", "/api/apps", "could not connect (refused)")

    class Up(Down):
        async def plan(self, desired: Any, section: Any, scope: Scope) -> Plan:
            return Plan(endpoints={"rest": self.identity}, changes=())

    class Broken(Down):
        async def plan(self, desired: Any, section: Any, scope: Scope) -> Plan:
            raise PlanError("not the endpoint's fault")

    sections = {"akana": ProviderState(), "rest": ProviderState()}
    async with AsyncExitStack():
        parts = await plan_parts(
            Sessions({"akana": Down(), "rest": Up()}), {}, sections, Scope()  # type: ignore[dict-item]
        )
    assert [s.provider for s in parts["akana"].stuck_providers] == ["akana"]
    assert not parts["rest"].stuck_providers
    merged = merge_plans(list(parts.values()), max_deletes=None, state_lineage=None,
                         state_serial=None)  # fmt: skip
    assert merged.as_dict()["stuck_providers"] == [
        {"provider": "akana", "reason": "GET /api/apps: could not connect (refused)"}
    ]
    assert not merged.fleet_errors  # apply goes on with the others
    raise_if_all_stuck(list(parts.values()))  # one was read: nothing raised
    with pytest.raises(TransportError):
        raise_if_all_stuck([parts["akana"]])
    with pytest.raises(PlanError):
        await plan_parts(Sessions({"rest": Broken()}), {}, sections, Scope())  # type: ignore[dict-item]


async def test_the_mini_app_center_connector_is_on_the_registry(tmp_path: Any) -> None:
    from reconciler.providers.registry import CONNECTORS

    connector = CONNECTORS["miniappcenter"]
    assert getattr(connector, "state_root", False)
    assert connector.configured({"MAC_BASE_URL": "https://mac.example/api"}, None)
    assert not connector.configured({"MAC_BASE_URL": " "}, None)
    async with connector.connect({}, sandbox_dir=tmp_path, config=None, parallelism=1) as session:
        assert session.identity == f"sandbox:{(tmp_path / 'sandbox.db').resolve()}"
        assert "token" not in session.display.lower()
    # The other connectors run through the service's sessions; this one plans with the state.
    assert [name for name, c in CONNECTORS.items() if getattr(c, "state_root", False)] == [
        "miniappcenter"
    ]
