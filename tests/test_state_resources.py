"""Other providers' completed writes in the state: journal lines replayed into
``providers.<name>.resources`` (file store) and the workspace row (PostgreSQL store), durable
without a save; damaged lines are refused, naming the line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import FileStateStore, State
from reconciler.state_pg import PgStateStore

ENDPOINT = "http://mac.test/api"
APP = {"id": "app-1", "protect": False, "labels": {"team": "pay"}, "fields": {}, "versions": {}}


def _crash_after_writes(store: FileStateStore | PgStateStore) -> None:
    """Two writes recorded, one removed, and no save (the process dies here)."""
    with store.lock("apply"):
        state = store.load(ENDPOINT)
        store.ensure_base(state)
        asyncio.run(store.record_resource("akana", "akana_app", "Payments", APP))
        asyncio.run(store.record_resource("akana", "akana_app", "Reports", {**APP, "id": "2"}))
        asyncio.run(store.record_resource("akana", "akana_app", "Reports", None))


def test_a_recorded_resource_is_durable_without_a_save(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    _crash_after_writes(store)
    journal = store.journal_path.read_text().splitlines()
    assert [json.loads(line)["key"] for line in journal] == ["Payments", "Reports", "Reports"]
    read = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert read.providers["akana"].resources == {"akana_app": {"Payments": APP}}
    assert read.apps == {}  # the Mini App Center's section is untouched


def test_a_save_folds_the_resource_lines_into_the_file(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    _crash_after_writes(store)
    again = FileStateStore(tmp_path / "state.json")
    with again.lock("apply"):
        state = again.load(ENDPOINT)
        again.save(state)
    assert not again.journal_path.exists()
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["providers"]["akana"]["resources"]["akana_app"] == {"Payments": APP}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"provider": "miniappcenter", "kind": "miniapp", "key": "x", "record": {}},
         "is not another provider's name"),
        ({"provider": "Akana!", "kind": "akana_app", "key": "x", "record": {}},
         "is not another provider's name"),
        ({"provider": "akana", "kind": "akana_app", "key": "", "record": {}},
         "is not a valid resource key"),
        ({"provider": "akana", "kind": "akana_app", "key": "x", "record": [1]},
         "is not a JSON object"),
        ({"provider": "akana", "kind": "akana_app", "key": "x", "record": {}, "extra": 1},
         "not a {\"provider\""),
    ],
)
def test_a_damaged_resource_line_is_refused_naming_the_line(
    tmp_path: Path, line: dict[str, object], problem: str
) -> None:
    store = FileStateStore(tmp_path / "state.json")
    store.save(State(endpoint=ENDPOINT))
    store.journal_path.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(StateError) as caught:
        FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert "line 1 is corrupt" in str(caught.value) and problem in str(caught.value)


def test_postgres_records_resources_in_the_workspace_row(pg_url: str) -> None:
    store = PgStateStore(pg_url)
    before = PgStateStore(pg_url).read().serial
    _crash_after_writes(store)
    read = PgStateStore(pg_url).read()
    assert read.providers["akana"].resources == {"akana_app": {"Payments": APP}}
    assert read.serial > before  # each recorded write moves the serial (saved plans go stale)


def test_a_rest_object_journaled_before_a_kill_is_replayed(tmp_path: Path) -> None:
    """A REST object's key is ``ENDPOINT:PATH:KEY`` and holds ``/``: its journal line, left by
    an apply killed before its save, must replay (it was refused as "not a valid resource
    key", so every later run stopped until someone edited the journal by hand)."""
    key = "shop:/api/categories/:tools"
    record = {"id": 2, "endpoint": "shop", "path": "/api/categories/", "key_field": "slug",
              "key": "tools", "fields": {}, "protect": False, "labels": {}}  # fmt: skip
    long_key = "shop:/api/products/:" + "K" * 400  # a long natural key: longer than an app id
    store = FileStateStore(tmp_path / "state.json")
    with store.lock("apply"):
        store.ensure_base(store.load(ENDPOINT))
        asyncio.run(store.record_resource("rest", "rest_object", key, record))
        asyncio.run(store.record_resource("rest", "rest_object", long_key, record))
    read = FileStateStore(tmp_path / "state.json").load(ENDPOINT)
    assert read.providers["rest"].resources["rest_object"] == {key: record, long_key: record}
