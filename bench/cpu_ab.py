"""Client CPU per request of this tree against another commit's, interleaved in one run.

    python bench/cpu_ab.py --baseline 4724a62 --apps 1000 --rounds 5

One sandbox server (its own process, no latency: the client is CPU-bound) holds a converged
fleet. Each round runs one child process per side, in alternating order; a child imports the
``reconciler`` package of its side (the baseline's is extracted with ``git archive``), plans
the fleet once to warm up, then ``--plans`` times measured, and reports ``process_time`` /
requests of each plan. The machine's noise hits both sides alike; the ratio of the medians
is the figure (issue 14: "client CPU per request at least 2x lower").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> int:
    if args.root:
        sys.path.insert(0, args.root)
    sys.path.insert(1 if args.root else 0, str(ROOT))
    import reconciler
    from bench.fleet import make_fleet
    from bench.measure import http_client_factory, plan_converged

    apps = make_fleet(args.apps)
    make = http_client_factory(args.url, args.token)
    figures: list[float] = []
    for index in range(args.plans + 1):
        planned = asyncio.run(plan_converged(make, apps, Path(args.state), args.parallelism))
        assert planned["changes"] == 0 and planned["errors"] == 0, planned
        if index:  # the first one warms up (imports, connections, caches)
            figures.append(planned["client_cpu_s"] / planned["requests"])
    print(json.dumps({"package": reconciler.__file__, "cpu_per_request_s": figures}))
    return 0


def run_side(args: argparse.Namespace, root: str, url: str, token: str, state: Path) -> Any:
    command = [
        sys.executable, __file__, "--child", "--root", root, "--url", url, "--token", token,
        "--state", str(state), "--apps", str(args.apps), "--plans", str(args.plans),
        "--parallelism", str(args.parallelism),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="4724a62", help="commit to compare with")
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plans", type=int, default=2, help="measured plans per child")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", default="", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    sys.path.insert(0, str(ROOT))
    from bench.fleet import make_fleet
    from bench.measure import apply_fleet, http_client_factory
    from bench.server import start_sandbox

    work = Path(tempfile.mkdtemp(prefix="cpu-ab-"))
    try:
        base = work / "baseline"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline, "reconciler"],
            capture_output=True, check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        sides = {args.baseline: str(base), "this tree": str(ROOT)}
        samples: dict[str, list[float]] = {name: [] for name in sides}
        with start_sandbox(work / "sandbox.db", latency_ms=0) as server:
            make = http_client_factory(server.base_url, server.token)
            state = work / "state.json"
            asyncio.run(apply_fleet(make, make_fleet(args.apps), state, args.parallelism))
            for round_ in range(args.rounds):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for name in order:
                    got = run_side(args, sides[name], server.base_url, server.token, state)
                    samples[name].extend(got["cpu_per_request_s"])
                    shown = ", ".join(f"{s * 1e6:.0f}" for s in got["cpu_per_request_s"])
                    print(f"round {round_ + 1} {name}: {shown} us/request", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    before, after = samples[args.baseline], samples["this tree"]
    print(
        f"Client CPU per request, converged plan of {args.apps} apps, no latency,"
        f" {args.rounds} rounds x {args.plans} plans per side, interleaved\n"
    )
    print("| side | median | best | samples |\n|---|---:|---:|---:|")
    for name, values in samples.items():
        print(
            f"| {name} | {statistics.median(values) * 1e6:.0f} us |"
            f" {min(values) * 1e6:.0f} us | {len(values)} |"
        )
    print(
        f"\n{args.baseline} / this tree: **{statistics.median(before) / statistics.median(after):.2f}x**"
        f" (medians), {min(before) / min(after):.2f}x (best)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
