"""The composite GitHub Action (action.yml + action/*) and the example workflows that use it.

The action's shell steps are run for real (tests/action_harness.py): bash, a git "origin"
holding the state branch, the reconciler of this checkout talking over HTTP to a sandbox
server, and a fake `gh` serving one pull request's comments.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.state import mac_records
from tests.action_harness import (
    ACTION_REF,
    REPO,
    ActionRun,
    action,
    action_steps,
    gh_calls,
    gh_comments,
    job_env,
    make_bin,
    run_action,
)
from tests.fixtures_akana import EMAIL as AKANA_TEST_EMAIL
from tests.fixtures_akana import PASSWORD as AKANA_TEST_PASSWORD
from tests.fixtures_akana import RunningAkana
from tests.fixtures_sandbox import RunningSandbox
from tests.test_examples import cli_problems

EXAMPLES = REPO / "examples" / "github"
WORKFLOWS = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in EXAMPLES.glob("*.yml")}
PLAN_MARKER = "<!-- miniapp-reconciler plan -->"
COMMENT_MARKER = "<!-- miniapp-reconciler action: production -->"
MAC_ENV = {"MAC_BASE_URL", "MAC_API_TOKEN"}
AKANA_ENV = {"AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD"}
SECRETS = {"MAC_API_TOKEN", "AKANA_EMAIL", "AKANA_PASSWORD"}
# The demo fleet spans two providers; a saved plan covers one, so plan.yml plans each.
PLAN_MAC = "Plan (Mini App Center)"
PLAN_AKANA = "Plan (Akana)"


def example_step(workflow: str, name: str) -> dict[str, Any]:
    (step,) = [s for s in action_steps(WORKFLOWS[workflow]) if s.get("name") == name]
    return step


def example_inputs(workflow: str, name: str) -> dict[str, str]:
    return dict(example_step(workflow, name)["with"])


# --- the action's definition -----------------------------------------------------------------


def test_action_is_composite_and_shell_steps_get_inputs_only_through_env() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    runs = [s for s in spec["runs"]["steps"] if "run" in s]
    assert len(runs) >= 4
    for step in runs:
        # script injection: an input interpolated into a script is code, in env it is data
        assert "${{" not in step["run"], step["name"]
        assert step["shell"] == "bash"
        script = re.search(r"\$GITHUB_ACTION_PATH/(action/\S+?)\"", step["run"])
        assert script and (REPO / script.group(1)).is_file(), step["run"]
        for value in step.get("env", {}).values():
            for ref in re.findall(r"inputs\.([\w-]+)", str(value)):
                assert ref in spec["inputs"], ref
    assert {
        "command",
        "paths",
        "args",
        "state-branch",
        "comment-on-pr",
        "fail-on-drift",
        "python-version",
        "install",
        "github-token",
    } <= set(spec["inputs"])
    assert {"exit-code", "json", "create", "update", "delete", "summary"} <= set(spec["outputs"])


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_examples_use_the_action_instead_of_shell_steps(name: str) -> None:
    workflow = WORKFLOWS[name]
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert not [s for s in steps if "run" in s], "a copied shell step"
    used = action_steps(workflow)
    assert used and all(ACTION_REF.match(s["uses"]) for s in used)
    declared = set(action()["inputs"])
    for step in used:
        assert set(step["with"]) <= declared, step["with"]
        # the endpoints and secrets reach the action through the step's env only, and only
        # the credentials of the providers the step talks to
        env = step.get("env", {})
        assert set(env) <= MAC_ENV | AKANA_ENV
        for name, value in env.items():
            # a secret only from secrets (never a plain variable, never echoed); an endpoint
            # from a variable (the Mini App Center's may still be a secret, as before)
            allowed = {f"${{{{ secrets.{name} }}}}"}
            if name not in SECRETS:
                allowed |= {f"${{{{ vars.{name} }}}}", f"${{{{ vars.{name} || secrets.{name} }}}}"}
            assert value in allowed, (name, value)
        command, provider = step["with"]["command"], step["with"].get("provider", "")
        if command == "validate":
            assert env == {}  # no API call, no secret
        elif provider == "miniappcenter":
            assert set(env) == MAC_ENV
        elif provider == "akana":
            assert set(env) == AKANA_ENV
        else:  # the whole fleet: both providers
            assert set(env) == MAC_ENV | AKANA_ENV


def test_plan_example_saves_one_plan_per_provider() -> None:
    steps = action_steps(WORKFLOWS["plan.yml"])
    plans = [s["with"] for s in steps if s["with"]["command"] == "plan"]
    assert sorted(w["provider"] for w in plans) == ["akana", "miniappcenter"]
    reviewed = [
        s["with"]["provider"]
        for s in action_steps(WORKFLOWS["apply.yml"])
        if "--plan" in s["with"].get("args", "")
    ]
    assert sorted(reviewed) == ["akana", "miniappcenter"]


def test_examples_cover_every_command_with_one_state_branch() -> None:
    used = [s for w in WORKFLOWS.values() for s in action_steps(w)]
    assert {s["with"]["command"] for s in used} == {"validate", "plan", "apply", "drift"}
    stateful = [s["with"] for s in used if s["with"]["command"] != "validate"]
    assert {(w["environment"], w["state-branch"]) for w in stateful} == {
        ("production", "reconciler-state")
    }


def _recorded_argv(inputs: dict[str, str], tmp: Path) -> list[str]:
    bin_dir = make_bin(tmp / "bin", record_argv=True)
    log = tmp / "argv.jsonl"
    env = job_env(bin_dir, tmp, RECONCILER_ARGV_LOG=str(log))
    run_action({**inputs, "install": "none", "state-branch": ""}, cwd=tmp, env=env, tmp=tmp / "t")
    (argv,) = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return list(argv)


@pytest.mark.parametrize(
    ("workflow", "step"),
    [(w, s["name"]) for w in sorted(WORKFLOWS) for s in action_steps(WORKFLOWS[w])],
)
def test_example_inputs_make_a_command_line_the_cli_accepts(
    workflow: str, step: str, tmp_path: Path
) -> None:
    argv = _recorded_argv(example_inputs(workflow, step), tmp_path)
    assert argv[0] == example_inputs(workflow, step)["command"]
    assert cli_problems(argv) == [], argv


# --- running the action's steps --------------------------------------------------------------


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


class Job:
    """One workflow job: a fresh clone of the fleet repository, like actions/checkout."""

    def __init__(self, root: Path, origin: Path, env: dict[str, str], name: str) -> None:
        self.tmp = root / name
        self.tmp.mkdir()
        self.env = env
        self.checkout = self.tmp / "work"
        git(root, env, "clone", "-q", str(origin), str(self.checkout))
        self.event = self.tmp / "event.json"
        self.event.write_text(json.dumps({"pull_request": {"number": 7}}), encoding="utf-8")

    def run(
        self,
        inputs: dict[str, str],
        server: RunningSandbox,
        akana: RunningAkana | None = None,
        **kw: Any,
    ) -> ActionRun:
        env = {**self.env, "GITHUB_EVENT_PATH": str(self.event)}
        secrets = {"MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": server.token}
        if akana is not None:
            secrets.update(akana_env(akana))
        return run_action(
            {"install": "none", **inputs},
            cwd=self.checkout,
            env=env,
            tmp=self.tmp / f"step-{len(list(self.tmp.iterdir()))}",
            step_env=secrets,
            **kw,
        )


def akana_env(akana: RunningAkana) -> dict[str, str]:
    """What the example workflows pass from vars/secrets: the Akana sandbox over HTTP."""
    return {
        "AKANA_BASE_URL": akana.base_url,
        "AKANA_EMAIL": AKANA_TEST_EMAIL,
        "AKANA_PASSWORD": AKANA_TEST_PASSWORD,
    }


def example_run(
    job: Job, workflow: str, name: str, server: RunningSandbox, akana: RunningAkana, **kw: Any
) -> ActionRun:
    """Run an example step with only the env its ``env:`` declares, like the runner does."""
    declared = set(example_step(workflow, name).get("env", {}))
    secrets = {
        "MAC_BASE_URL": server.base_url, "MAC_API_TOKEN": server.token, **akana_env(akana)
    }
    env = {**job.env, "GITHUB_EVENT_PATH": str(job.event)}
    return run_action(
        {"install": "none", **example_inputs(workflow, name), **kw.pop("inputs", {})},
        cwd=job.checkout,
        env=env,
        tmp=job.tmp / f"step-{len(list(job.tmp.iterdir()))}",
        step_env={k: v for k, v in secrets.items() if k in declared},
        **kw,
    )


@pytest.fixture
def fleet_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bare "origin" whose main holds manifests/, and the job environment."""
    bin_dir = make_bin(tmp_path / "bin")
    env = job_env(bin_dir, tmp_path)
    seed = tmp_path / "seed"
    seed.mkdir()
    shutil.copytree(REPO / "manifests", seed / "manifests")
    git(seed, env, "init", "-q", "-b", "main")
    git(seed, env, "add", "-A")
    git(seed, env, "commit", "-q", "-m", "fleet")
    origin = tmp_path / "origin.git"
    git(tmp_path, env, "clone", "-q", "--bare", str(seed), str(origin))
    return origin, env


