"""Never green when nothing was checked: a --select/--target that matches no app, a
malformed selector, and paths holding no manifest, for validate, plan, apply and drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.state import mac_records

REPO = Path(__file__).resolve().parent.parent
TEATIME = "com.genexus.verdant.teatime"
SPLITBILL = "com.genexus.verdant.splitbill"

# Every command that takes manifests and a selection; apply with --auto-approve so that a
# selection that wrongly matched would write (and the assertions would see it).
COMMANDS = {
    "validate": ["validate", "manifests"],
    "plan": ["plan", "manifests", "--sandbox"],
    "apply": ["apply", "manifests", "--sandbox", "--auto-approve"],
    "drift": ["drift", "manifests", "--sandbox"],
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def nothing_written(workdir: Path) -> bool:
    state = workdir / ".reconciler" / "sandbox-state.json"
    return not state.exists() or mac_records(json.loads(state.read_text())) == {}


# --- a selection matching nothing: exit 1, naming it and what exists -----------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_select_matching_nothing_lists_the_labels_present(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(capsys, *COMMANDS[command], "--select", "team=kitchen")
    assert code == 1, (out, err)
    assert "--select team=kitchen matches no app declared in the manifests" in err
    assert "Labels present: env=prod, env=staging, team=cafe, team=payments" in err
    assert "No changes" not in out and "In sync" not in out and "OK:" not in out
    assert nothing_written(workdir)


@pytest.mark.parametrize("command", COMMANDS)
def test_select_typo_suggests_the_close_label(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, _, err = run(capsys, *COMMANDS[command], "--select", "team=caffe")
    assert code == 1
    assert "did you mean team=cafe?" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_target_typo_names_it_and_suggests_the_declared_id(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(capsys, *COMMANDS[command], "--target", "com.genexus.verdant.teatme")
    assert code == 1, (out, err)
    assert "--target com.genexus.verdant.teatme matches no app declared" in err
    assert f"did you mean {TEATIME}?" in err
    known = err.split("Known ids: ", 1)[1].strip()
    assert known == (  # the demo fleet's Akana apps are declared too
        "Payments Gateway, Payments Reports,"
        " com.genexus.verdant.coffeemuffins, com.genexus.verdant.loyaltypoints,"
        f" {SPLITBILL}, com.genexus.verdant.sweetcorner, {TEATIME}"
    )
    assert nothing_written(workdir)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_target_must_match(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # One good target does not cover a mistyped second one.
    code, _, err = run(
        capsys, *COMMANDS[command], "--target", TEATIME, "--target", "com.example.nowhere"
    )
    assert code == 1
    assert "--target com.example.nowhere matches no app" in err
    code, _, err = run(
        capsys, *COMMANDS[command], "--target", "com.genexus.verdant.teatme",
        "--target", "com.genexus.verdant.splitbil",
    )
    assert code == 1
    assert "--target com.genexus.verdant.teatme, --target com.genexus.verdant.splitbil match" in err
    assert f"did you mean com.genexus.verdant.teatme -> {TEATIME}," in err
    assert nothing_written(workdir)


@pytest.mark.parametrize("command", COMMANDS)
def test_select_and_target_that_exclude_each_other(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, _, err = run(capsys, *COMMANDS[command], "--target", TEATIME, "--select", "team=payments")
    assert code == 1
    assert f"--select team=payments --target {TEATIME} matches no app" in err


@pytest.mark.parametrize("command", ["validate", "plan", "drift", "apply"])
def test_selection_error_in_json_mode(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(capsys, *COMMANDS[command], "--select", "team=kitchen", "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert any("team=kitchen" in e["message"] for e in data["errors"])
    assert "team=kitchen" in err


def test_the_listing_is_bounded(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(workdir / "manifests")
    (workdir / "manifests").mkdir()
    docs = [
        "apiVersion: miniappcenter/v1\nkind: MiniApp\nmetadata:\n"
        f"  id: com.example.app{i:03d}\n  labels: {{shard: s{i:03d}}}\n"
        "spec:\n  name: N\n  superapp_id: com.example.super\n  type: Native\n"
        for i in range(200)
    ]
    (workdir / "manifests" / "many.yaml").write_text("---\n".join(docs))
    code, _, err = run(capsys, "plan", "manifests", "--sandbox", "--select", "shard=none")
    assert code == 1
    assert "(+188 more)" in err
    code, _, err = run(capsys, "plan", "manifests", "--sandbox", "--target", "com.example.zzz")
    assert code == 1
    assert "(+188 more)" in err
    assert max(len(line) for line in err.splitlines()) < 1500


# --- what stays valid ---------------------------------------------------------------------


def test_matching_selection_still_works(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "manifests", "--select", "team=payments")
    assert (code, out) == (0, "OK: 2 mini apps, 2 Akana apps in 5 files\n")
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--target", TEATIME)
    assert code == 0
    assert TEATIME in out and SPLITBILL not in out


def test_target_known_only_to_the_state_can_be_pruned(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    (workdir / "manifests" / "payments" / "splitbill.yaml").unlink()
    code, out, err = run(
        capsys, "plan", "manifests", "--sandbox", "--target", SPLITBILL, "--prune",
        "--detailed-exitcode",
    )
    assert code == 2, err
    assert f"- miniapp[{SPLITBILL}]" in out
    # The same id is unknown to validate, which has no state.
    code, _, err = run(capsys, "validate", "manifests", "--target", SPLITBILL)
    assert code == 1
    assert f"--target {SPLITBILL} matches no app declared in the manifests" in err


def test_select_matching_only_state_recorded_apps_is_valid(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    shutil.rmtree(workdir / "manifests" / "payments")
    code, out, err = run(
        capsys, "plan", "manifests", "--sandbox", "--select", "team=payments", "--prune",
        "--detailed-exitcode",
    )
    assert code == 2, err
    assert "2 to delete" in out


# --- malformed selectors are usage errors: 64 -------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "selector", [["team"], ["=cafe"], ["my team=cafe"], ["env=prod", "env=dev"]]
)
def test_malformed_selector_is_a_usage_error(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str, selector: list[str]
) -> None:
    args = [arg for value in selector for arg in ("--select", value)]
    code, out, err = run(capsys, *COMMANDS[command], *args)
    assert code == 64, (out, err)
    assert err.startswith("Error:") and "selector" in err
    assert nothing_written(workdir)


# --- paths holding no manifest ----------------------------------------------------------------


def _no_manifest_folders(root: Path) -> dict[str, Path]:
    empty = root / "empty"
    empty.mkdir()
    text = root / "text"
    text.mkdir()
    (text / "README.txt").write_text("not a manifest")
    comments = root / "comments"
    (comments / "sub").mkdir(parents=True)
    (comments / "a.yaml").write_text("# apiVersion: miniappcenter/v1 (commented out)\n")
    (comments / "sub" / "b.yml").write_text("---\n---\n# nothing\n")
    return {"empty": empty, "text": text, "comments": comments}


@pytest.mark.parametrize("which", ["empty", "text", "comments"])
@pytest.mark.parametrize("command", ["validate", "plan", "apply", "drift"])
def test_paths_without_manifests_are_an_error(
    workdir: Path, capsys: pytest.CaptureFixture[str], which: str, command: str
) -> None:
    folder = _no_manifest_folders(workdir)[which]
    args = [command, str(folder)] + ([] if command == "validate" else ["--sandbox"])
    if command == "apply":
        args.append("--auto-approve")
    code, out, err = run(capsys, *args)
    assert code == 1, (out, err)
    assert f"no manifests found in {folder}" in out + err
    assert "No changes" not in out and "OK:" not in out and "In sync" not in out
    code, out, _ = run(capsys, *args, "--format", "json")
    assert code == 1
    messages = [e["message"] for e in json.loads(out)["errors"]]
    assert any(f"no manifests found in {folder}" in m for m in messages)


def test_a_comment_only_file_beside_real_manifests_is_fine(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "manifests" / "draft.yaml").write_text("# to do\n")
    code, out, _ = run(capsys, "validate", "manifests")
    assert (code, out) == (0, "OK: 5 mini apps, 2 Akana apps in 6 files\n")
