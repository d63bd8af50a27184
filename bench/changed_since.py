"""What `plan --changed-since` reads (issue 14): a one-line change in an N-app repository.

    python bench/changed_since.py [--apps 10000] [--workdir DIR]

Makes a git repository of N manifests (bench/fleet.py, one app per file), applies it to the
embedded sandbox (in-process, SQLite; 10,000 apps take about 2 minutes on 2 cores), changes
one line of one manifest, then runs `reconciler plan --changed-since HEAD` and the full
`reconciler plan` through the CLI and counts the API reads of each (the client's own
``stats``). ``--workdir`` keeps the repository and sandbox: a second run skips the apply.

Prints Markdown: copy it into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import reconciler.providers.miniappcenter.session as common  # noqa: E402
from bench.fleet import make_fleet, write_manifests  # noqa: E402
from reconciler.cli.main import main as cli  # noqa: E402


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _quiet(*args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli(list(args))


def prepare(repo: Path, apps: int) -> None:
    if (repo / ".git").exists():
        return
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "bench@example.com")
    _git(repo, "config", "user.name", "bench")
    (repo / ".gitignore").write_text(".reconciler/\n*.json\n")
    write_manifests(make_fleet(apps), repo / "manifests")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "fleet")
    code = _quiet("apply", "manifests", "--sandbox", "--auto-approve", "--parallelism", "32")
    if code != 0:
        raise RuntimeError(f"apply exited {code}")


def measure(repo: Path, apps: int) -> dict[str, Any]:
    """Run in ``repo`` (made on the first call): the sandbox and state live in its
    .reconciler/ folder."""
    here = Path.cwd()
    repo.mkdir(parents=True, exist_ok=True)
    os.chdir(repo)
    try:
        return _measure(repo, apps)
    finally:
        os.chdir(here)


def _measure(repo: Path, apps: int) -> dict[str, Any]:
    prepare(repo, apps)
    made: list[Any] = []
    real = common.Target.client

    def spy(self: common.Target, parallelism: int) -> Any:
        client = real(self, parallelism)
        made.append(client)
        return client

    common.Target.client = spy  # type: ignore[method-assign]
    manifest = next((repo / "manifests").rglob("*.yaml"))
    original = manifest.read_text(encoding="utf-8")
    manifest.write_text(original.replace("  name: ", "  name: Renamed ", 1), encoding="utf-8")
    out: dict[str, Any] = {"apps": apps}
    try:
        for label, extra in (("incremental", ["--changed-since", "HEAD"]), ("full", [])):
            made.clear()
            saved = repo / f"{label}.json"
            start = time.perf_counter()
            code = _quiet("plan", "manifests", "--sandbox", "--out", str(saved), *extra)
            wall = time.perf_counter() - start
            plan = json.loads(saved.read_text(encoding="utf-8"))
            out[label] = {
                "exit": code,
                "reads": sum(client.stats.reads for client in made),
                "apps_planned": len(plan["apps"]),
                "changes": len(plan["changes"]),
                "wall_s": wall,
            }
    finally:
        manifest.write_text(original, encoding="utf-8")
        common.Target.client = real  # type: ignore[method-assign]
    return out


def report(row: dict[str, Any]) -> str:
    lines = [
        f"`python bench/changed_since.py --apps {row['apps']}` ({time.strftime('%Y-%m-%d')},"
        " embedded sandbox in-process, no latency; one run)",
        "",
        "| plan of a one-line change | API reads | apps planned | changes | wall |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, title in (("incremental", "`--changed-since HEAD`"), ("full", "full")):
        r = row[label]
        lines.append(
            f"| {title} | {r['reads']} | {r['apps_planned']} | {r['changes']}"
            f" | {r['wall_s']:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-changed-") as scratch:
        row = measure((args.workdir or Path(scratch)).resolve() / f"repo{args.apps}", args.apps)
    sys.stdout.write(report(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
