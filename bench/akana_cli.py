"""A 1,000-app Akana fleet through the CLI, as a pipeline runs it: `reconciler plan`,
`apply`, a re-plan and a plan after editing a few apps, each a whole process, against the
Akana sandbox over loopback HTTP with a latency per request. The server counts the requests
by route, so the reads each command makes are measured, not assumed.

    python bench/akana_cli.py --apps 1000 --latency-ms 25

(bench/akana_fleet.py drives the library instead: no process start, no state journal.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.akana_server import AkanaServer, start_akana_sandbox  # noqa: E402
from bench.server import seconds_text  # noqa: E402


def write_fleet(folder: Path, apps: int, edited: int = 0) -> None:
    """``apps`` Akana apps, two versions each; the first ``edited`` have a new summary."""
    folder.mkdir(parents=True, exist_ok=True)
    documents = [
        "apiVersion: akana/v1\nkind: App\nmetadata:\n"
        f"  name: Bench App {n:05d}\n  labels: {{team: t{n % 7}}}\nspec:\n"
        f"  summary: {'edited' if n < edited else 'app'} {n}\n  versions:\n"
        '    - name: "1.0"\n      visibility: Public\n    - name: "2.0"\n'
        for n in range(apps)
    ]
    for start in range(0, apps, 100):  # 100 apps a file, as a repository would split them
        (folder / f"apps-{start:05d}.yaml").write_text("---\n".join(documents[start:start + 100]))


def run(step: str, args: list[str], env: dict[str, str], server: AkanaServer) -> dict[str, object]:
    before, _ = server.requests()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after, refused = server.requests()
    counts = Counter({k: v for k, v in (after - before).items() if not k.startswith("GET /__")})
    return {
        "step": step, "exit": done.returncode, "wall_s": round(wall, 3),
        "requests": sum(counts.values()), "by_route": dict(sorted(counts.items())),
        "refused": dict(refused), "tail": done.stdout.strip().splitlines()[-1:],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--edited", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        fleet = work / "manifests"
        write_fleet(fleet, args.apps)
        with start_akana_sandbox(work / "akana.db", latency_ms=args.latency_ms) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MAC_", "AKANA_"))}
            env.update(AKANA_BASE_URL=server.base_url, AKANA_EMAIL=server.email,
                       AKANA_PASSWORD=server.password, NO_COLOR="1",
                       RECONCILER_STATE=str(work / "state.json"))  # fmt: skip
            steps = [
                run("plan (all creates)", ["plan", str(fleet)], env, server),
                run("apply (creates)", ["apply", str(fleet), "--auto-approve"], env, server),
                run("re-plan (no change)", ["plan", str(fleet), "--detailed-exitcode"], env,
                    server),
            ]
            write_fleet(fleet, args.apps, edited=args.edited)
            steps.append(run(f"plan ({args.edited} apps edited)", ["plan", str(fleet)], env,
                             server))  # fmt: skip
            steps.append(run(f"apply ({args.edited} apps edited)",
                             ["apply", str(fleet), "--auto-approve"], env, server))  # fmt: skip
    print(f"{args.apps} Akana apps, {args.latency_ms:g} ms per request, whole CLI processes")
    print("| step | exit | requests | wall | reads (GET) |")
    print("|---|---:|---:|---:|---:|")
    for step in steps:
        routes = step["by_route"]
        assert isinstance(routes, dict)
        gets = sum(n for route, n in routes.items() if route.startswith("GET "))
        wall = step["wall_s"]
        assert isinstance(wall, float)
        print(f"| {step['step']} | {step['exit']} | {step['requests']} | {seconds_text(wall)}"
              f" | {gets} |")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(steps, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
