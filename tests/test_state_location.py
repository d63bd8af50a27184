"""The state (and the embedded sandboxes) live at the repository's root, whatever the current
directory: `cd manifests && reconciler plan .` finds the state `plan manifests/` wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.cli.location import repository_root
from reconciler.cli.main import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("RECONCILER_STATE", "MAC_SANDBOX_DB", "AKANA_BASE_URL", "NO_COLOR",
                "RECONCILER_CONFIG"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    shutil.copytree(REPO / "manifests" / "akana", tmp_path / "fleet" / "manifests" / "akana")
    return tmp_path / "fleet"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize("git", [True, False], ids=["git", "no-git"])
def test_a_plan_from_inside_the_manifests_finds_the_state(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, git: bool
) -> None:
    if git:
        (repo / ".git").mkdir()  # what find_roots and the anchor look for
    monkeypatch.chdir(repo)
    code, said = _run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 0, said
    monkeypatch.chdir(repo / "manifests" / "akana")
    code, said = _run(capsys, "plan", ".", "--sandbox", "--detailed-exitcode", "--no-color")
    assert code == 0, said
    assert "No changes. Live state matches the manifests." in said
    assert "no state file was found" not in said
    code, said = _run(capsys, "state", "list", "--sandbox")
    assert code == 0 and "akana_app[Payments Gateway]" in said, said
    # One state, one sandbox: nothing written where the command was run from.
    assert [p.relative_to(repo).as_posix() for p in repo.rglob(".reconciler")] == [".reconciler"]


def test_the_explicit_setting_wins(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / ".git").mkdir()
    monkeypatch.chdir(repo / "manifests")
    monkeypatch.setenv("RECONCILER_STATE", str(repo / "elsewhere.json"))
    code, said = _run(capsys, "apply", "akana", "--sandbox", "--auto-approve")
    assert code == 0, said
    assert (repo / "elsewhere.json").is_file()
    assert not (repo / ".reconciler" / "sandbox-state.json").exists()


def test_the_root_is_git_then_a_marker_then_the_manifests_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert repository_root([deep]) == deep
    monkeypatch.chdir(tmp_path)  # a first run from above: the folder it starts from
    assert repository_root([deep]) == tmp_path
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not from above: the manifests' folder
    assert repository_root([deep]) == deep
    assert repository_root([deep / "x.yaml", tmp_path / "a" / "b"]) == tmp_path / "a" / "b"
    (tmp_path / "a" / "reconciler.yaml").write_text("")
    assert repository_root([deep]) == tmp_path / "a"
    (tmp_path / "a" / "b" / ".reconciler").mkdir()  # an earlier run's state: nearer
    assert repository_root([deep]) == tmp_path / "a" / "b"
    (tmp_path / ".git").mkdir()
    assert repository_root([deep]) == tmp_path
    assert repository_root([], start=deep) == tmp_path