def test_github_flow_plan_comment_apply_state_push_drift(
    fleet_repo: tuple[Path, dict[str, str]],
    sandbox_server: RunningSandbox,
    akana: RunningAkana,
    tmp_path: Path,
) -> None:
    # The demo fleet spans the Mini App Center and Akana: both sandboxes serve over HTTP, and
    # each step gets only the env its workflow declares (a wrong split fails the step).
    origin, env = fleet_repo
    jobs = tmp_path / "jobs"
    jobs.mkdir()

    # Pull request: validate, then one plan per provider against an empty state.
    pr = Job(jobs, origin, env, "pr1")
    validate = example_run(pr, "plan.yml", "Validate", sandbox_server, akana)
    assert not validate.failed and validate.outputs["exit-code"] == "0", validate.steps
    plan = example_run(pr, "plan.yml", PLAN_MAC, sandbox_server, akana)
    assert not plan.failed, plan.step("Run the reconciler").stderr
    out = plan.outputs
    assert out["exit-code"] == "2" and out["outcome"] == "changes"
    assert int(out["create"]) > 0 and out["delete"] == "0"
    assert json.loads(out["summary"])["create"] == int(out["create"])
    saved = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    assert saved["summary"]["create"] == int(out["create"])
    assert {c["provider"] for c in saved["changes"]} == {"miniappcenter"}
    assert plan.summary.startswith(PLAN_MARKER)  # the job summary: the Markdown plan
    # the log shows the plan with workflow commands stopped (manifest text is quoted in it)
    log = plan.step("Run the reconciler").stdout.splitlines()
    stops = [i for i, line in enumerate(log) if line.startswith("::stop-commands::")]
    assert len(stops) == 2
    token = log[stops[1]].removeprefix("::stop-commands::")
    marker_at = log.index(PLAN_MARKER)
    assert marker_at > stops[1] and log.index(f"::{token}::", stops[1]) > marker_at
    assert "does not exist yet" in plan.step("Check out the state branch").stdout
    # the artifact step uploads the folder holding the JSON, named after the provider
    ((_, upload),) = [u for u in plan.uses if u[0] == "actions/upload-artifact@v4"]
    assert upload["name"] == "reconciler-plan-miniappcenter"
    assert Path(upload["path"], "plan.json").is_file()
    akana_plan = example_run(pr, "plan.yml", PLAN_AKANA, sandbox_server, akana)
    assert not akana_plan.failed, akana_plan.step("Run the reconciler").stderr
    assert akana_plan.outputs["outcome"] == "changes" and int(akana_plan.outputs["create"]) >= 2
    akana_saved = json.loads(Path(akana_plan.outputs["json"]).read_text(encoding="utf-8"))
    assert {c["provider"] for c in akana_saved["changes"]} == {"akana"}
    ((_, upload),) = [u for u in akana_plan.uses if u[0] == "actions/upload-artifact@v4"]
    assert upload["name"] == "reconciler-plan-akana"
    assert upload["path"] != plan.outputs["json"].rsplit("/", 1)[0]  # two folders, two plans
    # one comment per provider, each found again by its own marker
    mac_comment, akana_comment = gh_comments(tmp_path)
    assert mac_comment["body"].startswith(
        "<!-- miniapp-reconciler action: production/miniappcenter -->\n" + PLAN_MARKER
    )
    assert akana_comment["body"].startswith(
        "<!-- miniapp-reconciler action: production/akana -->\n" + PLAN_MARKER
    )
    assert "Commit 0123456" in mac_comment["body"]
    assert {c["token"] for c in gh_calls(tmp_path)} == {"fake-github-token"}
    assert AKANA_TEST_PASSWORD not in akana_plan.summary + akana_comment["body"]

    # Merge: one apply of the whole fleet creates the state branch and pushes the state.
    merge = Job(jobs, origin, env, "main1")
    applied = example_run(merge, "apply.yml", "Apply main", sandbox_server, akana)
    assert not applied.failed, [s.stderr for s in applied.steps]
    assert applied.outputs["exit-code"] == "0" and applied.outputs["failed"] == "0"
    both = int(out["create"]) + int(out["update"]) + int(akana_plan.outputs["create"])
    assert int(applied.outputs["applied"]) == both
    assert "<!-- miniapp-reconciler apply -->" in applied.summary
    assert "State pushed to reconciler-state." in applied.step("Commit and push the state").stdout
    pushed = json.loads(git(origin, env, "show", "reconciler-state:production/state.json"))
    assert mac_records(pushed)
    assert set(pushed["providers"]["akana"]["resources"]["akana_app"]) == {
        "Payments Gateway",
        "Payments Reports",
    }
    assert AKANA_TEST_PASSWORD not in json.dumps(pushed)
    assert len(akana.store.app_ids()) == 2  # created on the Akana sandbox over HTTP
    files = git(origin, env, "ls-tree", "-r", "--name-only", "reconciler-state").split()
    assert files == ["production/state.json"]  # never the lock

    # The next push to the PR: plans from the pushed state, nothing to do; the SAME comments.
    pr2 = Job(jobs, origin, env, "pr2")
    for name in (PLAN_MAC, PLAN_AKANA):
        again = example_run(pr2, "plan.yml", name, sandbox_server, akana)
        assert again.outputs["exit-code"] == "0", again.step("Run the reconciler").stderr
        assert again.outputs["outcome"] == "no-changes"
    updated = gh_comments(tmp_path)
    assert [c["id"] for c in updated] == [mac_comment["id"], akana_comment["id"]]
    assert updated[0]["body"] != mac_comment["body"]
    methods = [
        c["argv"][c["argv"].index("--method") + 1]
        for c in gh_calls(tmp_path)
        if "--method" in c["argv"]
    ]
    assert methods == ["POST", "POST", "PATCH", "PATCH"]

    # Nightly drift of both providers: in sync, then a backoffice edit fails the step.
    nightly = Job(jobs, origin, env, "drift1")
    drift = example_run(nightly, "drift.yml", "Check for drift", sandbox_server, akana)
    assert not drift.failed, drift.step("Run the reconciler").stderr
    assert drift.outputs["in-sync"] == "true"
    sandbox_server.store.update_miniapp("com.genexus.verdant.coffeemuffins", {"name": "Edited"})
    drift = example_run(nightly, "drift.yml", "Check for drift", sandbox_server, akana)
    assert drift.failed and drift.step("Run the reconciler").returncode == 2
    assert drift.outputs["exit-code"] == "2" and drift.outputs["in-sync"] == "false"
    assert "Edited" in drift.summary
    assert json.loads(Path(drift.outputs["json"]).read_text(encoding="utf-8"))["in_sync"] is False
    ((_, upload),) = [u for u in drift.uses if u[0] == "actions/upload-artifact@v4"]
    assert upload["name"] == "reconciler-drift"  # uploaded although the step failed
    # fail-on-drift: false passes and leaves the outputs to gate on
    lenient = example_run(
        nightly, "drift.yml", "Check for drift", sandbox_server, akana,
        inputs={"fail-on-drift": "false"},
    )
    assert not lenient.failed and lenient.outputs["outcome"] == "drift"


