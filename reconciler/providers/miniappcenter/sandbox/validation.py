"""Input validation for every JSON body (and bundle JSON) the sandbox accepts.

Pure functions: a body in, the stored columns out, or an :class:`ApiError` (400) listing every
problem found, the way the real API answers a list of errors. The regexes duplicate the
reconciler's own allow-lists on purpose: the sandbox is its own world and must not import the
code it is used to test.

Values are stored exactly as sent (``type: "native"`` stays ``"native"``): the real server
echoes what it was given, and the reconciler must cope with that.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.providers.miniappcenter.sandbox.errors import (
    ApiError,
    ErrorCode,
    Problem,
    bad_request,
)

APP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+$")
OBJECT_ID_RE = re.compile(r"^gxupload:([0-9a-f]{32})$")
OBJECT_HEX_RE = re.compile(r"^[0-9a-f]{32}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
WKT_POINT_RE = re.compile(rf"^\s*POINT\s*\(\s*({_NUMBER})\s+({_NUMBER})\s*\)\s*$", re.IGNORECASE)

APP_TYPES = frozenset({"native", "web"})
MAIN_TYPES = frozenset({"panel", "menu"})
MAX_ID_LENGTH = 255
MAX_TEXT_LENGTH = 10_000
MAX_INT = 2**31 - 1  # the docs type these ids "int"

Checker = Callable[[str, Any], Problem | None]


# --- single-value checkers: (label, value) -> problem or None ---------------------------------


def _text(*, max_length: int = MAX_TEXT_LENGTH, allow_empty: bool = True) -> Checker:
    def check(label: str, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return (ErrorCode.FIELD_TYPE, f"{label} must be a string")
        if not allow_empty and not value.strip():
            return (ErrorCode.FIELD_EMPTY, f"{label} must not be empty")
        if len(value) > max_length:
            return (ErrorCode.FIELD_TOO_LONG, f"{label} must be at most {max_length} characters")
        return None

    return check


def _one_of(allowed: frozenset[str], code: ErrorCode, shown: str) -> Checker:
    def check(label: str, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return (ErrorCode.FIELD_TYPE, f"{label} must be a string")
        if value.lower() not in allowed:
            return (code, f"{label} must be one of {shown} (any case), not {value!r}")
        return None

    return check


def _app_id(label: str, value: Any) -> Problem | None:
    if not isinstance(value, str):
        return (ErrorCode.FIELD_TYPE, f"{label} must be a string")
    if len(value) > MAX_ID_LENGTH or not APP_ID_RE.fullmatch(value):
        return (
            ErrorCode.INVALID_APP_ID,
            f"{label} must be a reverse-DNS id such as com.example.shop (at most"
            f" {MAX_ID_LENGTH} characters), not {value!r}",
        )
    return None


def _object_ref(*, allow_url: bool) -> Checker:
    """An upload object id; bundles may also give a URL (kept verbatim)."""

    def check(label: str, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return (ErrorCode.FIELD_TYPE, f"{label} must be a string")
        if OBJECT_ID_RE.fullmatch(value):
            return None
        if allow_url and is_url(value):
            return None
        return (
            ErrorCode.INVALID_OBJECT_ID,
            f"{label} must be an upload object id like gxupload:<32 hex digits>, not {value!r}",
        )

    return check


def _guid(label: str, value: Any) -> Problem | None:
    if not isinstance(value, str):
        return (ErrorCode.FIELD_TYPE, f"{label} must be a string")
    if not GUID_RE.fullmatch(value):
        return (ErrorCode.INVALID_ORGANIZATION_ID, f"{label} must be a GUID, not {value!r}")
    return None


def _bool(label: str, value: Any) -> Problem | None:
    if not isinstance(value, bool):
        return (ErrorCode.FIELD_TYPE, f"{label} must be a boolean")
    return None


def _positive_int(label: str, value: Any) -> Problem | None:
    # bool is an int subclass in Python; true/false is not a Super App version id.
    if isinstance(value, bool) or not isinstance(value, int):
        return (ErrorCode.FIELD_TYPE, f"{label} must be an integer")
    if value <= 0:
        return (ErrorCode.INVALID_SUPERAPP_VERSION, f"{label} must be a positive integer")
    if value > MAX_INT:
        return (ErrorCode.INVALID_SUPERAPP_VERSION, f"{label} must be at most {MAX_INT}")
    return None


def _geo_point(label: str, value: Any) -> Problem | None:
    if not isinstance(value, str):
        return (ErrorCode.FIELD_TYPE, f"{label} must be a string")
    problem = geo_point_problem(value)
    if problem is None:
        return None
    code, message = problem
    return (code, f"{label} {message}")


def geo_point_problem(value: str) -> Problem | None:
    """Why ``value`` is not a WKT ``POINT(lon lat)`` on Earth, or None."""
    match = WKT_POINT_RE.fullmatch(value)
    if match is None:
        return (
            ErrorCode.INVALID_GEO_POINT,
            f"must be WKT like POINT(-56.1637 -34.9247), not {value!r}",
        )
    lon, lat = float(match.group(1)), float(match.group(2))
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        return (ErrorCode.GEO_POINT_OUT_OF_RANGE, f"longitude {lon} is outside [-180, 180]")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        return (ErrorCode.GEO_POINT_OUT_OF_RANGE, f"latitude {lat} is outside [-90, 90]")
    return None


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


# --- bodies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    check: Checker
    required: bool = False
    # Only bundles (a file format whose docs use empty values) may leave an optional field
    # null; a JSON request body never may: the docs type every field as a string, number or
    # boolean, and null would silently clear what a PUT means to keep.
    nullable: bool = False


def _fields_problems(
    body: Mapping[str, Any],
    fields: tuple[Field, ...],
    *,
    prefix: str,
    strict: bool,
    ignored: list[str] | None = None,
) -> tuple[dict[str, Any], list[Problem]]:
    """``ignored``: a server that does not refuse unknown fields (a sandbox assumption
    dropped) skips them and appends their names there, so tests can see what it ignored."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    if strict:
        known = {field.name for field in fields}
        for name in body:
            if name not in known and ignored is not None:
                ignored.append(prefix + name[:64])
            elif name not in known:
                problems.append(
                    (
                        ErrorCode.FIELD_UNKNOWN,
                        f"{prefix}{_shown(name)} is not a field of this request"
                        f" (expected: {', '.join(sorted(known))})",
                    )
                )
    for field in fields:
        label = prefix + field.name
        if field.name not in body:
            if field.required:
                problems.append((ErrorCode.FIELD_REQUIRED, f"{label} is required"))
            continue
        value = body[field.name]
        if value is None:
            if field.nullable and not strict:
                values[field.name] = None
            else:
                problems.append((ErrorCode.FIELD_TYPE, f"{label} must not be null"))
            continue
        problem = field.check(label, value)
        if problem is not None:
            problems.append(problem)
        else:
            values[field.name] = value
    return values, problems


