"""Files a manifest run reads stay inside the repository: the manifests themselves and every
``file:`` path they hold (issue 11, section 2). Nothing outside the root, nothing that is not
a regular file, nothing over the size caps, and never a byte of a refused file's content in
a message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli.main import main
from reconciler.errors import ManifestError
from reconciler.manifest import files, loader
from reconciler.manifest.files import find_roots
from reconciler.providers.miniappcenter.manifest import document, load_manifests
from tests.test_manifest_errors import BASE

SECRET = "s3cr3t-Do-Not-Print-0123456789"

APP = BASE + "  icon: {icon}\n"  # the error tests' minimal manifest, with an image file


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree ``repo/`` (with ``manifests/`` and ``icons/``) and, beside it, files
    that are not the repository's: ``outside/secret.txt``."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "manifests").mkdir()
    (root / "icons").mkdir()
    (root / "icons" / "shop.png").write_bytes(b"\x89PNG inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(f"TOKEN={SECRET}\n")
    monkeypatch.chdir(root)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    return root


def write_app(repo: Path, icon: str) -> Path:
    path = repo / "manifests" / "app.yaml"
    path.write_text(APP.format(icon=icon), encoding="utf-8")
    return path


def refusal(paths: list[str], roots: list[str] | None = None) -> str:
    """The single issue loading ``paths`` gives, as printed."""
    with pytest.raises(ManifestError) as caught:
        load_manifests(paths, {}, roots or [])
    assert len(caught.value.issues) == 1, caught.value.issues
    text = str(caught.value.issues[0])
    assert SECRET not in text
    return text


# --- the root -----------------------------------------------------------------------------


def test_the_root_is_the_git_work_tree_else_the_folder_given(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "m.yaml").write_text("")
    assert find_roots([tmp_path / "repo" / "deep" / "er"]) == ((tmp_path / "repo").resolve(),)
    assert find_roots([tmp_path / "plain"]) == ((tmp_path / "plain").resolve(),)
    assert find_roots([tmp_path / "plain" / "m.yaml"]) == ((tmp_path / "plain").resolve(),)
    widened = find_roots([tmp_path / "plain"], [tmp_path / "repo"])
    assert widened == ((tmp_path / "plain").resolve(), (tmp_path / "repo").resolve())


def test_a_file_inside_the_repository_is_read(repo: Path) -> None:
    write_app(repo, "file:../icons/shop.png")
    (app,) = load_manifests(["manifests"], {})
    assert app.app.spec.icon is not None and app.app.spec.icon.startswith("file:icons/shop.png#")


@pytest.mark.parametrize(
    ("icon", "expected"),
    [
        ("file:../../outside/secret.txt", "is outside the repository root"),
        ("file:../icons/../../outside/secret.txt", "is outside the repository root"),
        ("file:/etc/passwd", "is an absolute path"),
        ("file:/proc/self/environ", "is an absolute path"),
        ("file:~/.ssh/id_rsa", "is an absolute path"),
    ],
)
def test_file_paths_leaving_the_root_are_refused(repo: Path, icon: str, expected: str) -> None:
    write_app(repo, icon)
    text = refusal(["manifests"])
    assert text.startswith("manifests/app.yaml:9:9: spec.icon: ")
    assert expected in text


def test_a_symlink_leaving_the_root_is_refused(repo: Path) -> None:
    (repo / "icons" / "evil.png").symlink_to(repo.parent / "outside" / "secret.txt")
    write_app(repo, "file:../icons/evil.png")
    text = refusal(["manifests"])
    assert "outside the repository root (through a symlink)" in text
    assert "--root" in text


def test_a_symlink_inside_the_root_is_followed(repo: Path) -> None:
    (repo / "icons" / "alias.png").symlink_to("shop.png")
    write_app(repo, "file:../icons/alias.png")
    (app,) = load_manifests(["manifests"], {})
    assert app.app.spec.icon is not None and app.app.spec.icon.startswith("file:icons/shop.png#")


def test_root_widens_what_may_be_read(repo: Path) -> None:
    write_app(repo, "file:../../outside/secret.txt")
    (app,) = load_manifests(["manifests"], {}, [str(repo.parent / "outside")])
    assert app.app.spec.icon is not None and "secret.txt#sha256=" in app.app.spec.icon


def test_a_fifo_is_refused_without_hanging(repo: Path) -> None:
    os.mkfifo(repo / "icons" / "pipe.png")
    write_app(repo, "file:../icons/pipe.png")
    assert "is a named pipe (FIFO), not a regular file" in refusal(["manifests"])


def test_a_folder_is_refused(repo: Path) -> None:
    write_app(repo, "file:../icons")
    assert "is a folder" in refusal(["manifests"])


@pytest.mark.parametrize("system_file", ["/dev/zero", "/proc/self/environ", "/dev/null"])
def test_system_files_are_refused_even_under_a_wide_root(repo: Path, system_file: str) -> None:
    if not Path(system_file).exists():
        pytest.skip(f"{system_file} does not exist here")
    (repo / "icons" / "sys.png").symlink_to(system_file)
    write_app(repo, "file:../icons/sys.png")
    assert "is a system file" in refusal(["manifests"], ["/"])


def test_an_object_file_over_the_cap_is_refused(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(document, "MAX_OBJECT_BYTES", 10)
    (repo / "icons" / "big.png").write_bytes(b"x" * 11)
    write_app(repo, "file:../icons/big.png")
    assert "is larger than the limit of 10 bytes" in refusal(["manifests"])


def test_a_file_growing_past_its_stated_size_is_refused(tmp_path: Path) -> None:
    """The cap is counted while reading: st_size is not trusted (procfs reports 0)."""
    big = tmp_path / "f"
    big.write_bytes(b"y" * 100)
    with pytest.raises(files.FileRefused, match="larger than the limit of 99 bytes"):
        files.read_regular_file(big, 99, "file")
    assert files.read_regular_file(big, 100, "file") == b"y" * 100


# --- the manifests themselves ----------------------------------------------------------


def test_a_manifest_symlinked_outside_the_root_is_refused_unread(repo: Path) -> None:
    (repo / "manifests" / "shadow.yaml").symlink_to(repo.parent / "outside" / "secret.txt")
    text = refusal(["manifests"])
    assert text.startswith("manifests/shadow.yaml:1:1: manifest manifests/shadow.yaml is outside")
    assert "(through a symlink)" in text


def test_a_manifest_named_directly_as_a_symlink_outside_is_refused(repo: Path) -> None:
    (repo / "link.yaml").symlink_to(repo.parent / "outside" / "secret.txt")
    assert "outside the repository root" in refusal(["link.yaml"])


@pytest.mark.parametrize(
    "content",
    [
        f"{SECRET}\n",  # a one-line secret: one plain scalar
        f"MAC_API_TOKEN={SECRET}\nOTHER=1\n",  # a .env
        f"root:{SECRET}:19000:0:99999:7:::\n",  # /etc/shadow
        f"*{SECRET}\n",  # an undefined alias: PyYAML names it in its problem
        f"&{SECRET} a\n&{SECRET} b\n",
        f"!{SECRET}!x y\n",  # an undefined tag handle
        f'"{SECRET}\\q"\n',  # an unknown escape
        f"key: {SECRET}\n  bad: indent\n",
        f"- [{SECRET}\n",
        f"{{{SECRET}: [\n",
    ],
)
def test_a_non_manifest_inside_the_root_never_leaks_its_content(
    repo: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    (repo / ".env").write_text(content)
    (repo / "manifests" / "env.yaml").symlink_to(repo / ".env")
    for fmt in ("text", "json"):
        assert main(["validate", "manifests", "--format", fmt]) == 1
        out, err = capsys.readouterr()
        assert "manifests/env.yaml" in out
        assert SECRET not in out + err


def test_a_fifo_manifest_is_refused_without_hanging(repo: Path) -> None:
    os.mkfifo(repo / "manifests" / "pipe.yaml")
    assert "the manifest is a named pipe (FIFO), not a regular file" in refusal(["manifests"])


def test_a_manifest_over_the_cap_is_refused_before_any_parsing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 MB of documents: refused from its size at once (parsing it took minutes)."""
    with open(repo / "manifests" / "huge.yaml", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: the size is all that is looked at

    def never(*_: object, **__: object) -> object:
        raise AssertionError("a file over the cap must not be parsed")

    monkeypatch.setattr(loader.yaml, "compose_all", never)
    text = refusal(["manifests"])
    assert text == (
        "manifests/huge.yaml:1:1: the manifest is larger than the limit of"
        f" {files.MAX_MANIFEST_BYTES // (1024 * 1024)} MiB"
    )


# --- through the CLI, every command that loads manifests ----------------------------------


@pytest.mark.parametrize("command", ["validate", "plan", "drift", "apply"])
def test_every_loading_command_refuses_outside_files_and_takes_root(
    repo: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    write_app(repo, "file:../../outside/secret.txt")
    extra = [] if command == "validate" else ["--sandbox"]
    if command == "apply":
        extra.append("--auto-approve")
    assert main([command, "manifests", *extra]) == 1
    out, err = capsys.readouterr()
    assert "spec.icon: file " in out + err and "outside the repository root" in out + err
    assert SECRET not in out + err
    code = main([command, "manifests", *extra, "--root", str(repo.parent / "outside")])
    assert code in (0, 2), capsys.readouterr()


# --- generated: any relative path stays inside or is refused ------------------------------

_SEGMENTS = st.sampled_from(["..", ".", "icons", "shop.png", "outside", "secret.txt", "x", ""])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(_SEGMENTS, min_size=1, max_size=6))
def test_generated_paths_never_read_outside_the_root(tmp_path_factory: pytest.TempPathFactory,
                                                      parts: list[str]) -> None:
    base = tmp_path_factory.getbasetemp() / "generated"
    repo = base / "repo"
    if not repo.exists():
        (repo / ".git").mkdir(parents=True)
        (repo / "manifests").mkdir()
        (repo / "icons").mkdir()
        (repo / "icons" / "shop.png").write_bytes(b"png")
        (base / "outside").mkdir()
        (base / "outside" / "secret.txt").write_text(SECRET)
        (repo / "icons" / "outside").symlink_to(base / "outside")
    relative = "/".join(parts)
    manifest = repo / "manifests" / "app.yaml"
    manifest.write_text(APP.format(icon=f'"file:{relative}"'), encoding="utf-8")
    try:
        (app,) = load_manifests([str(repo / "manifests")], {})
    except ManifestError as exc:
        assert all(SECRET not in str(issue) for issue in exc.issues)
        return
    icon = app.app.spec.icon
    assert icon is not None
    read = (Path.cwd() / icon.removeprefix("file:").split("#sha256=")[0]).resolve()
    assert read.is_relative_to(repo.resolve())
