"""The JSON Schema (draft 2020-12) of one ``akana/v1`` ``App`` document, for editors and CI.

Written by hand like the Mini App Center's (the document's shape is not the model's); the
shipped ``schema/akana-app.schema.json`` is this function's output (a test checks it).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.manifest.labels import LABEL_KEY_PATTERN
from reconciler.providers.akana.model import (
    API_VERSION,
    ENSURE_VALUES,
    KIND,
    MAX_NAME,
    MAX_TEXT,
    VISIBILITIES,
)

SCHEMA_ID = "urn:miniapp-reconciler:schema:akana-app:v1"
REFERENCE_PATTERN = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"


def _string(description: str, max_length: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "string", "description": description, "maxLength": max_length}


def _choice(description: str, values: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "string",
        "description": description,
        "anyOf": [{"enum": list(values)}, {"pattern": REFERENCE_PATTERN}],
    }


def akana_app_json_schema() -> dict[str, Any]:
    version = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {**_string("The version's Name (its key inside the app). Quote numbers:"
                               ' "1.10".', MAX_NAME), "minLength": 1},
            "description": _string("The version's description."),
            "tags": {
                "type": "array",
                "description": "Tags of the version.",
                "items": {"type": "string"},
                "uniqueItems": True,
            },
            "visibility": _choice("Who can see the version.", VISIBILITIES),
            "website_address": _string("The app's website address for this version."),
            "initial_environment": _string(
                "Create-only: the environment the version starts in (never compared).",
                MAX_NAME,
            ),
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Akana API Platform app manifest",
        "description": (
            "One app of an Akana API Platform, as managed by `reconciler`. A field left out of"
            " spec is not managed: never sent, never compared."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION, "description": f"Always `{API_VERSION}`."},
            "kind": {"const": KIND, "description": f"Always `{KIND}`."},
            "metadata": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {**_string("The app's Name: its natural key, unique across"
                                       " manifests.", MAX_NAME), "minLength": 1},
                    "labels": {
                        "type": "object",
                        "description": "Free labels for `--select KEY=VALUE`.",
                        "propertyNames": {"pattern": LABEL_KEY_PATTERN},
                        "additionalProperties": {"type": "string"},
                    },
                    "protect": {
                        "type": "boolean",
                        "default": False,
                        "description": "true: the reconciler refuses to delete this app.",
                    },
                    "adopt": {
                        "type": "boolean",
                        "default": False,
                        "description": (
                            "true: take over an existing app of this name that the state does"
                            " not record (otherwise such an app is refused, never touched)."
                        ),
                    },
                },
            },
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "ensure": {**_choice("present (default) or absent (delete the app).",
                                         ENSURE_VALUES), "default": "present"},
                    "summary": _string("One-line summary of the app."),
                    "description": _string("Description of the app."),
                    "picture_id": _string("PictureID of the app's picture.", MAX_NAME),
                    "business_id": _string(
                        "Create-only: the BusinessID (organization) the app is created in.",
                        MAX_NAME,
                    ),
                    "versions": {
                        "type": "array",
                        "description": "The app's versions (at least one when present).",
                        "items": version,
                    },
                },
            },
        },
    }


def akana_app_json_schema_text() -> str:
    return json.dumps(akana_app_json_schema(), indent=2, ensure_ascii=False) + "\n"
