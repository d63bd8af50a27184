"""The JSON Schema (draft 2020-12) of one manifest document, for editors and CI.

Written out by hand rather than taken from ``MiniApp.model_json_schema()``: the document's shape
(apiVersion/kind/metadata/spec) is not the model's, editors need enums and descriptions to
complete and explain, and the shipped file must not change when pydantic changes its output.
The constants (statuses, id patterns, field names) come from the model and ids modules, and a
test checks that the schema's fields are exactly the model's.

Keywords are kept to those yaml-language-server understands (no ``prefixItems`` and the like).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from reconciler.manifest.checker import ENSURE_VALUES
from reconciler.manifest.labels import LABEL_KEY_PATTERN
from reconciler.providers.miniappcenter.ids import (
    APP_ID_PATTERN,
    ATTRIBUTE_FIELD_PATTERN,
    MAX_ID_LENGTH,
)
from reconciler.providers.miniappcenter.manifest.document import (
    REQUIRED_FOR_PRESENT,
    REQUIRED_VERSION,
)
from reconciler.providers.miniappcenter.model import API_VERSION, KIND, STATUSES

SCHEMA_ID = "urn:miniapp-reconciler:schema:miniapp:v1"
_NUMBER = r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?"
GEO_POINT_PATTERN = (
    rf"^\s*(SRID=[0-9]+\s*;\s*)?[Pp][Oo][Ii][Nn][Tt]\s*\(\s*{_NUMBER}\s+{_NUMBER}\s*\)\s*$"
)
SERVICE_URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
# A value holding ${NAME} or ${NAME:-default} is only known once the environment is read.
REFERENCE_PATTERN = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _checked(description: str, *accepted: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A string with rules: one of ``accepted``, or holding a ``${VAR}`` (substituted on load).

    Enums sit inside ``anyOf`` too: editors still offer their values for completion.
    """
    return _string(description, **extra, anyOf=[*accepted, {"pattern": REFERENCE_PATTERN}])


def _any_case(*words: str) -> list[dict[str, Any]]:
    """Completion offers the canonical spellings; validation accepts any case."""
    letters = "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in word) for word in words)
    return [{"enum": list(words)}, {"pattern": rf"^\s*({letters})\s*$"}]


_APP_ID: dict[str, Any] = {"pattern": APP_ID_PATTERN, "maxLength": MAX_ID_LENGTH}
_OBJECT: dict[str, Any] = {"pattern": r"^(gxupload:[0-9a-f]{32}|file:.+)$"}

