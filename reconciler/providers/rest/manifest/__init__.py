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
    "render_manifest",
    "rest_object_json_schema",
    "rest_object_json_schema_text",
]
