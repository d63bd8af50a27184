"""Manifests: YAML files and folders -> validated mini apps; the inverse; the JSON Schema.

The format is pinned in the design ("Manifest format"). Every problem is reported as a
:class:`~reconciler.errors.ManifestIssue` pointing at the offending key or value
(``file:line:col: field.path: message``), all of them at once in one
:class:`~reconciler.errors.ManifestError`.
"""

from __future__ import annotations

from reconciler.manifest.loader import (
    LoadedApp,
    load_manifest_files,
    load_manifests,
    require_manifests,
)
from reconciler.manifest.render import render_manifest
from reconciler.manifest.schema import manifest_json_schema, manifest_json_schema_text
from reconciler.manifest.select import check_selection, parse_selectors, select_apps

__all__ = [
    "LoadedApp",
    "check_selection",
    "load_manifest_files",
    "load_manifests",
    "manifest_json_schema",
    "manifest_json_schema_text",
    "parse_selectors",
    "render_manifest",
    "require_manifests",
    "select_apps",
]