def test_github_reviewed_plan_applies_once_then_is_stale(
    fleet_repo: tuple[Path, dict[str, str]],
    sandbox_server: RunningSandbox,
    akana: RunningAkana,
    tmp_path: Path,
) -> None:
    origin, env = fleet_repo
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    pr = Job(jobs, origin, env, "pr")
    plans = {
        provider: example_run(pr, "plan.yml", name, sandbox_server, akana)
        for provider, name in (("miniappcenter", PLAN_MAC), ("akana", PLAN_AKANA))
    }
    assert {p.outputs["exit-code"] for p in plans.values()} == {"2"}
    reviewed = {
        "miniappcenter": "Apply the reviewed plan (Mini App Center)",
        "akana": "Apply the reviewed plan (Akana)",
    }
    merge = Job(jobs, origin, env, "dispatch")
    shutil.copy(plans["akana"].outputs["json"], merge.checkout / "plan.json")  # download
    first = example_run(merge, "apply.yml", reviewed["akana"], sandbox_server, akana)
    assert not first.failed and first.outputs["exit-code"] == "0", first.steps
    assert len(akana.store.app_ids()) == 2 and sandbox_server.store.count_apps() == 0
    second = example_run(merge, "apply.yml", reviewed["akana"], sandbox_server, akana)
    assert second.failed and second.outputs["exit-code"] == "1"
    assert "stale" in second.step("Run the reconciler").stderr
    # Both providers share the state's serial: the other provider's plan of the same run is
    # stale now too (apply.yml says so: re-run the PR's plan, then dispatch again).
    shutil.copy(plans["miniappcenter"].outputs["json"], merge.checkout / "plan.json")
    other = example_run(merge, "apply.yml", reviewed["miniappcenter"], sandbox_server, akana)
    assert other.failed and "stale" in other.step("Run the reconciler").stderr
    assert sandbox_server.store.count_apps() == 0


