"""The documentation as a whole: a short README, a MkDocs site that builds strictly, links
that stay in the repository, no decision or issue numbers on user pages, and references
generated from the CLI and the schemas that are current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs_pages import DOCS, REPO, pages, read_page, rel

README = REPO / "README.md"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def _prose(path: Path) -> str:
    """The page without its fenced blocks (a code sample may show any text)."""
    text = path.read_text(encoding="utf-8")
    return re.sub(r"^\s*```.*?^\s*```\s*$", "", text, flags=re.S | re.M)


def test_the_readme_is_short_and_keeps_both_quick_start_blocks() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    bash = [b.text.strip() for b in read_page(README).blocks if b.fence == "bash"]
    quick = "pip install -e . && reconciler plan manifests/ --sandbox"
    assert any(x.startswith(quick) for x in bash)
    assert "pip install -e '.[dev]' && python -m pytest -q" in bash


def test_ci_runs_the_readmes_test_command_and_builds_the_site_strictly() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    (tests,) = [b.text.strip() for b in read_page(README).blocks if "python -m pytest" in b.text]
    command = tests.split(" && ")[-1]
    assert re.search(rf"^{re.escape(command)}$", ci, flags=re.M), command
    assert re.search(r"^(\w+=\S+ )*mkdocs build --strict\b", ci, flags=re.M)
    assert "tools/gen_reference.py --check" in ci


@pytest.mark.parametrize("page", pages(), ids=rel)
def test_no_decision_or_issue_numbers_on_user_pages(page: Path) -> None:
    prose = _prose(page)
    found = re.findall(r"\bD\d{1,3}\b|\b[Ii]ssues? #?\d+\b|#\d{1,4}\b(?![\w-])", prose)
    assert not found, found


@pytest.mark.parametrize("page", pages(), ids=rel)
def test_every_link_stays_in_the_repository(page: Path) -> None:
    """README links to repository files; a site page links only to what the site holds (a
    page, a file under docs/, an anchor), never out of the repository."""
    prose = _prose(page)
    for target in [*LINK.findall(prose), *REF_LINK.findall(prose)]:
        assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//|^/", target), target
        path, _, _anchor = target.partition("#")
        if not path:
            continue  # an anchor of the same page: mkdocs --strict checks it
        resolved = (page.parent / path).resolve()
        assert resolved.exists(), (target, str(resolved))
        root = REPO if page == README else DOCS
        assert resolved.is_relative_to(root.resolve()), (target, "leaves", rel(root))


def test_every_page_has_one_title_and_is_in_the_nav() -> None:
    nav: list[str] = []

    def walk(items: object) -> None:
        if isinstance(items, list):
            for item in items:
                walk(item)
        elif isinstance(items, dict):
            for value in items.values():
                walk(value)
        elif isinstance(items, str):
            nav.append(items)

    walk(yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    site = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == site
    for page in pages():
        titles = re.findall(r"^# \S", _prose(page), flags=re.M)
        assert len(titles) == 1, (rel(page), titles)


def _clean_env() -> dict[str, str]:
    """No endpoint variables, and not the session's example plugin (conftest puts it on
    PYTHONPATH): the reference documents the built-in providers."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAC_", "AKANA_")) and k != "PYTHONPATH"}  # fmt: skip
    return {**env, "NO_MKDOCS_2_WARNING": "1"}


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()


def test_the_generated_references_are_current() -> None:
    done = subprocess.run(
        [sys.executable, "tools/gen_reference.py", "--check"],
        cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cli_reference_has_every_commands_help() -> None:
    from reconciler.cli.main import typer_main_command

    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    command = typer_main_command()
    for name, sub in command.commands.items():
        assert f"## `reconciler {name}`" in text, name
        for child in getattr(sub, "commands", {}):
            assert f"## `reconciler {name} {child}`" in text, (name, child)
    fields = (DOCS / "reference" / "manifests.md").read_text(encoding="utf-8")
    for schema in (REPO / "schema").glob("*.schema.json"):
        assert f"`schema/{schema.name}`" in fields, schema.name
