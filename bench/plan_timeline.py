"""Where a PR-sized plan's second goes: a timeline of one ``reconciler plan`` process.

    python bench/plan_timeline.py [--apps 200] [--latency-ms 25] [--runs 3]

A converged fleet of ``--apps`` (applied with ``reconciler apply`` at no latency), then
``--runs`` plans as whole processes against the sandbox server with the latency, each from
a driver that stamps, on the clock this process shares with it (``perf_counter`` is
CLOCK_MONOTONIC on Linux): the interpreter up (``site`` done), the CLI imported, manifests
loaded, the state read, the event loop started, the first and last socket writes, the
first answer read, the loop done, the process exit. Diagnostic only: the driver wraps those
functions from outside; nothing in the product changes. Each row is the median over the
runs; the floor is max(ceil(reads / parallelism), 2) x latency, as bench/run.py's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet import make_fleet, write_manifests  # noqa: E402
from bench.server import start_sandbox  # noqa: E402

# Runs as the child: stamps to the file named by argv[1], then the CLI with the rest.
_DRIVER = r"""
import sys, time, json, atexit
T = [("interpreter up", time.perf_counter())]
out, argv = sys.argv[1], sys.argv[2:]
def mark(name):
    T.append((name, time.perf_counter()))
def wrap(owner, attr, before, after):
    real = getattr(owner, attr)
    def wrapped(*a, **k):
        mark(before)
        try:
            return real(*a, **k)
        finally:
            mark(after)
    setattr(owner, attr, wrapped)
import asyncio
from asyncio import selector_events
writes, reads = [], []
_write = selector_events._SelectorSocketTransport.write
def write(self, data):
    writes.append(time.perf_counter())
    return _write(self, data)
selector_events._SelectorSocketTransport.write = write
_ready = selector_events._SelectorSocketTransport._read_ready
def read_ready(self):
    reads.append(time.perf_counter())
    return _ready(self)
selector_events._SelectorSocketTransport._read_ready = read_ready
import reconciler.cli.main as cli
mark("CLI imported")
import reconciler.manifest as manifest
wrap(manifest, "load_manifests", "manifests: start", "manifests: loaded")
from reconciler.state.file import FileStateStore
wrap(FileStateStore, "load", "state: start", "state: read")
wrap(asyncio, "run", "event loop: start", "event loop: done")
def save():
    T.append(("exit", time.perf_counter()))
    if writes:
        T.append(("first request written", writes[0]))
        T.append(("last request written", writes[-1]))
    if reads:
        T.append(("first answer read", reads[0]))
    with open(out, "w") as f:
        json.dump({"marks": T, "writes": len(writes)}, f)
atexit.register(save)
sys.exit(cli.main(argv))
"""


def run_once(cli_args: list[str], env: dict[str, str], workdir: Path) -> dict[str, float]:
    marks_file = workdir / "marks.json"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(marks_file), *cli_args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    end = time.perf_counter()
    if done.returncode not in (0, 2):
        raise RuntimeError(f"plan exited {done.returncode}: {done.stderr[-800:]}")
    data = json.loads(marks_file.read_text(encoding="utf-8"))
    row = {name: at - start for name, at in data["marks"]}
    row["process gone (wall)"] = end - start
    return row


def measure(apps: int, latency_ms: float, runs: int, workdir: Path) -> dict[str, Any]:
    fleet = make_fleet(apps)
    folder = workdir / "manifests"
    write_manifests(fleet, folder)
    state = workdir / "state.json"
    db = workdir / "sandbox.db"
    loads = [os.getloadavg()[0]]

    def env(server: Any) -> dict[str, str]:
        return {**os.environ, "MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": server.token,
                "NO_COLOR": "1"}

    cli = [sys.executable, "-m", "reconciler.cli.main"]
    with start_sandbox(db, latency_ms=0) as server:
        subprocess.run([*cli, "apply", "--auto-approve", "--state", str(state), str(folder)],
                       env=env(server), capture_output=True, check=True)
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    rows: list[dict[str, float]] = []
    args = ["plan", "--detailed-exitcode", "--state", str(state), str(folder)]
    with start_sandbox(db, latency_ms=latency_ms, port=port) as server:
        for _ in range(runs):
            rows.append(run_once(args, env(server), workdir))
            loads.append(os.getloadavg()[0])
    # Reads: 1 per app, its locations, each version (bench/fleet.py): 3.5 per app.
    reads = sum(2 + len(app.spec.versions or ()) for app in fleet)
    floor = max(math.ceil(reads / 16), 2) * latency_ms / 1000
    names = list(dict.fromkeys(name for row in rows for name in row))
    median = {name: statistics.median(r[name] for r in rows if name in r) for name in names}
    return {"apps": apps, "latency_ms": latency_ms, "runs": runs, "reads": reads,
            "floor_s": floor, "median": median, "load_avg": [min(loads), max(loads)]}


def report(result: dict[str, Any]) -> str:
    median = result["median"]
    order = sorted(median, key=lambda name: median[name])
    lines = [
        f"`python bench/plan_timeline.py --apps {result['apps']} --latency-ms"
        f" {result['latency_ms']:g} --runs {result['runs']}` ({time.strftime('%Y-%m-%d %H:%M')}"
        f" UTC; load average {result['load_avg'][0]:.1f} to {result['load_avg'][1]:.1f}):"
        f" {result['reads']} reads, floor {result['floor_s'] * 1000:.0f} ms at parallelism 16.",
        "",
        "| moment (from the parent's spawn) | median | since the previous |",
        "|---|---:|---:|",
    ]
    previous = 0.0
    for name in order:
        at = median[name]
        lines.append(f"| {name} | {at * 1000:.0f} ms | {(at - previous) * 1000:+.0f} ms |")
        previous = at
    wall = median["process gone (wall)"]
    floor = result["floor_s"]
    times = f" = {wall / floor:.2f}x the floor" if floor else ""
    lines += ["", f"Whole process: {wall:.2f} s{times} ({wall - floor:.2f} s above it)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=25)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-timeline-") as workdir:
        result = measure(args.apps, args.latency_ms, args.runs, Path(workdir))
    sys.stdout.write(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
