"""The REST provider's manifests: ``rest/v1`` ``RestObject`` documents -> :class:`RestObject`,
the inverse (import), the JSON Schema, and the checks that need every document at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from reconciler.errors import ManifestIssue
from reconciler.manifest.loader import LoadedApp, ManifestKinds
from reconciler.manifest.loader import load_manifest_files as _load_files
from reconciler.providers.rest.manifest.document import RestObjectChecker
from reconciler.providers.rest.manifest.render import render_manifest
from reconciler.providers.rest.manifest.schema import (
    rest_object_json_schema,
    rest_object_json_schema_text,
)
from reconciler.providers.rest.model import API_VERSION, KIND, RestObject
from reconciler.providers.rest.vocabulary import address_key

MANIFEST_KINDS: ManifestKinds = {(API_VERSION, KIND): RestObjectChecker}


def load_rest_manifests(
    paths: Sequence[str | Path], env: Mapping[str, str], roots: Sequence[str | Path] = ()
) -> list[LoadedApp[RestObject]]:
    """Only REST manifests (tests; the CLI loads every provider's)."""
    loaded, _files = _load_files(paths, env, roots, kinds=MANIFEST_KINDS)
    return cast(list[LoadedApp[RestObject]], loaded)


def name_issues(objects: Sequence[RestObject]) -> list[ManifestIssue]:
    """``metadata.name`` is unique per endpoint and path (the loader checks the natural key;
    the name needs every document): one issue per repeat, at the repeat."""
    first: dict[tuple[str, str, str], RestObject] = {}
    issues: list[ManifestIssue] = []
    for obj in objects:
        slot = (obj.endpoint, obj.path, obj.name)
        if slot not in first:
            first[slot] = obj
            continue
        here, there = obj.where(), first[slot].where()
        if here is None or there is None:
            continue
        issues.append(
            ManifestIssue(
                here.file,
                here.line,
                here.column,
                "metadata.name",
                f"name {obj.name[:80]!r} is already used for {obj.endpoint} {obj.path} at"
                f" {there.file}:{there.line}",
            )
        )
    return issues


def ref_issues(objects: Sequence[RestObject]) -> list[ManifestIssue]:
    """References need every document: a target no manifest declares must say its key
    field (it is then read on the server, never written); a target declared ``absent``
    cannot be referenced; references among declared objects form no cycle. Each issue at
    the referencing value."""
    declared = {(o.endpoint, o.path, o.key): o for o in objects}
    issues: list[ManifestIssue] = []

    def issue(obj: RestObject, name: str, message: str) -> None:
        where = obj.where(name)
        if where is not None:
            issues.append(
                ManifestIssue(where.file, where.line, where.column, f"spec.body.{name}", message)
            )

    edges: dict[str, list[tuple[str, RestObject, str]]] = {}
    for obj in objects:
        for name, ref in obj.refs.items():
            target = declared.get((obj.endpoint, ref.path, ref.key))
            if target is None:
                if ref.key_field is None:
                    issue(
                        obj,
                        name,
                        f"references {ref.path}{ref.key[:80]}, which no manifest declares;"
                        " to reference an object outside these manifests name its key field"
                        " (key_field: ...): it is then read, and must exist",
                    )
                continue
            if target.absent and not obj.absent:
                issue(obj, name, f"references {ref.path}{ref.key[:80]}, declared ensure: absent")
                continue
            if ref.key_field is not None and ref.key_field != target.key_field:
                issue(
                    obj,
                    name,
                    f"key_field {ref.key_field!r} is not the key field of its target"
                    f" ({target.key_field!r} at {target.where()})",
                )
                continue
            source = address_key(obj.endpoint, obj.path, obj.key)
            edges.setdefault(source, []).append(
                (address_key(target.endpoint, target.path, target.key), obj, name)
            )
    # A cycle (A's body needs B's id, B's needs A's) can never be created in any order.
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[str] = set()

    def visit(node: str, path: list[tuple[str, RestObject, str]]) -> None:
        state[node] = 1
        for target, obj, name in edges.get(node, ()):
            if state.get(target) == 1:
                start = next(i for i, step in enumerate(path) if step[0] == target)
                loop = [*path[start:], (target, obj, name)]
                names = " -> ".join(step[0] for step in loop)
                if node not in reported:
                    reported.add(node)
                    issue(obj, name, f"references form a cycle: {names}")
            elif state.get(target) is None:
                visit(target, [*path, (target, obj, name)])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [(node, objects[0], "")])
    return issues


def endpoint_issues(
    objects: Sequence[RestObject], declared: Mapping[str, object], project_file: str
) -> list[ManifestIssue]:
    """Objects naming an endpoint the project file does not declare."""
    known = ", ".join(sorted(declared)) or "none"
    issues: list[ManifestIssue] = []
    for obj in objects:
        if obj.endpoint in declared:
            continue
        here = obj.where()
        if here is None:
            continue
        issues.append(
            ManifestIssue(
                here.file,
                here.line,
                here.column,
                "spec.endpoint",
                f"endpoint {obj.endpoint!r} is not declared in {project_file} (declared:"
                f" {known})",
            )
        )
    return issues


__all__ = [
    "MANIFEST_KINDS",
    "RestObjectChecker",
    "endpoint_issues",
    "load_rest_manifests",
    "name_issues",
    "ref_issues",
    "render_manifest",
    "rest_object_json_schema",
    "rest_object_json_schema_text",
]
