"""Shards of one fleet applied at once against ONE PostgreSQL state (one workspace, per-app
locks) and one sandbox server at 25 ms: wall time of N concurrent shard applies vs one shard.

    python bench/pg_shards.py --apps-per-shard 20 --shards 1,2,8

Starts its own PostgreSQL (as tests/fixtures_postgres.py does; as root it runs as the
``postgres`` user) and its own sandbox server process; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fleet import make_fleet, write_manifests  # noqa: E402
from bench.server import start_sandbox  # noqa: E402


def start_pg(base: Path) -> tuple[str, list[str]]:
    from tests.fixtures_postgres import pg_bin

    bindir = pg_bin()
    runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if runas:
        os.chown(base, *(lambda p: (p.pw_uid, p.pw_gid))(__import__("pwd").getpwnam("postgres")))
    data = base / "data"
    subprocess.run([*runas, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres", "--no-sync"], check=True, capture_output=True)  # fmt: skip
    subprocess.run([*runas, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"),
                    "-w", "-o", f"-k {base} -c listen_addresses=''", "start"], check=True,
                   capture_output=True)  # fmt: skip
    stop = [*runas, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
    return f"postgresql://postgres@/postgres?host={base}", stop


def run_shards(states: list[str], base_url: str, token: str, folders: list[Path]) -> float:
    env = {**os.environ, "MAC_BASE_URL": base_url, "MAC_API_TOKEN": token,
           "NO_COLOR": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "reconciler.cli.main", "apply", str(f),
                               "--auto-approve", "--state", state], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for f, state in zip(folders, states, strict=True)]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"apply failed ({proc.returncode}): {err[-1500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps-per-shard", type=int, default=20)
    parser.add_argument("--shards", default="1,2,8")
    parser.add_argument("--latency-ms", type=float, default=25)
    args = parser.parse_args()
    counts = [int(n) for n in args.shards.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        pg_dir = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))  # postgres must reach it
        url, stop = start_pg(pg_dir)
        try:
            for n in counts:
                fleet = make_fleet(n * args.apps_per_shard)
                folders = []
                for shard in range(n):
                    folder = base / f"run{n}" / f"shard{shard}"
                    write_manifests([a for i, a in enumerate(fleet) if i % n == shard], folder)
                    folders.append(folder)
                walls = []
                for store in ("pg", "file"):
                    # pg: one workspace shared by every shard (per-app locks); file: the
                    # baseline, a state file per shard (nothing shared: what the machine allows)
                    states = ([f"{url}&workspace=run{n}"] * n if store == "pg" else
                              [str(base / f"run{n}" / f"state{k}.json") for k in range(n)])
                    db = base / f"sandbox-{store}{n}.db"
                    with start_sandbox(db, latency_ms=args.latency_ms) as server:
                        walls.append(run_shards(states, server.base_url, server.token, folders))
                rows.append((n, n * args.apps_per_shard, walls[0], walls[1]))
        finally:
            subprocess.run(stop, capture_output=True)
            subprocess.run(["rm", "-rf", str(pg_dir)])
    one = rows[0][2]
    print(f"| concurrent shard applies ({args.apps_per_shard} apps each, {args.latency_ms:g} ms)"
          " | apps | PostgreSQL, one workspace: wall s | / one shard | file per shard: wall s"
          " | PostgreSQL / file |")
    print("|---|---|---|---|---|---|")
    for n, apps, wall, file_wall in rows:
        print(f"| {n} | {apps} | {wall:.2f} | {wall / one:.2f} | {file_wall:.2f} |"
              f" {wall / file_wall:.2f} |")


if __name__ == "__main__":
    main()
