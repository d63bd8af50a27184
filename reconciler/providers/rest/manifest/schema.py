"""The JSON Schema (draft 2020-12) of one ``rest/v1`` ``RestObject`` document, for editors
and CI. Written by hand (the document's shape is not the model's); the constants come from
the checker, and a test checks the shipped ``schema/rest-object.schema.json`` is this text.
A body is free-form JSON: the schema cannot say which fields a collection has."""

from __future__ import annotations

import copy
import json
from typing import Any

from reconciler.manifest.labels import LABEL_KEY_PATTERN
from reconciler.providers.rest.manifest.document import (
    MAX_BODY_KEY_CHARS,
    MAX_NAME_CHARS,
    REQUIRED_SPEC,
)
from reconciler.providers.rest.model import (
    API_VERSION,
    ENSURE_VALUES,
    KIND,
    MAX_IGNORE_DEPTH,
    MAX_IGNORE_PATHS,
    REF,
)

SCHEMA_ID = "urn:miniapp-reconciler:schema:rest-object:v1"
ENDPOINT_PATTERN = "^[a-z][a-z0-9_-]{0,62}$"
PATH_PATTERN = "^/([A-Za-z0-9_~.-]+/)*$"
FIELD_PATTERN = "^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_SEGMENT = rf"[^.]{{1,{MAX_BODY_KEY_CHARS}}}"
IGNORE_PATTERN = rf"^{_SEGMENT}(\.{_SEGMENT}){{0,{MAX_IGNORE_DEPTH - 1}}}$"

_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "REST object manifest",
    "description": (
        "One object of a JSON REST collection (rest/v1 RestObject), found on the server by"
        " its natural key."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "spec"],
    "$defs": {
        "reference": {
            "type": "object",
            "description": (
                "Another object's field (its server id by default), found by its natural key"
                " in a collection of the same endpoint. Created and updated after it, deleted"
                " before it. A target no manifest declares needs key_field: it is read (and"
                " must exist), never changed."
            ),
            "additionalProperties": False,
            "required": [REF],
            "properties": {
                REF: {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["path", "key"],
                    "properties": {
                        "path": {"type": "string", "pattern": PATH_PATTERN},
                        "key": {"type": "string", "minLength": 1},
                        "key_field": {"type": "string", "pattern": FIELD_PATTERN},
                        "field": {
                            "type": "string",
                            "pattern": FIELD_PATTERN,
                            "description": "The target's field to take (default: id).",
                        },
                    },
                }
            },
        }
    },
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": KIND},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME_CHARS,
                    "description": (
                        "A name for people, unique per endpoint and path; defaults to the"
                        " natural key's value."
                    ),
                },
                "labels": {
                    "type": "object",
                    "description": "Labels for --select; kept in the state, never sent.",
                    "propertyNames": {"pattern": LABEL_KEY_PATTERN},
                    "additionalProperties": {"type": "string"},
                },
                "protect": {
                    "type": "boolean",
                    "description": "Refuse to delete this object (ensure: absent, --prune).",
                },
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": list(REQUIRED_SPEC),
            "properties": {
                "endpoint": {
                    "type": "string",
                    "pattern": ENDPOINT_PATTERN,
                    "description": "An endpoint name declared in the project file reconciler.yaml.",
                },
                "path": {
                    "type": "string",
                    "pattern": PATH_PATTERN,
                    "description": "The collection path, ending in / (e.g. /api/products/).",
                },
                "key": {
                    "type": "string",
                    "pattern": FIELD_PATTERN,
                    "description": (
                        "The natural-key field (e.g. sku): unique in the collection, and in"
                        " the body."
                    ),
                },
                "body": {
                    "type": "object",
                    "description": (
                        "The fields this tool manages (JSON values); fields left out are not"
                        " managed. Numbers are written in their shortest form (12.5, not"
                        " 12.50); quote anything meant as a string. A field's value may be a"
                        " reference to another object of the same endpoint: {$ref: {path,"
                        " key}}."
                    ),
                    "propertyNames": {"maxLength": MAX_BODY_KEY_CHARS},
                    "additionalProperties": {
                        "anyOf": [
                            {"$ref": "#/$defs/reference"},
                            {"not": {"type": "object", "required": [REF]}},
                        ]
                    },
                },
                "ignore": {
                    "type": "array",
                    "description": "Field paths the server computes, never compared (meta.etag).",
                    "maxItems": MAX_IGNORE_PATHS,
                    "uniqueItems": True,
                    "items": {"type": "string", "pattern": IGNORE_PATTERN},
                },
                "ensure": {
                    "enum": list(ENSURE_VALUES),
                    "description": "present (default) or absent (delete it).",
                },
            },
        },
    },
}


def rest_object_json_schema() -> dict[str, Any]:
    return copy.deepcopy(_SCHEMA)


def rest_object_json_schema_text() -> str:
    """The schema exactly as shipped in ``schema/rest-object.schema.json``."""
    return json.dumps(_SCHEMA, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":  # the generator: python -m reconciler.providers.rest.manifest.schema
    import sys

    sys.stdout.write(rest_object_json_schema_text())
