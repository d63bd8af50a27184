"""`plan --changed-since REF` (issue 14): only the apps a git change touches are read and
planned, in a git repository each test makes, against the embedded sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import reconciler.providers.miniappcenter.session as common
from reconciler.cli.main import main
from reconciler.providers.miniappcenter.client import MiniAppCenterClient
from tests.test_cli_pipeline import APP_YAML

APPS = ("coffeemuffins", "bagels", "croissants")
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def app_yaml(slug: str, name: str) -> str:
    return APP_YAML.replace("coffeemuffins", slug).replace("{name}", name)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[MiniAppCenterClient]:
    """Every client the CLI makes, to count what it read."""
    made: list[MiniAppCenterClient] = []
    real = common.Target.client

    def spy(self: common.Target, parallelism: int) -> MiniAppCenterClient:
        client = real(self, parallelism)
        made.append(client)
        return client

    monkeypatch.setattr(common.Target, "client", spy)
    return made


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three apps committed on main and applied to the sandbox."""
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "ci@example.com")
    git(tmp_path, "config", "user.name", "CI")
    (tmp_path / ".gitignore").write_text(".reconciler/\n")
    (tmp_path / "manifests").mkdir()
    for slug in APPS:
        (tmp_path / "manifests" / f"{slug}.yaml").write_text(app_yaml(slug, slug.title()))
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "three apps")
    assert main(["apply", "manifests", "--sandbox", "--auto-approve"]) == 0
    return tmp_path


def plan(
    capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient], *args: str
) -> tuple[int, str, str, int]:
    clients.clear()
    capsys.readouterr()
    code = main(["plan", "manifests", "--sandbox", *args])
    out, err = capsys.readouterr()
    return code, out, err, sum(client.stats.reads for client in clients)


def app_id(slug: str) -> str:
    return f"com.genexus.verdant.{slug}"


