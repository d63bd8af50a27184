"""Reading typed values out of composed YAML nodes, with their positions.

The loader never lets PyYAML construct Python objects: it composes nodes (tags + text as
written + marks) and reads each value according to the field it fills. That is how an
unquoted ``code: 1.10`` can be reported with the text the user wrote, instead of the float
``1.1`` that ``safe_load`` would silently produce, and how every message gets a line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.secrets import clipped, shown

Loc = tuple[str | int, ...]

TAG = "tag:yaml.org,2002:"
STR_TAG = TAG + "str"
INT_TAG = TAG + "int"
BOOL_TAG = TAG + "bool"
NULL_TAG = TAG + "null"
MERGE_TAG = TAG + "merge"

_DECIMAL_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_BOOL_SPELLINGS = {"true": True, "True": True, "TRUE": True}
_BOOL_SPELLINGS.update({"false": False, "False": False, "FALSE": False})
# `$${` is an escaped `${`; `${...}` a reference; a lone `${` is unterminated.
_REFERENCE_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE_BODY_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
# Integers this tool reads are ids; beyond this many digits no id exists, and Python refuses
# to convert past 4,300 digits (the int-string limit) anyway.
MAX_INT_DIGITS = 18
# A number is only constructed (for the "YAML reads 1.10 as 1.1" hint) when it is short.
_MAX_NUMBER_TEXT = 40


@dataclass(frozen=True, order=True)
class Pos:
    """A 1-based line and column."""

    line: int
    column: int


def pos_of(node: Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def display_path(loc: Loc) -> str:
    """``("spec", "versions", 0, "code")`` -> ``spec.versions[0].code``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def describe_node(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the value {shown(node.value)}"


Report = Callable[[str], None]


def read_string(node: Node, report: Report) -> str | None:
    """The text of a string scalar as written; None (after reporting) for anything else.

    Only scalars that YAML itself reads as strings are accepted: a plain ``1.10``, ``NO`` or
    ``2024-01-01`` is a number, a boolean or a date to every YAML tool, so it must be quoted.
    """
    if not isinstance(node, ScalarNode):
        report(f"must be a string, not {describe_node(node)}")
        return None
    if node.tag == STR_TAG:
        return str(node.value)
    text = str(node.value)
    if node.tag == NULL_TAG:
        report(
            'must be a string, but the value is empty (null); write "" for an empty string,'
            " or remove the key to leave the field unmanaged"
        )
        return None
    reading = _implicit_reading(node)
    if reading is None:
        report(f"unsupported YAML tag {node.tag!r}; write a plain string")
        return None
    if len(text) > _MAX_NUMBER_TEXT:
        report(f"must be a string, but YAML reads {clipped(text)} as {reading}; quote it")
        return None
    report(f"must be a string, but YAML reads {text} as {reading}; quote it: {json.dumps(text)}")
    return None


def read_bool(node: Node, report: Report) -> bool | None:
    if isinstance(node, ScalarNode) and node.tag == BOOL_TAG:
        value = _BOOL_SPELLINGS.get(str(node.value))
        if value is not None:
            return value
        # yes/no/on/off: booleans to PyYAML (YAML 1.1), strings to YAML 1.2 tools and editors.
        report(f"write true or false, not {clipped(str(node.value))}")
        return None
    report(f"must be true or false, not {_what(node)}")
    return None


def read_int(node: Node, report: Report) -> int | None:
    if isinstance(node, ScalarNode) and node.tag == INT_TAG:
        text = str(node.value)
        if _DECIMAL_INT_RE.fullmatch(text):
            if len(text.lstrip("+-")) > MAX_INT_DIGITS:
                report(f"the integer is too large ({len(text)} digits); ids have at most"
                       f" {MAX_INT_DIGITS}")
                return None
            return int(text)
        # 010 is octal 8, 1_000 and 1:30 (sexagesimal 90) are YAML 1.1 quirks.
        report(f"write a plain decimal integer, not {clipped(text)}")
        return None
    report(f"must be an integer, not {_what(node)}")
    return None


def _what(node: Node) -> str:
    if isinstance(node, ScalarNode) and node.tag == STR_TAG:
        return f"the string {json.dumps(clipped(str(node.value)))}"
    if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
        return "an empty value (null)"
    return describe_node(node)


def _implicit_reading(node: ScalarNode) -> str | None:
    """How YAML reads a non-string scalar, for the message ("the number 1.1")."""
    kind = node.tag.removeprefix(TAG)
    if kind not in ("int", "float", "bool", "timestamp", "value", "merge", "binary"):
        return None
    if kind in ("int", "float") and len(str(node.value)) > _MAX_NUMBER_TEXT:
        return "a number"  # not constructed: a huge one costs time and cannot be printed
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError):
        value = None
    if kind == "bool" and isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if kind in ("int", "float") and value is not None:
        return f"the number {shown(value)}"
    if kind == "timestamp":
        return "a date"
    return f"a YAML {kind}"


SECRET_VARIABLES = frozenset({"MAC_API_TOKEN"})


def substitute(text: str, env: Mapping[str, str], report: Report) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from ``env``; ``$${`` is a literal ``${``.

    ``:-`` follows the shell: the default applies when the variable is unset or empty.
    """

    def expand(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            report("unterminated ${ in value; write $${ for a literal ${")
            return whole
        parsed = _REFERENCE_BODY_RE.fullmatch(body)
        if parsed is None:
            report(
                f"invalid variable reference {shown(whole)}: use ${{NAME}} or ${{NAME:-default}}"
            )
            return whole
        name, default = parsed.group(1), parsed.group(2)
        if len(name) > 60:
            report(f"variable name {shown(name)} is too long (at most 60 characters)")
            return whole
        if default is not None and "${" in default:
            # The reference ends at the first "}", so ${A:-${B}} would read as the default
            # "${B" and a stray "}": refused rather than silently wrong.
            report(
                f"nested variable references are not supported (${{{name}:-${{...}}}});"
                f" give {name} a literal default, or set it in the environment"
            )
            return whole
        if name in SECRET_VARIABLES:
            # Manifest values end up in plans, PR comments and state files.
            report(f"{clipped(whole)}: the API token must never be written into a manifest")
            return whole
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            report(
                f"environment variable {name} is not set (referenced as {clipped(whole)});"
                f" set it, or give a default: ${{{name}:-default}}"
            )
            return whole
        return value

    return _REFERENCE_RE.sub(expand, text) if "$" in text else text


def escape_references(text: str) -> str:
    """The inverse of :func:`substitute` for a literal value: ``${`` -> ``$${``."""
    return text.replace("${", "$${")
