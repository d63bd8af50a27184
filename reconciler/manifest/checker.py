"""What every provider's document checker shares: issues reported with file:line:column,
mappings read with unknown/duplicate/merge keys refused, headers and sections, strings read
as written (``${VAR}`` substituted), enums with a did-you-mean, string maps, and pydantic's
errors mapped back to the node that holds the value.

A provider subclasses :class:`DocumentCheckerBase`, sets the class attributes where its
checker behaves differently, and writes only its own walk (its ``check``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ManifestIssue
from reconciler.manifest.nodes import (
    MERGE_TAG,
    Loc,
    Pos,
    describe_node,
    display_path,
    pos_of,
    read_string,
    substitute,
)
from reconciler.secrets import shown

MISSING = "required field is missing"
TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")
# Past this many issues in a document, the rest are only counted (see loader's caps).
SUGGESTIONS = 200
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

Entries = dict[str, tuple[ScalarNode, Node]]
ModelT = TypeVar("ModelT", bound=BaseModel)


class DocumentCheckerBase:
    """Validates one document; collects issues instead of stopping at the first."""

    # The document's sections and their keys: a key written one level off is told where
    # it belongs.
    section_keys: ClassVar[Mapping[str, Sequence[str]]] = {}
    # Refuse a lone surrogate that only appears once the environment is substituted.
    refuse_substituted_surrogates: ClassVar[bool] = False
    # Read apiVersion/kind with ${VAR} substitution (False: read exactly as written).
    substitute_headers: ClassVar[bool] = True
    # When the walk already found issues, drop the model's whole-document errors (loc ()).
    skip_document_errors_after_issues: ClassVar[bool] = False

    def __init__(
        self, file: str, env: Mapping[str, str], roots: Sequence[Path] | None = None
    ) -> None:
        self.file = file
        self.env = env
        self.issues: list[ManifestIssue] = []
        self.app_id: str | None = None  # known even when the rest of the document is invalid
        self.app_id_pos: Pos | None = None
        self._reported: list[Loc] = []
        self._value_pos: dict[Loc, Pos] = {}

    # --- reporting ---------------------------------------------------------------------

    def report(self, loc: Loc, pos: Pos, message: str) -> None:
        self._reported.append(loc)
        self.issues.append(
            ManifestIssue(self.file, pos.line, pos.column, display_path(loc), message)
        )

    def _reporter(self, loc: Loc, node: Node) -> Callable[[str], None]:
        return lambda message: self.report(loc, pos_of(node), message)

    # --- the document ------------------------------------------------------------------

    def _header(self, top: Entries, key: str, expected: str, root: MappingNode) -> bool:
        """True when the header names something this tool does not read."""
        if key not in top:
            self.report((key,), pos_of(root), f"{MISSING}; write {key}: {expected}")
            return False
        node = top[key][1]
        if self.substitute_headers:
            value = self._string(node, (key,))
        else:
            value = read_string(node, self._reporter((key,), node))
        if value is not None and value != expected:
            self.report(
                (key,), pos_of(node), f"unsupported {key} {shown(value)}; supported: {expected}"
            )
            return True
        return False

    def _section(
        self, top: Entries, key: str, root: MappingNode, *, required: bool = True
    ) -> tuple[MappingNode, Pos] | None:
        """The section's mapping and where its key is written (missing fields point there)."""
        if key not in top:
            if required:
                self.report((key,), pos_of(root), MISSING)
            return None
        key_node, node = top[key]
        if not isinstance(node, MappingNode):
            self.report((key,), pos_of(node), f"must be a mapping, not {describe_node(node)}")
            return None
        return node, pos_of(key_node)

    # --- typed values ------------------------------------------------------------------

    def _mapping(self, node: MappingNode, loc: Loc, allowed: Sequence[str] | None) -> Entries:
        """Keys (text as written) -> (key node, value node); duplicate and unknown keys reported."""
        entries: Entries = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(
                    loc,
                    pos_of(key_node),
                    f"a key must be a plain string, not {describe_node(key_node)}",
                )
                continue
            key = str(key_node.value)
            key_loc = (*loc, key)
            if key_node.tag == MERGE_TAG:
                self.report(
                    loc, pos_of(key_node), "merge keys (<<) are not supported; write the fields out"
                )
                continue
            if key in entries:
                first = pos_of(entries[key][0])
                self.report(
                    key_loc,
                    pos_of(key_node),
                    f"duplicate key {shown(key)}: already defined at line {first.line};"
                    " YAML would silently keep only the last one",
                )
                continue
            if allowed is not None and key not in allowed:
                # "did you mean" costs difflib per key: only while the issues can be shown.
                suggest = len(self.issues) < SUGGESTIONS
                message = unknown_key(key, allowed, loc, self.section_keys, suggest)
                self.report(key_loc, pos_of(key_node), message)
                continue
            entries[key] = (key_node, value_node)
            self._value_pos[key_loc] = pos_of(value_node)
        return entries

    def _string(self, node: Node, loc: Loc) -> str | None:
        report = self._reporter(loc, node)
        text = read_string(node, report)
        if text is None or "$" not in text:
            return text  # a surrogate written in the YAML was refused by the screen
        value = substitute(text, self.env, report)
        if not self.refuse_substituted_surrogates:
            return value
        match = _SURROGATE_RE.search(value)
        if match:  # os.environ holds undecodable bytes as lone surrogates
            report(
                f"contains U+{ord(match.group()):04X}, a lone surrogate, after substituting"
                " the environment; the variable holds bytes that are not UTF-8"
            )
            return None
        return value

    def _enum(self, node: Node, loc: Loc, allowed: Sequence[str]) -> str | None:
        value = self._string(node, loc)
        if value is None or value in allowed:
            return value
        hint = suggestion(value, allowed)
        self.report(
            loc, pos_of(node), f"must be one of {', '.join(allowed)}, not {shown(value)}{hint}"
        )
        return None

    def _string_map(
        self, node: Node, loc: Loc, key_problem: Callable[[str], str | None]
    ) -> dict[str, str] | None:
        """A mapping of names (each checked by ``key_problem``) to strings, e.g. labels."""
        if not isinstance(node, MappingNode):
            self.report(
                loc,
                pos_of(node),
                f"must be a mapping of names to strings, not {describe_node(node)}",
            )
            return None
        result: dict[str, str] = {}
        for key, (key_node, value_node) in self._mapping(node, loc, None).items():
            problem = key_problem(key)
            if problem:
                self.report(
                    (*loc, key), pos_of(key_node), f"invalid name {shown(key)}: {problem}"
                )
                continue
            value = self._string(value_node, (*loc, key))
            if value is not None:
                result[key] = value
        return result

    # --- the model's own rules ---------------------------------------------------------

    def _document_loc(self, model_loc: tuple[int | str, ...]) -> Loc:
        """A pydantic location in the provider's model -> the path in the document."""
        return tuple(model_loc)

    def _validate_model(self, model: type[ModelT], data: dict[str, Any]) -> ModelT | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = self._document_loc(error["loc"])
                if any(loc[: len(done)] == done for done in self._reported):
                    continue  # already reported, more precisely, by the walk
                if self.skip_document_errors_after_issues and self.issues and not loc:
                    continue  # a whole-document rule over fields already refused
                message = str(error["msg"]).removeprefix("Value error, ")
                self.report(loc, self._nearest_pos(loc), message)
            return None

    def _nearest_pos(self, loc: Loc) -> Pos:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self._value_pos:
                return self._value_pos[loc[:end]]
        return Pos(1, 1)