def test_a_failed_plan_is_commented_and_fails_the_step(
    fleet_repo: tuple[Path, dict[str, str]], sandbox_server: RunningSandbox, tmp_path: Path
) -> None:
    origin, env = fleet_repo
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    job = Job(jobs, origin, env, "pr")
    (job.checkout / "manifests" / "broken.yaml").write_text("miniapp: [\n", encoding="utf-8")
    plan = job.run(example_inputs("plan.yml", PLAN_MAC), sandbox_server)
    assert plan.failed and plan.outputs["exit-code"] == "1" and plan.outputs["outcome"] == "failed"
    (comment,) = gh_comments(tmp_path)
    assert comment["body"].startswith("<!-- miniapp-reconciler action: production/miniappcenter")
    assert "plan (production) failed (exit 1)" in comment["body"]
    assert "broken.yaml" in comment["body"] and "broken.yaml" in plan.summary


@pytest.mark.parametrize("secret_name", ["MAC_API_TOKEN", "AKANA_PASSWORD"])
def test_the_token_is_never_published(secret_name: str, tmp_path: Path) -> None:
    # The loader already refuses ${MAC_API_TOKEN} in manifests; this is the action's own
    # guard behind it, for output the tool did not mask: a reconciler that prints a secret.
    bin_dir = make_bin(tmp_path / "bin")
    leaky = bin_dir / "reconciler"
    leaky.write_text(
        f'#!/bin/sh\necho "<!-- miniapp-reconciler plan -->"; echo "secret: ${secret_name}"\n'
        f'echo "${secret_name}" >&2; exit 2\n',
        encoding="utf-8",
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}), encoding="utf-8")
    env = job_env(bin_dir, tmp_path, GITHUB_EVENT_PATH=str(event))
    secret = "s3cr3t-t0ken-value"
    step_env = {
        "MAC_BASE_URL": "http://127.0.0.1:9/api",
        "MAC_API_TOKEN": "another-s3cret-token",
        "AKANA_BASE_URL": "http://127.0.0.1:9",
        "AKANA_EMAIL": "ci@example.com",
        "AKANA_PASSWORD": "another-s3cret-password",
        secret_name: secret,
    }
    plan = run_action(
        {"install": "none", "state-branch": ""},
        cwd=tmp_path,
        env=env,
        tmp=tmp_path / "t",
        step_env=step_env,
    )
    assert plan.failed and plan.outputs["exit-code"] == "1"
    (comment,) = gh_comments(tmp_path)
    published = plan.summary + comment["body"]
    assert secret not in published and "refusing to publish" in published
    assert f"contains {secret_name}" in published  # the name, never the value
    assert secret not in plan.step("Run the reconciler").stdout
    assert not Path(plan.step("Run the reconciler").outputs["dir"], "plan.md").exists()


