"""`reconciler validate` with PyYAML's pure-Python loader against libyaml (issue 14).

    python bench/yaml_loaders.py [--files 1000] [--repeat 3]

One fleet of ``--files`` manifests (bench/fleet.py, one app per file), validated by the real
CLI in a fresh process each time (start-up included, as a user runs it), alternating the two
loaders so that both see the same machine load; best of ``--repeat`` each. Then the loading
alone, in this process. The pure run forces ``compose.use_fast_loader = False`` before the CLI
starts: the same code path a PyYAML without a safe libyaml takes.

All figures in one run; ratios only (the machines are shared). Prints Markdown: copy it into
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.fleet import make_fleet, write_manifests  # noqa: E402
from reconciler.manifest import compose  # noqa: E402
from reconciler.providers.miniappcenter.manifest import load_manifests  # noqa: E402

# The CLI with the loader chosen before anything is read.
_RUN_CLI = (
    "import sys; import reconciler.manifest.compose as c; c.use_fast_loader = {fast};"
    " from reconciler.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def _validate_wall(folder: Path, fast: bool, cpu: list[float] | None = None) -> float:
    """Wall of one ``reconciler validate`` process; its CPU (user + system, from the
    children's rusage) appended to ``cpu``."""
    cmd = [sys.executable, "-c", _RUN_CLI.format(fast=fast), "validate", str(folder)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"validate exited {done.returncode}: {done.stderr[-500:]}")
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return elapsed


def _bare_loop(folder: Path, loader: Any) -> tuple[float, float]:
    """The bar: read every file and ``yaml.load`` it with ``loader``, nothing else, in this
    process (wall, CPU)."""
    files = sorted(folder.rglob("*.yaml"))
    cpu = time.process_time()
    start = time.perf_counter()
    for file in files:
        yaml.load(file.read_text(encoding="utf-8"), Loader=loader)
    return time.perf_counter() - start, time.process_time() - cpu


def _load_wall(folder: Path, fast: bool) -> float:
    before = compose.use_fast_loader
    compose.use_fast_loader = fast
    try:
        start = time.perf_counter()
        load_manifests([folder], {})
        return time.perf_counter() - start
    finally:
        compose.use_fast_loader = before


def measure(files: int, repeat: int, workdir: Path) -> dict[str, Any]:
    folder = workdir / "manifests"
    write_manifests(make_fleet(files), folder)
    one = workdir / "one"
    write_manifests(make_fleet(1), one)
    fast = compose.fast_loader_safe()
    start: list[float] = []  # the process start both pay: validate of one file
    cli: dict[bool, list[float]] = {False: [], True: []}
    load: dict[bool, list[float]] = {False: [], True: []}
    cli_cpu: list[float] = []
    naive: list[float] = []  # yaml.safe_load, pure-Python loader: wall
    bare_cpu: list[float] = []  # CSafeLoader alone: CPU
    loads = [os.getloadavg()[0]]
    for _ in range(repeat):
        for mode in (False, True):  # alternating: both loaders share the machine's moods
            cli[mode].append(_validate_wall(folder, mode and fast, cli_cpu if mode else None))
            load[mode].append(_load_wall(folder, mode and fast))
        start.append(_validate_wall(one, fast))
        naive.append(_bare_loop(folder, yaml.SafeLoader)[0])
        bare_cpu.append(_bare_loop(folder, getattr(yaml, "CSafeLoader", yaml.SafeLoader))[1])
        loads.append(os.getloadavg()[0])
    return {
        "files": files,
        "repeat": repeat,
        "libyaml": ".".join(map(str, compose.libyaml_version() or ())) or None,
        "fast_loader": fast,
        "cli_one_file_s": min(start),
        "cli_pure_s": min(cli[False]),
        "cli_fast_s": min(cli[True]),
        "load_pure_s": min(load[False]),
        "load_fast_s": min(load[True]),
        "cli_fast_cpu_s": min(cli_cpu),
        "naive_loop_s": min(naive),
        "bare_fast_cpu_s": min(bare_cpu),
        "load_avg": [min(loads), max(loads)],
    }


def report(row: dict[str, Any]) -> str:
    loader = "CSafeLoader" if row["fast_loader"] else "pure (libyaml unsafe or missing)"
    lines = [
        f"`python bench/yaml_loaders.py --files {row['files']} --repeat {row['repeat']}`"
        f" ({time.strftime('%Y-%m-%d', time.gmtime())}, Python {platform.python_version()},"
        f" PyYAML {yaml.__version__}, libyaml {row['libyaml']}; best of {row['repeat']},"
        " loaders alternated, one run)",
        "",
        "| what | pure-Python loader | " + loader + " | **speed-up** |",
        "|---|---:|---:|---:|",
        f"| `reconciler validate` of {row['files']} files (process start included)"
        f" | {row['cli_pure_s']:.2f} s | {row['cli_fast_s']:.2f} s"
        f" | **{row['cli_pure_s'] / row['cli_fast_s']:.2f}x** |",
        f"| `load_manifests` alone (in process) | {row['load_pure_s']:.2f} s"
        f" | {row['load_fast_s']:.2f} s | **{row['load_pure_s'] / row['load_fast_s']:.2f}x** |",
        "",
        f"`reconciler validate` of one file (the process start both pay):"
        f" {row['cli_one_file_s']:.2f} s.",
        "",
        "Against the bars (whole `validate` process, start-up included, against a loop in"
        " this process that only reads and loads each file):",
        "",
        "| bar | bar | `reconciler validate` | ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| naive `yaml.safe_load` loop (pure Python), wall | {row['naive_loop_s']:.2f} s"
        f" | {row['cli_fast_s']:.2f} s | **{row['naive_loop_s'] / row['cli_fast_s']:.2f}x**"
        " faster | >= 2.5x |",
        f"| bare `CSafeLoader` loop, CPU | {row['bare_fast_cpu_s']:.2f} s"
        f" | {row['cli_fast_cpu_s']:.2f} s"
        f" | **{row['cli_fast_cpu_s'] / row['bare_fast_cpu_s']:.2f}x** the CPU | <= 2x |",
        "",
        f"Load average (1 min) during the run: {row['load_avg'][0]:.1f} to"
        f" {row['load_avg'][1]:.1f}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-yaml-") as workdir:
        row = measure(args.files, args.repeat, Path(workdir))
    sys.stdout.write(report(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