def _shown(name: str, limit: int = 64) -> str:
    """An unknown key as quoted in an error: bounded, so a huge key cannot flood the answer."""
    return repr(name if len(name) <= limit else name[:limit] + "...")


def _validated(
    body: Mapping[str, Any],
    fields: tuple[Field, ...],
    *,
    prefix: str = "",
    strict: bool = True,
    ignored: list[str] | None = None,
) -> dict[str, Any]:
    values, problems = _fields_problems(
        body, fields, prefix=prefix, strict=strict, ignored=ignored
    )
    if problems:
        raise ApiError(400, problems)
    return values


def _miniapp_fields(*, allow_urls: bool) -> tuple[Field, ...]:
    image = _object_ref(allow_url=allow_urls)
    return (
        Field("id", _app_id, required=True),
        Field("organization_id", _guid, nullable=True),
        Field("name", _text(max_length=MAX_ID_LENGTH, allow_empty=False), required=True),
        Field("description", _text(), nullable=True),
        Field("superapp_id", _text(max_length=MAX_ID_LENGTH, allow_empty=False), required=True),
        Field("type", _one_of(APP_TYPES, ErrorCode.INVALID_APP_TYPE, "Native, Web"), required=True),
        Field("keywords", _text(), nullable=True),
        Field("icon", image, nullable=True),
        Field("card", image, nullable=True),
        Field("banner", image, nullable=True),
    )


MINIAPP_COLUMNS = tuple(f.name for f in _miniapp_fields(allow_urls=False))

_LOCATION_FIELDS = (
    Field("name", _text(max_length=MAX_ID_LENGTH, allow_empty=False), required=True),
    Field("geo_point", _geo_point, required=True),
)
LOCATION_COLUMNS = tuple(f.name for f in _LOCATION_FIELDS)

_ATTRIBUTE_FIELDS = (
    Field("field", _text(max_length=MAX_ID_LENGTH, allow_empty=False), required=True),
    Field("value", _text(), required=True),
)


def _version_fields(*, allow_urls: bool) -> tuple[Field, ...]:
    return (
        # Absent or "" code: the server assigns one (the docs' own sample sends none).
        Field("code", _text(max_length=MAX_ID_LENGTH), nullable=True),
        Field("platform_id", _text(max_length=MAX_ID_LENGTH, allow_empty=False), required=True),
        Field("metadata", _object_ref(allow_url=allow_urls), nullable=True),
        Field("integrated_security", _bool),
        Field("main_name", _text(max_length=MAX_ID_LENGTH, allow_empty=False), required=True),
        Field(
            "main_type",
            _one_of(MAIN_TYPES, ErrorCode.INVALID_MAIN_TYPE, "Panel, Menu"),
            required=True,
        ),
        Field("service_url", _text(), nullable=True),
    )