def test_apply_rebases_the_state_on_another_environments_push(
    fleet_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    origin, env = fleet_repo
    bin_dir = make_bin(tmp_path / "race-bin")
    # An apply that writes its state; while it runs, another environment pushes its own.
    (bin_dir / "reconciler").write_text(
        "#!/bin/sh\n"
        'if [ -n "$RACE_FROM" ]; then git -C "$RACE_FROM" push -q origin HEAD:reconciler-state\n'
        "fi\n"
        'echo "{\\"apps\\": {\\"$INPUT_ENVIRONMENT\\": {}}}" > "$RECONCILER_STATE"\n'
        "echo '{\"plan\": {\"summary\": {}}, \"apply\": {\"summary\": {\"applied\": 1}}}'\n",
        encoding="utf-8",
    )
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "STATE_PUSH_BACKOFF_S": "0"}
    jobs = tmp_path / "jobs"
    jobs.mkdir()

    def apply(job: str, environment: str, **extra: str) -> ActionRun:
        checkout = jobs / job
        git(jobs, env, "clone", "-q", str(origin), str(checkout))
        return run_action(
            {"command": "apply", "install": "none", "environment": environment},
            cwd=checkout,
            env={**env, **extra},
            tmp=jobs / f"{job}-tmp",
        )

    first = apply("production", "production")
    assert not first.failed, [s.stderr for s in first.steps]
    other = jobs / "qa"  # another environment's apply, about to push
    git(jobs, env, "clone", "-q", "-b", "reconciler-state", str(origin), str(other))
    (other / "qa").mkdir()
    (other / "qa" / "state.json").write_text("{}", encoding="utf-8")
    git(other, env, "add", "-A")
    git(other, env, "commit", "-q", "-m", "apply qa")
    staging = apply("staging", "staging", RACE_FROM=str(other))
    assert not staging.failed, [s.stdout + s.stderr for s in staging.steps]
    pushed = staging.step("Commit and push the state").stdout
    assert "push rejected (attempt 1)" in pushed and "State pushed" in pushed
    files = git(origin, env, "ls-tree", "-r", "--name-only", "reconciler-state").split()
    assert files == ["production/state.json", "qa/state.json", "staging/state.json"]
    staged = git(origin, env, "show", "reconciler-state:staging/state.json")
    assert json.loads(staged) == {"apps": {"staging": {}}}


