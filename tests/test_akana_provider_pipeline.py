"""The Akana provider end to end against the in-process sandbox: read_live -> diff ->
apply_changes, then a new plan finds nothing to do (convergence), lost create answers
included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.manifest.loader import load_manifests
from reconciler.providers.akana.apply import ChangeResult, apply_changes
from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.diff import AkanaDiff, diff
from reconciler.providers.akana.fetch import read_live
from reconciler.providers.akana.importer import AkanaImportError, import_app
from reconciler.providers.akana.manifest import MANIFEST_KINDS
from reconciler.providers.akana.model import AkanaApp
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.sandbox import in_process_akana
from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.providers.akana.sandbox.config import AkanaSandboxConfig
from reconciler.providers.akana.sandbox.inprocess import (
    IN_PROCESS_BASE_URL,
    IN_PROCESS_EMAIL,
    IN_PROCESS_PASSWORD,
)
from reconciler.transport.redact import Secret

DEMO = Path(__file__).resolve().parent.parent / "manifests" / "akana"


def apps_from(text: str, tmp_path: Path) -> list[AkanaApp]:
    path = tmp_path / "apps.yaml"
    path.write_text(text)
    return [loaded.app for loaded in load_manifests([path], {}, kinds=MANIFEST_KINDS)]


@asynccontextmanager
async def sandbox_client(db: Path, **faults: Any) -> AsyncIterator[tuple[AkanaClient, Any]]:
    if faults:
        config = AkanaSandboxConfig(
            db_path=db, users={IN_PROCESS_EMAIL: IN_PROCESS_PASSWORD}, faults_on_login=False,
            **faults,
        )
        app = create_akana_app(config)
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
        base, email, password, close = (
            IN_PROCESS_BASE_URL, IN_PROCESS_EMAIL, IN_PROCESS_PASSWORD, app.state.store.close
        )
        store = app.state.store
    else:
        sandbox = in_process_akana(db)
        transport, base, email, password = (
            sandbox.transport, sandbox.base_url, sandbox.email, sandbox.password
        )
        close, store = sandbox.close, sandbox.app.state.store
    config = AkanaConfig(akana_endpoint(base), email, Secret(password))
    try:
        async with AkanaClient(config, transport=transport) as client:
            yield client, store
    finally:
        close()


async def plan(
    client: AkanaClient, desired: Sequence[AkanaApp], section: AkanaSection, **kw: Any
) -> AkanaDiff:
    live = await read_live(client, desired, section)
    return diff(desired, live, section, **kw)


async def apply(
    client: AkanaClient, result: AkanaDiff, section: AkanaSection
) -> list[ChangeResult]:
    assert not result.errors, result.errors
    return await apply_changes(
        client, result.changes, section, parallelism=2, learned=result.learned,
        app_meta=result.app_meta,
    )


async def test_the_demo_manifests_converge_and_later_edits_too(tmp_path: Path) -> None:
    desired = [loaded.app for loaded in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    section = AkanaSection()
    async with sandbox_client(tmp_path / "akana.db") as (client, store):
        first = await plan(client, desired, section)
        assert [(str(c.address), c.action) for c in first.changes] == [
            ("akana_app[Payments Gateway]", "create"),
            ("akana_app[Payments Gateway].version[2.0]", "create"),
            ("akana_app[Payments Reports]", "create"),
        ]
        results = await apply(client, first, section)
        assert [r.status for r in results] == ["done"] * 3
        assert sorted(section.apps) == ["Payments Gateway", "Payments Reports"]
        gateway = section.apps["Payments Gateway"]
        assert gateway.protect and gateway.labels == {"team": "payments"}
        assert sorted(gateway.versions) == ["1.0", "2.0"]
        assert [v["id"] for v in store.versions(gateway.id)] == [
            gateway.versions["1.0"].id, gateway.versions["2.0"].id
        ]
        assert (await plan(client, desired, section)).changes == ()

        # An edit: the gateway's summary changes, 1.0 is replaced by 3.0 (added first).
        edited = apps_from(
            (DEMO / "payments.yaml").read_text()
            .replace("Card and wallet payments", "Cards, wallets and transfers")
            .replace('- name: "1.0"\n      description: First release', '- name: "3.0"\n'
                     '      description: Transfers'),
            tmp_path,
        )
        second = await plan(client, edited, section)
        assert [(str(c.address), c.action) for c in second.changes] == [
            ("akana_app[Payments Gateway]", "update"),
            ("akana_app[Payments Gateway].version[3.0]", "create"),
            ("akana_app[Payments Gateway].version[1.0]", "delete"),
        ]
        assert [r.status for r in await apply(client, second, section)] == ["done"] * 3
        assert sorted(section.apps["Payments Gateway"].versions) == ["2.0", "3.0"]
        assert [v["name"] for v in store.versions(gateway.id)] == ["2.0", "3.0"]
        assert (await plan(client, edited, section)).changes == ()

        # ensure: absent deletes the app (with its versions) and drops its record.
        reports_id = section.apps["Payments Reports"].id
        gone = [a if a.name != "Payments Reports" else a.model_copy(
            update={"ensure": "absent", "versions": ()}) for a in edited]
        third = await plan(client, gone, section)
        assert [(str(c.address), c.action) for c in third.changes] == [
            ("akana_app[Payments Reports]", "delete")]
        assert [r.status for r in await apply(client, third, section)] == ["done"]
        assert reports_id not in store.app_ids() and "Payments Reports" not in section.apps
        assert (await plan(client, gone, section)).changes == ()


async def test_an_ambiguous_create_converges_without_a_duplicate(tmp_path: Path) -> None:
    desired = [loaded.app for loaded in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    section = AkanaSection()
    db = tmp_path / "akana.db"
    # Every write is done and its answer replaced by a 502: creates are resolved by listing.
    async with sandbox_client(db, ambiguous_rate=1.0) as (client, store):
        results = await apply(client, await plan(client, desired, section), section)
        assert [r.status for r in results] == ["done"] * 3
        assert len(store.app_ids()) == 2
    async with sandbox_client(db) as (client, store):
        assert (await plan(client, desired, section)).changes == ()
        assert len(store.app_ids()) == 2
        assert len(store.versions(section.apps["Payments Gateway"].id)) == 2


async def test_an_unmanaged_app_is_refused_until_adopted(tmp_path: Path) -> None:
    desired = apps_from(
        "apiVersion: akana/v1\nkind: App\nmetadata: {name: Legacy}\n"
        "spec:\n  summary: old\n  versions: [{name: '1.0'}]\n",
        tmp_path,
    )
    async with sandbox_client(tmp_path / "akana.db") as (client, store):
        other = AkanaSection()
        await apply(client, await plan(client, desired, other), other)  # someone else's app
        section = AkanaSection()
        refused = await plan(client, desired, section)
        assert refused.changes == ()
        assert [(e.scope, e.app_id) for e in refused.errors] == [("app", "Legacy")]
        assert "not managed" in refused.errors[0].message
        adopting = apps_from(
            "apiVersion: akana/v1\nkind: App\nmetadata: {name: Legacy, adopt: true}\n"
            "spec:\n  summary: new\n  versions: [{name: '1.0'}]\n",
            tmp_path,
        )
        adopted = await plan(client, adopting, section)
        assert [(str(c.address), c.action) for c in adopted.changes] == [
            ("akana_app[Legacy]", "update")
        ]
        assert [a.server_id for a in adopted.learned] == [other.apps["Legacy"].id]
        await apply(client, adopted, section)
        assert section.apps["Legacy"].id == other.apps["Legacy"].id
        assert store.app(section.apps["Legacy"].id)["summary"] == "new"
        assert (await plan(client, desired, section)).changes[0].fields[0].after == "old"


async def test_a_failed_add_keeps_the_old_version(tmp_path: Path) -> None:
    desired = apps_from(
        "apiVersion: akana/v1\nkind: App\nmetadata: {name: Solo}\n"
        "spec:\n  versions: [{name: '1.0'}]\n", tmp_path,
    )
    replaced = apps_from(
        "apiVersion: akana/v1\nkind: App\nmetadata: {name: Solo}\n"
        "spec:\n  versions: [{name: '2.0'}]\n", tmp_path,
    )
    section = AkanaSection()
    async with sandbox_client(tmp_path / "akana.db") as (client, store):
        await apply(client, await plan(client, desired, section), section)
        app_id = section.apps["Solo"].id
        planned = await plan(client, replaced, section)
        store.add_version({  # someone takes the name first: the add fails
            "id": "x1.sandbox", "app_id": app_id, "name": "2.0", "description": "",
            "tags": [], "visibility": "Public", "website": "", "environment": "Sandbox",
            "state": "Active", "created": "", "updated": "",
        })
        results = await apply(client, planned, section)
        assert [r.status for r in results] == ["failed", "skipped"]
        assert [v["name"] for v in store.versions(app_id)] == ["1.0", "2.0"]
        assert sorted(section.apps["Solo"].versions) == ["1.0"]


@pytest.mark.parametrize("prune", [False, True])
async def test_prune_deletes_only_with_the_flag(tmp_path: Path, prune: bool) -> None:
    desired = [loaded.app for loaded in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    section = AkanaSection()
    async with sandbox_client(tmp_path / "akana.db") as (client, _store):
        await apply(client, await plan(client, desired, section), section)
        reports = [a for a in desired if a.name == "Payments Reports"]
        result = await plan(client, reports, section, prune=prune)
        if not prune:
            assert result.changes == () and "--prune" in result.warnings[0].message
            return
        assert [(str(c.address), c.action) for c in result.changes] == [
            ("akana_app[Payments Gateway]", "delete")
        ]
        assert [e.scope for e in result.errors] == ["fleet"]  # protected
        assert "protect" in result.errors[0].message


async def test_an_imported_app_is_managed_with_nothing_to_change(tmp_path: Path) -> None:
    desired = [loaded.app for loaded in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    async with sandbox_client(tmp_path / "akana.db") as (client, _store):
        made = AkanaSection()
        await apply(client, await plan(client, desired, made), made)
        text, record = await import_app(client, "Payments Gateway")
        by_id, _ = await import_app(client, made.apps["Payments Gateway"].id)
        assert by_id == text
        imported = apps_from(text, tmp_path)
        assert [v.name for v in imported[0].versions] == ["1.0", "2.0"]
        section = AkanaSection({"Payments Gateway": record})
        assert record.id == made.apps["Payments Gateway"].id
        assert {k: v.id for k, v in record.versions.items()} == {
            k: v.id for k, v in made.apps["Payments Gateway"].versions.items()
        }
        assert (await plan(client, imported, section)).changes == ()
        with pytest.raises(AkanaImportError) as caught:
            await import_app(client, "No Such App")
        assert "no Akana app named" in str(caught.value)


class _Holding(httpx.AsyncBaseTransport):
    """Holds the create of the app named ``held`` until ``release`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport, held: str) -> None:
        self.inner, self.held, self.release = inner, held, asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (
            request.method == "POST"
            and request.url.path == "/api/apps"
            and json.loads(request.content)["Name"] == self.held
        ):
            await self.release.wait()
        return await self.inner.handle_async_request(request)


async def test_one_stuck_app_does_not_hold_the_others(tmp_path: Path) -> None:
    names = ["A stuck", "B", "C", "D"]
    desired = apps_from(
        "---\n".join(
            f"apiVersion: akana/v1\nkind: App\nmetadata: {{name: {n}}}\n"
            "spec:\n  versions: [{name: '1'}]\n"
            for n in names
        ),
        tmp_path,
    )
    sandbox = in_process_akana(tmp_path / "akana.db")
    holding = _Holding(sandbox.transport, "A stuck")
    config = AkanaConfig(akana_endpoint(sandbox.base_url), sandbox.email,
                         Secret(sandbox.password))
    done: list[str] = []

    def on_result(result: ChangeResult) -> None:
        done.append(result.change.app_id)
        if sorted(done) == ["B", "C", "D"]:  # every other app finished while A was held
            holding.release.set()

    section = AkanaSection()
    try:
        async with AkanaClient(config, transport=holding) as client:
            result = await plan(client, desired, section)
            # A guard against a hang, not a measurement: the held app is released only
            # once the others are done, so an executor that waits on it never finishes.
            await asyncio.wait_for(
                apply_changes(client, result.changes, section, parallelism=2,
                              on_result=on_result),
                timeout=60,
            )
    finally:
        sandbox.close()
    assert sorted(done[:3]) == ["B", "C", "D"] and done[3] == "A stuck"
    assert sorted(section.apps) == sorted(names)


async def test_the_only_version_is_never_deleted_by_a_version_change(tmp_path: Path) -> None:
    desired = apps_from(
        "apiVersion: akana/v1\nkind: App\nmetadata: {name: Solo}\n"
        "spec:\n  versions: [{name: '1.0'}]\n", tmp_path,
    )
    replaced = apps_from(
        "apiVersion: akana/v1\nkind: App\nmetadata: {name: Solo}\n"
        "spec:\n  versions: [{name: '2.0'}]\n", tmp_path,
    )
    section = AkanaSection()
    async with sandbox_client(tmp_path / "akana.db") as (client, store):
        await apply(client, await plan(client, desired, section), section)
        planned = await plan(client, replaced, section)
        only_delete = [c for c in planned.changes if c.action == "delete"]
        [result] = await apply_changes(client, only_delete, section)
        assert result.status == "failed" and "only version" in str(result.note)
        assert [v["name"] for v in store.versions(section.apps["Solo"].id)] == ["1.0"]


class _LosingCreates(httpx.AsyncBaseTransport):
    """App creates never reach the platform (a timeout before sending) while ``lose``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.lose = inner, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.lose and request.method == "POST" and request.url.path == "/api/apps":
            raise httpx.ReadTimeout("injected: no answer", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_create_proven_not_done_fails_and_leaves_the_state(tmp_path: Path) -> None:
    desired = [loaded.app for loaded in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    sandbox = in_process_akana(tmp_path / "akana.db")
    losing = _LosingCreates(sandbox.transport)
    config = AkanaConfig(akana_endpoint(sandbox.base_url), sandbox.email,
                         Secret(sandbox.password))
    section = AkanaSection()
    try:
        async with AkanaClient(config, transport=losing) as client:
            planned = await plan(client, desired, section)
            results = await apply(client, planned, section)
            assert [r.status for r in results] == ["failed", "skipped", "failed"]
            assert "running again is safe" in str(results[0].note)
            assert section.apps == {} and sandbox.app.state.store.app_ids() == []
            losing.lose = False
            results = await apply(client, await plan(client, desired, section), section)
            assert [r.status for r in results] == ["done"] * 3
            assert len(sandbox.app.state.store.app_ids()) == 2
    finally:
        sandbox.close()
