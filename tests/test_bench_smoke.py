"""The benchmark suite must not rot: its fleet generator and measurement functions run here at
N=5 with no latency. Only structural results are asserted (one write per change, no resource
read twice, a converged plan finds nothing), never timings."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from bench import measure
from bench.fleet import converged_state, live_from, make_fleet, with_changes, write_manifests
from bench.run import checks, report
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient
from reconciler.providers.miniappcenter.diff import build_plan
from reconciler.providers.miniappcenter.manifest import load_manifests
from reconciler.providers.miniappcenter.sandbox import SandboxConfig, create_app

TOKEN = "bench-smoke-token"


def test_fleet_shape_and_manifests_round_trip(tmp_path: Path) -> None:
    apps = make_fleet(5)
    assert len({app.id for app in apps}) == 5
    for app in apps:
        assert len(app.spec.attributes or {}) == 2
        assert len(app.spec.locations or ()) == 2
        assert 1 <= len(app.spec.versions or ()) <= 2
    assert make_fleet(5) == apps  # deterministic
    write_manifests(apps, tmp_path)
    loaded = sorted((item.app for item in load_manifests([tmp_path], {})), key=lambda a: a.id)
    assert loaded == apps


def test_pure_diff_on_synthetic_live_state() -> None:
    apps = make_fleet(5)
    state = converged_state(apps)
    live = live_from(apps, state)
    assert build_plan(apps, live, state, endpoint="bench").changes == ()  # type: ignore[arg-type]
    changed = build_plan(with_changes(apps), live, state, endpoint="bench")  # type: ignore[arg-type]
    assert changed.changes and not changed.errors
    figures = measure.measure_diff(5, repeat=1)
    assert figures["converged"]["changes"] == 0
    assert figures["changed"]["changes"] == len(changed.changes)


def test_apply_then_plan_in_process(tmp_path: Path) -> None:
    app = create_app(SandboxConfig(db_path=tmp_path / "sandbox.db", token=TOKEN))

    def make_client(parallelism: int) -> MiniAppCenterClient:
        return MiniAppCenterClient(
            Endpoint(base_url="http://127.0.0.1/api"),
            TOKEN,
            transport=httpx.ASGITransport(app=app),
            max_connections=parallelism,
        )

    apps = make_fleet(5)
    state_path = tmp_path / "state.json"
    try:
        applied = asyncio.run(measure.apply_fleet(make_client, apps, state_path, 4))
        planned = asyncio.run(measure.plan_converged(make_client, apps, state_path, 4))
    finally:
        app.state.store.close()
    assert applied["changes"] > 0
    assert applied["writes"] == applied["changes"]
    assert applied["one_write_per_change"]
    assert planned["changes"] == 0 and planned["errors"] == 0
    assert planned["writes"] == 0
    assert planned["no_resource_read_twice"] and not planned["redundant"]
    # One app GET each, its locations, and every version it has.
    versions = sum(len(a.spec.versions or ()) for a in apps)
    assert planned["reads"] == 2 * len(apps) + versions


def test_one_size_against_a_real_server_and_the_report(tmp_path: Path) -> None:
    row = measure.measure_size(5, latency_ms=0, parallelism=4, workdir=tmp_path, seq_cap=None)
    row["peak_rss_mb"] = measure.peak_rss_mb()
    assert row["apply"]["one_write_per_change"]
    assert row["plan"]["changes"] == 0
    assert row["plan"]["no_resource_read_twice"]
    assert row["sequential"]["requests"] == row["plan"]["reads"]
    assert row["sequential"]["statuses"] == {200: row["plan"]["reads"]}
    results = {
        "machine": {
            "date": "today",
            "nproc": 2,
            "python": "3",
            "platform": "p",
            "httpx": "x",
            "httpcore": "y",
            "commit": "",
        },
        "config": {"latency_ms": 0, "parallelism": 4, "seq_cap": None, "command": "smoke"},
        "sizes": [row],
        "total_s": 1.0,
    }
    text = report(results)
    assert "| 5 |" in text
    assert "| 7: " in text  # the peer section names how many pairs the median is of
    assert all(met for _, _, met, invariant in checks(results) if invariant)


def test_probe_bench_finds_every_version() -> None:
    from bench import probe

    row = probe.measure(3, latency_ms=0, parallelism=4, window=64)
    assert row["versions"] == 5  # apps 0 and 2 have two versions
    for case in ("unanswered", "lost_state"):
        assert row[case]["found"] == row["versions"] and row[case]["creates"] == 0
    assert row["unanswered"]["probe_reads"] == row["versions"]  # one read each
    assert "reads per recovered version" in probe.report([row], 0, 4, 64)


def test_wide_bench_applies_one_write_per_change_and_shrinks_the_journal() -> None:
    from bench import wide

    applied = wide.measure_apply(30, latency_ms=0, parallelism=4)
    assert applied["writes"] == applied["changes"] > 30
    assert applied["critical_path"] == 4  # create, version, compatibility, review step
    sizes = wide.measure_journal(30, parallelism=4)
    assert 0 < sizes["per_resource"] < sizes["whole_record"]
    assert "| 30 |" in wide.report(applied, {30: sizes}, 30, 0, 4)


def test_yaml_loaders_bench_times_both_loaders(tmp_path: Path) -> None:
    from bench import yaml_loaders

    row = yaml_loaders.measure(3, 1, tmp_path)
    assert row["files"] == 3 and row["cli_pure_s"] > 0 and row["load_fast_s"] > 0
    assert row["naive_loop_s"] > 0 and row["bare_fast_cpu_s"] >= 0 and row["cli_fast_cpu_s"] > 0
    text = yaml_loaders.report(row)
    assert "**speed-up**" in text
    assert "naive `yaml.safe_load` loop" in text and "Load average (1 min)" in text


def test_plan_timeline_bench_stamps_every_moment(tmp_path: Path) -> None:
    """bench/plan_timeline.py at 3 apps, no latency: every moment of the process stamped."""
    from bench import plan_timeline

    result = plan_timeline.measure(3, 0, 1, tmp_path)
    for moment in ("CLI imported", "manifests: loaded", "state: read", "first request written",
                   "event loop: done", "exit", "process gone (wall)"):
        assert moment in result["median"], moment
    assert result["reads"] == 2 * 3 + 5
    assert "| first answer read |" in plan_timeline.report(result)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_changed_since_bench_reads_one_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import changed_since

    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    row = changed_since.measure(tmp_path / "repo", 4)
    assert row["incremental"]["apps_planned"] == 1 and row["full"]["apps_planned"] == 4
    assert 0 < row["incremental"]["reads"] < row["full"]["reads"]
    assert "`--changed-since HEAD`" in changed_since.report(row)


def test_peer_replays_the_same_requests_and_the_report_shows_it(tmp_path: Path) -> None:
    row = measure.measure_size(
        4, latency_ms=0, parallelism=3, workdir=tmp_path, seq_cap=None, plan_rounds=3,
        apply_rounds=2,
    )
    peer = row["peer"]
    assert peer["plan"]["requests"] == row["plan"]["requests"]
    assert peer["apply"]["requests"] == row["apply"]["requests"]  # reads, then every write
    assert row["ratios"]["plan_vs_peer"] > 0 and row["ratios"]["apply_vs_peer"] > 0
    # Three interleaved pairs; the ratio reported is their median, not one lucky pair.
    pairs = peer["plan_pair_ratios"]
    assert len(pairs) == 3 and pairs == sorted(pairs)
    assert row["ratios"]["plan_vs_peer"] == pairs[1]
    applies = peer["apply_pair_ratios"]  # each apply of a pair on a fresh server
    assert len(applies) == 2
    assert row["ratios"]["apply_vs_peer"] == (applies[0] + applies[1]) / 2
    # The shared-pool peer is an extra row of the same rounds, never the reference.
    assert peer["plan_shared_pool"]["requests"] == row["plan"]["requests"]
    assert peer["plan_vs_shared_pool"] > 0
    results = {
        "machine": {
            "date": "today", "nproc": 2, "python": "3", "platform": "p", "httpx": "x",
            "httpcore": "y", "commit": "", "load_avg": 1.25,
        },
        "config": {"latency_ms": 0, "parallelism": 3, "seq_cap": None, "command": "smoke"},
        "sizes": [row | {"peak_rss_mb": 1.0, "load_avg": [2.0, 3.5]}],
        "total_s": 1.0,
    }
    text = report(results)
    assert "one connection" in text  # the reference peer is the lanes' one
    assert "| 4 | " in text.split("shared-pool peer, extra row")[1]
    assert "Load average (1 min) at start 1.2; around each measurement: N=4 2.0 -> 3.5." in text


def test_the_reference_peer_gives_each_lane_one_connection(tmp_path: Path) -> None:
    """The 16-lane peer: ``parallelism`` clients of one connection each, a request on a free
    lane; the shared-pool peer: one client, one pool."""
    from bench.peer import Peer, Recorded, Recording
    from bench.server import start_sandbox

    with start_sandbox(tmp_path / "sandbox.db", latency_ms=5) as server:
        reads = {
            f"app{i}": [Recorded("GET", f"/miniapps/com.none.{i}", None, None)] for i in range(12)
        }
        recording = Recording(reads=reads)

        async def replay(lanes: bool) -> tuple[int, list[int]]:
            async with Peer(server.base_url, server.token, 3, lanes=lanes) as peer:
                await peer.plan(recording.reads)
                pools = [len(c._transport._pool.connections) for c in peer._clients]  # type: ignore[attr-defined]
                return peer.requests, pools

        requests, pools = asyncio.run(replay(True))
        assert requests == 12
        assert len(pools) == 3 and max(pools) == 1  # three lanes, one connection each
        requests, pools = asyncio.run(replay(False))
        assert requests == 12 and len(pools) == 1 and 1 <= pools[0] <= 3


def test_cpu_per_request_and_whole_processes(tmp_path: Path) -> None:
    cpu = measure.measure_cpu(3, parallelism=2, workdir=tmp_path, repeat=1)
    assert cpu["requests"] == 2 * 3 + 5  # app and locations each, five versions
    assert cpu["tool_cpu_per_request_s"] > 0 and cpu["peer_cpu_per_request_s"] > 0
    assert cpu["shared_pool_peer_cpu_per_request_s"] > 0
    (tmp_path / "process").mkdir()
    process = measure.measure_process(3, latency_ms=0, workdir=tmp_path / "process")
    assert process["reads"] == 2 * 3 + 5  # the tool's own GETs, from the server's log
    assert process["plan_s"] > 0 and process["sequential_s"] > 0


def test_lost_state_bench_counts_what_the_server_received() -> None:
    from bench import lost_state

    row = lost_state.measure(6, parallelism=4, window=256)
    assert row["found"] == row["versions"] and row["creates"] == 0
    assert row["received"] == row["counted"] > 0
    assert "| 6 |" in lost_state.report([row], 4, 256)
