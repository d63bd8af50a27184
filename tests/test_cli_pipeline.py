"""`reconciler plan`, `apply` and `state` from the command line, against the embedded sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.state import FileStateStore

REPO = Path(__file__).resolve().parent.parent
FLEET = REPO / "manifests"

APP_YAML = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.genexus.verdant.coffeemuffins
  labels: {team: cafe}
spec:
  name: {name}
  superapp_id: com.genexus.verdantbank
  type: Native
  attributes:
    COUNTRY: Uruguay
  locations:
    - name: Central
      geo_point: POINT(-56.16 -34.92)
  versions:
    - code: "1.0.0"
      platform_id: iOS
      main_name: start
      main_type: Panel
      compatibility: [1]
      status: waiting_for_review
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "manifests").mkdir()
    write_app(tmp_path, "Coffee")
    return tmp_path


def write_app(root: Path, name: str) -> None:
    (root / "manifests" / "app.yaml").write_text(APP_YAML.replace("{name}", name))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "manifests"),
        ("plan", "manifests", "--format", "json"),
        ("drift", "manifests"),
        ("drift", "manifests", "--format", "json"),
        ("apply", "manifests", "--auto-approve"),
        ("apply", "manifests", "--auto-approve", "--format", "json"),
    ],
)
def test_the_endpoint_is_said_once_on_stderr(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *args, "--sandbox")
    assert code in (0, 2), err
    assert err.count("Endpoint: embedded sandbox") == 1, err
    assert "Endpoint:" not in out  # stdout is the plan, report or JSON only


def test_plan_apply_plan_cycle(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")
    assert code == 2
    assert "Endpoint: embedded sandbox" in err
    assert "Plan: 5 to create, 1 to update, 0 to delete." in out
    code, out, _ = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 0
    assert "Apply complete: 6 applied, 0 failed, 0 skipped." in out
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")
    assert code == 0
    assert "No changes" in out
    assert (workdir / ".reconciler" / "sandbox-state.json").exists()


def test_plan_json_contract(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--format", "json",
                       "--detailed-exitcode")
    assert code == 2  # JSON is printed whatever the exit code
    data = json.loads(out)
    assert data["format_version"] == 2
    assert data["summary"] == {"create": 5, "update": 1, "delete": 0}
    first = data["changes"][0]
    assert {k: first[k] for k in ("provider", "kind", "address", "action", "app_id")} == {
        "provider": "miniappcenter",
        "kind": "miniapp",
        "address": "miniapp[com.genexus.verdant.coffeemuffins]",
        "action": "create",
        "app_id": "com.genexus.verdant.coffeemuffins",
    }
    assert first["before"] is None and first["after"]["name"] == "Coffee"
    # a first run says so: no state file yet, and nothing declared exists there
    assert [w.split(":")[0] for w in data["warnings"]] == [
        "no state file was found at " + str(workdir / ".reconciler/sandbox-state.json"),
        "none of the 1 declared mini app(s) exists at sandbox",
    ]


def test_markdown_plan(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--format", "markdown")
    assert code == 0
    assert out.startswith("<!-- miniapp-reconciler plan -->")
    assert "com.genexus.verdant.coffeemuffins" in out


def test_apply_refuses_without_tty_or_auto_approve(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "apply", "manifests", "--sandbox")
    assert code == 1
    assert "--auto-approve" in err
    # nothing was written
    code, _, _ = run(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")
    assert code == 2


def test_saved_plan_applies_exactly_and_refuses_when_stale(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")
    assert code == 0 and "reconciler apply --plan plan.json" in err
    code, out, _ = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0 and "6 applied" in out
    # the same saved plan again: the state moved on since it was made
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "stale" in err


def test_saved_plan_refuses_live_changes_made_after_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    write_app(workdir, "Coffee 2")
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")[0] == 0
    # someone renames the app in the backoffice after the plan was reviewed
    from reconciler.providers.miniappcenter.sandbox import SandboxStore

    with SandboxStore(workdir / ".reconciler" / "sandbox.db") as store:
        store.update_miniapp("com.genexus.verdant.coffeemuffins", {"name": "Outside"})
    code, out, _ = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1
    assert "changed since the plan was made" in out
    with SandboxStore(workdir / ".reconciler" / "sandbox.db") as store:
        assert store.get_miniapp("com.genexus.verdant.coffeemuffins")["name"] == "Outside"


def test_concurrent_apply_fails_fast_on_the_lock(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileStateStore(workdir / ".reconciler" / "sandbox-state.json")
    with store.lock("apply") as held:
        code, _, err = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
        assert code == 1
        assert "is locked" in err and held.id in err
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    # a live holder's lock is never removed: a second run would write beside it
    with store.lock("apply") as held:
        code, _, err = run(capsys, "state", "unlock", held.id, "--sandbox")
        assert code == 1 and "still running" in err
    # a stale lock that cannot be proven dead (another host's) is removed with the id it names
    stale = {
        "id": "0d6e3c1a-stale", "who": "ci", "host": "build-agent-7", "pid": 4242,
        "when": "2026-11-28T10:00:00+00:00", "operation": "apply", "os_lock": True,
    }  # fmt: skip
    store.lock_path.write_text(json.dumps(stale))
    code, _, err = run(capsys, "state", "unlock", "0d6e3c1a-stale", "--sandbox")
    assert code == 0 and "Removed lock" in err


_SAVING_HOLDER = """
import sys
from reconciler.state import FileStateStore, State
store = FileStateStore(sys.argv[1])
with store.lock("apply"):
    print("held", flush=True)
    sys.stdin.readline()
    store.save(State())  # its first apply: the state file exists from now on
