"""What recovering a lost state costs, by fleet size: the requests one plan sends when the
state file is gone, for a fleet this tool created.

    python bench/lost_state.py [--sizes 100,300,1000] [--parallelism 16]

For each size, against a real sandbox server (its own process, no added latency): apply a
fresh fleet (bench/fleet.py: 1-2 versions per app) with `apply`'s own pipeline, then plan
with no state at all and count
- the requests the server received during that plan (its access log),
- the requests the tool counted (``client.stats``) and the version reads it reports
  spending on the search (what `plan` prints),
- requests per (app + version): the near-linear target is at most 8,
- versions found, and versions the plan would create again (must be 0).
One run; counts, not times. Exits 1 when a version is not found or the counts disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet import make_fleet  # noqa: E402
from bench.measure import IDENTITY, apply_fleet, http_client_factory  # noqa: E402
from bench.server import TOKEN, start_sandbox  # noqa: E402
from reconciler.providers.miniappcenter.planning import make_plan  # noqa: E402
from reconciler.state import FileStateStore, State  # noqa: E402


def received(log: Path) -> int:
    """Requests the server answered (one uvicorn access line each)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if "HTTP/1.1" in line)


async def lost_plan(make_client: Any, apps: list[Any], parallelism: int,
                    window: int) -> dict[str, Any]:
    async with make_client(parallelism) as client:
        plan = await make_plan(client, apps, State(), identity=IDENTITY,
                               parallelism=parallelism, probe_window=window)
        counted = client.stats.reads
    return {
        "counted": counted,
        "probe_reads": plan.probe_reads,
        "found": sum(1 for item in plan.learned if item.code and item.version_id is not None),
        "creates": sum(1 for c in plan.changes if c.kind == "version" and c.action == "create"),
    }


def measure(n: int, parallelism: int, window: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-lost-") as tmp:
        root = Path(tmp)
        server = start_sandbox(root / "sandbox.db")
        log = root / "sandbox.log"
        try:
            make_client = http_client_factory(server.base_url, TOKEN)
            apps = make_fleet(n)
            state_path = root / "state.json"
            asyncio.run(apply_fleet(make_client, apps, state_path, parallelism))
            versions = sum(len(r.versions) for r in FileStateStore(state_path)
                           .load(IDENTITY).apps.values())
            before = received(log)
            figures = asyncio.run(lost_plan(make_client, apps, parallelism, window))
            server.stop()
            figures["received"] = received(log) - before
        finally:
            server.stop()
    return {"apps": n, "versions": versions, **figures}


def report(rows: list[dict[str, Any]], parallelism: int, window: int) -> str:
    out = [
        f"Lost-state recovery (--parallelism {parallelism}, --probe-window {window}; one run)",
        "",
        "| apps | versions | requests received | counted by the tool | probe reads printed |"
        " per (app + version) | found | created again |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = r["received"] / (r["apps"] + r["versions"])
        out.append(
            f"| {r['apps']} | {r['versions']} | {r['received']} | {r['counted']} |"
            f" {r['probe_reads']} | {per:.2f} | {r['found']}/{r['versions']} |"
            f" {r['creates']} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--probe-window", type=int, default=256)
    args = parser.parse_args(argv)
    rows = [measure(int(n), args.parallelism, args.probe_window)
            for n in args.sizes.split(",")]
    sys.stdout.write(report(rows, args.parallelism, args.probe_window))
    bad = [r for r in rows if r["found"] != r["versions"] or r["creates"]
           or r["received"] != r["counted"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
