"""The REST provider's pure modules (model, vocabulary, records, diff, drift, plan check,
manifest) never import HTTP: no client, no fetch, no apply, no httpx; the provider object is
what the engine's Provider protocol asks for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reconciler.engine.provider import Provider, root_kinds
from reconciler.providers.rest.apply import DISPATCH
from reconciler.providers.rest.provider import REST
from reconciler.providers.rest.vocabulary import OPERATIONS

REST_DIR = Path(__file__).resolve().parent.parent / "reconciler" / "providers" / "rest"
PURE = ["model", "vocabulary", "records", "diff", "drift", "plan_check", "manifest/document",
        "manifest/schema", "manifest/render", "manifest/__init__"]
FORBIDDEN = ("httpx", "reconciler.providers.rest.client", "reconciler.providers.rest.fetch",
             "reconciler.providers.rest.apply", "reconciler.providers.rest.auth",
             "reconciler.transport.http", "reconciler.providers.rest.sandbox")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_import_http(module: str) -> None:
    imported = _imports(REST_DIR / f"{module}.py")
    assert not {name for name in imported if name.startswith(FORBIDDEN)}


def test_the_provider_object_and_its_closed_table() -> None:
    provider: Provider = REST
    assert (provider.name, provider.title, provider.root_kind) == (
        "rest", "REST objects", "rest_object"
    )
    assert set(provider.manifest_kinds) == {("rest/v1", "RestObject")}
    assert {(kind, action, None) for kind, action in DISPATCH} == OPERATIONS
    assert provider.operations == OPERATIONS and provider.levels == {"rest_object": 0}
    assert root_kinds({"rest": REST}) == {"rest_object": "rest"}
