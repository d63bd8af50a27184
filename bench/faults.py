"""The fault drill: does a fleet converge unattended when the server fails often?

    python bench/faults.py [--apps 30] [--fail-rate 0.3] [--ambiguous-rate 0.2]
                           [--seeds 1,2,3,4] [--max-applies 10]

For each seed: a real sandbox server (its own process) that answers ``--fail-rate`` of all
requests 503 or drops the connection, and does ``--ambiguous-rate`` of the writes but answers
502; then ``reconciler apply --auto-approve`` runs, as a pipeline would, until one exits 0
(at most ``--max-applies``). Reported per seed: the exit codes, the requests the server
received, duplicates (versions or locations created twice) and whether any output asked a
person to run a command. Exits 1 when a seed does not converge, duplicates, or asks a person.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.server import TOKEN, start_sandbox  # noqa: E402

STATUSES = ("pending", "waiting_for_review", "in_review", "ready")
# What an unattended run must never ask a person to do.
PERSON = ("state adopt-version", "state set-status", "find the version's id")


def write_fleet(folder: Path, apps: int) -> Path:
    """``apps`` mini apps with attributes, 2 locations and 2 versions at various statuses."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(apps):
        versions = "".join(
            f"""
    - code: "{major}.0"
      platform_id: iOS
      main_name: start{n}
      main_type: Panel
      service_url: https://example.com/{n}/{major}/
      compatibility: [{major}, {major + 1}]
      status: {STATUSES[(n + major) % len(STATUSES)]}"""
            for major in (1, 2)
        )
        (folder / f"app{n:03d}.yaml").write_text(
            f"""apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.test.fleet.app{n:03d}
spec:
  name: App {n}
  superapp_id: com.test.super
  type: Native
  keywords: app number {n}
  attributes: {{COUNTRY: Uruguay, TIER: "{n % 4}"}}
  locations:
    - name: North
      geo_point: POINT({n} 10)
    - name: South
      geo_point: POINT({n} -10)
  versions:{versions}
""",
            encoding="utf-8",
        )
    return folder


def duplicates(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT app_id, code FROM versions GROUP BY app_id, code HAVING COUNT(*) > 1"
            " UNION ALL SELECT app_id, name FROM locations GROUP BY app_id, name"
            " HAVING COUNT(*) > 1"
        ).fetchall()
    return len(rows)


def requests_received(log: Path) -> int:
    """Requests the server answered or dropped (one uvicorn access line each, or a drop)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if '" ' in line and "HTTP/1.1" in line)


def drill(seed: int, *, apps: int, fail_rate: float, ambiguous_rate: float,
          max_applies: int, parallelism: int = 16) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="faults-") as scratch:
        root = Path(scratch)
        fleet = write_fleet(root / "fleet", apps)
        server = start_sandbox(root / "sandbox.db", extra=[
            "--fail-rate", str(fail_rate), "--ambiguous-rate", str(ambiguous_rate),
            "--seed", str(seed)])
        with server:
            env = {**os.environ, "MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": TOKEN,
                   "RECONCILER_STATE": str(root / "state.json"), "NO_COLOR": "1"}
            codes: list[int] = []
            person = False
            last = ""
            for _ in range(max_applies):
                run = subprocess.run(
                    [sys.executable, "-m", "reconciler.cli.main", "apply", str(fleet),
                     "--auto-approve", "--parallelism", str(parallelism)],
                    env=env, capture_output=True, text=True, timeout=600,
                )
                codes.append(run.returncode)
                last = (run.stdout + run.stderr)[-2000:]
                person = person or any(p in run.stdout + run.stderr for p in PERSON)
                if run.returncode == 0:
                    break
            server.stop()
            return {
                "seed": seed,
                "codes": codes,
                "converged": codes[-1] == 0,
                "applies": len(codes),
                "requests": requests_received(root / "sandbox.log"),
                "duplicates": duplicates(root / "sandbox.db"),
                "person": person,
                "last": last if codes[-1] != 0 else "",
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--fail-rate", type=float, default=0.3)
    parser.add_argument("--ambiguous-rate", type=float, default=0.2)
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--max-applies", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print raw figures as JSON")
    args = parser.parse_args(argv)
    rows = [
        drill(int(s), apps=args.apps, fail_rate=args.fail_rate,
              ambiguous_rate=args.ambiguous_rate, max_applies=args.max_applies)
        for s in args.seeds.split(",")
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{args.apps} apps, --fail-rate {args.fail_rate} --ambiguous-rate "
              f"{args.ambiguous_rate}, at most {args.max_applies} applies\n")
        print("| seed | converged | applies | exit codes | requests | duplicates | person |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['seed']} | {'yes' if r['converged'] else 'NO'} | {r['applies']} | "
                  f"{' '.join(map(str, r['codes']))} | {r['requests']} | {r['duplicates']} | "
                  f"{'YES' if r['person'] else 'no'} |")
        for r in rows:
            if r["last"]:
                print(f"\nseed {r['seed']}, last output:\n{r['last']}")
    bad = [r for r in rows if not r["converged"] or r["duplicates"] or r["person"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
