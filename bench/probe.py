"""What recovering by reading costs (issue 10): version reads per recovered version.

    python bench/probe.py [--sizes 10,50,100] [--latency-ms 25] [--parallelism 16]

Against a real sandbox server (its own process, ``--latency-ms`` per request), for each size:
1. apply a fresh fleet (bench/fleet.py: 1-2 versions per app), then time the converged plan;
2. **unanswered creates**: every version's record turned back into the intent an unanswered
   create leaves (``create_outcome: unknown``, ``probe_from`` = the mark just before it), then
   one plan finds them all: reads per recovered version, wall time against the converged plan;
3. **lost state**: no state file at all; one plan adopts every app and finds every version.

All figures in one run; ratios only (the machines are shared). Writes a Markdown table to
stdout and appends nothing anywhere: copy it into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet import make_fleet  # noqa: E402
from bench.measure import IDENTITY, apply_fleet, http_client_factory  # noqa: E402
from bench.server import TOKEN, start_sandbox  # noqa: E402
from reconciler.providers.miniappcenter.planning import make_plan  # noqa: E402
from reconciler.state import UNKNOWN, FileStateStore, State, VersionRecord  # noqa: E402


async def timed_plan(make_client: Any, apps: list[Any], state: State, parallelism: int,
                     window: int) -> dict[str, Any]:
    async with make_client(parallelism) as client:
        start = time.perf_counter()
        plan = await make_plan(client, apps, state, identity=IDENTITY, parallelism=parallelism,
                               probe_window=window)
        wall = time.perf_counter() - start
        reads = client.stats.reads
    found = [item for item in plan.learned if item.version_id is not None]
    return {
        "wall_s": wall,
        "reads": reads,
        "probe_reads": plan.probe_reads,
        "found": len(found),
        "not_found": sum(1 for item in plan.learned if item.code and item.version_id is None),
        "creates": sum(1 for c in plan.changes if c.kind == "version" and c.action == "create"),
    }


def unanswered(state: State) -> State:
    """Each version as if its create had gone unanswered right after the mark before it."""
    copy = state.model_copy(deep=True)
    for record in copy.apps.values():
        for code, version in list(record.versions.items()):
            assert version.id is not None
            record.versions[code] = VersionRecord(create_outcome=UNKNOWN,
                                                  probe_from=version.id - 1)
    copy.version_id_mark = 0
    return copy


def measure(n: int, latency_ms: float, parallelism: int, window: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        root = Path(tmp)
        server = start_sandbox(root / "sandbox.db", latency_ms=latency_ms)
        try:
            make_client = http_client_factory(server.base_url, TOKEN)
            apps = make_fleet(n)
            state_path = root / "state.json"
            asyncio.run(apply_fleet(make_client, apps, state_path, parallelism))
            state = FileStateStore(state_path).load(IDENTITY)
            versions = sum(len(r.versions) for r in state.apps.values())
            converged = asyncio.run(timed_plan(make_client, apps, state, parallelism, window))
            lost_answers = asyncio.run(
                timed_plan(make_client, apps, unanswered(state), parallelism, window)
            )
            lost_state = asyncio.run(timed_plan(make_client, apps, State(), parallelism, window))
        finally:
            server.stop()
    return {"apps": n, "versions": versions, "converged": converged,
            "unanswered": lost_answers, "lost_state": lost_state}


def report(rows: list[dict[str, Any]], latency_ms: float, parallelism: int, window: int) -> str:
    out = [
        f"Probe cost (latency {latency_ms:g} ms, --parallelism {parallelism},"
        f" --probe-window {window}; one run)",
        "",
        "| apps | versions | case | found | reads per recovered version | plan wall vs converged |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        base = row["converged"]["wall_s"]
        for case in ("unanswered", "lost_state"):
            figures = row[case]
            per = figures["probe_reads"] / figures["found"] if figures["found"] else float("nan")
            out.append(
                f"| {row['apps']} | {row['versions']} | {case.replace('_', ' ')} |"
                f" {figures['found']}/{row['versions']} | {per:.1f} |"
                f" {figures['wall_s'] / base:.2f}x |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--latency-ms", type=float, default=25)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--probe-window", type=int, default=256)
    args = parser.parse_args(argv)
    rows = [
        measure(int(n), args.latency_ms, args.parallelism, args.probe_window)
        for n in args.sizes.split(",")
    ]
    sys.stdout.write(report(rows, args.latency_ms, args.parallelism, args.probe_window))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
