"""One ``kvstore/v1`` ``Entry`` document -> :class:`KvEntry`, or every issue in it.

The engine's checker base does the strict reading (unknown keys with a "did you mean",
``${VAR}`` substitution, labels, every issue at once with its file:line:column); a provider
writes only its natural key rule and its ``spec``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from yaml.nodes import MappingNode, Node

from reconciler.manifest.checker import MISSING, TOP_KEYS, DocumentCheckerBase
from reconciler.manifest.loader import ManifestKinds
from reconciler.manifest.nodes import Loc, Pos, pos_of

API_VERSION = "kvstore/v1"
KIND = "Entry"
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # it goes into a URL path
MAX_VALUE_CHARS = 10_000


class KvEntry(BaseModel):
    """A desired entry: its key (``metadata.name``), labels and value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    value: str = Field(max_length=MAX_VALUE_CHARS)


class EntryChecker(DocumentCheckerBase):
    id_label = "entry key"
    id_path = "metadata.name"
    id_missing = "the entry's key"
    api_version = API_VERSION
    kind = KIND
    section_keys: ClassVar[Mapping[str, Sequence[str]]] = {
        "": TOP_KEYS,
        "metadata": ("name", "labels"),
        "spec": ("value",),
    }
    metadata_flags = ()
    model_spec_is_flat = True

    def check(self, root: Node) -> KvEntry | None:
        return self._walk(root, KvEntry)

    def _natural_key(self, node: Node, loc: Loc) -> str | None:
        key = self._string(node, loc)
        if key is not None and not KEY_RE.fullmatch(key):
            self.report(
                loc,
                pos_of(node),
                "an entry key is 1-100 letters, digits, '.', '_'"
                " or '-', starting with a letter or digit",
            )
            return None
        return key

    def _spec(self, node: MappingNode, at: Pos, *, protect: bool) -> dict[str, Any]:
        entries = self._mapping(node, ("spec",), self.section_keys["spec"])
        if "value" not in entries:
            self.report(("spec", "value"), at, f"{MISSING}: the entry's value")
            return {}
        value = self._string(entries["value"][1], ("spec", "value"))
        return {} if value is None else {"value": value}


MANIFEST_KINDS: ManifestKinds = {(API_VERSION, KIND): EntryChecker}


def render_manifest(key: str, value: str, labels: dict[str, str]) -> str:
    """The manifest ``reconciler import`` writes for an entry."""
    import yaml

    metadata: dict[str, Any] = {"name": key}
    if labels:
        metadata["labels"] = dict(labels)
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"value": value},
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
