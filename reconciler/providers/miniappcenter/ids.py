"""Allow-lists for every identifier that can end up inside a URL path.

httpx drops ``.`` and ``..`` path segments and ``quote("..", safe="")`` is still ``..``, so a
hostile or mistyped id could address another resource. Ids are checked against these
allow-lists first (in the manifest, and again in the client), then percent-encoded.
"""

from __future__ import annotations

import re
import unicodedata

from reconciler.errors import InvalidIdError
from reconciler.secrets import shown

# Reverse-DNS: at least two labels, each starting with a letter or digit; letters, digits,
# '_' and '-' inside a label. Matches com.genexus.verdant.coffeemuffins.
APP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+$"
# Additional attribute field names are defined by the Super App (COUNTRY, loyalty_tier, ...).
ATTRIBUTE_FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"

_APP_ID_RE = re.compile(APP_ID_PATTERN)
_FIELD_RE = re.compile(ATTRIBUTE_FIELD_PATTERN)
MAX_ID_LENGTH = 255


def app_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid mini app (or Super App) id, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters"
    if not _APP_ID_RE.fullmatch(value):
        return (
            "must be a reverse-DNS id such as com.example.shop: dot-separated labels of"
            " letters, digits, '_' or '-', each starting with a letter or digit"
        )
    return None


def attribute_field_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters"
    if not _FIELD_RE.fullmatch(value):
        return "must start with a letter or '_' and contain only letters, digits, '_' or '-'"
    return None


def _unprintable(value: str) -> bool:
    # Control characters, surrogates, private-use and unassigned code points.
    return any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in value)


def location_name_problem(value: str) -> str | None:
    """Location names travel in bodies, not URLs, but key addresses, plans and messages."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters"
    if _unprintable(value):
        return "must not contain control or unassigned characters"
    return None


def version_code_problem(value: str) -> str | None:
    """A version code: printable text, no path separators, not `.` or `..`."""
    problem = location_name_problem(value)
    if problem:
        return problem
    if "/" in value or "\\" in value or value in (".", ".."):
        return "must not contain '/' or '\\', nor be '.' or '..'"
    return None


def check_app_id(value: str) -> str:
    problem = app_id_problem(value)
    if problem:
        raise InvalidIdError(f"invalid mini app id {shown(value)}: {problem}")
    return value


def check_attribute_field(value: str) -> str:
    problem = attribute_field_problem(value)
    if problem:
        raise InvalidIdError(f"invalid attribute field {shown(value)}: {problem}")
    return value


def check_int_id(value: object, what: str) -> int:
    # bool is an int subclass; True must not become id 1.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidIdError(f"invalid {what} {shown(value)}: must be a positive integer")
    return value
