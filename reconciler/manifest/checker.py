"""What every provider's document checker shares: issues reported with file:line:column,
mappings read with unknown/duplicate/merge keys refused, headers and sections, strings read
as written (``${VAR}`` substituted), enums with a did-you-mean, string maps, and pydantic's
errors mapped back to the node that holds the value.

A provider subclasses :class:`DocumentCheckerBase`, sets the class attributes where its
checker behaves differently, and writes only what is its own: ``check`` (``_walk`` with its
model; REST, whose object is no pydantic model, walks from ``_top``), ``_natural_key`` and
``_spec``.
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
from reconciler.manifest.labels import label_key_problem
from reconciler.manifest.nodes import (
    MERGE_TAG,
    Loc,
    Pos,
    describe_node,
    display_path,
    pos_of,
    read_bool,
    read_string,
    substitute,
)
from reconciler.secrets import shown

MISSING = "required field is missing"
TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")
ENSURE_VALUES = ("present", "absent")
# Past this many issues in a document, the rest are only counted (see loader's caps).
SUGGESTIONS = 200
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

Entries = dict[str, tuple[ScalarNode, Node]]
ModelT = TypeVar("ModelT", bound=BaseModel)


class DocumentCheckerBase:
    """Validates one document; collects issues instead of stopping at the first."""

    # The header of the documents this checker reads.
    api_version: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    # What a duplicate is called in messages, and where the natural key is written (required,
    # read by _natural_key; "what it is" completes the missing-field message).
    id_label = "resource"
    id_path = "metadata.name"
    id_missing: ClassVar[str] = "its name"
    # The document's sections and their keys: a key written one level off is told where
    # it belongs (and a model field named as a metadata key is reported under metadata).
    section_keys: ClassVar[Mapping[str, Sequence[str]]] = {}
    # metadata's booleans besides labels, read by _metadata_common.
    metadata_flags: ClassVar[Sequence[str]] = ("protect",)
    # What `ensure: absent` deletes, as the protect refusal names it.
    deleted: ClassVar[str] = "the resource"
    # Read apiVersion/kind with ${VAR} substitution (False: read exactly as written).
    substitute_headers: ClassVar[bool] = True
    # When the walk already found issues, drop the model's whole-document errors (loc ()):
    # for a model with a whole-document rule over fields the walk may have refused.
    skip_document_errors_after_issues: ClassVar[bool] = False
    # The model holds spec's fields at its top level (its errors are reported under spec).
    model_spec_is_flat: ClassVar[bool] = False

    def __init__(
        self, file: str, env: Mapping[str, str], roots: Sequence[Path] | None = None
    ) -> None:
        self.file = file
        self.env = env
        self.issues: list[ManifestIssue] = []
        self.app_id: str | None = None  # known even when the rest of the document is invalid
        self.app_id_pos: Pos | None = None
        self._reported: list[Loc] = []
        self._value_pos = _Positions()

    # --- reporting ---------------------------------------------------------------------

    def report(self, loc: Loc, pos: Pos, message: str) -> None:
        self._reported.append(loc)
        self.issues.append(
            ManifestIssue(self.file, pos.line, pos.column, display_path(loc), message)
        )

    def _reporter(self, loc: Loc, node: Node) -> Callable[[str], None]:
        return lambda message: self.report(loc, pos_of(node), message)

    # --- the document ------------------------------------------------------------------

    def _top(self, root: Node) -> Entries | None:
        """The top-level keys of a document of this checker's (apiVersion, kind), or None
        (reported) for a document that is not a mapping, not a manifest, or of another kind."""
        if not isinstance(root, MappingNode):
            self.report((), pos_of(root), not_a_mapping(root))
            return None
        if not has_header(root):
            # Not a manifest at all (a .env, a password file picked up as *.yaml): its keys
            # are its content, so none is echoed.
            self.report(
                (),
                pos_of(root),
                f"not a manifest: a document starts with apiVersion: {self.api_version}"
                f" and kind: {self.kind}",
            )
            return None
        top = self._mapping(root, (), TOP_KEYS)
        # `|`, not `or`: both headers are checked, so both problems are reported.
        foreign = self._header(top, "apiVersion", self.api_version, root) | self._header(
            top, "kind", self.kind, root
        )
        return None if foreign else top  # another kind of document: its fields mean otherwise

    def _walk(self, root: Node, model: type[ModelT]) -> ModelT | None:
        """A document read section by section (:meth:`_metadata`, :meth:`_spec`), then the
        model's own rules over what was readable, even after other issues: one run reports
        them all."""
        top = self._top(root)
        if top is None:
            return None
        data: dict[str, Any] = {}
        metadata = self._section(top, "metadata", root)
        if metadata is not None:
            data.update(self._metadata(*metadata))
        spec = self._section(top, "spec", root)
        if spec is not None:
            fields = self._spec(*spec, protect=data.get("protect") is True)
            if self.model_spec_is_flat:
                data.update(fields)
            else:
                data["spec"] = fields
        app = self._validate_model(model, data)
        return None if self.issues else app

    def _metadata(self, node: MappingNode, at: Pos) -> dict[str, Any]:
        """The model's fields from metadata (``at``: where its key is written): the natural
        key at :attr:`id_path`, labels and flags."""
        entries = self._mapping(node, ("metadata",), self.section_keys["metadata"])
        data: dict[str, Any] = {}
        key = self.id_path.removeprefix("metadata.")
        loc: Loc = ("metadata", key)
        if key not in entries:
            self.report(loc, at, f"{MISSING}: {self.id_missing}")
        else:
            value = self._natural_key(entries[key][1], loc)
            if value is not None:
                data[key] = self.app_id = value
                self.app_id_pos = pos_of(entries[key][1])
        data.update(self._metadata_common(entries))
        return data

    def _natural_key(self, node: Node, loc: Loc) -> str | None:
        """The natural key as written, or None (reported) when the provider's rule refuses it."""
        raise NotImplementedError

    def _spec(self, node: MappingNode, at: Pos, *, protect: bool) -> dict[str, Any]:
        """The model's fields from spec (``protect``: metadata.protect is true)."""
        raise NotImplementedError

    def _header(self, top: Entries, key: str, expected: str, root: Node) -> bool:
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
        self, top: Entries, key: str, root: Node, *, required: bool = True
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

    def _metadata_common(self, entries: Entries) -> dict[str, Any]:
        """metadata's labels and flags (:attr:`metadata_flags`); refused ones are left out."""
        data: dict[str, Any] = {}
        if "labels" in entries:
            loc: Loc = ("metadata", "labels")
            labels = self._string_map(entries["labels"][1], loc, label_key_problem)
            if labels is not None:
                data["labels"] = labels
        for flag in self.metadata_flags:
            if flag in entries:
                value = self._bool(entries[flag][1], ("metadata", flag))
                if value is not None:
                    data[flag] = value
        return data

    def _ensure(self, entries: Entries, protect: bool | None) -> str | None:
        """spec.ensure as written (None when not written or refused); ``absent`` while
        metadata.protect is true is reported."""
        if "ensure" not in entries:
            return None
        node = entries["ensure"][1]
        value = self._enum(node, ("spec", "ensure"), ENSURE_VALUES)
        if value == "absent" and protect:
            self.report(
                ("spec", "ensure"),
                pos_of(node),
                f"ensure: absent deletes {self.deleted}, but metadata.protect is true;"
                " set protect: false to allow the delete",
            )
        return value

    def _items(
        self,
        node: Node,
        loc: Loc,
        read_item: Callable[[MappingNode, Loc, Pos], dict[str, Any]],
        key: str,
        what: str,
    ) -> list[dict[str, Any]]:
        """A list of mappings keyed by ``key`` (unique); duplicates are reported and dropped."""
        if not isinstance(node, SequenceNode):
            self.report(loc, pos_of(node), f"must be a list, not {describe_node(node)}")
            return []
        items: list[dict[str, Any]] = []
        first_line: dict[str, int] = {}
        for index, item_node in enumerate(node.value):
            item_loc = (*loc, index)
            if not isinstance(item_node, MappingNode):
                self.report(
                    item_loc,
                    pos_of(item_node),
                    f"must be a mapping, not {describe_node(item_node)}",
                )
                continue
            item = read_item(item_node, item_loc, pos_of(item_node))
            natural_key = item.get(key)
            if isinstance(natural_key, str):
                key_pos = self._value_pos[(*item_loc, key)]
                if natural_key in first_line:
                    self.report(
                        (*item_loc, key),
                        key_pos,
                        f"duplicate {what} {shown(natural_key)}"
                        f" (first at line {first_line[natural_key]})",
                    )
                    continue
                first_line[natural_key] = key_pos.line
            items.append(item)
        return items

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
            self._value_pos.put(key_loc, value_node)
        return entries

    def _string(self, node: Node, loc: Loc) -> str | None:
        report = self._reporter(loc, node)
        text = read_string(node, report)
        if text is None or "$" not in text:
            return text  # a surrogate written in the YAML was refused by the screen
        value = substitute(text, self.env, report)
        match = _SURROGATE_RE.search(value)
        if match:  # os.environ holds undecodable bytes as lone surrogates
            report(
                f"contains U+{ord(match.group()):04X}, a lone surrogate, after substituting"
                " the environment; the variable holds bytes that are not UTF-8"
            )
            return None
        return value

    def _bool(self, node: Node, loc: Loc) -> bool | None:
        return read_bool(node, self._reporter(loc, node))

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
        loc = document_loc(model_loc, self.section_keys.get("metadata", ()))
        if self.model_spec_is_flat and loc and loc[0] != "metadata":
            return ("spec", *loc)
        return loc

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


class _Positions(dict[Loc, Any]):
    """Where each value read is written, by its location: a node or a :class:`Pos`, turned
    into a ``Pos`` when asked for. Most are never asked for (only a duplicate or a model rule
    needs one), so a walk stores the node and builds no ``Pos`` for them."""

    def put(self, loc: Loc, node: Node) -> None:
        dict.__setitem__(self, loc, node)

    def __getitem__(self, loc: Loc) -> Pos:
        where = dict.__getitem__(self, loc)
        return where if isinstance(where, Pos) else pos_of(where)


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
