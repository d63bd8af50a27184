"""The learned-normalization rule on Akana: a platform that stores text in its own form
(here: whitespace trimmed and collapsed, as a server may) converges, says once what it
normalized, and a change made outside is still seen.

The sandbox stores text as sent (the docs say nothing either way); the test makes it
normalize, in process, by wrapping its store's writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.providers.akana.model import AkanaApp, AkanaVersion
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.sandbox.store import AkanaSandboxStore
from tests.test_akana_lost_answers import akana, apply, plan

SPACED = AkanaApp(
    name="Spaced",
    summary="one",
    description="Card   payments ",
    versions=(AkanaVersion(name="1.0", description=" First  release"),),
)


def _tidy(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("description"), str):
        row = {**row, "description": " ".join(row["description"].split())}
    return row


@pytest.fixture
def tidying(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write of a description is stored trimmed and collapsed."""
    create, update = AkanaSandboxStore.create_app, AkanaSandboxStore.update_app
    add, update_version = AkanaSandboxStore.add_version, AkanaSandboxStore.update_version
    monkeypatch.setattr(
        AkanaSandboxStore, "create_app",
        lambda self, app, version: create(self, _tidy(app), _tidy(version)),
    )
    monkeypatch.setattr(
        AkanaSandboxStore, "update_app",
        lambda self, app_id, changes: update(self, app_id, _tidy(changes)),
    )
    monkeypatch.setattr(
        AkanaSandboxStore, "add_version", lambda self, version: add(self, _tidy(version))
    )
    monkeypatch.setattr(
        AkanaSandboxStore, "update_version",
        lambda self, version_id, changes: update_version(self, version_id, _tidy(changes)),
    )


async def test_text_the_platform_normalizes_converges_and_is_said_once(
    tmp_path: Path, tidying: None
) -> None:
    section = AkanaSection()
    async with akana(tmp_path, []) as (client, store):
        await apply(client, await plan(client, [SPACED], section), section)
        [app_id] = store.app_ids()
        assert store.app(app_id)["description"] == "Card payments"
        # The create answers only the AppID, so the app's own form is learned from the one
        # update that follows; the first version's form came with the listing read after it.
        second = await plan(client, [SPACED], section)
        assert [(str(c.address), c.action, [f.path for f in c.fields])
                for c in second.changes] == [("akana_app[Spaced]", "update", ["description"])]
        [result] = await apply(client, second, section)
        assert result.status == "done"
        assert result.note == (
            'updated; the server normalized description: "Card   payments " -> "Card payments"'
        )
        section = AkanaSection.from_resources(section.to_resources())  # through the state file
        third = await plan(client, [SPACED], section)
        assert third.changes == () and third.errors == ()

        # A change made outside is a change: the platform no longer holds its own answer.
        store.update_app(app_id, {"description": "Edited by hand"})
        fourth = await plan(client, [SPACED], section)
        assert [(c.action, [f.path for f in c.fields]) for c in fourth.changes] == [
            ("update", ["description"])
        ]


async def test_a_version_update_the_platform_normalizes_converges(
    tmp_path: Path, tidying: None
) -> None:
    section = AkanaSection()
    edited = SPACED.model_copy(update={"versions": (
        AkanaVersion(name="1.0", description="Second   release  "),)})  # fmt: skip
    async with akana(tmp_path, []) as (client, _store):
        await apply(client, await plan(client, [SPACED], section), section)
        changed = await plan(client, [edited], section)
        versions = [c for c in changed.changes if c.key == "1.0"]
        assert [(c.action, [f.path for f in c.fields]) for c in versions] == [
            ("update", ["description"])
        ]
        results = await apply(client, changed, section)
        assert any(r.note and "Second   release" in r.note and '"Second release"' in r.note
                   for r in results), [r.note for r in results]  # fmt: skip
        again = await plan(client, [edited], section)
        assert [c for c in again.changes if c.key == "1.0"] == []
