"""The Akana provider's session for the engine's service (``providers/akana/session.py``),
against the in-process sandbox (the real ASGI app; no mocks): plan, apply with durable
records, scope, protection, adoption, the interrupted create, binding, drift and import."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.engine.plan import Plan
from reconciler.engine.session import ChangeEvent, Scope, SectionApplied
from reconciler.errors import ConfigError, PlanError, ReconcilerError, StateError
from reconciler.manifest.loader import load_manifests
from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.importer import AkanaImportError
from reconciler.providers.akana.manifest import MANIFEST_KINDS
from reconciler.providers.akana.model import AkanaApp
from reconciler.providers.akana.provider import AKANA
from reconciler.providers.akana.sandbox import in_process_akana
from reconciler.providers.akana.sandbox.inprocess import IN_PROCESS_PASSWORD
from reconciler.providers.akana.sandbox.store import AkanaSandboxStore
from reconciler.providers.akana.session import (
    AKANA_CONNECTOR,
    PENDING_KIND,
    SANDBOX_DB_NAME,
    AkanaSession,
)
from reconciler.state import ProviderState
from reconciler.transport.redact import Secret
from tests.fixtures_akana import EMAIL, PASSWORD, RunningAkana

DEMO = Path(__file__).resolve().parent.parent / "manifests" / "akana"
APP = "akana_app"


def demo() -> list[AkanaApp]:
    return [loaded.app for loaded in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]


def apps_from(text: str, tmp_path: Path) -> list[AkanaApp]:
    path = tmp_path / "apps.yaml"
    path.write_text(text)
    return [loaded.app for loaded in load_manifests([path], {}, kinds=MANIFEST_KINDS)]


def app_doc(name: str, *, versions: Sequence[str] = ("1.0",), summary: str = "s",
            meta: str = "") -> str:
    listed = ", ".join(f"{{name: '{v}'}}" for v in versions)
    return (f"apiVersion: akana/v1\nkind: App\nmetadata: {{name: {name}{meta}}}\n"
            f"spec:\n  summary: {summary}\n  versions: [{listed}]\n")


class Killed(Exception):
    """The process dying at this point (nothing after it is durable)."""


@dataclass
class Journal:
    """A list-collecting RecordWrite; ``kill`` makes the matching write never durable."""

    calls: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    kill: tuple[str, str] | None = None  # (kind, key) whose record "dies" before it is written
    store: AkanaSandboxStore | None = None
    versions_seen: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, kind: str, key: str, data: Mapping[str, Any] | None) -> None:
        if self.kill == (kind, key) and data is not None:
            raise Killed(f"killed before recording {kind}[{key}]")
        if self.store is not None and kind == APP and data is not None:
            # What the server holds of that app when its record is made durable.
            self.versions_seen.append((key, len(self.store.versions(str(data["id"])))))
        self.calls.append((kind, key, None if data is None else dict(data)))

    def of(self, kind: str) -> list[tuple[str, dict[str, Any] | None]]:
        return [(key, data) for k, key, data in self.calls if k == kind]


@dataclass
class Sandbox:
    session: AkanaSession
    store: AkanaSandboxStore
    db: Path


@asynccontextmanager
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """A session on the sandbox whose store the test can read (what the connector builds,
    with the store in reach)."""
    db = tmp_path / SANDBOX_DB_NAME
    running = in_process_akana(db)
    config = AkanaConfig(akana_endpoint(running.base_url), running.email,
                         Secret(running.password))
    try:
        async with AkanaClient(config, transport=running.transport) as client:
            session = AkanaSession(client, identity=f"sandbox:{db}", display="test sandbox")
            yield Sandbox(session, running.app.state.store, db)
    finally:
        running.close()


async def run(
    session: AkanaSession,
    plan: Plan,
    section: ProviderState,
    journal: Journal | None = None,
    *,
    desired: Sequence[Any] | None = (),
) -> tuple[SectionApplied, list[ChangeEvent]]:
    events: list[ChangeEvent] = []
    started: set[str] = set()

    def on_event(event: ChangeEvent) -> None:
        if event.outcome == "started":  # a write starts: not a result
            started.add(str(event.change.address))
            return
        if event.outcome == "applied":  # every write applied was reported started first
            assert str(event.change.address) in started, event
        events.append(event)

    applied = await session.apply(
        plan, section, desired=desired, parallelism=2, record=journal or Journal(),
        on_event=on_event,
    )
    return applied, events


def shape(plan: Plan) -> list[tuple[str, str]]:
    return [(str(c.address), c.action) for c in plan.changes]


async def test_plan_apply_records_each_write_then_nothing_to_do(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        box.session.bind(section)
        plan = await box.session.plan(demo(), section, Scope())
        assert plan.endpoints == {"akana": f"sandbox:{box.db}"}
        assert shape(plan) == [
            ("akana_app[Payments Gateway]", "create"),
            ("akana_app[Payments Gateway].version[2.0]", "create"),
            ("akana_app[Payments Reports]", "create"),
        ]
        assert plan.app_meta["Payments Gateway"].protect
        journal = Journal(store=box.store)
        applied, events = await run(box.session, plan, section, journal)
        # Apps run in parallel: compare each app's events, in order.
        assert [(str(e.change.address), e.outcome) for e in events if e.change.app_id
                == "Payments Gateway"] == [(a, "applied") for a, _ in shape(plan)[:2]]
        assert sorted(e.outcome for e in events) == ["applied"] * 3
        assert applied.events == events and applied.stuck == [] and applied.adopted == 0

        # One record per completed write, each made before the next write of that app
        # starts: the gateway's first record while the server still had one version.
        assert sorted(key for key, _ in journal.of(APP)) == [
            "Payments Gateway", "Payments Gateway", "Payments Reports"
        ]
        assert [n for key, n in journal.versions_seen if key == "Payments Gateway"] == [1, 2]
        first, last = [data for key, data in journal.of(APP) if key == "Payments Gateway"]
        [reports] = [data for key, data in journal.of(APP) if key == "Payments Reports"]
        assert first is not None and last is not None and reports is not None
        assert sorted(first["versions"]) == ["1.0"] and sorted(last["versions"]) == ["1.0", "2.0"]
        assert first["protect"] is True and first["labels"] == {"team": "payments"}
        assert [v["id"] for v in box.store.versions(last["id"])] == [
            last["versions"]["1.0"]["id"], last["versions"]["2.0"]["id"]
        ]
        assert last["fields"]["summary"] == "Card and wallet payments"
        # Each create's intent is recorded before its POST and cleared after its record.
        for name in ("Payments Gateway", "Payments Reports"):
            calls = [(kind, data) for kind, key, data in journal.calls if key == name]
            assert calls[:3] == [(PENDING_KIND, {"business_id": None}),
                                 (APP, first if name == "Payments Gateway" else reports),
                                 (PENDING_KIND, None)]
        # The section holds what was recorded, nothing else.
        assert section.resources == {APP: {"Payments Gateway": last, "Payments Reports": reports}}

        again = await box.session.plan(demo(), section, Scope())
        assert again.changes == () and again.learned == () and again.errors == ()
        quiet = Journal()
        applied, events = await run(box.session, again, section, quiet)
        assert events == [] and quiet.calls == []  # nothing to write, nothing recorded


async def test_an_update_records_the_new_fields(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        await run(box.session, await box.session.plan(demo(), section, Scope()), section)
        edited = [a.model_copy(update={"summary": "Cards, wallets and transfers"})
                  if a.name == "Payments Gateway" else a for a in demo()]
        plan = await box.session.plan(edited, section, Scope())
        assert shape(plan) == [("akana_app[Payments Gateway]", "update")]
        assert [f.path for f in plan.changes[0].fields] == ["summary"]
        journal = Journal()
        _, events = await run(box.session, plan, section, journal)
        assert [e.outcome for e in events] == ["applied"]
        [(key, data)] = journal.of(APP)
        assert key == "Payments Gateway" and data is not None
        assert data["fields"]["summary"] == "Cards, wallets and transfers"
        assert box.store.app(data["id"])["summary"] == "Cards, wallets and transfers"
        assert (await box.session.plan(edited, section, Scope())).changes == ()


async def test_a_version_is_added_before_the_one_it_replaces_is_deleted(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        desired = apps_from(app_doc("Solo", versions=["1.0"]), tmp_path)
        await run(box.session, await box.session.plan(desired, section, Scope()), section)
        replaced = apps_from(app_doc("Solo", versions=["2.0"]), tmp_path)
        plan = await box.session.plan(replaced, section, Scope())
        assert shape(plan) == [
            ("akana_app[Solo].version[2.0]", "create"),
            ("akana_app[Solo].version[1.0]", "delete"),
        ]
        assert plan.changes[1].depends_on == (plan.changes[0].address,)
        journal = Journal(store=box.store)
        _, events = await run(box.session, plan, section, journal)
        assert [e.outcome for e in events] == ["applied", "applied"]
        app_id = section.resources[APP]["Solo"]["id"]
        assert [v["name"] for v in box.store.versions(app_id)] == ["2.0"]
        # Recorded after the add (two versions live) and after the delete (one).
        assert journal.versions_seen == [("Solo", 2), ("Solo", 1)]
        assert [sorted((d or {})["versions"]) for _, d in journal.of(APP)] == [
            ["1.0", "2.0"], ["2.0"]
        ]


@pytest.mark.parametrize("prune", [False, True])
async def test_prune_deletes_only_with_the_flag(tmp_path: Path, prune: bool) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        both = apps_from(app_doc("Keep") + "---\n" + app_doc("Drop"), tmp_path)
        await run(box.session, await box.session.plan(both, section, Scope()), section)
        keep = [a for a in both if a.name == "Keep"]
        plan = await box.session.plan(keep, section, Scope(prune=prune))
        if not prune:
            assert plan.changes == () and "--prune" in plan.warnings[0].message
            return
        assert shape(plan) == [("akana_app[Drop]", "delete")] and plan.errors == ()
        journal = Journal()
        _, events = await run(box.session, plan, section, journal)
        assert [e.outcome for e in events] == ["applied"]
        assert journal.of(APP) == [("Drop", None)]
        assert sorted(section.resources[APP]) == ["Keep"]
        assert [a["name"] for a in box.store.list_apps("")] == ["Keep"]


async def test_a_declared_app_outside_the_selection_is_never_pruned(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        both = apps_from(app_doc("Keep") + "---\n" + app_doc("Other"), tmp_path)
        await run(box.session, await box.session.plan(both, section, Scope()), section)
        keep = [a for a in both if a.name == "Keep"]
        narrowed = Scope(targets=frozenset({"Keep", "Other"}), prune=True,
                         declared=frozenset({"Keep", "Other"}))
        assert (await box.session.plan(keep, section, narrowed)).changes == ()


async def test_selection_by_labels_and_targets_narrows_prune(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        fleet = apps_from(
            app_doc("Pay", meta=", labels: {team: payments}") + "---\n"
            + app_doc("Ops", meta=", labels: {team: ops}"),
            tmp_path,
        )
        await run(box.session, await box.session.plan(fleet, section, Scope()), section)
        assert section.resources[APP]["Ops"]["labels"] == {"team": "ops"}
        by_label = Scope(selectors={"team": "payments"}, prune=True)
        assert (await box.session.plan([], section, by_label)).changes[0].app_id == "Pay"
        assert len((await box.session.plan([], section, by_label)).changes) == 1
        by_target = Scope(targets=frozenset({"Ops"}), prune=True)
        assert shape(await box.session.plan([], section, by_target)) == [
            ("akana_app[Ops]", "delete")
        ]
        notices = Scope(notices=("no state file yet",))
        assert "no state file yet" in [
            w.message for w in (await box.session.plan(fleet, section, notices)).warnings
        ]


async def test_a_protected_app_is_never_deleted(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        await run(box.session, await box.session.plan(demo(), section, Scope()), section)
        reports = [a for a in demo() if a.name == "Payments Reports"]
        pruning = await box.session.plan(reports, section, Scope(prune=True))
        assert shape(pruning) == [("akana_app[Payments Gateway]", "delete")]
        assert [(e.scope, e.app_id) for e in pruning.errors] == [("fleet", "Payments Gateway")]
        assert "protected" in pruning.errors[0].message
        absent = [a.model_copy(update={"ensure": "absent", "versions": ()})
                  if a.name == "Payments Gateway" else a for a in demo()]
        refused = await box.session.plan(absent, section, Scope())
        assert "protected" in refused.errors[0].message


async def test_adopt_true_takes_an_existing_app_over(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as box:
        theirs = ProviderState()
        legacy = apps_from(app_doc("Legacy", summary="old"), tmp_path)
        await run(box.session, await box.session.plan(legacy, theirs, Scope()), theirs)
        server_id = theirs.resources[APP]["Legacy"]["id"]

        section = ProviderState()
        refused = await box.session.plan(legacy, section, Scope())
        assert [(e.scope, e.app_id) for e in refused.errors] == [("app", "Legacy")]
        applied, events = await run(box.session, refused, section)
        assert applied.stuck == ["Legacy"] and events == []

        adopting = apps_from(app_doc("Legacy", summary="new", meta=", adopt: true"), tmp_path)
        plan = await box.session.plan(adopting, section, Scope())
        assert [f.as_dict()["server_id"] for f in plan.learned] == [server_id]
        assert shape(plan) == [("akana_app[Legacy]", "update")]
        journal = Journal()
        applied, events = await run(box.session, plan, section, journal)
        assert applied.adopted == 1 and [e.outcome for e in events] == ["applied"]
        adopted, updated = journal.of(APP)
        assert adopted[1] is not None and adopted[1]["id"] == server_id
        assert updated[1] is not None and updated[1]["fields"]["summary"] == "new"
        assert box.store.app(server_id)["summary"] == "new"


async def test_a_stuck_app_is_skipped_and_the_others_applied(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as box:
        theirs = ProviderState()
        await run(box.session, await box.session.plan(
            apps_from(app_doc("Taken"), tmp_path), theirs, Scope()), theirs)
        section = ProviderState()
        both = apps_from(app_doc("Taken") + "---\n" + app_doc("Fresh"), tmp_path)
        plan = await box.session.plan(both, section, Scope())
        assert shape(plan) == [("akana_app[Fresh]", "create")]
        applied, events = await run(box.session, plan, section)
        assert applied.stuck == ["Taken"]
        assert [(e.change.app_id, e.outcome) for e in events] == [("Fresh", "applied")]
        assert sorted(section.resources[APP]) == ["Fresh"]


async def test_a_create_whose_record_was_lost_is_taken_over_next_run(tmp_path: Path) -> None:
    """Killed between the create's answer and its record: the next run needs no human."""
    desired = apps_from(app_doc("Orphan", versions=["1.0", "2.0"]), tmp_path)
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        plan = await box.session.plan(desired, section, Scope())
        dying = Journal(kill=(APP, "Orphan"))
        with pytest.raises(Killed):
            await run(box.session, plan, section, dying)
        # What survived the kill: the intent, no record; the app exists on the server.
        assert APP not in section.resources
        assert section.resources[PENDING_KIND] == {"Orphan": {"business_id": None}}
        [created] = box.store.app_ids()

    async with sandbox(tmp_path) as box:  # the next run: a new process, the durable state
        again = await box.session.plan(desired, section, Scope())
        assert again.errors == ()
        assert [f.as_dict()["server_id"] for f in again.learned] == [created]
        assert shape(again) == [("akana_app[Orphan].version[2.0]", "create")]
        assert any("interrupted" in w.message for w in again.warnings)
        journal = Journal()
        applied, events = await run(box.session, again, section, journal)
        assert applied.adopted == 1 and [e.outcome for e in events] == ["applied"]
        assert journal.of(PENDING_KIND) == [("Orphan", None)]
        assert PENDING_KIND not in section.resources
        assert box.store.app_ids() == [created]  # no duplicate
        assert [v["name"] for v in box.store.versions(created)] == ["1.0", "2.0"]
        assert (await box.session.plan(desired, section, Scope())).changes == ()


