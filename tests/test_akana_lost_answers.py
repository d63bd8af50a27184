"""Akana creates whose outcome the run could not learn (found by
tests/test_apply_stateful_akana.py): the next plan must still converge with no person in
between, and the state must keep the AppID the server assigned."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from reconciler.providers.akana.apply import ChangeResult, apply_changes, record_adoptions
from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.diff import Adoption, AkanaDiff, diff
from reconciler.providers.akana.fetch import read_live
from reconciler.providers.akana.model import AkanaApp, AkanaVersion
from reconciler.providers.akana.records import IN_DOUBT_KIND, AkanaSection, AppRecord
from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.providers.akana.sandbox.config import AkanaSandboxConfig
from reconciler.providers.akana.sandbox.inprocess import (
    IN_PROCESS_BASE_URL,
    IN_PROCESS_EMAIL,
    IN_PROCESS_PASSWORD,
)
from reconciler.providers.akana.sandbox.store import AkanaSandboxStore
from reconciler.state import ProviderState, State
from reconciler.transport.redact import Secret
from tests.fixtures_akana import fast_retry
from tests.fixtures_pipeline import Fault, FaultTransport

SOLO = AkanaApp(name="Solo", summary="one", versions=(AkanaVersion(name="1.0"),))
CREATE = ("POST", r"^/api/apps$")
LISTING = ("GET", r"^/api/apps$")
VERSIONS = ("GET", r"^/api/apps/[^/]+/versions$")


@asynccontextmanager
async def akana(
    tmp_path: Path, faults: list[Fault]
) -> AsyncIterator[tuple[AkanaClient, AkanaSandboxStore]]:
    app = create_akana_app(
        AkanaSandboxConfig(db_path=tmp_path / "akana.db",
                           users={IN_PROCESS_EMAIL: IN_PROCESS_PASSWORD})
    )
    config = AkanaConfig(akana_endpoint(IN_PROCESS_BASE_URL), IN_PROCESS_EMAIL,
                         Secret(IN_PROCESS_PASSWORD))
    transport = FaultTransport(httpx.ASGITransport(app=app), faults)
    try:
        async with AkanaClient(config, transport=transport, retry=fast_retry()) as client:
            yield client, app.state.store
    finally:
        app.state.store.close()


async def plan(
    client: AkanaClient, desired: Sequence[AkanaApp], section: AkanaSection
) -> AkanaDiff:
    return diff(desired, await read_live(client, desired, section), section)


async def apply(
    client: AkanaClient, planned: AkanaDiff, section: AkanaSection
) -> list[ChangeResult]:
    assert planned.errors == (), [e.message for e in planned.errors]
    return await apply_changes(client, planned.changes, section, learned=planned.learned,
                               app_meta=planned.app_meta)


async def test_a_create_whose_answer_and_recheck_were_lost_is_found_by_the_next_plan(
    tmp_path: Path,
) -> None:
    faults: list[Fault] = []
    section = AkanaSection()
    async with akana(tmp_path, faults) as (client, store):
        planned = await plan(client, [SOLO], section)
        # The create is done and answered 502; the listing that would resolve it fails.
        faults += [Fault(*CREATE, "ambiguous"), Fault(*LISTING, "500")]
        [result] = await apply(client, planned, section)
        assert result.status == "failed"
        [app_id] = [i for i in store.app_ids()]
        assert "Solo" not in section.apps and section.in_doubt == {"Solo"}
        # The section goes through the state file: the marker survives the round trip.
        section = AkanaSection.from_resources(section.to_resources())
        # No adopt: true, yet the next plan takes it over: the state says this run sent it.
        again = await plan(client, [SOLO], section)
        assert again.errors == () and again.changes == ()
        assert [(a.name, a.server_id) for a in again.learned] == [("Solo", app_id)]
        await apply(client, again, section)
        assert section.apps["Solo"].id == app_id and section.in_doubt == set()
        assert sorted(section.apps["Solo"].versions) == ["1.0"]
        final = await plan(client, [SOLO], section)
        assert final.changes == () and final.learned == () and final.errors == ()
        assert store.app_ids() == [app_id]


async def test_a_create_in_doubt_that_was_not_done_is_created_by_the_next_plan(
    tmp_path: Path,
) -> None:
    faults: list[Fault] = []
    section = AkanaSection()
    async with akana(tmp_path, faults) as (client, store):
        planned = await plan(client, [SOLO], section)
        # 500 before the write (not done), and the listing that would tell fails too.
        faults += [Fault(*CREATE, "500"), Fault(*LISTING, "500")]
        [result] = await apply(client, planned, section)
        assert result.status == "failed" and store.app_ids() == []
        assert section.in_doubt == {"Solo"}
        again = await plan(client, [SOLO], section)
        assert [(str(c.address), c.action) for c in again.changes] == [
            ("akana_app[Solo]", "create")
        ]
        assert [r.status for r in await apply(client, again, section)] == ["done"]
        assert section.in_doubt == set() and section.apps["Solo"].id in store.app_ids()


async def test_a_create_is_recorded_even_when_reading_its_versions_fails(
    tmp_path: Path,
) -> None:
    faults: list[Fault] = []
    section = AkanaSection()
    async with akana(tmp_path, faults) as (client, store):
        planned = await plan(client, [SOLO], section)
        faults.append(Fault(*VERSIONS, "500", times=5))
        await apply(client, planned, section)
        [app_id] = store.app_ids()
        assert section.apps["Solo"].id == app_id  # the create answered its AppID: kept
        faults.clear()
        again = await plan(client, [SOLO], section)
        assert again.errors == () and again.changes == ()


def test_an_adoption_replaces_a_record_whose_app_is_gone() -> None:
    section = AkanaSection({"Solo": AppRecord(id="old.x", protect=True, labels={"a": "b"})})
    section.in_doubt.add("Solo")
    record_adoptions(section, [Adoption("Solo", "new.x", {"1.0": "v1.x"})])
    record = section.apps["Solo"]
    assert record.id == "new.x" and record.versions["1.0"].id == "v1.x"
    assert record.protect and record.labels == {"a": "b"}
    assert section.in_doubt == set()


def test_a_create_in_doubt_survives_the_state_file() -> None:
    section = AkanaSection({"Kept": AppRecord(id="k.x")}, {"Solo"})
    state = State()
    state.providers["akana"] = ProviderState(resources=section.to_resources())
    again = State.from_file(json.loads(json.dumps(state.to_file())))
    read = AkanaSection.from_resources(again.providers["akana"].resources)
    assert read.in_doubt == {"Solo"} and read.apps["Kept"].id == "k.x"
    assert IN_DOUBT_KIND not in AkanaSection(read.apps).to_resources()  # none: not written
