"""A REST object -> its manifest text (the importer's output): the checker reads it back as
the same object (a test round-trips it)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.manifest.nodes import escape_references
from reconciler.providers.rest.model import API_VERSION, KIND, RestObject


def render_manifest(obj: RestObject, *, schema: str | None = None) -> str:
    """YAML for ``obj``. Every string is written as a JSON string (valid YAML, so no value
    is ever read back as a number, date or boolean), ``${`` escaped as ``$${``."""
    lines: list[str] = []
    if schema is not None:
        lines.append(f"# yaml-language-server: $schema={schema}")
    lines += [f"apiVersion: {API_VERSION}", f"kind: {KIND}", "metadata:"]
    lines.append(f"  name: {_scalar(obj.name)}")
    if obj.labels:
        lines.append("  labels:")
        lines += [f"    {_key(k)}: {_scalar(v)}" for k, v in sorted(obj.labels.items())]
    if obj.protect:
        lines.append("  protect: true")
    lines += [
        "spec:",
        f"  endpoint: {obj.endpoint}",
        f"  path: {obj.path}",
        f"  key: {obj.key_field}",
    ]
    if obj.absent:
        lines.append("  ensure: absent")
    lines.append("  body:" + ("" if obj.body else " {}"))
    lines += _mapping(obj.body, 4)
    if obj.ignore:
        lines.append("  ignore:")
        lines += [f"    - {_scalar(path)}" for path in obj.ignore]
    return "\n".join(lines) + "\n"


def _mapping(value: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            out.append(f"{pad}{_key(key)}:")
            out += _mapping(item, indent + 2)
        elif isinstance(item, list) and item:
            out.append(f"{pad}{_key(key)}:")
            out += _sequence(item, indent + 2)
        else:
            out.append(f"{pad}{_key(key)}: {_scalar(item)}")
    return out


def _sequence(items: Sequence[Any], indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for item in items:
        if isinstance(item, Mapping | list) and item:
            # flow style: a JSON value is a YAML flow value (strings are double-quoted)
            out.append(f"{pad}- {_flow(item)}")
        else:
            out.append(f"{pad}- {_scalar(item)}")
    return out


def _flow(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(escape_references(value), ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)}: {_flow(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


# A key written bare reads back as the same string: a plain word that YAML (1.1 or 1.2) does
# not read as a boolean or null. Anything else is quoted.
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _key(key: str) -> str:
    if _BARE_KEY.fullmatch(key) and key.casefold() not in _YAML_WORDS:
        return key
    return json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(escape_references(value), ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{}" if not value else _flow(value)
    if isinstance(value, list):
        return "[]" if not value else _flow(value)
    return json.dumps(str(value))