def test_a_one_line_change_reads_and_plans_only_that_app(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    path = repo / "manifests" / "bagels.yaml"
    path.write_text(path.read_text().replace("name: Bagels", "name: Bagels & Co"))
    code, out, _, full_reads = plan(capsys, clients, "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["update"] == 1
    code, out, err, reads = plan(capsys, clients, "--format", "json", "--changed-since", "main")
    assert code == 0, err
    document = json.loads(out)
    assert document["apps"] == [app_id("bagels")]
    assert [c["address"] for c in document["changes"]] == [f"miniapp[{app_id('bagels')}]"]
    assert document["incremental"] == {
        "changed_since": "main",
        "commit": git(repo, "rev-parse", "main").strip(),
        "files": 1,
        "apps": 1,
    }
    # The app, its locations, its versions: a third of the full plan's reads.
    assert 0 < reads <= full_reads // len(APPS), (reads, full_reads)


def test_the_text_and_markdown_plans_say_they_are_incremental_and_against_what(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    path = repo / "manifests" / "bagels.yaml"
    path.write_text(path.read_text().replace("name: Bagels", "name: Bagels & Co"))
    line = (
        "Incremental plan: only the 1 mini app(s) touched by changes since main (1 manifest"
        " file(s) changed) were read and planned; apply --plan refuses it."
    )
    _, out, err, _ = plan(capsys, clients, "--changed-since", "main")
    assert out.splitlines()[0] == line
    assert "Incremental: 1 mini app(s) touched by 1 manifest file(s) changed since main" in err
    _, out, _, _ = plan(capsys, clients, "--changed-since", "main", "--format", "markdown")
    assert "**Incremental plan**: only the 1 mini app(s) touched by changes since `main`" in out
    assert app_id("bagels") in out and app_id("croissants") not in out


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_nothing_changed_says_so_and_reads_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient], fmt: str
) -> None:
    """Never a green "No changes" when nothing was checked."""
    code, out, _, reads = plan(capsys, clients, "--changed-since", "main", "--format", fmt)
    assert code == 0 and reads == 0
    if fmt == "json":
        assert json.loads(out)["incremental"]["apps"] == 0
    else:
        assert "No manifest changed since main: nothing to plan." in out.replace("`", "")
        assert "No changes. Live state matches" not in out


def test_a_deleted_manifest_is_a_prune_warning_and_with_prune_a_delete(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    git(repo, "rm", "-q", "manifests/croissants.yaml")
    code, out, _, _ = plan(capsys, clients, "--changed-since", "main", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["changes"] == []
    assert any(app_id("croissants") in w and "--prune" in w for w in document["warnings"])
    assert document["incremental"]["files"] == 1
    _, out, _, _ = plan(capsys, clients, "--changed-since", "main", "--prune", "--format", "json")
    deletes = [c["address"] for c in json.loads(out)["changes"] if c["action"] == "delete"]
    assert deletes == [f"miniapp[{app_id('croissants')}]"]


def test_a_rename_is_a_delete_plus_an_add_and_a_moved_app_is_no_orphan(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    (repo / "manifests" / "team").mkdir()
    git(repo, "mv", "manifests/bagels.yaml", "manifests/team/bagels.yaml")
    git(repo, "commit", "-qm", "move")
    code, out, _, _ = plan(capsys, clients, "--changed-since", "main~1", "--prune",
                           "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["apps"] == [app_id("bagels")]
    assert document["changes"] == [] and document["incremental"]["files"] == 2


def test_untracked_and_committed_changes_both_count(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    path = repo / "manifests" / "bagels.yaml"
    path.write_text(path.read_text().replace("name: Bagels", "name: Bagels & Co"))
    git(repo, "commit", "-qam", "rename bagels")
    (repo / "manifests" / "scones.yaml").write_text(app_yaml("scones", "Scones"))  # untracked
    code, out, _, _ = plan(capsys, clients, "--changed-since", "main", "--format", "json")
    document = json.loads(out)
    assert code == 0
    assert sorted(document["apps"]) == [app_id("bagels"), app_id("scones")]
    # scones: app, attribute, location, version, compatibility + its review step; bagels: name
    assert document["summary"] == {"create": 5, "update": 2, "delete": 0}


def test_a_changed_file_object_touches_the_app_using_it(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    """An icon is part of the app: changing only the image must plan the app."""
    (repo / "images").mkdir()
    (repo / "images" / "icon.png").write_bytes(b"\x89PNG first")
    path = repo / "manifests" / "bagels.yaml"
    path.write_text(path.read_text().replace("  type: Native\n",
                                             "  type: Native\n  icon: file:../images/icon.png\n"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "icon")
    (repo / "images" / "icon.png").write_bytes(b"\x89PNG second")
    code, out, _, _ = plan(capsys, clients, "--changed-since", "HEAD", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["apps"] == [app_id("bagels")]
    assert document["incremental"] == {**document["incremental"], "files": 0, "apps": 1}


def test_apply_refuses_an_incremental_saved_plan(
    repo: Path, capsys: pytest.CaptureFixture[str], clients: list[MiniAppCenterClient]
) -> None:
    path = repo / "manifests" / "bagels.yaml"
    path.write_text(path.read_text().replace("name: Bagels", "name: Bagels & Co"))
    code, _, _, _ = plan(capsys, clients, "--changed-since", "main", "--out", "plan.json")
    assert code == 0
    clients.clear()
    code = main(["apply", "--plan", "plan.json", "--sandbox", "--auto-approve"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "plan file plan.json is incremental (made with plan --changed-since)" in err
    assert sum(client.stats.writes for client in clients) == 0


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("no-such-branch", "git does not know the revision 'no-such-branch'; fetch it first"),
        ("--output=/tmp/x", "expected a git revision"),
        ("main\x1b[31m", "expected a git revision"),
    ],
)
def test_a_bad_ref_is_a_clear_error_before_any_request(
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    clients: list[MiniAppCenterClient],
    ref: str,
    expected: str,
) -> None:
    code, _, err, reads = plan(capsys, clients, "--changed-since", ref)
    assert code == 1 and reads == 0 and not clients
    assert expected in err and "Traceback" not in err
    assert "\x1b" not in err


def test_outside_a_git_repository_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "app.yaml").write_text(app_yaml("bagels", "Bagels"))
    code = main(["plan", "manifests", "--sandbox", "--changed-since", "main"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "is not inside a git work tree" in err


def test_without_git_is_a_clear_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("reconciler.manifest.changed.shutil.which", lambda _name: None)
    code = main(["plan", "manifests", "--sandbox", "--changed-since", "main"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "--changed-since needs git, and no git command was found on PATH" in err


@pytest.mark.parametrize("command", ["apply", "drift"])
def test_apply_and_drift_have_no_changed_since(
    repo: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """They keep reading everything they manage."""
    code = main([command, "manifests", "--sandbox", "--changed-since", "main"])
    _, err = capsys.readouterr()
    assert code == 64 and "No such option" in err