_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "Mini App Center mini app manifest",
    "description": (
        "One mini app of a GeneXus Mini App Center Super App, as managed by `reconciler`."
        " A field left out of spec is not managed: never sent, never compared."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {
            "const": API_VERSION,
            "description": f"Manifest format version. Always `{API_VERSION}`.",
        },
        "kind": {"const": KIND, "description": f"Always `{KIND}`."},
        "metadata": {
            "type": "object",
            "description": "Identity and handling of the mini app; never sent to the API.",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": _checked(
                    "The mini app id (natural key), reverse-DNS such as"
                    " `com.genexus.verdant.coffeemuffins`. Unique across all manifests.",
                    _APP_ID,
                ),
                "labels": {
                    "type": "object",
                    "description": "Free labels for `--select KEY=VALUE`, e.g. team, env.",
                    "propertyNames": {"pattern": LABEL_KEY_PATTERN},
                    "additionalProperties": {"type": "string"},
                },
                "protect": {
                    "type": "boolean",
                    "default": False,
                    "description": (
                        "true: the reconciler refuses to delete this mini app, whatever the"
                        " plan says; remembered in the state."
                    ),
                },
            },
        },
        "spec": {"$ref": "#/$defs/spec"},
    },
    "$defs": {
        "spec": {
            "type": "object",
            "description": "The desired mini app. Field names are the Mini App Center API's own.",
            "additionalProperties": False,
            "properties": {
                "ensure": _checked(
                    "present (default): create or update it; absent: delete it.",
                    {"enum": list(ENSURE_VALUES)},
                    default="present",
                ),
                "name": _string("Display name of the mini app."),
                "description": _string("Description shown in the Super App."),
                "superapp_id": _checked(
                    "Id of the Super App this mini app belongs to (reverse-DNS).", _APP_ID
                ),
                "organization_id": _string("Organization that owns the mini app."),
                "type": _checked("Native or Web (any case).", *_any_case("Native", "Web")),
                "keywords": _string("Search keywords, one space-separated string."),
                "icon": _checked(
                    "Icon image: `file:PATH` (relative to the manifest; apply uploads it right"
                    " before use) or an upload object id `gxupload:<32 hex>`.",
                    _OBJECT,
                ),
                "card": _checked(
                    "Card image: `file:PATH` (relative to the manifest; apply uploads it right"
                    " before use) or an upload object id `gxupload:<32 hex>`.",
                    _OBJECT,
                ),
                "banner": _checked(
                    "Banner image: `file:PATH` (relative to the manifest; apply uploads it right"
                    " before use) or an upload object id `gxupload:<32 hex>`.",
                    _OBJECT,
                ),
                "attributes": {
                    "type": "object",
                    "description": (
                        "Additional attributes defined by the Super App (e.g. COUNTRY)."
                        " When given, the complete set: others are removed."
                    ),
                    "propertyNames": {"pattern": ATTRIBUTE_FIELD_PATTERN},
                    "additionalProperties": {
                        "type": "string",
                        "description": 'Attribute value; quote numbers: "10".',
                    },
                },
                "locations": {
                    "type": "array",
                    "description": "When given, the complete set of locations, keyed by name.",
                    "items": {"$ref": "#/$defs/location"},
                },
                "versions": {
                    "type": "array",
                    "description": (
                        "Versions keyed by code. Versions cannot be deleted through the API."
                    ),
                    "items": {"$ref": "#/$defs/version"},
                },
            },
            "if": {"required": ["ensure"], "properties": {"ensure": {"const": "absent"}}},
            "then": {},
            "else": {"required": list(REQUIRED_FOR_PRESENT)},
        },
        "location": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "geo_point"],
            "properties": {
                "name": _string("Location name, unique within the mini app.", minLength=1),
                "geo_point": _checked(
                    "WKT point `POINT(longitude latitude)`: longitude in [-180, 180],"
                    " latitude in [-90, 90].",
                    {"pattern": GEO_POINT_PATTERN},
                    examples=["POINT(-56.16374 -34.92478)"],
                ),
            },
        },
        "version": {
            "type": "object",
            "additionalProperties": False,
            "required": list(REQUIRED_VERSION),
            "properties": {
                "code": _string(
                    'Version code, unique within the mini app. Quote it: "1.10".', minLength=1
                ),
                "platform_id": _string("Platform of the version.", examples=["iOS", "Android"]),
                "metadata": _checked(
                    "Version metadata: `file:PATH` (relative to the manifest; apply uploads it"
                    " right before use) or an upload object id `gxupload:<32 hex>`.",
                    _OBJECT,
                ),
                "integrated_security": {
                    "type": "boolean",
                    "description": "Whether the mini app uses the Super App's integrated security.",
                },
                "main_name": _string("Name of the main object started by the Super App."),
                "main_type": _checked(
                    "Type of the main object: Panel or Menu.", *_any_case("Panel", "Menu")
                ),
                "service_url": _checked(
                    "Base URL of the mini app's services (http or https).",
                    {"pattern": SERVICE_URL_PATTERN},
                ),
                "compatibility": {
                    "type": "array",
                    "description": "Ids of the Super App versions this version works with.",
                    "items": {"type": "integer", "minimum": 1},
                    "uniqueItems": True,
                },
                "status": _checked(
                    "Review status; the reconciler plans the steps to reach it"
                    " (send_to_review, in_review, ready).",
                    {"enum": list(STATUSES)},
                ),
            },
        },
    },
}


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document (a fresh copy)."""
    return copy.deepcopy(_SCHEMA)


def manifest_json_schema_text() -> str:
    """The schema exactly as shipped in ``schema/miniapp.schema.json``."""
    return json.dumps(_SCHEMA, indent=2, sort_keys=False) + "\n"