"""


def test_a_run_that_waited_for_the_lock_judges_the_state_it_then_reads(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _SAVING_HOLDER, str(workdir / ".reconciler" / "sandbox-state.json")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

    def release_later() -> None:
        time.sleep(2)  # lets the run below start waiting first (asserts no duration)
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()

    threading.Thread(target=release_later, daemon=True).start()
    code, _, err = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve",
                       "--lock-timeout", "60")  # fmt: skip
    assert holder.wait(timeout=30) == 0
    assert code == 0, err
    # The holder's state was there when this run read it: "no state file was found ...
    # adopted" judged before the wait would be false.
    assert "no state file was found" not in err


def test_partial_failure_exits_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A version whose code the server already has (created outside) is refused; the rest goes.
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    assert run(capsys, "state", "rm", "com.genexus.verdant.coffeemuffins", "--version",
               "1.0.0", "--sandbox")[0] == 0
    write_app(workdir, "Coffee 3")
    code, out, _ = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 3
    assert "1 failed" in out and "Re-run" in out


def test_no_endpoint_is_a_clear_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "manifests")
    assert code == 1
    assert "MAC_BASE_URL" in err and "--sandbox" in err


def test_plain_http_to_a_remote_host_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAC_BASE_URL", "http://mac.example.com/api")
    monkeypatch.setenv("MAC_API_TOKEN", "s3cr3t-token-value")
    code, out, err = run(capsys, "plan", "manifests")
    assert code == 1
    assert "http" in err.lower()
    assert "s3cr3t-token-value" not in out + err


def test_usage_errors_exit_64(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "plan")[0] == 64
    assert run(capsys, "plan", "manifests", "--format", "yaml", "--sandbox")[0] == 64
    assert run(capsys, "apply", "--sandbox")[0] == 64
    assert run(capsys, "nope")[0] == 64


def test_invalid_manifest_sends_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "manifests" / "bad.yaml").write_text("apiVersion: miniappcenter/v1\nkind: Nope\n")
    code, out, err = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 1
    assert "bad.yaml:2" in out
    assert "nothing was sent" in err
    assert not (workdir / ".reconciler" / "sandbox.db").exists()


def test_state_commands(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    code, out, _ = run(capsys, "state", "list", "--sandbox")
    assert code == 0 and out.startswith("com.genexus.verdant.coffeemuffins\t1 version(s)")
    code, out, _ = run(capsys, "state", "show", "com.genexus.verdant.coffeemuffins", "--sandbox")
    record = json.loads(out)
    assert record["versions"]["1.0.0"]["status"] == "waiting_for_review"
    code, _, _ = run(capsys, "state", "set-status", "com.genexus.verdant.coffeemuffins",
                     "1.0.0", "in_review", "--sandbox")
    assert code == 0
    code, _, _ = run(capsys, "state", "set-status", "com.genexus.verdant.coffeemuffins",
                     "1.0.0", "bogus", "--sandbox")
    assert code == 64
    code, _, err = run(capsys, "state", "rm", "com.genexus.verdant.coffeemuffins", "--sandbox")
    assert code == 0 and "nothing was deleted" in err
    assert run(capsys, "state", "show", "com.genexus.verdant.coffeemuffins", "--sandbox")[0] == 1


def test_demo_fleet_quick_start(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(FLEET, workdir / "fleet")
    assert run(capsys, "apply", "fleet", "--sandbox", "--auto-approve")[0] == 0
    code, out, _ = run(capsys, "plan", "fleet", "--sandbox", "--detailed-exitcode")
    assert code == 0, out


def test_an_unexpected_bug_is_a_clear_message_not_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.providers.miniappcenter.planning

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(reconciler.providers.miniappcenter.planning, "make_plan", broken)
    monkeypatch.delenv("RECONCILER_DEBUG", raising=False)
    code, _, err = run(capsys, "plan", "manifests", "--sandbox")
    assert code == 1
    assert "Internal error: RuntimeError: boom" in err
    assert "Traceback" not in err


def test_a_hand_edited_saved_plan_is_refused_whole(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: the bad change failed alone and the others were applied (exit 3). A saved plan is
    # now validated whole before any write (issue 11 §1); the executor-level isolation is
    # kept in test_apply.py::test_a_bad_payload_fails_only_its_change.
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")[0] == 0
    plan = json.loads((workdir / "plan.json").read_text())
    index, attribute = next(
        (i, c) for i, c in enumerate(plan["changes"]) if c["kind"] == "attribute"
    )
    attribute["payload"] = {"field": "COUNTRY"}  # value removed by hand
    (workdir / "plan.json").write_text(json.dumps(plan))
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1
    assert f"change {index} ({attribute['address']})" in err and "payload" in err
    assert "applied" not in out
    assert not (workdir / ".reconciler" / "sandbox-state.json").exists()


def test_the_token_never_goes_through_a_manifest(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-t0ken-value-123"
    monkeypatch.setenv("MAC_API_TOKEN", secret)
    manifest = workdir / "manifests" / "app.yaml"
    original = manifest.read_text()
    manifest.write_text(original.replace("name: Coffee", "name: ${MAC_API_TOKEN}"))
    code, out, err = run(capsys, "plan", "manifests", "--sandbox")
    assert code == 1 and "must never be written into a manifest" in out
    assert secret not in out + err
    # pasted literally: refused as well, without echoing it
    manifest.write_text(original.replace("name: Coffee", f"name: {secret}"))
    code, out, err = run(capsys, "plan", "manifests", "--sandbox", "--format", "json")
    assert code == 1 and "contains the value of MAC_API_TOKEN" in out
    assert secret not in out + err


def test_a_no_op_apply_leaves_the_state_and_saved_plans_alone(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    state_file = workdir / ".reconciler" / "sandbox-state.json"
    before = state_file.read_bytes()
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")[0] == 0
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    assert state_file.read_bytes() == before  # no serial bump: the saved plan stays valid
    code, out, _ = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0, out


def test_saved_plans_are_not_narrowed_at_apply_time(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")[0] == 0
    assert run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--target", "x.y")[0] == 64
    assert run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--prune")[0] == 64
    # --max-deletes is re-checked against the saved plan
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    write_app(workdir, "Coffee")
    (workdir / "manifests" / "app.yaml").write_text(
        (workdir / "manifests" / "app.yaml").read_text().replace(
            "  attributes:\n    COUNTRY: Uruguay\n", "  attributes: {}\n"
        )
    )
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")[0] == 0
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve",
                       "--max-deletes", "0")
    assert code == 1 and "more than --max-deletes 0" in err


OTHER_YAML = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.genexus.verdant.other
  labels: {team: {team}}
  protect: {protect}
spec:
  name: Other
  superapp_id: com.genexus.verdantbank
  type: Web
"""