async def test_an_intent_whose_create_never_happened_plans_the_create(tmp_path: Path) -> None:
    desired = apps_from(app_doc("Never"), tmp_path)
    section = ProviderState(resources={PENDING_KIND: {"Never": {"business_id": None},
                                                      "Gone": {"business_id": None}}})
    async with sandbox(tmp_path) as box:
        plan = await box.session.plan(desired, section, Scope())
        assert shape(plan) == [("akana_app[Never]", "create")] and plan.learned == ()
        journal = Journal()
        await run(box.session, plan, section, journal)
        # "Gone" was not found and is not being created: its intent is dropped at once.
        assert journal.of(PENDING_KIND)[0] == ("Gone", None)
        assert PENDING_KIND not in section.resources
        assert sorted(section.resources[APP]) == ["Never"]


async def test_an_undeclared_app_left_by_an_interrupted_create_is_recorded(
    tmp_path: Path
) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        plan = await box.session.plan(apps_from(app_doc("Dropped"), tmp_path), section, Scope())
        with pytest.raises(Killed):
            await run(box.session, plan, section, Journal(kill=(APP, "Dropped")))
        # The manifest is gone by the next run: the app is recorded, so --prune can delete it.
        again = await box.session.plan([], section, Scope())
        assert [f.app_id for f in again.learned] == ["Dropped"]
        await run(box.session, again, section)
        assert sorted(section.resources[APP]) == ["Dropped"]
        pruning = await box.session.plan([], section, Scope(prune=True))
        assert shape(pruning) == [("akana_app[Dropped]", "delete")]


