"""Request bodies, checked strictly: every field known, typed and bounded.

The docs name the fields of each body; a field they do not name is refused (400) rather than
ignored, so a client typo fails loudly instead of being silently dropped. A body that is not
JSON, or not an object, is "invalid POST content": 404, as the docs say the platform answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from reconciler.providers.akana.sandbox.errors import bad_request, not_found

MAX_BODY: Final = 1024 * 1024
MAX_TEXT: Final = 4000
MAX_NAME: Final = 255
MAX_TAGS: Final = 50
VISIBILITIES: Final = ("Public", "Limited", "Private")


@dataclass(frozen=True)
class Field:
    kind: type  # str or list (of str)
    required: bool = False
    limit: int = MAX_TEXT


APP_CREATE: Final = {
    "Name": Field(str, required=True, limit=MAX_NAME),
    "Summary": Field(str),
    "Description": Field(str),
    "PictureID": Field(str, limit=MAX_NAME),
    "BusinessID": Field(str, limit=MAX_NAME),
    "ApplicationVersion": Field(dict, required=True),
}
APP_UPDATE: Final = {
    "Name": Field(str, required=True, limit=MAX_NAME),
    "Summary": Field(str),
    "Description": Field(str),
    "PictureID": Field(str, limit=MAX_NAME),
}
VERSION_CREATE: Final = {
    "Name": Field(str, required=True, limit=MAX_NAME),
    "Description": Field(str),
    "Tag": Field(list, limit=MAX_TAGS),
    "Visibility": Field(str),
    "WebsiteAddress": Field(str),
    "InitialEnvironment": Field(str, limit=MAX_NAME),
    "Identity": Field(str, limit=MAX_NAME),
    "SharedSecret": Field(str, limit=MAX_NAME),
}
VERSION_UPDATE: Final = {
    "Name": Field(str, required=True, limit=MAX_NAME),
    "Description": Field(str),
    "Tag": Field(list, limit=MAX_TAGS),
    "Visibility": Field(str),
    "WebsiteAddress": Field(str),
}


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY:
        raise bad_request(f"request body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise not_found("invalid POST content: the body is not JSON") from None
    if not isinstance(data, dict):
        raise not_found("invalid POST content: the body is not a JSON object")
    return data


def check(body: dict[str, Any], spec: dict[str, Field], where: str) -> dict[str, Any]:
    """``body`` checked against ``spec``: all problems in one 400 message."""
    problems: list[str] = []
    for name in body:
        if name not in spec:
            problems.append(f"{where}: unknown field {name[:60]!r}")
    for name, field in spec.items():
        value = body.get(name)
        if value is None:
            if field.required:
                problems.append(f"{where}.{name} is required")
            continue
        if field.kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}.{name} must be a list of strings")
            elif len(value) > field.limit or any(len(v) > MAX_NAME for v in value):
                problems.append(f"{where}.{name} has too many or too long entries")
            continue
        if not isinstance(value, field.kind):
            expected = "an object" if field.kind is dict else "a string"
            problems.append(f"{where}.{name} must be {expected}")
            continue
        if isinstance(value, str):
            if field.required and not value.strip():
                problems.append(f"{where}.{name} must not be empty")
            elif len(value) > field.limit:
                problems.append(f"{where}.{name} is longer than {field.limit} characters")
    visibility = body.get("Visibility")
    if isinstance(visibility, str) and visibility not in VISIBILITIES:
        problems.append(f"{where}.Visibility must be one of {', '.join(VISIBILITIES)}")
    if problems:
        raise bad_request("; ".join(problems))
    return body


def check_no_identity(version: dict[str, Any], where: str) -> None:
    """The sandbox's platform settings do not allow a user-defined identity (docs sample #1)."""
    for name in ("Identity", "SharedSecret"):
        if version.get(name):
            raise bad_request(
                f"{where}.{name}: the platform settings do not allow a user-defined value"
            )