VERSION_COLUMNS = tuple(f.name for f in _version_fields(allow_urls=False))


def parse_json_object(raw: bytes, *, what: str = "request body") -> dict[str, Any]:
    """``raw`` as a JSON object, or 400."""

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(raw, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:
        raise bad_request(ErrorCode.BODY_NOT_JSON, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request(ErrorCode.BODY_NOT_OBJECT, f"{what} must be a JSON object")
    if _has_lone_surrogate(body):
        # JSON escapes can spell "\ud800", which is no Unicode text (and no UTF-8 to store).
        raise bad_request(
            ErrorCode.BODY_NOT_JSON, f"{what} holds a lone surrogate escape: not valid Unicode"
        )
    return body


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]  # iterative: a deeply nested body must not exhaust the Python stack
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= char <= "\udfff" for char in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_json_content_type(value: str | None) -> None:
    """A JSON body must say so (api-notes: the docs' ``curl -d`` samples send a form type)."""
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = "none" if not value else repr(value[:100])
        raise bad_request(
            ErrorCode.BODY_WRONG_CONTENT_TYPE,
            f"a JSON request body needs 'Content-Type: application/json' (got {shown})",
        )


# ``strict`` (every JSON request body): unknown fields and nulls are refused. Bundles pass
# strict=False: their documents carry extra members (locations, compatibilities, status)
# and their docs use empty values for "none".
#
# PUT bodies require what the create requires (less the id or code, which live in the URL):
# the docs do not say whether PUT replaces or merges, and a body without them would blank
# the record on a replacing server (D3/D4: the reconciler always sends them). Optional
# fields may be left out and then keep their value.


def miniapp_create(
    body: Mapping[str, Any],
    *,
    allow_urls: bool = False,
    prefix: str = "",
    strict: bool = True,
    ignored: list[str] | None = None,
) -> dict[str, Any]:
    fields = _miniapp_fields(allow_urls=allow_urls)
    return _validated(body, fields, prefix=prefix, strict=strict, ignored=ignored)


def miniapp_update(body: Mapping[str, Any], *, ignored: list[str] | None = None) -> dict[str, Any]:
    fields = tuple(f for f in _miniapp_fields(allow_urls=False) if f.name != "id")
    return _validated(body, fields, ignored=ignored)


def attribute(
    body: Mapping[str, Any],
    *,
    prefix: str = "",
    strict: bool = True,
    ignored: list[str] | None = None,
) -> tuple[str, str]:
    values = _validated(body, _ATTRIBUTE_FIELDS, prefix=prefix, strict=strict, ignored=ignored)
    return values["field"], values["value"]


def location_create(
    body: Mapping[str, Any],
    *,
    prefix: str = "",
    strict: bool = True,
    ignored: list[str] | None = None,
) -> dict[str, Any]:
    return _validated(body, _LOCATION_FIELDS, prefix=prefix, strict=strict, ignored=ignored)


def location_update(body: Mapping[str, Any], *, ignored: list[str] | None = None) -> dict[str, Any]:
    return _validated(body, _LOCATION_FIELDS, ignored=ignored)


def version_create(
    body: Mapping[str, Any],
    *,
    allow_urls: bool = False,
    prefix: str = "",
    strict: bool = True,
    ignored: list[str] | None = None,
) -> dict[str, Any]:
    fields = _version_fields(allow_urls=allow_urls)
    values = _validated(body, fields, prefix=prefix, strict=strict, ignored=ignored)
    if not values.get("code"):
        values["code"] = None
    return values


def version_update(body: Mapping[str, Any], *, ignored: list[str] | None = None) -> dict[str, Any]:
    # The docs' PUT body has no code: a version's code is fixed at creation.
    fields = tuple(f for f in _version_fields(allow_urls=False) if f.name != "code")
    return _validated(body, fields, ignored=ignored)


def superapp_version(
    body: Mapping[str, Any],
    *,
    name: str = "superapp_version",
    prefix: str = "",
    strict: bool = True,
    ignored: list[str] | None = None,
) -> int:
    fields = (Field(name, _positive_int, required=True),)
    values = _validated(body, fields, prefix=prefix, strict=strict, ignored=ignored)
    version: int = values[name]
    return version


def object_hex(value: str | None) -> str | None:
    """The 32-hex object key of a stored ``gxupload:`` reference, or None for a URL/unset."""
    if value is None:
        return None
    match = OBJECT_ID_RE.fullmatch(value)
    return match.group(1) if match else None
