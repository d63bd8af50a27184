"""Manifests: YAML files and folders -> validated desired resources, for any provider.

Each document is checked by its provider's checker, chosen by ``(apiVersion, kind)``. Every
problem is reported as a :class:`~reconciler.errors.ManifestIssue` pointing at the offending
key or value (``file:line:col: field.path: message``), all of them at once in one
:class:`~reconciler.errors.ManifestError`.
"""

from __future__ import annotations

from reconciler.manifest.loader import (
    LoadedApp,
    ManifestKinds,
    load_manifest_files,
    load_manifests,
    require_manifests,
)
from reconciler.manifest.select import check_selection, parse_selectors, select_apps

__all__ = [
    "LoadedApp",
    "ManifestKinds",
    "check_selection",
    "load_manifest_files",
    "load_manifests",
    "parse_selectors",
    "require_manifests",
    "select_apps",
]
