"""Install a provider plugin of tests/plugins/ the way pip lays it out (the package, plus a
``.dist-info`` with its metadata and its entry points, read from its pyproject.toml) into a
folder to put on PYTHONPATH: no build backend and no network, so it works from a clean clone
in CI and takes milliseconds. ``importlib.metadata`` finds it exactly as an installed
distribution."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "tests" / "plugins"


def install(source: Path, site: Path) -> Path:
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for package in tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["packages"]:
        shutil.copytree(
            source / package,
            site / package,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    name, version = project["name"], project["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = []
    for group, points in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{point} = {target}" for point, target in points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site


def install_for_session() -> Path:
    """Install tests/plugins/kvstore into a temporary folder (removed at exit) and put it on
    this interpreter's path and on PYTHONPATH for its children."""
    import atexit
    import importlib
    import tempfile

    site = Path(tempfile.mkdtemp(prefix="reconciler-plugins-"))
    atexit.register(shutil.rmtree, site, ignore_errors=True)
    install(PLUGINS / "kvstore", site)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    return site


def run_cli(
    site: Path,
    cwd: Path,
    commands: list[list[str]],
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``reconciler COMMAND`` for each command, in order, in one fresh interpreter with the
    plugin folder on its path: each result's exit code, stdout and stderr."""
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from reconciler.cli.main import main
        results = []
        for argv in json.loads(sys.argv[1]):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
            results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
        print(json.dumps(results))
        """
    )
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    for var in ("RECONCILER_STATE", "MAC_SANDBOX_DB", "KVSTORE_URL", "KVSTORE_API_KEY"):
        if var not in (env or {}):
            full_env.pop(var, None)
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return results
