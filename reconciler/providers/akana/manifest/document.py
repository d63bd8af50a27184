"""One ``akana/v1`` ``App`` document (a composed YAML mapping) -> :class:`AkanaApp`, or every
issue in it with its file:line:column.

The same strictness as the Mini App Center's manifests (one checker base): unknown keys
refused with a "did you mean", scalars read as written (a version name ``1.10`` must be
quoted), all issues at once.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from reconciler.manifest.checker import MISSING, TOP_KEYS, DocumentCheckerBase
from reconciler.manifest.nodes import Loc, Pos, describe_node, pos_of
from reconciler.providers.akana.model import API_VERSION, KIND, VISIBILITIES, AkanaApp
from reconciler.secrets import shown

METADATA_KEYS = ("name", "labels", "protect", "adopt")
SPEC_STRINGS = ("summary", "description", "picture_id", "business_id")
SPEC_KEYS = ("ensure", *SPEC_STRINGS, "versions")
VERSION_STRINGS = ("name", "description", "website_address", "initial_environment")
VERSION_KEYS = ("name", "description", "tags", "visibility", "website_address",
                "initial_environment")
_SECTION_KEYS = {"": TOP_KEYS, "metadata": METADATA_KEYS, "spec": SPEC_KEYS}


class AkanaAppChecker(DocumentCheckerBase):
    """Validates one document; collects issues instead of stopping at the first."""

    id_label = "Akana app name"
    id_path = "metadata.name"
    id_missing = "the Akana app's Name"
    api_version = API_VERSION
    kind = KIND
    section_keys = _SECTION_KEYS
    metadata_flags = ("protect", "adopt")
    deleted = "the app"
    # "at least one version" is the walk's to say: not again when the versions were refused.
    skip_document_errors_after_issues = True
    model_spec_is_flat = True  # AkanaApp holds spec's fields next to metadata's

    def check(self, root: Node) -> AkanaApp | None:
        return self._walk(root, AkanaApp)

    # --- sections ----------------------------------------------------------------------

    def _natural_key(self, node: Node, loc: Loc) -> str | None:
        name = self._string(node, loc)
        if name is not None and (not name or name.strip() != name):
            self.report(
                loc, pos_of(node), "an app name is not empty and has no leading or trailing spaces"
            )
            return None
        return name

    def _spec(self, node: MappingNode, at: Pos, *, protect: bool) -> dict[str, Any]:
        entries = self._mapping(node, ("spec",), SPEC_KEYS)
        data: dict[str, Any] = {}
        ensure = self._ensure(entries, protect)
        if ensure is not None:
            data["ensure"] = ensure
        for key in SPEC_STRINGS:
            if key in entries:
                value = self._string(entries[key][1], ("spec", key))
                if value is not None:
                    data[key] = value
        if "versions" in entries:
            data["versions"] = self._items(
                entries["versions"][1], ("spec", "versions"), self._version, "name", "version name"
            )
            if ensure != "absent" and not data["versions"] and not self._has_issue_under(
                ("spec", "versions")
            ):
                self.report(("spec", "versions"), pos_of(entries["versions"][1]),
                            "an Akana app always has at least one version: declare one")
        elif ensure != "absent":
            self.report(("spec", "versions"), at, f"{MISSING}: an Akana app always has at"
                        " least one version (use ensure: absent to delete the app)")
        return data

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

    def _has_issue_under(self, loc: Loc) -> bool:
        return any(done[: len(loc)] == loc for done in self._reported)

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
