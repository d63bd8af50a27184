"""Run the composite action's steps (action.yml) locally, the way the runner would.

Each ``run:`` step is executed with ``bash --noprofile --norc -eo pipefail`` (the runner's
``shell: bash``), in its ``working-directory``, with the environment the runner gives it: the
step's ``env:`` (its ``${{ inputs.* }}`` / ``${{ steps.*.outputs.* }}`` resolved), the
caller's step env (the secrets), GITHUB_ACTION_PATH, and fresh GITHUB_OUTPUT /
GITHUB_STEP_SUMMARY / GITHUB_EVENT_PATH / RUNNER_TEMP files. ``if:`` conditions are
evaluated by a deliberately small evaluator that knows only the forms action.yml uses
(``always()``, ``a == 'x'``, ``a != 'x'``, joined by ``&&``): anything else fails the test,
so a new condition cannot be skipped silently. ``uses:`` steps (setup-python,
upload-artifact) are not run; their resolved ``with:`` is recorded for the tests to check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
ACTION_FILE = REPO / "action.yml"
ACTION_REF = re.compile(r"^(\./?|[A-Za-z0-9_.-]+/miniapp-reconciler@\S+)$")
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_COMPARE = re.compile(r"^([\w.-]+)\s*(==|!=)\s*'([^']*)'$")


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ACTION_FILE.read_text(encoding="utf-8"))
    return data


def action_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a workflow that use this action."""
    return [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if ACTION_REF.match(str(step.get("uses", "")))
    ]


@dataclass
class StepResult:
    name: str
    returncode: int | None  # None: skipped by its if:
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionRun:
    inputs: dict[str, str]
    steps: list[StepResult]
    uses: list[tuple[str, dict[str, str]]]  # (action, resolved with:) of the steps run
    summary: str  # what was appended to GITHUB_STEP_SUMMARY
    failed: bool  # the action (a step of it) failed
    outputs: dict[str, str]  # the action's declared outputs, as the caller sees them

    def step(self, name: str) -> StepResult:
        (found,) = [s for s in self.steps if s.name == name]
        return found


class Evaluator:
    def __init__(self, inputs: dict[str, str], outputs: dict[str, dict[str, str]]) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.outcomes: dict[str, str] = {}

    def value(self, ref: str) -> str:
        parts = ref.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs[parts[1]]  # KeyError: an undeclared input
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.outputs.get(parts[1], {}).get(parts[3], "")
        if parts[0] == "steps" and len(parts) == 3 and parts[2] == "outcome":
            return self.outcomes.get(parts[1], "")
        raise AssertionError(f"expression the harness does not know: {ref}")

    def expression(self, expr: str) -> str:
        if "||" in expr or "format(" in expr:
            # `a || format('x-{0}', b)` or `a || b`: only for artifact names
            left, _, right = expr.partition("||")
            first = self.value(left.strip())
            if first:
                return first
            if "format(" not in right:
                return self.value(right.strip())
            m = re.fullmatch(r"format\('([^']*)',\s*([\w.-]+)\)", right.strip())
            assert m, expr
            return m.group(1).replace("{0}", self.value(m.group(2)))
        if expr == "github.token":
            return "fake-github-token"
        return self.value(expr)

    def text(self, value: Any) -> str:
        return _EXPR.sub(lambda m: self.expression(m.group(1)), str(value))

    def condition(self, cond: str | None, failed: bool) -> bool:
        if cond is None:
            return not failed
        terms = [t.strip() for t in cond.split("&&")]
        result = True if "always()" in terms else not failed
        for term in terms:
            if term == "always()":
                continue
            m = _COMPARE.match(term)
            assert m, f"condition the harness does not know: {term!r}"
            actual = self.value(m.group(1))
            result = result and ((actual == m.group(3)) == (m.group(2) == "=="))
        return result


