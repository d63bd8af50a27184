"""A declared REST object (``rest/v1`` ``RestObject``) and the JSON rules its diff uses.

Pure data: no HTTP, no state. A body is free-form JSON read from YAML nodes by the checker
(see :mod:`reconciler.providers.rest.manifest.document` for how scalars are read); here it is
only compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

# The JSON equality of the learned-normalization rule (one for every provider), kept
# importable from here.
from reconciler.engine.normalization import json_equal as json_equal

API_VERSION = "rest/v1"
KIND = "RestObject"
ENSURE_VALUES = ("present", "absent")
Ensure = Literal["present", "absent"]

# The natural-key field and ignore paths name JSON fields; a path segment is a field name.
FIELD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
# A server id this tool puts in a URL (``{path}{id}/``): an integer, or a string of URL-safe
# characters such as a slug or a UUID (docs/decisions.md D95).
SERVER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_IGNORE_PATHS = 64
MAX_IGNORE_DEPTH = 8


@dataclass(frozen=True)
class Where:
    """A place in a manifest (1-based), to point an API error at the line that caused it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


REF: Final = "$ref"
REF_KEYS: Final = ("path", "key", "key_field", "field")


@dataclass(frozen=True)
class Ref:
    """A body value naming another object of the same endpoint: ``{$ref: {path, key,
    key_field?, field?}}`` takes that object's ``field`` (its server ``id`` by default).
    ``key_field`` is needed only for an object no manifest declares (read, never written)."""

    path: str
    key: str
    key_field: str | None = None
    field: str = "id"

    def describe(self) -> str:
        return f"{self.field} of {self.path}{self.key}"


def ref_of(value: Any) -> Ref | None:
    """The reference ``value`` holds (as the checker validated it), else None."""
    if not isinstance(value, Mapping) or set(value) != {REF}:
        return None
    spec = value[REF]
    if not isinstance(spec, Mapping):
        return None
    path, key = spec.get("path"), spec.get("key")
    key_field, field_name = spec.get("key_field"), spec.get("field", "id")
    if not isinstance(path, str) or not isinstance(key, str) or not isinstance(field_name, str):
        return None
    if key_field is not None and not isinstance(key_field, str):
        return None
    return Ref(path, key, key_field, field_name)


@dataclass(frozen=True, eq=False)
class RestObject:
    """One object of one collection of one endpoint, as a manifest declares it."""

    name: str
    endpoint: str
    path: str
    key_field: str
    body: Mapping[str, Any]
    ignore: tuple[str, ...] = ()
    ensure: Ensure = "present"
    protect: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    # body field -> where its value is written; "" -> where the document starts.
    positions: Mapping[str, Where] = field(default_factory=dict)

    @property
    def absent(self) -> bool:
        return self.ensure == "absent"

    @property
    def refs(self) -> dict[str, Ref]:
        """Body field -> the reference it holds (top-level body values only)."""
        out: dict[str, Ref] = {}
        for name, value in self.body.items():
            ref = ref_of(value)
            if ref is not None:
                out[name] = ref
        return out

    @property
    def key(self) -> str:
        """The natural key as compared with live objects (:func:`key_text`)."""
        text = key_text(self.body.get(self.key_field))
        assert text is not None, "the checker guarantees a scalar key"
        return text

    def where(self, body_field: str | None = None) -> Where | None:
        """Where ``body_field`` is written (else the document)."""
        if body_field is not None and body_field in self.positions:
            return self.positions[body_field]
        return self.positions.get("")


def key_text(value: Any) -> str | None:
    """A natural key as text: strings as they are, numbers as JSON; None for anything else.
    The same rule as :func:`reconciler.providers.rest.client.object_key`."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    return None


def server_id(obj: Mapping[str, Any]) -> int | str | None:
    """``obj["id"]`` when it is an id this tool can address (see :data:`SERVER_ID_RE`)."""
    value = obj.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and SERVER_ID_RE.fullmatch(value):
        return value
    return None


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def without_ignored(value: Any, ignore: Sequence[tuple[str, ...]]) -> Any:
    """``value`` with every ignored path removed (a copy); paths are relative to ``value``."""
    if not ignore or not isinstance(value, Mapping):
        return value
    here = {path[0] for path in ignore if len(path) == 1}
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name in here:
            continue
        below = [path[1:] for path in ignore if len(path) > 1 and path[0] == name]
        out[name] = without_ignored(item, below)
    return out


def managed_fields(obj: RestObject) -> dict[str, Any]:
    """The desired managed fields, ignored paths removed (what is sent and compared)."""
    ignore = [split_path(p) for p in obj.ignore]
    return dict(without_ignored(dict(obj.body), ignore))


def live_managed(live: Mapping[str, Any], names: Sequence[str], ignore: Sequence[str]) -> dict[
    str, Any
]:
    """The live values of the managed ``names`` (present ones only), ignored paths removed."""
    paths = [split_path(p) for p in ignore]
    picked = {name: live[name] for name in names if name in live}
    return dict(without_ignored(picked, paths))
