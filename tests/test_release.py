"""Releases: one version (pyproject.toml, read back from the package metadata), a changelog
that says what exists, and examples that pin something that exists."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

import reconciler

REPO = Path(__file__).resolve().parent.parent


def test_the_version_comes_from_the_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["version"] == reconciler.__version__
    assert importlib.metadata.version("miniapp-reconciler") == reconciler.__version__
    # not a copy that could drift: whatever the metadata says is the version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.8.7")
    assert reconciler.__version__ == "9.8.7"


def test_the_changelog_has_an_unreleased_section_and_names_the_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", text, flags=re.M)
    assert headings and headings[0] == "Unreleased", headings
    # every section of keep-a-changelog's vocabulary only
    kinds = set(re.findall(r"^### (\w+)", text, flags=re.M))
    assert kinds and kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    assert f"`{reconciler.__version__}`" in text  # the version the package reports


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=False)  # fmt: skip


def _pins() -> list[tuple[str, str]]:
    """(file, ref) of every place an example pins this repository: ``uses: ...@REF`` and the
    pre-commit ``rev:``."""
    found = []
    for path in sorted((REPO / "examples").rglob("*")):
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for ref in re.findall(r"miniapp-reconciler@([^\s`'\"]+)", text):
            found.append((str(path.relative_to(REPO)), ref))
        if path.name == "pre-commit-config.yaml":
            for repo in yaml.safe_load(text)["repos"]:
                found.append((str(path.relative_to(REPO)), str(repo["rev"])))
    return found


def test_examples_pin_a_commit_that_exists_and_holds_the_action() -> None:
    pins = _pins()
    assert len(pins) >= 8, pins  # every workflow step and the pre-commit hook
    for where, ref in pins:
        # a full commit id: a tag like @v1 or v0.1.0 does not exist until someone makes it
        assert re.fullmatch(r"[0-9a-f]{40}", ref), (where, ref)
        for needed in ("action.yml", ".pre-commit-hooks.yaml"):
            shown = _git("cat-file", "-e", f"{ref}:{needed}")
            assert shown.returncode == 0, (where, ref, needed, shown.stderr)
    assert len({ref for _, ref in pins}) == 1, pins  # one pin to move when you update
    note = (REPO / "examples" / "README.md").read_text(encoding="utf-8")
    assert "git tag" in note  # how to pin a tag of your own fork instead


def test_the_actions_provider_input_names_every_provider() -> None:
    from reconciler.providers.registry import BUILTIN  # a plugin brings its own docs

    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    described = action["inputs"]["provider"]["description"]
    for descriptor in BUILTIN:
        assert descriptor.name in described, descriptor.name


def test_the_plan_example_shows_a_rest_step_the_action_and_cli_accept(tmp_path: Path) -> None:
    from tests.test_action import _recorded_argv
    from tests.test_examples import cli_problems

    text = (REPO / "examples" / "github" / "plan.yml").read_text(encoding="utf-8")
    start = text.index("      # - name: Plan (REST)")
    commented = [x for x in text[start:].splitlines() if x.startswith("      #")]
    step = yaml.safe_load("\n".join(x[len("      # ") :] for x in commented))[0]
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    assert set(step["with"]) <= set(action["inputs"])
    assert step["with"]["provider"] == "rest"
    assert all(v.startswith("${{ secrets.") for k, v in step["env"].items() if "URL" not in k)
    inputs = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in step["with"].items()}
    argv = _recorded_argv(inputs, tmp_path)  # what the action's run step makes of the inputs
    assert argv[0] == "plan" and "rest/" in argv, argv
    assert argv[argv.index("--provider") + 1] == "rest", argv
    assert cli_problems(argv) == [], argv