def write_other(root: Path, team: str = "cafe", protect: str = "false") -> None:
    (root / "manifests" / "other.yaml").write_text(
        OTHER_YAML.replace("{team}", team).replace("{protect}", protect)
    )


def test_narrowed_prune_never_deletes_an_app_still_in_the_manifests(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_other(workdir, team="cafe")
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    write_other(workdir, team="bakery")  # a PR that only relabels it
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--select", "team=cafe",
                       "--prune", "--detailed-exitcode")
    assert code == 0, out
    assert "DELETE" not in out


def test_saved_plans_carry_protection(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_other(workdir, protect="true")
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "p1.json")[0] == 0
    assert run(capsys, "apply", "--plan", "p1.json", "--sandbox", "--auto-approve")[0] == 0
    code, out, _ = run(capsys, "state", "show", "com.genexus.verdant.other", "--sandbox")
    assert json.loads(out)["protect"] is True
    (workdir / "manifests" / "other.yaml").unlink()
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--prune", "--out", "p2.json")
    assert code == 1 and "protected" in out
    code, _, err = run(capsys, "apply", "--plan", "p2.json", "--sandbox", "--auto-approve")
    assert code == 1 and "the plan has errors" in err


def test_json_is_printed_whatever_the_exit_code(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a plan with an app error (unreachable status): that app is stuck, exit 3, JSON printed
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    manifest = workdir / "manifests" / "app.yaml"
    manifest.write_text(manifest.read_text().replace("waiting_for_review", "pending"))
    code, out, _ = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve",
                       "--format", "json")
    assert code == 3
    data = json.loads(out)
    assert "cannot go from" in data["plan"]["errors"][0]
    assert data["plan"]["details"]["errors"][0]["scope"] == "app"
    assert data["apply"]["stuck_apps"] == [
        {"app_id": "com.genexus.verdant.coffeemuffins",
         "reason": data["plan"]["details"]["errors"][0]["message"]}
    ]
    # a fleet-wide error (delete budget) stops everything: exit 1, nothing applied
    manifest.write_text(manifest.read_text().replace("spec:\n", "spec:\n  ensure: absent\n"))
    code, out, _ = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve",
                       "--format", "json", "--max-deletes", "0")
    assert code == 1
    assert json.loads(out)["apply"] is None
    # manifest errors: JSON on stdout, the text on stderr
    (workdir / "manifests" / "bad.yaml").write_text("apiVersion: miniappcenter/v1\nkind: X\n")
    code, out, err = run(capsys, "plan", "manifests", "--sandbox", "--format", "json")
    assert code == 1
    assert json.loads(out)["errors"][0]["file"].endswith("bad.yaml")
    assert "bad.yaml:2" in err


