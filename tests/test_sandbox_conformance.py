"""docs/reference/sandbox-conformance.md cannot rot: every endpoint of the seed API docs is in
it, every test it names exists, and every assumption a sandbox can drop is listed with its
flag (and every listed flag is one `sandbox serve --drop-assumption` takes)."""

from __future__ import annotations

import ast
import os
import re
from functools import cache
from pathlib import Path

import pytest

from reconciler.providers.registry import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "sandbox-conformance.md"

# The endpoints of the seed docs (the Mini App Center's "Mini Apps" page, Akana's two
# reference pages), as those docs spell them. Checked against the docs themselves when they
# are at hand (test_the_list_is_the_seed_docs_own).
SEED_ENDPOINTS = (
    "GET /miniapps/{id}",
    "POST /miniapps/upload",
    "POST /miniapps",
    "PUT /miniapps/{id}",
    "DELETE /miniapps/{id}",
    "POST /miniapps/{id}/attributes",
    "DELETE /miniapps/{id}/attributes/{field}",
    "GET /miniapps/{id}/locations",
    "POST /miniapps/{id}/locations",
    "PUT /miniapps/{id}/locations/{location_id}",
    "DELETE /miniapps/{id}/locations/{location_id}",
    "GET /miniapps/{id}/versions/{version_id}",
    "POST /miniapps/{id}/versions/upload",
    "POST /miniapps/{id}/versions",
    "PUT /miniapps/{id}/versions/{version_id}",
    "POST /miniapps/{id}/versions/{version_id}/compatibility",
    "POST /miniapps/{id}/versions/{version_id}/compatibility/delete",
    "POST /miniapps/{id}/versions/{version_id}/send_to_review",
    "POST /miniapps/{id}/versions/{version_id}/in_review",
    "POST /miniapps/{id}/versions/{version_id}/rejected",
    "POST /miniapps/{id}/versions/{version_id}/ready",
    "GET /api/apps",
    "POST /api/apps",
)
NODE_ID = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)(?:\[[^\]`]*\])?`")
ENDPOINT_LINE = re.compile(r"^(GET|POST|PUT|DELETE) (/\S+)(?: |$)")


def _seed_docs() -> Path | None:
    """The seed docs: $RECONCILER_SEED_DOCS, else the spec folder beside the repository."""
    for candidate in (os.environ.get("RECONCILER_SEED_DOCS"), ROOT.parent / "shared" / "api-docs",
                      Path("/work/shared/api-docs")):  # fmt: skip
        if candidate and Path(candidate, "miniapp-center-miniapps.txt").is_file():
            return Path(candidate)
    return None


def test_the_list_is_the_seed_docs_own() -> None:
    docs = _seed_docs()
    if docs is None:
        pytest.skip("the seed API docs are not here (set RECONCILER_SEED_DOCS)")
    found: list[str] = []
    for name in sorted(p.name for p in docs.glob("*.txt")):
        for line in (docs / name).read_text(encoding="utf-8").splitlines():
            match = ENDPOINT_LINE.match(line.replace("\xa0", " ").strip())
            if match and f"{match[1]} {match[2]}" not in found:
                found.append(f"{match[1]} {match[2]}")
    assert sorted(found) == sorted(SEED_ENDPOINTS)


def _rows(section: str) -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return [ln for ln in text[start:end if end > 0 else None].splitlines() if ln.startswith("|")]


def test_every_documented_endpoint_is_mapped_to_a_test() -> None:
    rows = _rows("Mini App Center") + _rows("Akana")
    for endpoint in SEED_ENDPOINTS:
        matching = [row for row in rows if row.startswith(f"| `{endpoint}` |")]
        assert matching, f"{endpoint} is not in {PAGE.name}"
        assert NODE_ID.search(matching[0]), f"{endpoint}: no test named"


@cache
def _functions(path: Path) -> frozenset[str]:
    """``name`` and ``Class::name`` of every test function in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef))  # fmt: skip
    return frozenset(names)


def test_every_named_test_exists() -> None:
    named = NODE_ID.findall(PAGE.read_text(encoding="utf-8"))
    assert len(named) > 30
    missing = [f"{file}::{name}" for file, name in named
               if not (ROOT / file).is_file() or name not in _functions(ROOT / file)]  # fmt: skip
    assert missing == []


def test_every_row_of_a_table_names_a_test() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("|---")]
    headers = {ln for ln in rows if "Pinned by" in ln or "Turned off by" in ln}
    unpinned = [row for row in rows if row not in headers and not NODE_ID.search(row)]
    assert unpinned == []


def test_every_droppable_assumption_is_listed_with_its_flag() -> None:
    listed = {
        (row.split("|")[1].strip(), flag)
        for row in _rows("Beyond the docs")
        for flag in re.findall(r"--drop-assumption ([a-z-]+)", row)
    }
    titles = {"Akana": "akana", "Mini App Center": "miniappcenter", "Tenant": "tenant"}
    offered = {
        (title, name)
        for title, api in titles.items()
        for provider in PROVIDERS.values()
        if getattr(provider, "sandbox_api", None) == api
        for name in getattr(provider, "sandbox_assumptions", {})
    }
    assert offered, "no sandbox offers an assumption to drop"
    assert listed == offered
