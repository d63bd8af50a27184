"""One ``akana/v1`` ``App`` document (a composed YAML mapping) -> :class:`AkanaApp`, or every
issue in it with its file:line:column.

The same strictness as the Mini App Center's manifests: unknown keys refused with a "did you
mean", scalars read as written (a version name ``1.10`` must be quoted), all issues at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ManifestIssue
from reconciler.manifest.checker import MISSING, SUGGESTIONS, TOP_KEYS, suggestion, unknown_key
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
from reconciler.providers.akana.model import (
    API_VERSION,
    ENSURE_VALUES,
    KIND,
    VISIBILITIES,
    AkanaApp,
)
from reconciler.secrets import shown

METADATA_KEYS = ("name", "labels", "protect", "adopt")
SPEC_STRINGS = ("summary", "description", "picture_id", "business_id")
SPEC_KEYS = ("ensure", *SPEC_STRINGS, "versions")
VERSION_STRINGS = ("name", "description", "website_address", "initial_environment")
VERSION_KEYS = ("name", "description", "tags", "visibility", "website_address",
                "initial_environment")
_SECTION_KEYS = {"": TOP_KEYS, "metadata": METADATA_KEYS, "spec": SPEC_KEYS}

Entries = dict[str, tuple[ScalarNode, Node]]


class AkanaAppChecker:
    """Validates one document; collects issues instead of stopping at the first."""

    id_label = "Akana app name"
    id_path = "metadata.name"

    def __init__(
        self, file: str, env: Mapping[str, str], roots: Sequence[Path] | None = None
    ) -> None:
        self.file = file
        self.env = env
        self.issues: list[ManifestIssue] = []
        self.app_id: str | None = None
        self.app_id_pos: Pos | None = None
        self._reported: list[Loc] = []
        self._value_pos: dict[Loc, Pos] = {}

    def report(self, loc: Loc, pos: Pos, message: str) -> None:
        self._reported.append(loc)
        self.issues.append(
            ManifestIssue(self.file, pos.line, pos.column, display_path(loc), message)
        )

    def check(self, root: Node) -> AkanaApp | None:
        if not isinstance(root, MappingNode):
            shape = "a list" if isinstance(root, SequenceNode) else "a single value"
            self.report((), pos_of(root), "a manifest document must be a mapping (apiVersion,"
                        f" kind, metadata, spec), not {shape}")
            return None
        top = self._mapping(root, (), TOP_KEYS)
        foreign = self._header(top, "apiVersion", API_VERSION, root) | self._header(
            top, "kind", KIND, root
        )
        if foreign:
            return None
        data: dict[str, Any] = {}
        metadata = self._section(top, "metadata", root)
        if metadata is not None:
            data.update(self._metadata(*metadata))
        spec = self._section(top, "spec", root)
        if spec is not None:
            data.update(self._spec(*spec, protect=data.get("protect") is True))
        app = self._validate_model(data)
        return None if self.issues else app

    # --- sections ----------------------------------------------------------------------

    def _header(self, top: Entries, key: str, expected: str, root: MappingNode) -> bool:
        if key not in top:
            self.report((key,), pos_of(root), f"{MISSING}; write {key}: {expected}")
            return False
        node = top[key][1]
        value = self._string(node, (key,))
        if value is not None and value != expected:
            self.report((key,), pos_of(node),
                        f"unsupported {key} {shown(value)}; supported: {expected}")
            return True
        return False

    def _section(self, top: Entries, key: str, root: MappingNode) -> tuple[MappingNode, Pos] | None:
        if key not in top:
            self.report((key,), pos_of(root), MISSING)
            return None
        key_node, node = top[key]
        if not isinstance(node, MappingNode):
            self.report((key,), pos_of(node), f"must be a mapping, not {describe_node(node)}")
            return None
        return node, pos_of(key_node)

    def _metadata(self, node: MappingNode, at: Pos) -> dict[str, Any]:
        entries = self._mapping(node, ("metadata",), METADATA_KEYS)
        data: dict[str, Any] = {}
        if "name" not in entries:
            self.report(("metadata", "name"), at, f"{MISSING}: the Akana app's Name")
        else:
            name_node = entries["name"][1]
            name = self._string(name_node, ("metadata", "name"))
            if name is not None:
                if name.strip() != name or not name:
                    self.report(("metadata", "name"), pos_of(name_node),
                                "an app name is not empty and has no leading or trailing spaces")
                else:
                    data["name"] = self.app_id = name
                    self.app_id_pos = pos_of(name_node)
        if "labels" in entries:
            labels = self._labels(entries["labels"][1], ("metadata", "labels"))
            if labels is not None:
                data["labels"] = labels
        for flag in ("protect", "adopt"):
            if flag in entries:
                value_node = entries[flag][1]
                value = read_bool(value_node, self._reporter(("metadata", flag), value_node))
                if value is not None:
                    data[flag] = value
        return data

    def _spec(self, node: MappingNode, at: Pos, *, protect: bool) -> dict[str, Any]:
        entries = self._mapping(node, ("spec",), SPEC_KEYS)
        data: dict[str, Any] = {}
        ensure = "present"
        if "ensure" in entries:
            value = self._enum(entries["ensure"][1], ("spec", "ensure"), ENSURE_VALUES)
            if value is not None:
                data["ensure"] = ensure = value
            if value == "absent" and protect:
                self.report(("spec", "ensure"), pos_of(entries["ensure"][1]), "ensure: absent"
                            " deletes the app, but metadata.protect is true; set protect: false"
                            " to allow the delete")
        for key in SPEC_STRINGS:
            if key in entries:
                value = self._string(entries[key][1], ("spec", key))
                if value is not None:
                    data[key] = value
        if "versions" in entries:
            data["versions"] = self._versions(entries["versions"][1], ("spec", "versions"))
            if ensure == "present" and not data["versions"] and not self._has_issue_under(
                ("spec", "versions")
            ):
                self.report(("spec", "versions"), pos_of(entries["versions"][1]),
                            "an Akana app always has at least one version: declare one")
        elif ensure == "present":
            self.report(("spec", "versions"), at, f"{MISSING}: an Akana app always has at"
                        " least one version (use ensure: absent to delete the app)")
        return data

    def _versions(self, node: Node, loc: Loc) -> list[dict[str, Any]]:
        if not isinstance(node, SequenceNode):
            self.report(loc, pos_of(node), f"must be a list, not {describe_node(node)}")
            return []
        items: list[dict[str, Any]] = []
        first_line: dict[str, int] = {}
        for index, item_node in enumerate(node.value):
            item_loc = (*loc, index)
            if not isinstance(item_node, MappingNode):
                self.report(item_loc, pos_of(item_node),
                            f"must be a mapping, not {describe_node(item_node)}")
                continue
            item = self._version(item_node, item_loc, pos_of(item_node))
            name = item.get("name")
            if isinstance(name, str):
                name_pos = self._value_pos[(*item_loc, "name")]
                if name in first_line:
                    self.report((*item_loc, "name"), name_pos, f"duplicate version name"
                                f" {shown(name)} (first at line {first_line[name]})")
                    continue
                first_line[name] = name_pos.line
            items.append(item)
        return items

    def _version(self, node: MappingNode, loc: Loc, at: Pos) -> dict[str, Any]:
        entries = self._mapping(node, loc, VERSION_KEYS)
        data: dict[str, Any] = {}
        if "name" not in entries:
            self.report((*loc, "name"), at, f"{MISSING}: the version's Name")
        for key in VERSION_STRINGS:
            if key in entries:
                value = self._string(entries[key][1], (*loc, key))
                if value is not None:
                    if key == "name" and (not value or value.strip() != value):
                        self.report((*loc, key), pos_of(entries[key][1]), "a version name is"
                                    " not empty and has no leading or trailing spaces")
                        continue
                    data[key] = value
        if "visibility" in entries:
            value = self._enum(entries["visibility"][1], (*loc, "visibility"), VISIBILITIES)
            if value is not None:
                data["visibility"] = value
        if "tags" in entries:
            tags = self._tags(entries["tags"][1], (*loc, "tags"))
            if tags is not None:
                data["tags"] = tags
        return data

    # --- typed values ------------------------------------------------------------------

    def _reporter(self, loc: Loc, node: Node) -> Callable[[str], None]:
        return lambda message: self.report(loc, pos_of(node), message)

    def _has_issue_under(self, loc: Loc) -> bool:
        return any(done[: len(loc)] == loc for done in self._reported)

    def _mapping(self, node: MappingNode, loc: Loc, allowed: Sequence[str] | None) -> Entries:
        entries: Entries = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(loc, pos_of(key_node),
                            f"a key must be a plain string, not {describe_node(key_node)}")
                continue
            key = str(key_node.value)
            key_loc = (*loc, key)
            if key_node.tag == MERGE_TAG:
                self.report(loc, pos_of(key_node),
                            "merge keys (<<) are not supported; write the fields out")
                continue
            if key in entries:
                first = pos_of(entries[key][0])
                self.report(key_loc, pos_of(key_node), f"duplicate key {shown(key)}: already"
                            f" defined at line {first.line}; YAML would silently keep only"
                            " the last one")
                continue
            if allowed is not None and key not in allowed:
                suggest = len(self.issues) < SUGGESTIONS
                self.report(key_loc, pos_of(key_node), _unknown_key(key, allowed, loc, suggest))
                continue
            entries[key] = (key_node, value_node)
            self._value_pos[key_loc] = pos_of(value_node)
        return entries

    def _string(self, node: Node, loc: Loc) -> str | None:
        report = self._reporter(loc, node)
        text = read_string(node, report)
        if text is None or "$" not in text:
            return text
        return substitute(text, self.env, report)

    def _enum(self, node: Node, loc: Loc, allowed: Sequence[str]) -> str | None:
        value = self._string(node, loc)
        if value is None or value in allowed:
            return value
        self.report(loc, pos_of(node), f"must be one of {', '.join(allowed)}, not"
                    f" {shown(value)}{suggestion(value, allowed)}")
        return None

    def _labels(self, node: Node, loc: Loc) -> dict[str, str] | None:
        if not isinstance(node, MappingNode):
            self.report(loc, pos_of(node),
                        f"must be a mapping of names to strings, not {describe_node(node)}")
            return None
        out: dict[str, str] = {}
        for key, (key_node, value_node) in self._mapping(node, loc, None).items():
            problem = label_key_problem(key)
            if problem:
                self.report((*loc, key), pos_of(key_node), f"invalid name {shown(key)}: {problem}")
                continue
            value = self._string(value_node, (*loc, key))
            if value is not None:
                out[key] = value
        return out

    def _tags(self, node: Node, loc: Loc) -> tuple[str, ...] | None:
        if not isinstance(node, SequenceNode):
            self.report(loc, pos_of(node), f"must be a list of strings, not {describe_node(node)}")
            return None
        tags: list[str] = []
        for index, item in enumerate(node.value):
            value = self._string(item, (*loc, index))
            if value is None:
                continue
            if value in tags:
                self.report((*loc, index), pos_of(item), f"duplicate tag {shown(value)}")
                continue
            tags.append(value)
        return tuple(tags)

    def _validate_model(self, data: dict[str, Any]) -> AkanaApp | None:
        try:
            return AkanaApp.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = _document_loc(error["loc"])
                if any(loc[: len(done)] == done for done in self._reported):
                    continue  # already reported, more precisely, by the walk
                if self.issues and not loc:
                    continue  # a whole-app rule over fields already refused
                message = str(error["msg"]).removeprefix("Value error, ")
                self.report(loc, self._nearest_pos(loc), message)
            return None

    def _nearest_pos(self, loc: Loc) -> Pos:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self._value_pos:
                return self._value_pos[loc[:end]]
        return Pos(1, 1)


def _document_loc(model_loc: tuple[int | str, ...]) -> Loc:
    if not model_loc:
        return ()
    if model_loc[0] in METADATA_KEYS:
        return ("metadata", *model_loc)
    return ("spec", *model_loc)


def _unknown_key(key: str, allowed: Sequence[str], loc: Loc, suggest: bool = True) -> str:
    return unknown_key(key, allowed, loc, _SECTION_KEYS, suggest)
