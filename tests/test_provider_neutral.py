"""reconciler/workflows/ and reconciler/cli/ name no provider: every provider-specific word
they say comes from the providers' registry entries (import-linter's contract keeps their
imports to the registry; this keeps their text so). What counts as a provider's name is read
from the registry itself, so a new provider is covered with no change here.

Help text is the one exception, and it is listed here by where it lives: `--help` must not
import the providers (tests/test_cli_imports.py), so it cannot be generated from their
entries until the registry loads lazily.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.providers.registry import CONNECTORS, PROVIDERS

ROOT = Path(__file__).resolve().parent.parent / "reconciler"
# Help text: keyword arguments that typer shows with --help, and the epilog tables.
HELP_KEYWORDS = frozenset({"help", "epilog", "metavar"})
# The commands' help lists every provider's variables, and `sandbox serve` every sandbox, from
# the registry's descriptors; each command's one example names the demo fleet's resources.
HELP_CONSTANTS: dict[str, frozenset[str]] = {"app.py": frozenset({"EXAMPLES"})}
# Shown as `import --provider`'s and `sandbox serve --api`'s default in --help
# (reconciler.limits, a module the help loads).
HELP_DEFAULTS = frozenset({"MAC_PROVIDER"})
PRODUCT = "miniapp-reconciler"  # the product's own name, not a provider's


def provider_words() -> list[str]:
    """Every provider's name, title, noun, root kind and variable prefix (from the registry)."""
    words: set[str] = set(CONNECTORS)
    for name, provider in PROVIDERS.items():
        words |= {name, provider.title, provider.root_kind}
        noun = getattr(provider, "noun", None)
        if noun:
            words.add(noun)
        for variable in provider.credential_variables({}, None):
            words.add(variable.split("_", 1)[0] + "_")
    return sorted(words, key=len, reverse=True)


def _pattern() -> re.Pattern[str]:
    alternatives = []
    for word in provider_words():
        escaped = re.escape(word)
        # A short lowercase name ("rest") is only a match as a word of its own.
        alternatives.append(escaped if word.endswith("_") else rf"\b{escaped}\b")
    return re.compile("|".join(alternatives), re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _help_nodes(tree: ast.AST, file: str) -> set[int]:
    """Every node inside help text (keyword help=..., the epilog tables)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in HELP_KEYWORDS:
            roots.append(node.value)
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            if names & HELP_CONSTANTS.get(file, frozenset()):
                roots.append(node)
    return {id(inner) for root in roots for inner in ast.walk(root)}


def findings(path: Path) -> Iterator[str]:
    """What ``path`` says or names that belongs to a provider: its string constants (not
    docstrings, not help text) and its identifiers. Comments are not code."""
    pattern = _pattern()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree) | _help_nodes(tree, path.name)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
        elif isinstance(node, ast.Name) and node.id not in HELP_DEFAULTS:
            texts.append(node.id)
        elif isinstance(node, ast.Attribute):
            texts.append(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module:
            texts.append(node.module)
        elif isinstance(node, ast.alias) and node.name not in HELP_DEFAULTS:
            texts.append(node.name)
        for text in texts:
            if (match := pattern.search(text.replace(PRODUCT, ""))) is not None:
                line = getattr(node, "lineno", 0)
                yield f"{path.parent.name}/{path.name}:{line}: {match.group(0)!r} in {text!r}"


MODULES = sorted([*ROOT.joinpath("workflows").glob("*.py"), *ROOT.joinpath("cli").glob("*.py")])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflows_and_cli_name_no_provider(path: Path) -> None:
    assert list(findings(path)) == []


def test_the_check_sees_a_provider_named_in_code(tmp_path: Path) -> None:
    """It would fail: a name, a string, an import and a variable prefix are each found; a
    docstring and help text are not."""
    module = tmp_path / "sample.py"
    module.write_text(
        "from reconciler.providers.akana import x\n"
        'ROOT = "miniappcenter"\n'
        "def f() -> str:\n"
        '    """A docstring may say Akana."""\n'
        '    return f"set MAC_BASE_URL for {ROOT}"\n'
        'OPT = typer.Option(None, help="akana: its cookie lifetime")\n',
        encoding="utf-8",
    )
    found = "\n".join(findings(module))
    assert "reconciler.providers.akana" in found
    assert "'miniappcenter'" in found
    assert "MAC_" in found
    assert "docstring" not in found and "cookie" not in found


# The Mini App Center once ran beside the engine through its own "state-root" path; every
# provider now goes through the engine's service. These names belonged to that path only: a
# workflow, the engine or the CLI naming one again is routing a provider around the seam.
STATE_ROOT_ONLY = re.compile(
    r"\b(?:StateRootSession|StateRootConnector|RootScope|RootExecutor|root_connector|plan_root"
    r"|drift_root|import_root|import_others|empty_result|change_result)\b|\bfleet\.root\b"
    r"|\.executor\("
)
SEAM_PACKAGES = ("workflows", "engine", "cli")


def state_root_offenders(root: Path) -> list[str]:
    """``file:line: text`` of every mention of a state-root-only API under ``root``'s
    workflows, engine and CLI (comments and docstrings included: they would describe it)."""
    out: list[str] = []
    for package in SEAM_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
                if STATE_ROOT_ONLY.search(line):
                    out.append(f"{path.relative_to(root)}:{number}: {line.strip()[:100]}")
    return out


def test_no_workflow_routes_a_provider_around_the_engine() -> None:
    assert state_root_offenders(ROOT) == []
