"""The version probe's matching rules (reconciler/recover.py), with a fake server that does
NOT scope version ids by app (the real one might not: api-notes), so a read of app A's path
can answer another app's version."""

from __future__ import annotations

from typing import Any

from reconciler.providers.miniappcenter.client import VersionData
from reconciler.providers.miniappcenter.recover import probe_versions

SENT = {"platform_id": "iOS", "main_name": "start", "main_type": "Panel"}


class UnscopedServer:
    """`get_version(app, id)` answers whatever version has that id, whichever app owns it."""

    def __init__(self, versions: dict[int, dict[str, Any]]) -> None:
        self.versions = versions
        self.reads: list[int] = []

    async def get_version(self, _app_id: str, version_id: int) -> VersionData | None:
        self.reads.append(version_id)
        data = self.versions.get(version_id)
        return None if data is None else VersionData(id=version_id, **data)


async def test_after_an_unanswered_create_only_an_exact_match_is_ours() -> None:
    # id 6 is app B's 1.0.0 (other fields): never taken for A's unanswered create
    server = UnscopedServer({6: {"code": "1.0.0", **SENT, "main_name": "b-start"}})
    result = await probe_versions(
        server, "com.a", {"1.0.0": SENT}, after=5, window=8, exact_only=True  # type: ignore[arg-type]
    )
    assert result.found == {} and result.range == (6, 13)


async def test_a_same_code_version_is_taken_when_the_code_is_known_to_exist() -> None:
    server = UnscopedServer({6: {"code": "1.0.0", **SENT, "main_name": "renamed"}})
    result = await probe_versions(server, "com.a", {"1.0.0": SENT}, after=5, window=8)  # type: ignore[arg-type]
    assert result.found["1.0.0"].id == 6


async def test_exact_beats_same_code_and_stops_at_the_first_match() -> None:
    server = UnscopedServer({
        6: {"code": "1.0.0", **SENT, "main_name": "other"},
        7: {"code": "1.0.0", **SENT},
    })
    result = await probe_versions(
        server, "com.a", {"1.0.0": SENT}, after=5, window=256, parallelism=4  # type: ignore[arg-type]
    )
    assert result.found["1.0.0"].id == 7
    assert max(server.reads) <= 9  # batches of 1, 2, 4: it stopped in the batch it matched


async def test_ids_the_state_records_elsewhere_are_never_read() -> None:
    server = UnscopedServer({2: {"code": "1.0.0", **SENT}})
    result = await probe_versions(
        server, "com.a", {"1.0.0": SENT}, after=0, window=3, skip_ids={2}  # type: ignore[arg-type]
    )
    # The window bounds the reads: a skipped id costs nothing.
    assert server.reads == [1, 3, 4] and result.found == {} and result.reads == 3


async def test_a_window_of_ids_recorded_elsewhere_still_reads_past_them() -> None:
    # 300 apps, one version each: the ids of apps 0-255 are recorded; app 256's is 257.
    server = UnscopedServer({257: {"code": "1.0.0", **SENT}})
    result = await probe_versions(
        server, "com.a", {"1.0.0": SENT}, after=0, window=256,  # type: ignore[arg-type]
        skip_ids=set(range(1, 257)),
    )
    assert result.found["1.0.0"].id == 257 and result.reads == 1


async def test_a_guided_probe_reads_nearest_the_center_first() -> None:
    from reconciler.providers.miniappcenter.recover import around

    server = UnscopedServer({40: {"code": "1.0.0", **SENT}})
    result = await probe_versions(
        server, "com.a", {"1.0.0": SENT}, after=0, window=256, parallelism=4,  # type: ignore[arg-type]
        order=around(38),
    )
    assert result.found["1.0.0"].id == 40 and result.reads <= 7
    assert result.range == (min(server.reads), max(server.reads))


def test_around_stays_within_its_floor_and_ceiling() -> None:
    from reconciler.providers.miniappcenter.recover import around

    assert list(around(5, floor=3, ceiling=7)) == [5, 6, 4, 7, 3]
    assert list(around(9, ceiling=4)) == [4, 3, 2, 1]
    assert list(around(1, ceiling=0)) == []


async def test_an_unanswered_create_is_not_looked_for_above_the_ceiling() -> None:
    server = UnscopedServer({})
    result = await probe_versions(
        server, "com.a", {"1.0.0": SENT}, after=5, window=256, exact_only=True,  # type: ignore[arg-type]
        ceiling=12,
    )
    assert result.found == {} and server.reads == list(range(6, 13)) and result.range == (6, 12)
