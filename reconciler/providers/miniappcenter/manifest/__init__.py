"""The Mini App Center's manifests: ``miniappcenter/v1`` ``MiniApp`` documents -> :class:`MiniApp`,
the inverse (import), and the JSON Schema for editors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from reconciler.manifest.loader import LoadedApp, ManifestKinds
from reconciler.manifest.loader import load_manifest_files as _load_files
from reconciler.providers.miniappcenter.manifest.document import DocumentChecker
from reconciler.providers.miniappcenter.manifest.render import render_manifest
from reconciler.providers.miniappcenter.manifest.schema import (
    manifest_json_schema,
    manifest_json_schema_text,
)
from reconciler.providers.miniappcenter.model import API_VERSION, KIND, MiniApp

MANIFEST_KINDS: ManifestKinds = {(API_VERSION, KIND): DocumentChecker}


def load_manifests(
    paths: Sequence[str | Path], env: Mapping[str, str], roots: Sequence[str | Path] = ()
) -> list[LoadedApp[MiniApp]]:
    """Only Mini App Center manifests (tests and benchmarks; the CLI loads every provider's)."""
    return load_manifest_files(paths, env, roots)[0]


def load_manifest_files(
    paths: Sequence[str | Path], env: Mapping[str, str], roots: Sequence[str | Path] = ()
) -> tuple[list[LoadedApp[MiniApp]], list[str]]:
    loaded, files = _load_files(paths, env, roots, kinds=MANIFEST_KINDS)
    return cast(list[LoadedApp[MiniApp]], loaded), files


__all__ = [
    "MANIFEST_KINDS",
    "DocumentChecker",
    "load_manifest_files",
    "load_manifests",
    "manifest_json_schema",
    "manifest_json_schema_text",
    "render_manifest",
]
