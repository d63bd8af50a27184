"""The Mini App Center's session through the neutral ProviderSession methods (plan, apply,
drift, import_resource) on a run context (docs/decisions.md D145), on its in-process sandbox:
the same plan as its state-root path, writes journaled through the run's store, drift and
import on the run's state."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.session import ChangeEvent, RunContext, Scope
from reconciler.errors import ReconcilerError
from reconciler.providers.miniappcenter.session import (
    MINIAPPCENTER_CONNECTOR,
    MiniAppCenterSession,
    root_section,
)
from reconciler.state import State
from reconciler.state.file import FileStateStore
from reconciler.workflows.desired import load_desired

PROVIDER = "miniappcenter"
ICON = "gxupload:" + "a" * 32  # an upload id, as the sandbox requires


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(Path(__file__).resolve().parent.parent / "manifests", tmp_path / "fleet")
    yield tmp_path


def session_of(here: Path) -> MiniAppCenterSession:
    async def opened() -> Any:
        async with MINIAPPCENTER_CONNECTOR.connect(
            {}, sandbox_dir=here, config=None, parallelism=4
        ) as session:
            return session

    session = asyncio.run(opened())
    assert isinstance(session, MiniAppCenterSession)
    return session


def models(here: Path) -> list[Any]:
    return load_desired([here / "fleet"], [], [], provider=PROVIDER).root_models


def store_of(here: Path) -> FileStateStore:
    return FileStateStore(here / "state.json")


async def _planned_directly(
    session: MiniAppCenterSession, desired: list[Any], state: State, declared: frozenset[str]
) -> Any:
    """Its planner called on its own client, outside the session: the reference."""
    from reconciler.providers.miniappcenter.planning import make_plan

    async with session.target.client(4) as client:
        return await make_plan(
            client, desired, state, identity=session.identity, declared=declared,
            probe_window=50,
        )  # fmt: skip


def test_plan_is_its_planners_plan(here: Path) -> None:
    session = session_of(here)
    state = State()
    session.attach(RunContext(state=state, probe_window=50))
    desired = models(here)
    scope = Scope(declared=frozenset(app.id for app in desired))
    plan = asyncio.run(session.plan(desired, root_section(state), scope))
    root = asyncio.run(_planned_directly(session, desired, state, scope.declared))
    assert plan.endpoints == {PROVIDER: session.identity}
    assert plan.changes and plan.changes == root.changes
    assert "create" in {c.action for c in plan.changes}


def test_apply_then_drift_in_sync_and_an_outside_rename_is_seen(here: Path) -> None:
    session = session_of(here)
    store = store_of(here)
    desired = models(here)
    scope = Scope(declared=frozenset(app.id for app in desired))
    events: list[ChangeEvent] = []
    with store.lock("apply"):
        state = store.load(session.identity)
        session.attach(RunContext(state=state, store=store, probe_window=50))
        plan = asyncio.run(session.plan(desired, root_section(state), scope))
        store.ensure_base(state)

        async def unused(*_: Any) -> None:
            raise AssertionError("its executor journals through the run's store itself")

        applied = asyncio.run(session.apply(
            plan, root_section(state), desired=desired, parallelism=4, record=unused,
            on_event=lambda e: None if e.outcome == "started" else events.append(e),
        ))  # fmt: skip
        store.save(state)
    assert len(events) == len(plan.changes)
    assert {event.outcome for event in events} == {"applied"}
    assert not applied.interrupted and not applied.stuck and not applied.unresolved
    # The section view and the saved file hold the records the executor journaled.
    again = store.load(session.identity)
    section = root_section(again)
    assert sorted(section.resources["miniapp"]) == sorted(app.id for app in desired)

    session.attach(RunContext(state=again, probe_window=50))
    fresh = asyncio.run(session.plan(desired, section, scope))
    assert fresh.changes == ()
    assert session.drift(fresh, section).in_sync

    renamed = desired[0].id

    async def rename() -> None:
        from reconciler.providers.miniappcenter.client import MiniAppUpdate

        async with session.target.client(2) as client:
            live = await client.get_miniapp(renamed)
            await client.update_miniapp(renamed, MiniAppUpdate(
                name="Renamed outside", superapp_id=live.superapp_id, type=live.type))

    asyncio.run(rename())
    report = session.drift(asyncio.run(session.plan(desired, section, scope)), section)
    assert not report.in_sync
    assert [(i.kind, i.app_id, i.field) for i in report.items] == [
        ("changed_outside", renamed, "name")
    ]


def test_import_resource_records_it_in_the_run_state(here: Path) -> None:
    session = session_of(here)
    app_id = "com.outside.made"

    async def create() -> int:
        from reconciler.providers.miniappcenter.client import MiniAppCreate, VersionCreate

        async with session.target.client(2) as client:
            await client.create_miniapp(MiniAppCreate(
                id=app_id, name="Made outside", superapp_id="com.genexus.verdantbank",
                type="web", keywords="a b", icon=ICON))
            created = await client.create_version(app_id, VersionCreate(
                code="1.0", platform_id="iOS", main_name="m", main_type="panel"))
            return int(created.id)

    vid = asyncio.run(create())
    state = State()
    hints = {app_id: {"versions": {"1.0": vid}, "labels": {"team": "ops"}}}
    session.attach(RunContext(state=state, out=here / "imported", hints=hints))
    imported = asyncio.run(session.import_resource(app_id, root_section(state)))
    assert imported.key == app_id
    assert "team: ops" in imported.manifest and 'code: "1.0"' in imported.manifest
    assert state.version_id(app_id, "1.0") == vid
    assert app_id in root_section(state).resources["miniapp"]

    wrong = {app_id: {"versions": {"1.0": 999}}}
    session.attach(RunContext(state=State(), hints=wrong))
    with pytest.raises(ReconcilerError, match=r"1\.0=999"):
        asyncio.run(session.import_resource(app_id, root_section(State())))


def test_a_session_not_attached_says_so(here: Path) -> None:
    session = session_of(here)
    with pytest.raises(RuntimeError, match="attach"):
        asyncio.run(session.plan([], root_section(State()), Scope()))


def test_a_stop_asked_through_the_run_context_starts_no_change(here: Path) -> None:
    """The graceful stop comes from the run (the CLI's Ctrl-C asks the engine's signal), not
    from one provider's executor: a stop asked before the writes starts none of them."""
    from reconciler.engine.session import StopSignal

    session = session_of(here)
    store = store_of(here)
    desired = models(here)
    scope = Scope(declared=frozenset(app.id for app in desired))
    events: list[ChangeEvent] = []
    stop = StopSignal()
    stop.request_stop()
    with store.lock("apply"):
        state = store.load(session.identity)
        session.attach(RunContext(state=state, store=store, probe_window=50, stop=stop))
        plan = asyncio.run(session.plan(desired, root_section(state), scope))
        store.ensure_base(state)

        async def unused(*_: Any) -> None:
            raise AssertionError("its executor journals through the run's store itself")

        asyncio.run(session.apply(
            plan, root_section(state), desired=desired, parallelism=4, record=unused,
            on_event=lambda e: None if e.outcome == "started" else events.append(e),
        ))  # fmt: skip
    assert plan.changes and len(events) == len(plan.changes)
    assert {event.outcome for event in events} == {"skipped"}
    assert state.apps == {}  # nothing was created, nothing recorded


def test_sandbox_db_names_the_file_the_state_is_bound_to(here: Path) -> None:
    """``--sandbox-db`` travels to the connector as its variable: the session and the state
    binding are that file, not the folder's default one."""
    chosen = here / "elsewhere" / "mine.db"
    env = {"MAC_SANDBOX_DB": str(chosen)}
    binding = MINIAPPCENTER_CONNECTOR.binding(env, sandbox_dir=chosen.parent, config=None)

    async def opened() -> str:
        async with MINIAPPCENTER_CONNECTOR.connect(
            env, sandbox_dir=chosen.parent, config=None, parallelism=2
        ) as session:
            return session.identity

    assert binding.identity == asyncio.run(opened()) == f"sandbox:{chosen.resolve()}"