def run_action(
    inputs: dict[str, str],
    *,
    cwd: Path,
    env: dict[str, str],
    tmp: Path,
    step_env: dict[str, str] | None = None,
) -> ActionRun:
    """Run action.yml with ``inputs`` (defaults filled in) like a workflow's ``uses:`` step.

    ``env``: the job's environment (PATH with the stubs, PYTHONPATH, HOME...);
    ``step_env``: the caller's ``env:`` on the step (MAC_BASE_URL, MAC_API_TOKEN).
    """
    spec = action()
    declared = spec["inputs"]
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs the action does not declare: {sorted(unknown)}"
    resolved = {
        name: _as_input(inputs.get(name, meta.get("default", "")))
        for name, meta in declared.items()
    }
    ev = Evaluator(resolved, {})
    resolved = {k: ev.text(v) for k, v in resolved.items()}  # ${{ github.token }} defaults
    ev.inputs = resolved
    tmp.mkdir(parents=True, exist_ok=True)
    summary = tmp / "step_summary.md"
    summary.touch()
    runner_temp = tmp / "runner_temp"
    runner_temp.mkdir(exist_ok=True)
    results: list[StepResult] = []
    uses: list[tuple[str, dict[str, str]]] = []
    failed = False
    for index, step in enumerate(spec["runs"]["steps"]):
        name = step.get("name", f"step {index}")
        step_id = step.get("id", f"_{index}")
        if not ev.condition(step.get("if"), failed):
            results.append(StepResult(name, None))
            continue
        if "uses" in step:
            uses.append((step["uses"], {k: ev.text(v) for k, v in step.get("with", {}).items()}))
            ev.outcomes[step_id] = "success"
            results.append(StepResult(name, 0))
            continue
        assert step.get("shell") == "bash", name
        output = tmp / f"output-{index}"
        output.write_text("", encoding="utf-8")
        full_env = {
            **env,
            **(step_env or {}),
            **{k: ev.text(v) for k, v in step.get("env", {}).items()},
            "GITHUB_ACTION_PATH": str(REPO),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(runner_temp),
        }
        workdir = cwd / ev.text(step.get("working-directory", "."))
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        outputs = parse_outputs(output.read_text(encoding="utf-8"))
        ev.outputs[step_id] = outputs
        ev.outcomes[step_id] = "success" if done.returncode == 0 else "failure"
        failed = failed or done.returncode != 0
        results.append(StepResult(name, done.returncode, done.stdout, done.stderr, outputs))
    declared_outputs = {k: ev.text(v["value"]) for k, v in spec.get("outputs", {}).items()}
    return ActionRun(
        resolved, results, uses, summary.read_text(encoding="utf-8"), failed, declared_outputs
    )


def _as_input(value: Any) -> str:
    """What the runner passes for a `with:` value: YAML true -> 'true'."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_outputs(text: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for line in text.splitlines():
        assert "<<" not in line.partition("=")[0], "multi-line outputs: extend the harness"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value output line: {line!r}"
        outputs[key] = value
    return outputs


# --- stubs put on PATH -----------------------------------------------------------------------

FAKE_GH = """#!{python}
# A fake `gh`: records its argv (and the --input payload) and serves the comments of one
# pull request from a JSON file, in pages of two (as `gh api --paginate` prints them: one
# JSON array per page, back to back).
import json, os, re, sys
args = sys.argv[1:]
db_path = os.environ["FAKE_GH_DB"]
db = json.load(open(db_path)) if os.path.exists(db_path) else {{"comments": [], "next_id": 100}}
payload = None
if "--input" in args:
    payload = json.load(open(args[args.index("--input") + 1]))
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "payload": payload,
                           "token": os.environ.get("GH_TOKEN")}}) + "\\n")
method = args[args.index("--method") + 1] if "--method" in args else "GET"
path = [a for a in args if a.startswith("repos/")][0]
if method == "GET" and re.fullmatch(r"repos/[^/]+/[^/]+/issues/\\d+/comments\\?per_page=100", path):
    pages = [db["comments"][i:i + 2] for i in range(0, len(db["comments"]), 2)] or [[]]
    sys.stdout.write("".join(json.dumps(p) for p in pages) + "\\n")
elif method == "POST" and re.fullmatch(r"repos/[^/]+/[^/]+/issues/\\d+/comments", path):
    comment = {{"id": db["next_id"], "user": {{"login": "github-actions[bot]", "type": "Bot"}},
               "body": payload["body"]}}
    db["next_id"] += 1
    db["comments"].append(comment)
    print(json.dumps(comment))
elif method == "PATCH" and (m := re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\\d+)", path)):
    (comment,) = [c for c in db["comments"] if c["id"] == int(m.group(1))]
    comment["body"] = payload["body"]
    print(json.dumps(comment))
else:
    print("fake gh: unexpected call " + " ".join(args), file=sys.stderr)
    sys.exit(1)
json.dump(db, open(db_path, "w"))
"""

RECONCILER = """#!/bin/sh
exec "{python}" -m reconciler.cli.main "$@"
"""

RECORDING_RECONCILER = """#!{python}
import json, os, sys
with open(os.environ["RECONCILER_ARGV_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def make_bin(directory: Path, *, record_argv: bool = False) -> Path:
    """A bin/ with `reconciler` (this checkout's CLI, or a recorder), `gh` and `python3`."""
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {
        "reconciler": (RECORDING_RECONCILER if record_argv else RECONCILER),
        "gh": FAKE_GH,
    }
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text.format(python=sys.executable), encoding="utf-8")
        path.chmod(0o755)
    python3 = directory / "python3"
    if not python3.exists():
        python3.symlink_to(sys.executable)
    return directory


def job_env(bin_dir: Path, tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp / "home"),
        "NO_COLOR": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "FAKE_GH_DB": str(tmp / "gh-db.json"),
        "FAKE_GH_LOG": str(tmp / "gh-log.jsonl"),
        "GITHUB_REPOSITORY": "acme/fleet",
        "GITHUB_SHA": "0123456789abcdef",
        "GITHUB_RUN_ID": "42",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    env.update(extra)
    return env


def gh_calls(tmp: Path) -> list[dict[str, Any]]:
    log = tmp / "gh-log.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def gh_comments(tmp: Path) -> list[dict[str, Any]]:
    db = tmp / "gh-db.json"
    comments: list[dict[str, Any]] = (
        json.loads(db.read_text(encoding="utf-8"))["comments"] if db.exists() else []
    )
    return comments
