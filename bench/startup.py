"""How fast `reconciler --help` starts, against the interpreter's own floor, in one run; and
`reconciler validate` of one Mini App Center file against `--help` (target: at most 2x).

    python bench/startup.py                          # 30 runs of each command
    python bench/startup.py --baseline 6cfa699       # also the code of that commit, same run

Every command is run ``--runs`` times as a fresh process (``subprocess.run``, output
captured), interleaved round by round so that all of them see the same machine; the table
gives the median and the fastest run. The floor is ``python -c pass``; the CLI is started the
way the console script starts it. ``--baseline REF`` extracts ``reconciler/`` at REF
(``git archive``) and times its commands in the same rounds. Then ``python -X importtime`` of
``--help``: the biggest imports, and what help no longer imports.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = "import sys; from reconciler.cli.main import main; sys.exit(main())"
TARGET_MS = 150.0
VALIDATE_TARGET = 2.0  # validate of one file: at most this many times `--help`
ONE_FILE = ROOT / "manifests" / "cafe" / "bakeries.yaml"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", CONSOLE_SCRIPT, *args]


def extract(ref: str, folder: Path) -> Path:
    """``reconciler/`` as it was at ``ref``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "reconciler"],
        capture_output=True,
        check=True,
    ).stdout
    tar_path = folder / "baseline.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(folder, filter="data")
    return folder


def time_rounds(
    commands: dict[str, tuple[list[str], dict[str, str]]], runs: int, cwd: str
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (cmd, env) in commands.items():
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, check=False)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr[-400:]!r}")
    return times


def importtime(env: dict[str, str], cwd: str, *args: str) -> dict[str, tuple[float, bool]]:
    """Every module that ``reconciler ARGS`` imports: (cumulative ms, imported at top level)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CONSOLE_SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    out: dict[str, tuple[float, bool]] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if match:
            out[match.group(4)] = (int(match.group(2)) / 1000, not match.group(3))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--baseline", help="a git ref whose reconciler/ is timed too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        # Bytecode caches, as an installed tool has them (pip compiles at install). They go
        # to the scratch folder, not the repository; without them every run recompiles the
        # CLI's modules (the last row shows what that costs).
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100",
               "PYTHONPYCACHEPREFIX": str(Path(scratch) / "pycache")}  # fmt: skip
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        no_cache = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        no_cache.pop("PYTHONPYCACHEPREFIX")
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "`python -c pass` (floor)": ([sys.executable, "-c", "pass"], env),
            "`reconciler --help`": (cli("--help"), env),
            "`reconciler plan --help`": (cli("plan", "--help"), env),
            "`reconciler validate` of one file": (cli("validate", str(ONE_FILE)), env),
        }
        if args.baseline:
            old_env = {**env, "PYTHONPATH": str(extract(args.baseline, Path(scratch)))}
            commands[f"`reconciler --help` at {args.baseline}"] = (cli("--help"), old_env)
            commands[f"`reconciler plan --help` at {args.baseline}"] = (
                cli("plan", "--help"),
                old_env,
            )
            commands[f"`reconciler validate` of one file at {args.baseline}"] = (
                cli("validate", str(ONE_FILE)),
                old_env,
            )
        commands["`reconciler --help`, no bytecode cache"] = (cli("--help"), no_cache)
        # Run from an empty folder: `python -c` puts the current folder first on sys.path.
        cwd = str(Path(scratch) / "cwd")
        Path(cwd).mkdir()
        time_rounds(commands, 1, cwd)  # warm-up: writes the bytecode caches
        times = time_rounds(commands, args.runs, cwd)
        floor = statistics.median(times["`python -c pass` (floor)"])
        print(f"{args.runs} runs of each, interleaved; Python {sys.version.split()[0]},"
              f" {os.cpu_count()} CPUs")
        print("\n| command | median | fastest | median - floor | target < 150 ms |")
        print("|---|---:|---:|---:|---|")
        for name, samples in times.items():
            median = statistics.median(samples)
            met = "" if "floor" in name or "validate" in name else (
                "yes" if median * 1e3 < TARGET_MS else "no"
            )
            print(f"| {name} | {median * 1e3:.0f} ms | {min(samples) * 1e3:.0f} ms |"
                  f" {(median - floor) * 1e3:.0f} ms | {met} |")
        if args.baseline:
            for what in ("--help", "plan --help"):
                old = statistics.median(times[f"`reconciler {what}` at {args.baseline}"])
                new = statistics.median(times[f"`reconciler {what}`"])
                print(f"\n`reconciler {what}`: {old / new:.2f}x faster than {args.baseline}"
                      f" (median), {(old - floor) / (new - floor):.2f}x above the floor.")
        for label in ("", f" at {args.baseline}") if args.baseline else ("",):
            validate = statistics.median(times[f"`reconciler validate` of one file{label}"])
            shown = statistics.median(times[f"`reconciler --help`{label}"])
            ratio = validate / shown
            print(f"\n`reconciler validate` of one Mini App Center file{label}: {ratio:.2f}x"
                  f" `reconciler --help` (median; target at most {VALIDATE_TARGET:g}x):"
                  f" {'met' if ratio <= VALIDATE_TARGET else 'not met'}")
        loaded = importtime(env, cwd, "validate", str(ONE_FILE))
        print("\n`python -X importtime` of `reconciler validate FILE`, biggest top-level imports:")
        print("\n| module | cumulative |\n|---|---:|")
        top = sorted(((m, ms) for m, (ms, top) in loaded.items() if top), key=lambda r: -r[1])[:10]
        for module, ms in top:
            print(f"| `{module}` | {ms:.1f} ms |")
        prefix = "reconciler.providers."
        providers = sorted({m.split(".")[2] for m in loaded if m.startswith(prefix)})
        print(f"\nProviders' packages it imports: {', '.join(providers)}")
        now = importtime(env, cwd, "plan", "--help")
        print("\n`python -X importtime` of `reconciler plan --help`, biggest top-level imports:")
        print("\n| module | cumulative |\n|---|---:|")
        top = sorted(((m, ms) for m, (ms, top) in now.items() if top), key=lambda r: -r[1])[:8]
        for module, ms in top:
            print(f"| `{module}` | {ms:.1f} ms |")
        if args.baseline:
            before = importtime(old_env, cwd, "plan", "--help")
            gone = sorted(
                ((m, ms) for m, (ms, _) in before.items() if m not in now and "." not in m),
                key=lambda row: -row[1],
            )
            print(f"\nNo longer imported for help (cumulative at {args.baseline}): "
                  + ", ".join(f"`{m}` {ms:.1f} ms" for m, ms in gone[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