async def test_bind_refuses_a_section_made_for_another_platform(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as box:
        fresh = ProviderState()
        box.session.bind(fresh)
        assert fresh.endpoint == box.session.identity
        box.session.bind(fresh)  # the same platform again: fine
        other = ProviderState(endpoint="https://akana.other.example")
        with pytest.raises(StateError) as caught:
            box.session.bind(other)
        message = str(caught.value)
        assert "made for https://akana.other.example" in message
        assert box.session.identity in message and other.endpoint == "https://akana.other.example"


async def test_drift_names_an_edit_made_outside(tmp_path: Path) -> None:
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        await run(box.session, await box.session.plan(demo(), section, Scope()), section)
        app_id = section.resources[APP]["Payments Reports"]["id"]
        box.store.update_app(app_id, {"summary": "edited by hand"})
        plan = await box.session.plan(demo(), section, Scope())
        report = box.session.drift(plan, section)
        assert [(i.kind, i.app_id, i.field) for i in report.items] == [
            ("changed_outside", "Payments Reports", "summary")
        ]
        assert report.endpoint == box.session.identity


async def test_import_by_name_and_by_app_id(tmp_path: Path) -> None:
    made = ProviderState()
    async with sandbox(tmp_path) as box:
        await run(box.session, await box.session.plan(demo(), made, Scope()), made)
        gateway_id = made.resources[APP]["Payments Gateway"]["id"]

        section = ProviderState()
        by_name = await box.session.import_resource("Payments Gateway", section)
        assert by_name.key == "Payments Gateway"
        assert yaml.safe_load(by_name.manifest)["metadata"]["name"] == "Payments Gateway"
        assert section.resources[APP]["Payments Gateway"]["id"] == gateway_id
        by_id = await box.session.import_resource(
            made.resources[APP]["Payments Reports"]["id"], section)
        assert by_id.key == "Payments Reports"
        assert sorted(section.resources[APP]) == ["Payments Gateway", "Payments Reports"]
        imported = apps_from(by_name.manifest + "---\n" + by_id.manifest, tmp_path)
        assert (await box.session.plan(imported, section, Scope())).changes == ()

        with pytest.raises(AkanaImportError, match="no Akana app named"):
            await box.session.import_resource("No Such App", section)
        renamed = ProviderState(resources={APP: {"Alias": dict(
            made.resources[APP]["Payments Gateway"])}})
        with pytest.raises(StateError, match="already records AppID"):
            await box.session.import_resource(gateway_id, renamed)


async def test_a_saved_plan_is_refused_whole_for_an_app_changed_since(tmp_path: Path) -> None:
    """A stale saved plan is refused before its first write, every app of it (the guard is
    fleet-wide: a reviewer approved the plan as a whole)."""
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        await run(box.session, await box.session.plan(demo(), section, Scope()), section)
        edited = [a.model_copy(update={"summary": f"{a.name} v2"}) for a in demo()]
        plan = await box.session.plan(edited, section, Scope())
        assert len(plan.fingerprints) == 2
        reports_id = section.resources[APP]["Payments Reports"]["id"]
        gateway_id = section.resources[APP]["Payments Gateway"]["id"]
        box.store.update_app(reports_id, {"description": "moved"})
        with pytest.raises(PlanError, match=r"stale saved plan: akana_app\[Payments Reports\]:"
                           " the platform has another description"):
            await run(box.session, plan, section, desired=None)  # a saved plan
        assert box.store.app(reports_id)["summary"] == "Settlement reports"
        assert box.store.app(gateway_id)["summary"] != "Payments Gateway v2"


# --- the connector ----------------------------------------------------------------------------


def test_the_connector_is_configured_by_the_base_url() -> None:
    assert AKANA.connector is AKANA_CONNECTOR and AKANA_CONNECTOR.name == "akana"
    assert AKANA_CONNECTOR.configured({"AKANA_BASE_URL": "https://a.example"}, None)
    assert not AKANA_CONNECTOR.configured({"AKANA_BASE_URL": "  "}, None)
    assert not AKANA_CONNECTOR.configured({}, None)


async def test_the_sandbox_session_keeps_its_password_to_itself(tmp_path: Path) -> None:
    section = ProviderState()
    async with AKANA_CONNECTOR.connect(
        {}, sandbox_dir=tmp_path / "sb", config=None, parallelism=2
    ) as session:
        db = (tmp_path / "sb" / SANDBOX_DB_NAME).resolve()
        assert session.identity == f"sandbox:{db}"
        session.bind(section)
        plan = await session.plan(demo(), section, Scope())
        await session.apply(plan, section, desired=demo(), parallelism=2, record=Journal(),
                            on_event=lambda event: None)
        assert isinstance(session, AkanaSession)
        password = session._client.config.password.reveal()
        assert password != IN_PROCESS_PASSWORD and len(password) >= 24
        for shown in (session.identity, session.display, repr(session), repr(plan)):
            assert password not in shown and IN_PROCESS_PASSWORD not in shown
    assert db.exists()
    # The next process's sandbox serves what this one applied, with a new password.
    async with AKANA_CONNECTOR.connect(
        {}, sandbox_dir=tmp_path / "sb", config=None, parallelism=2
    ) as session:
        assert (await session.plan(demo(), section, Scope())).changes == ()
        assert session._client.config.password.reveal() != password


def test_a_missing_login_is_named() -> None:
    with pytest.raises(ConfigError, match="AKANA_EMAIL and AKANA_PASSWORD"):
        AKANA_CONNECTOR.connect({"AKANA_BASE_URL": "https://akana.example.com"},
                                sandbox_dir=None, config=None, parallelism=1)
    with pytest.raises(ConfigError, match="AKANA_PASSWORD"):
        AKANA_CONNECTOR.connect(
            {"AKANA_BASE_URL": "https://akana.example.com", "AKANA_EMAIL": "a@b.example"},
            sandbox_dir=None, config=None, parallelism=1)


async def test_an_env_session_logs_in_and_out_and_shows_no_secret(
    akana: RunningAkana, tmp_path: Path
) -> None:
    env = {"AKANA_BASE_URL": akana.base_url, "AKANA_EMAIL": EMAIL, "AKANA_PASSWORD": PASSWORD}
    section = ProviderState()
    async with AKANA_CONNECTOR.connect(env, sandbox_dir=None, config=None,
                                       parallelism=4) as session:
        assert session.identity == akana.base_url and session.display == akana.base_url
        session.bind(section)
        plan = await session.plan(demo(), section, Scope())
        await session.apply(plan, section, desired=demo(), parallelism=4, record=Journal(),
                            on_event=lambda event: None)
        assert akana.store.count("login") == 1
    assert akana.store.count("logout") == 1  # logged out at the end
    assert sorted(section.resources[APP]) == ["Payments Gateway", "Payments Reports"]

    # A wrong password: the error names the variables, never the password or a cookie.
    wrong = {**env, "AKANA_PASSWORD": "not-the-Passw0rd-123"}
    with pytest.raises(ReconcilerError) as caught:
        async with AKANA_CONNECTOR.connect(wrong, sandbox_dir=None, config=None,
                                           parallelism=1) as session:
            await session.plan(demo(), ProviderState(), Scope())
    message = str(caught.value)
    assert "not-the-Passw0rd-123" not in message and PASSWORD not in message
    assert "AKANA" in message


async def test_the_session_logs_out_when_the_run_fails(akana: RunningAkana) -> None:
    env = {"AKANA_BASE_URL": akana.base_url, "AKANA_EMAIL": EMAIL, "AKANA_PASSWORD": PASSWORD}
    with pytest.raises(RuntimeError, match="boom"):
        async with AKANA_CONNECTOR.connect(env, sandbox_dir=None, config=None,
                                           parallelism=1) as session:
            await session.plan([], ProviderState(), Scope())
            raise RuntimeError("boom")
    assert akana.store.count("login") == 1 and akana.store.count("logout") == 1


async def test_a_saved_plan_that_takes_over_an_interrupted_create_applies(
    tmp_path: Path,
) -> None:
    """The plan JSON round trip (apply --plan): the adoptions of interrupted creates, declared
    or not, survive the saved-plan check and apply without manifests."""
    desired = apps_from(app_doc("Kept", versions=["1.0", "2.0"]) + "---\n" + app_doc("Left"),
                        tmp_path)
    async with sandbox(tmp_path) as box:
        # Both created by a run that died before recording them: only their intents remain.
        lost = ProviderState()
        created = [a.model_copy(update={"versions": a.versions[:1]}) for a in desired]
        await run(box.session, await box.session.plan(created, lost, Scope()), lost)
        section = ProviderState(resources={PENDING_KIND: {
            "Kept": {"business_id": None}, "Left": {"business_id": None}}})
        assert sorted(section.resources[PENDING_KIND]) == ["Kept", "Left"]
        kept = [a for a in desired if a.name == "Kept"]  # "Left"'s manifest was dropped
        plan = await box.session.plan(kept, section, Scope())
        saved = AKANA.load_saved_plan(json.loads(json.dumps(plan.as_dict())), "saved.json")
        assert sorted(f.app_id for f in saved.learned) == ["Kept", "Left"]
        journal = Journal()
        applied, events = await run(box.session, saved, section, journal, desired=None)
        assert applied.adopted == 2
        assert [(str(e.change.address), e.outcome) for e in events] == [
            ("akana_app[Kept].version[2.0]", "applied")
        ]
        assert sorted(section.resources[APP]) == ["Kept", "Left"]
        assert PENDING_KIND not in section.resources
        assert sorted(box.store.app_ids()) == sorted(
            r["id"] for r in section.resources[APP].values())
        assert (await box.session.plan(kept, section, Scope())).changes == ()


class _CookieWatch(httpx.AsyncBaseTransport):
    """Forwards to the sandbox and keeps every cookie value it sets (to look for leaks)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.values = inner, set[str]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        for header in response.headers.get_list("set-cookie"):
            value = header.split(";", 1)[0].split("=", 1)[1]
            if len(value) >= 8:
                self.values.add(value)
        return response


async def test_errors_and_names_carry_no_session_cookie(tmp_path: Path) -> None:
    running = in_process_akana(tmp_path / SANDBOX_DB_NAME, password="Pw-for-this-test-only-1")
    watch = _CookieWatch(running.transport)
    config = AkanaConfig(akana_endpoint(running.base_url), running.email,
                         Secret(running.password))
    section = ProviderState()
    shown: list[str] = []
    try:
        async with AkanaClient(config, transport=watch) as client:
            session = AkanaSession(client, identity="sandbox:x", display="sandbox x")
            plan = await session.plan(demo(), section, Scope())
            await run(session, plan, section)
            for ref in ("No Such App", "bad/id"):
                with pytest.raises(ReconcilerError) as caught:
                    await session.import_resource(ref, section)
                shown.append(str(caught.value))
            shown += [session.identity, session.display, repr(session), repr(client)]
            shown += [json.dumps(plan.as_dict()), json.dumps(section.resources)]
    finally:
        running.close()
    assert watch.values  # the session cookie and CSRF token were set
    for text in shown:
        assert "Pw-for-this-test-only-1" not in text
        assert not [value for value in watch.values if value in text]


async def test_the_plan_reads_as_many_apps_at_once_as_parallelism_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--parallelism reaches the reads (the library's default is 8 apps at a time: a 1,000-app
    plan through the CLI took 7.9 s instead of 4.6 s at 25 ms, bench/akana_cli.py)."""
    import reconciler.providers.akana.session as session_module

    seen: list[int] = []
    real = session_module.read_live

    async def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["concurrency"])
        return await real(*args, **kwargs)

    monkeypatch.setattr(session_module, "read_live", recording)
    db = tmp_path / SANDBOX_DB_NAME
    running = in_process_akana(db)
    config = AkanaConfig(akana_endpoint(running.base_url), running.email,
                         Secret(running.password))  # fmt: skip
    try:
        async with AkanaClient(config, transport=running.transport) as client:
            session = AkanaSession(client, identity="x", display="x", parallelism=24)
            await session.plan(demo(), ProviderState(), Scope())
    finally:
        running.close()
    assert seen == [24]