@pytest.mark.parametrize("content", ["[1, 2]", "not json", '{"format_version": 1}', None])
def test_bad_plan_files_are_clear_errors(
    workdir: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    if content is None:
        (workdir / "plan.json").mkdir()
    else:
        (workdir / "plan.json").write_text(content)
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1
    assert "plan file plan.json" in err and "Internal error" not in err


def test_a_saved_plan_with_one_bad_change_writes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: the other app was applied (exit 3). Now the whole saved plan is refused first.
    write_other(workdir)
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", "plan.json")[0] == 0
    plan = json.loads((workdir / "plan.json").read_text())
    compat = next(c for c in plan["changes"] if c["kind"] == "compatibility")
    compat["payload"] = {"superapp_version": "one"}
    (workdir / "plan.json").write_text(json.dumps(plan))
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1, err
    assert compat["address"] in err and "Internal error" not in err
    code, _, _ = run(capsys, "state", "show", "com.genexus.verdant.other", "--sandbox")
    assert code == 1  # nothing was applied, not even the other app


def test_interrupted_outside_the_run_exits_130_and_releases_the_lock(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.state import FileStateStore as Store

    def interrupted(self: Store, endpoint: str) -> None:
        raise KeyboardInterrupt  # SIGTERM / Ctrl-C while the lock is held

    monkeypatch.setattr(Store, "load", interrupted)
    code, _, err = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 130 and "Interrupted" in err
    assert "nothing was written" in err and "completed write" not in err
    assert not (workdir / ".reconciler" / "sandbox-state.json.lock").exists()


def test_ctrl_c_while_planning_says_nothing_was_written(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.workflows.apply as apply_flow

    async def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the live state is being read

    monkeypatch.setattr(apply_flow, "plan_fleet", interrupted)
    code, out, err = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 130
    assert "Interrupted before any write: nothing was written" in err
    assert "every completed write is recorded" not in err + out
    assert not (workdir / ".reconciler" / "sandbox-state.json").exists()


def test_ctrl_c_at_the_prompt_writes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.cli.apply_cmd as apply_cmd

    def pressed_ctrl_c() -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(apply_cmd, "_confirm", pressed_ctrl_c)
    code, _, err = run(capsys, "apply", "manifests", "--sandbox")
    assert code == 130
    assert "nothing was written" in err and "completed write" not in err
    assert run(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")[0] == 2
    assert not (workdir / ".reconciler" / "sandbox-state.json").exists()


def test_adopting_an_interrupted_create_records_it_as_pending(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.state import AppRecord, VersionRecord

    store = FileStateStore(workdir / ".reconciler" / "sandbox-state.json")
    state = store.read()
    state.apps["com.genexus.verdant.coffeemuffins"] = AppRecord(
        versions={"1.0.0": VersionRecord(create_outcome="unknown")}
    )
    store.save(state)
    code, _, err = run(capsys, "state", "adopt-version", "com.genexus.verdant.coffeemuffins",
                       "1.0.0", "7", "--sandbox")
    assert code == 0 and "status pending" in err
    record = json.loads(run(capsys, "state", "show", "com.genexus.verdant.coffeemuffins",
                            "--sandbox")[1])
    assert record["versions"]["1.0.0"] == {
        "id": 7, "fields": {}, "objects": {}, "compatibility": None, "status": "pending",
        "status_candidates": None, "create_outcome": None, "probe_from": None,
        "probed_to": None,
    }
