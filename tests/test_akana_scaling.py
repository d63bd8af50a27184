"""Work that must stay linear in the fleet's size (found by bench/akana_fleet.py): looking an
app up by name in the live picture, and keeping each applied app's labels and protection.
Counted, never timed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from reconciler.engine.plan import AppMeta
from reconciler.providers.akana.apply import apply_changes
from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.diff import diff
from reconciler.providers.akana.fetch import read_live
from reconciler.providers.akana.live import LiveAkana, LiveApp
from reconciler.providers.akana.model import AkanaApp, AkanaVersion
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.sandbox import in_process_akana
from reconciler.transport.redact import Secret


class CountingApps(tuple[LiveApp, ...]):
    """A tuple of live apps that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Iterator[LiveApp]:
        type(self).walks += 1
        return super().__iter__()


def test_looking_apps_up_by_name_does_not_walk_the_listing() -> None:
    apps = CountingApps(
        LiveApp(f"id-{i}", f"app-{i % 50}", {}) for i in range(100)  # two apps per name
    )
    live = LiveAkana(apps)
    CountingApps.walks = 0
    found = [live.named(f"app-{i}") for i in range(50)]
    assert CountingApps.walks == 0  # an index, not one scan per lookup (quadratic in a plan)
    assert [a.id for a in found[7]] == ["id-7", "id-57"]  # listing order kept
    assert live.named("nobody") == []
    found[7].clear()
    assert len(live.named("app-7")) == 2  # callers get their own list


class CountingMeta(Mapping[str, AppMeta]):
    """app_meta that counts the entries read, however they are read."""

    def __init__(self, data: dict[str, AppMeta]) -> None:
        self._data = data
        self.reads = 0

    def __getitem__(self, key: str) -> AppMeta:
        self.reads += 1
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        for key in self._data:
            self.reads += 1
            yield key

    def __len__(self) -> int:
        return len(self._data)


async def test_applying_n_apps_reads_their_meta_a_linear_number_of_times(
    tmp_path: Path,
) -> None:
    n = 40
    desired = [
        AkanaApp(name=f"app-{i:02d}", labels={"i": str(i)}, versions=(AkanaVersion(name="1"),))
        for i in range(n)
    ]
    sandbox = in_process_akana(tmp_path / "akana.db")
    config = AkanaConfig(
        akana_endpoint(sandbox.base_url), sandbox.email, Secret(sandbox.password)
    )
    section = AkanaSection()
    try:
        async with AkanaClient(config, transport=sandbox.transport) as client:
            planned = diff(desired, await read_live(client, desired, section), section)
            meta = CountingMeta(dict(planned.app_meta))
            results = await apply_changes(
                client, planned.changes, section, parallelism=4, app_meta=meta
            )
    finally:
        sandbox.close()
    assert [r.status for r in results] == ["done"] * n
    assert {name: r.labels for name, r in section.apps.items()} == {
        a.name: a.labels for a in desired
    }
    # Each app's own entry after its writes, and every entry once at the end: before, each
    # app walked the whole mapping (n * n = 1600 reads here).
    assert meta.reads <= 4 * n, meta.reads


def test_the_akana_sandbox_does_not_sync_the_disk_on_every_write(tmp_path: Path) -> None:
    """A sandbox needs no durability against an OS crash: WAL with synchronous=NORMAL, as the
    Mini App Center sandbox has, instead of a rollback journal synced on every commit (which
    made each write take ~10 ms of the server's single thread, serializing a fleet's apply)."""
    from reconciler.providers.akana.sandbox import AkanaSandboxStore

    store = AkanaSandboxStore(tmp_path / "akana.db")
    try:
        with store._tx() as db:
            journal = db.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = db.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        store.close()
    assert (journal, synchronous) == ("wal", 1)  # 1 = NORMAL (2 = FULL, the default)