# --- hostile inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs",
    [
        {"args": '$(touch "$PWNED") `touch "$PWNED"` "; touch "$PWNED"; echo "'},
        {"paths": 'manifests/ ; touch "$PWNED" && $(touch "$PWNED")'},
        {"environment": "x$(touch $PWNED)"},
        {"state-branch": "main;touch $PWNED"},
        {"command": "plan; touch $PWNED"},
        {"provider": "akana$(touch $PWNED)"},
        {"args": "--provider akana"},  # the provider input names the comment and artifact too
    ],
    ids=["args", "paths", "environment", "state-branch", "command", "provider", "args-provider"],
)
def test_hostile_inputs_are_data_never_code(inputs: dict[str, str], tmp_path: Path) -> None:
    bin_dir = make_bin(tmp_path / "bin")
    pwned = tmp_path / "pwned"
    env = job_env(bin_dir, tmp_path, PWNED=str(pwned))
    shutil.copytree(REPO / "manifests", tmp_path / "work" / "manifests")
    result = run_action(
        {"install": "none", "state-branch": "", **inputs},
        cwd=tmp_path / "work",
        env=env,
        tmp=tmp_path / "t",
        step_env={"MAC_BASE_URL": "http://127.0.0.1:9/api", "MAC_API_TOKEN": "t"},
    )
    assert not pwned.exists()
    assert result.failed  # refused (64) or a usage error from the CLI, never run as shell
    code = result.outputs["exit-code"]
    assert code in ("1", "64") or code == "", result.steps


