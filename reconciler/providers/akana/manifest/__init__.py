"""Akana manifests: ``akana/v1`` ``App`` documents -> :class:`AkanaApp`, and their JSON Schema."""

from __future__ import annotations

from reconciler.manifest.loader import ManifestKinds
from reconciler.providers.akana.manifest.document import AkanaAppChecker
from reconciler.providers.akana.manifest.schema import (
    akana_app_json_schema,
    akana_app_json_schema_text,
)
from reconciler.providers.akana.model import API_VERSION, KIND

MANIFEST_KINDS: ManifestKinds = {(API_VERSION, KIND): AkanaAppChecker}

__all__ = [
    "MANIFEST_KINDS",
    "AkanaAppChecker",
    "akana_app_json_schema",
    "akana_app_json_schema_text",
]
