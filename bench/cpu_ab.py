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
import contextlib
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
    # The side's own ``reconciler`` and ``bench`` (a commit before issue 12 has other module
    # paths, and its bench knows them).
    sys.path.insert(0, args.root)
    import reconciler
    from bench.fleet import make_fleet
    from bench.measure import apply_fleet, http_client_factory, plan_converged

    apps = make_fleet(args.apps)
    make = http_client_factory(args.url, args.token)
    if args.setup:
        asyncio.run(apply_fleet(make, apps, Path(args.state), args.parallelism))
        print(json.dumps({"package": reconciler.__file__}))
        return 0
    figures: list[float] = []
    for index in range(args.plans + 1):
        planned = asyncio.run(plan_converged(make, apps, Path(args.state), args.parallelism))
        assert planned["changes"] == 0 and planned["errors"] == 0, planned
        if index:  # the first one warms up (imports, connections, caches)
            figures.append(planned["client_cpu_s"] / planned["requests"])
    print(json.dumps({"package": reconciler.__file__, "cpu_per_request_s": figures}))
    return 0


def run_side(args: argparse.Namespace, root: str, server: Any, state: Path, setup: bool) -> Any:
    command = [
        sys.executable, __file__, "--child", "--root", root, "--url", server.base_url,
        "--token", server.token, "--state", str(state), "--apps", str(args.apps),
        "--plans", str(args.plans), "--parallelism", str(args.parallelism),
    ]
    if setup:
        command.append("--setup")
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", default="4724a62", help="commits to compare with, comma-separated"
    )
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plans", type=int, default=2, help="measured plans per child")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", default="", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    sys.path.insert(0, str(ROOT))
    from bench.server import start_sandbox

    work = Path(tempfile.mkdtemp(prefix="cpu-ab-"))
    baselines = [ref.strip() for ref in args.baseline.split(",") if ref.strip()]
    sides: dict[str, str] = {}
    for ref in baselines:
        folder = work / ref
        folder.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "reconciler", "bench"],
            capture_output=True, check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
        sides[ref] = str(folder)
    sides["this tree"] = str(ROOT)
    samples: dict[str, list[float]] = {name: [] for name in sides}
    try:
        with contextlib.ExitStack() as stack:
            # One server per side (this tree's sandbox, no latency), each side's own apply
            # and state file (state formats differ between commits).
            servers = {
                name: stack.enter_context(
                    start_sandbox(work / f"{index}.db", latency_ms=0)
                )
                for index, name in enumerate(sides)
            }
            for name, root in sides.items():
                run_side(args, root, servers[name], work / f"{name}.state.json", True)
            for round_ in range(args.rounds):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for name in order:
                    state = work / f"{name}.state.json"
                    got = run_side(args, sides[name], servers[name], state, False)
                    samples[name].extend(got["cpu_per_request_s"])
                    shown = ", ".join(f"{s * 1e6:.0f}" for s in got["cpu_per_request_s"])
                    print(
                        f"round {round_ + 1} {name} ({got['package']}): {shown} us/request",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    after = statistics.median(samples["this tree"])
    print(
        f"Client CPU per request, converged plan of {args.apps} apps, no latency,"
        f" {args.rounds} rounds x {args.plans} plans per side, interleaved\n"
    )
    print("| side | median | best | samples | **side / this tree** (medians) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in samples.items():
        print(
            f"| {name} | {statistics.median(values) * 1e6:.0f} us |"
            f" {min(values) * 1e6:.0f} us | {len(values)} |"
            f" **{statistics.median(values) / after:.2f}x** |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
