"""One manifest document (a composed YAML mapping) -> :class:`MiniApp`, or every issue in it.

The walk follows the manifest's shape, so an unknown key is refused before anything below it
is read and the work stays bounded whatever the YAML holds (aliases included). Value rules
that belong to the model (type case, WKT, URLs, ids, compatibility) are left to pydantic, and
its errors are mapped back to the node that holds the value.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from reconciler.manifest.checker import MISSING, TOP_KEYS, DocumentCheckerBase, Entries
from reconciler.manifest.files import (
    MAX_OBJECT_BYTES,
    FileRefused,
    confined,
    read_regular_file,
)
from reconciler.manifest.nodes import (
    Loc,
    Pos,
    describe_node,
    pos_of,
    read_int,
)
from reconciler.providers.miniappcenter.ids import app_id_problem, attribute_field_problem
from reconciler.providers.miniappcenter.model import (
    API_VERSION,
    GXUPLOAD_RE,
    KIND,
    STATUSES,
    MiniApp,
)
from reconciler.secrets import shown

METADATA_KEYS = ("id", "labels", "protect")
SPEC_STRINGS = (
    "name",
    "description",
    "superapp_id",
    "organization_id",
    "type",
    "keywords",
    "icon",
    "card",
    "banner",
)
SPEC_KEYS = ("ensure", *SPEC_STRINGS, "attributes", "locations", "versions")
LOCATION_KEYS = ("name", "geo_point")
# In the documented order, which render_manifest writes.
VERSION_KEYS = (
    "code",
    "platform_id",
    "metadata",
    "integrated_security",
    "main_name",
    "main_type",
    "service_url",
    "compatibility",
    "status",
)
VERSION_STRINGS = ("code", "platform_id", "metadata", "main_name", "main_type", "service_url")
# What the API needs to create a mini app / a version: required in every manifest.
REQUIRED_FOR_PRESENT = ("name", "superapp_id", "type")
REQUIRED_VERSION = ("code", "platform_id", "main_name", "main_type")
# Image fields and a version's metadata: upload ids, or files apply uploads right before use.
OBJECT_FIELDS = ("icon", "card", "banner", "metadata")
_SECTION_KEYS = {"": TOP_KEYS, "metadata": METADATA_KEYS, "spec": SPEC_KEYS}


class DocumentChecker(DocumentCheckerBase):
    """Validates one document; collects issues instead of stopping at the first."""

    id_label = "mini app id"
    id_path = "metadata.id"
    id_missing = "the mini app id (reverse-DNS)"
    api_version = API_VERSION
    kind = KIND
    section_keys = _SECTION_KEYS
    deleted = "the mini app"

    def __init__(
        self, file: str, env: Mapping[str, str], roots: Sequence[Path] | None = None
    ) -> None:
        super().__init__(file, env, roots)
        # Where `file:` paths may point; by default the manifest's own folder.
        self.roots = (
            tuple(roots)
            if roots is not None
            else (Path(os.path.realpath(Path(file).absolute().parent)),)
        )

    # --- the document ------------------------------------------------------------------

    def check(self, root: Node) -> MiniApp | None:
        return self._walk(root, MiniApp)

    def _spec(self, node: MappingNode, at: Pos, *, protect: bool) -> dict[str, Any]:
        entries = self._mapping(node, ("spec",), SPEC_KEYS)
        data: dict[str, Any] = {}
        ensure = self._ensure(entries, protect)
        if ensure is not None:
            data["ensure"] = ensure
        if ensure != "absent":
            for key in REQUIRED_FOR_PRESENT:
                if key not in entries:
                    self.report(
                        ("spec", key),
                        at,
                        f"{MISSING} (the API needs it to create the mini app;"
                        " use ensure: absent to delete one)",
                    )
        for key in SPEC_STRINGS:
            if key in entries:
                loc: Loc = ("spec", key)
                value_node = entries[key][1]
                if key == "superapp_id":
                    value = self._id(value_node, loc)
                elif key in OBJECT_FIELDS:
                    value = self._object(value_node, loc)
                else:
                    value = self._string(value_node, loc)
                if value is not None:
                    data[key] = value
        if "attributes" in entries:
            loc = ("spec", "attributes")
            attributes = self._string_map(entries["attributes"][1], loc, attribute_field_problem)
            if attributes is not None:
                data["attributes"] = attributes
        if "locations" in entries:
            data["locations"] = self._items(
                entries["locations"][1],
                ("spec", "locations"),
                self._location,
                "name",
                "location name",
            )
        if "versions" in entries:
            data["versions"] = self._items(
                entries["versions"][1], ("spec", "versions"), self._version, "code", "version code"
            )
        return data

    def _location(self, node: MappingNode, loc: Loc, at: Pos) -> dict[str, Any]:
        entries = self._mapping(node, loc, LOCATION_KEYS)
        return self._fields(entries, loc, at, LOCATION_KEYS, LOCATION_KEYS)

    def _version(self, node: MappingNode, loc: Loc, at: Pos) -> dict[str, Any]:
        entries = self._mapping(node, loc, VERSION_KEYS)
        data = self._fields(entries, loc, at, VERSION_STRINGS, REQUIRED_VERSION)
        if "integrated_security" in entries:
            flag = self._bool(entries["integrated_security"][1], (*loc, "integrated_security"))
            if flag is not None:
                data["integrated_security"] = flag
        if "compatibility" in entries:
            compatibility = self._int_list(entries["compatibility"][1], (*loc, "compatibility"))
            if compatibility is not None:
                data["compatibility"] = compatibility
        if "status" in entries:
            status = self._enum(entries["status"][1], (*loc, "status"), STATUSES)
            if status is not None:
                data["status"] = status
        return data

    def _fields(
        self, entries: Entries, loc: Loc, at: Pos, strings: Sequence[str], required: Sequence[str]
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key in required:
            if key not in entries:
                self.report((*loc, key), at, MISSING)
        for key in strings:
            if key in entries:
                node = entries[key][1]
                if key in OBJECT_FIELDS:
                    value = self._object(node, (*loc, key))
                else:
                    value = self._string(node, (*loc, key))
                if value is not None:
                    data[key] = value
        return data

    # --- typed values ------------------------------------------------------------------

    def _object(self, node: Node, loc: Loc) -> str | None:
        """``gxupload:<hex>`` as it is, or ``file:PATH`` (relative to this manifest) resolved
        and pinned to its content, so the plan can tell when the file changes. The file must
        stay inside the roots (see :mod:`reconciler.manifest.files`)."""
        value = self._string(node, loc)
        if value is None or GXUPLOAD_RE.fullmatch(value):
            return value
        relative = value[5:].strip() if value.startswith("file:") else ""
        if not relative or "\x00" in relative:
            self.report(
                loc,
                pos_of(node),
                f"must be an upload object id (gxupload:<32 hex>) or file:PATH of an image to"
                f" upload (relative to this manifest), not {shown(value)}",
            )
            return None
        if PurePath(relative).is_absolute() or relative.startswith("~"):
            self.report(
                loc,
                pos_of(node),
                f"file:{shown(relative)[1:-1]} is an absolute path; write a path relative to"
                " this manifest, inside the repository",
            )
            return None
        path = Path(self.file).parent / relative
        try:
            real = confined(path, self.roots, "file")
        except FileRefused as exc:
            self.report(loc, pos_of(node), str(exc))
            return None
        try:
            content = read_regular_file(real, MAX_OBJECT_BYTES, "file")
        except FileRefused as exc:  # named as written, not by its resolved path
            self.report(loc, pos_of(node), str(exc).replace(f"file {real}", f"file {path}", 1))
            return None
        digest = hashlib.sha256(content).hexdigest()
        # The resolved path: what apply re-reads is the file that was checked here.
        return f"file:{os.path.relpath(real)}#sha256={digest}"

    def _natural_key(self, node: Node, loc: Loc) -> str | None:
        return self._id(node, loc)

    def _id(self, node: Node, loc: Loc) -> str | None:
        value = self._string(node, loc)
        if value is None:
            return None
        problem = app_id_problem(value)
        if problem:
            self.report(loc, pos_of(node), f"invalid id {shown(value)}: {problem}")
            return None
        return value

    def _int_list(self, node: Node, loc: Loc) -> list[int] | None:
        if not isinstance(node, SequenceNode):
            self.report(loc, pos_of(node), f"must be a list of integers, not {describe_node(node)}")
            return None
        values: list[int] = []
        seen: set[int] = set()  # a list would make a long list quadratic
        for index, item in enumerate(node.value):
            item_loc = (*loc, index)
            value = read_int(item, self._reporter(item_loc, item))
            if value is None:
                continue
            if value <= 0:
                self.report(
                    item_loc,
                    pos_of(item),
                    f"Super App version ids are positive integers, not {value}",
                )
            elif value in seen:
                self.report(item_loc, pos_of(item), f"duplicate Super App version id {value}")
            else:
                seen.add(value)
                values.append(value)
            self._value_pos[item_loc] = pos_of(item)
        return values