@pytest.mark.parametrize("action", ["update", "delete"])
async def test_a_saved_version_change_moved_to_another_apps_version_is_refused(
    tmp_path: Path, action: str
) -> None:
    """The change keeps its address but names another app's version in before.id: without
    the check, that version (and with it, its only version, the other app) was written."""
    section = ProviderState()
    async with sandbox(tmp_path) as box:
        both = apps_from(app_doc("Solo") + "---\n" + app_doc("Other"), tmp_path)
        await run(box.session, await box.session.plan(both, section, Scope()), section)
        solo = (app_doc("Solo", versions=["2.0"]) if action == "delete"
                else app_doc("Solo").replace("{name: '1.0'}", "{name: '1.0', description: d2}"))
        edited = apps_from(solo + "---\n" + app_doc("Other"), tmp_path)
        plan = await box.session.plan(edited, section, Scope())
        other = section.resources[APP]["Other"]
        other_version = other["versions"]["1.0"]["id"]
        changes = list(plan.changes)
        index = next(i for i, c in enumerate(changes)
                     if c.kind != APP and c.action in ("delete", "update"))
        changes[index] = dataclasses.replace(
            changes[index], before={**(changes[index].before or {}), "id": other_version})
        tampered = dataclasses.replace(plan, changes=tuple(changes))
        with pytest.raises(PlanError, match="server id the state does not record"):
            await run(box.session, tampered, section, desired=None)
        assert [v["name"] for v in box.store.versions(other["id"])] == ["1.0"]