def test_install_takes_the_actions_own_source_or_one_pinned_requirement(tmp_path: Path) -> None:
    bin_dir = make_bin(tmp_path / "bin")
    log = tmp_path / "python.log"
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{log}"\n', encoding="utf-8")
    fake.chmod(0o755)
    env = job_env(bin_dir, tmp_path)

    def install(spec: str) -> tuple[bool, list[str]]:
        log.unlink(missing_ok=True)
        run = run_action(
            {"install": spec, "command": "validate"}, cwd=tmp_path, env=env, tmp=tmp_path / "t"
        )
        words = log.read_text(encoding="utf-8").split("\n") if log.exists() else []
        return run.step("Install the reconciler").returncode == 0, words

    ok, words = install("")
    assert ok and words[-2] == str(REPO)  # the action's own checkout
    ok, words = install("miniapp-reconciler==1.2.3")
    assert ok and words[-2] == "miniapp-reconciler==1.2.3"
    ok, words = install("--index-url=https://evil.example/simple")
    assert not ok and words == []


# --- the PR comment script -------------------------------------------------------------------


def _comment(tmp_path: Path, body: str, env_name: str = "production", event: Any = None) -> int:
    bin_dir = make_bin(tmp_path / "bin")
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event or {"pull_request": {"number": 7}}), encoding="utf-8")
    body_file = tmp_path / "comment.md"
    body_file.write_text(body, encoding="utf-8")
    env = job_env(
        bin_dir,
        tmp_path,
        GITHUB_EVENT_PATH=str(event_file),
        COMMENT_FILE=str(body_file),
        INPUT_ENVIRONMENT=env_name,
        GH_TOKEN="t",
    )
    done = subprocess.run(
        ["python3", str(REPO / "action" / "pr_comment.py")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode


def test_comment_is_created_once_then_updated_in_place(tmp_path: Path) -> None:
    # a marked comment by someone else, and other comments, spread over pages
    db = {
        "comments": [
            {"id": 1, "user": {"login": "mallory"}, "body": COMMENT_MARKER + "\nfake plan"},
            {"id": 2, "user": {"login": "alice"}, "body": "looks good"},
            {"id": 3, "user": {"login": "github-actions[bot]"}, "body": "another bot comment"},
        ],
        "next_id": 100,
    }
    (tmp_path / "gh-db.json").write_text(json.dumps(db), encoding="utf-8")
    assert _comment(tmp_path, "plan one") == 0
    assert _comment(tmp_path, "plan two") == 0
    ours = [c for c in gh_comments(tmp_path) if c["id"] >= 100]
    assert [c["body"] for c in ours] == [COMMENT_MARKER + "\nplan two"]
    assert gh_comments(tmp_path)[0]["body"] == COMMENT_MARKER + "\nfake plan"  # not taken over
    # another environment gets its own comment
    assert _comment(tmp_path, "staging plan", env_name="staging") == 0
    assert len([c for c in gh_comments(tmp_path) if c["id"] >= 100]) == 2


def test_comment_is_bounded_and_skipped_outside_pull_requests(tmp_path: Path) -> None:
    assert _comment(tmp_path, "x" * 200_000) == 0
    (comment,) = gh_comments(tmp_path)
    assert len(comment["body"]) < 65_536 and "truncated" in comment["body"]
    calls = len(gh_calls(tmp_path))
    assert _comment(tmp_path, "push event", event={"ref": "refs/heads/main"}) == 0
    assert len(gh_calls(tmp_path)) == calls


def test_the_docs_list_every_input_of_the_action() -> None:
    text = (REPO / "docs" / "how-to" / "github-actions.md").read_text(encoding="utf-8")
    table = text.split("| input | default | what |", 1)[1].split("\n\n", 1)[0]
    shown = re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.MULTILINE)
    assert shown == list(action()["inputs"])


def test_an_echoed_input_cannot_issue_a_workflow_command(tmp_path: Path) -> None:
    bin_dir = make_bin(tmp_path / "bin")
    env = job_env(bin_dir, tmp_path)
    run = run_action(
        {"install": "none", "command": "plan\n::add-mask::x%", "state-branch": ""},
        cwd=tmp_path,
        env=env,
        tmp=tmp_path / "t",
    )
    step = run.step("Run the reconciler")
    assert step.returncode == 64 and run.outputs["exit-code"] == "64"
    lines = step.stderr.splitlines()
    assert not [line for line in lines if line.startswith("::add-mask::")]
    assert "plan%0A::add-mask::x%25" in step.stderr