def suggestion(value: str, allowed: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for the closest allowed value, or nothing."""
    by_lower = {option.lower(): option for option in allowed}
    if value.lower() in by_lower:
        return f"; did you mean {by_lower[value.lower()]!r}?"
    if len(value) > 100:  # difflib is quadratic in the length; no field name is that long
        return ""
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def unknown_key(
    key: str,
    allowed: Sequence[str],
    loc: Loc,
    section_keys: Mapping[str, Sequence[str]],
    suggest: bool = True,
) -> str:
    # Only between the document's sections, where keys are often put one level off.
    for section, keys in section_keys.items() if len(loc) <= 1 else ():
        if key in keys and section != display_path(loc):
            place = f"under {section}" if section else "at the top level"
            return f"unknown key {shown(key)}; it belongs {place}"
    hint = (suggestion(key, allowed) if suggest else "") or (
        f"; expected one of {', '.join(allowed)}"
    )
    return f"unknown key {shown(key)}{hint}"


def not_a_mapping(node: Node, keys: str = " (apiVersion, kind, metadata, spec)") -> str:
    # The value is not shown: a file that is not a manifest at all (a .env, a password file
    # named *.yaml) is one plain scalar, and its content must not reach a log or PR comment.
    shape = "a list" if isinstance(node, SequenceNode) else "a single value"
    return f"a manifest document must be a mapping{keys}, not {shape}"


def document_loc(model_loc: tuple[int | str, ...], metadata_keys: Sequence[str]) -> Loc:
    """A model field named as a metadata key lives under ``metadata``; the rest as named."""
    if model_loc and model_loc[0] in metadata_keys:
        return ("metadata", *model_loc)
    return tuple(model_loc)


def has_header(root: MappingNode) -> bool:
    """Whether the mapping names apiVersion or kind at all (else it is not a manifest: a .env,
    a password file picked up as *.yaml; its keys are its content, so none is echoed)."""
    return any(
        isinstance(key, ScalarNode) and key.value in ("apiVersion", "kind") for key, _ in root.value
    )
