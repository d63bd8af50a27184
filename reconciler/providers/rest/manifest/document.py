"""One ``rest/v1`` ``RestObject`` document (a composed YAML mapping) -> :class:`RestObject`,
or every issue in it, each with its file:line:column.

The walk follows the document's shape: unknown keys are refused (with a did-you-mean) before
anything below them is read. A body is free-form JSON, read node by node as written (D80):

* a quoted or plain string YAML reads as a string is a string (``${VAR}`` expanded, ``$${``
  a literal ``${``); ``true``/``false`` are booleans (``yes``/``on`` are refused: YAML 1.1
  and 1.2 disagree); ``null`` and ``~`` are null, an empty value is refused (write null);
* an integer must be plain decimal and within +-2^53 (beyond, JSON readers lose digits);
* a number with a fraction is kept only when its text is the number's own shortest form:
  ``12.5`` yes, ``1.10`` or ``12.50`` no, since YAML would silently send 1.1 / 12.5. Quote
  it for a string, or write the shortest form for the number;
* dates, octal, hex, ``1_000``, ``.inf`` and custom tags are refused (quote them), and so are
  plain ``1e3`` and ``0o17``, which YAML 1.2 tools read as numbers and PyYAML as strings;
* bounded: at most :data:`MAX_BODY_DEPTH` levels and :data:`MAX_BODY_VALUES` values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ManifestIssue
from reconciler.manifest.checker import MISSING, TOP_KEYS, DocumentCheckerBase, Entries
from reconciler.manifest.nodes import (
    BOOL_TAG,
    INT_TAG,
    NULL_TAG,
    STR_TAG,
    TAG,
    Loc,
    Pos,
    describe_node,
    pos_of,
    read_bool,
    read_string,
)
from reconciler.providers.rest.config import is_safe_path
from reconciler.providers.rest.model import (
    API_VERSION,
    FIELD_NAME_RE,
    KIND,
    MAX_IGNORE_DEPTH,
    MAX_IGNORE_PATHS,
    REF,
    REF_KEYS,
    RestObject,
    Where,
    key_text,
)
from reconciler.providers.rest.vocabulary import address_key
from reconciler.secrets import clipped, shown

METADATA_KEYS = ("name", "labels", "protect")
SPEC_KEYS = ("endpoint", "path", "key", "body", "ignore", "ensure")
REQUIRED_SPEC = ("endpoint", "path", "key", "body")
_SECTION_KEYS = {"": TOP_KEYS, "metadata": METADATA_KEYS, "spec": SPEC_KEYS}
ENDPOINT_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # as the project file's names
MAX_NAME_CHARS = 200
MAX_BODY_DEPTH = 16
MAX_BODY_VALUES = 10_000
MAX_BODY_KEY_CHARS = 128
MAX_STRING_CHARS = 64 * 1024
MAX_SAFE_INT = 2**53
FLOAT_TAG = TAG + "float"
_DECIMAL_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# Plain scalars that YAML 1.2 (editors, yq, most tools) reads as numbers but PyYAML's YAML 1.1
# reads as strings: 1e3 and 2.5E-4 (1.1 wants a dot and a signed exponent), 0o17 (1.2's
# octal). Sent as written they would be strings the author did not mean; they are refused.
_YAML12_NUMBER_RE: Final = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)|0o[0-7]+"
)

class RestObjectChecker(DocumentCheckerBase):
    """Validates one document; collects issues instead of stopping at the first. Its
    ``app_id`` is ENDPOINT:PATH:KEY, known once those three are readable (duplicates are
    found by it)."""

    id_label = "REST object"
    id_path = "metadata.name"
    api_version = API_VERSION
    kind = KIND
    section_keys = _SECTION_KEYS
    deleted = "the object"
    # The header picks the checker (the loader reads it as written), so it is read as written.
    substitute_headers = False

    def __init__(
        self, file: str, env: Mapping[str, str], roots: Sequence[Path] | None = None
    ) -> None:
        super().__init__(file, env, roots)
        self._values = 0

    @staticmethod
    def check_together(objects: Sequence[RestObject]) -> list[ManifestIssue]:
        """What needs every document of this kind (the loader calls it once all are read)."""
        from reconciler.providers.rest.manifest import ref_issues

        return ref_issues(objects)

    def _where(self, node: Node) -> Where:
        pos = pos_of(node)
        return Where(self.file, pos.line, pos.column)

    # --- the document ------------------------------------------------------------------

    def check(self, root: Node) -> RestObject | None:
        top = self._top(root)
        if top is None:
            return None
        meta = self._section(top, "metadata", root, required=False)
        spec = self._section(top, "spec", root)
        name: str | None = None
        name_node: Node | None = None
        labels: dict[str, str] = {}
        protect = False
        if meta is not None:
            entries = self._mapping(meta[0], ("metadata",), METADATA_KEYS)
            if "name" in entries:
                name_node = entries["name"][1]
                name = self._name(name_node)
            common = self._metadata_common(entries)
            labels = common.get("labels", labels)
            protect = common.get("protect", protect)
        if spec is None:
            return None
        return self._object(*spec, name, name_node, labels, protect, pos_of(root))

    def _object(
        self,
        node: MappingNode,
        at: Pos,
        name: str | None,
        name_node: Node | None,
        labels: dict[str, str],
        protect: bool,
        start: Pos,
    ) -> RestObject | None:
        entries = self._mapping(node, ("spec",), SPEC_KEYS)
        for key in REQUIRED_SPEC:
            if key not in entries:
                self.report(("spec", key), at, MISSING)
        endpoint = self._checked(entries, "endpoint", _endpoint_problem)
        path = self._checked(entries, "path", _path_problem)
        key_field = self._checked(entries, "key", _field_problem)
        ensure = self._ensure(entries, protect)
        body: dict[str, Any] | None = None
        positions: dict[str, Where] = {"": Where(self.file, start.line, start.column)}
        if "body" in entries:
            body = self._body(entries["body"][1], positions)
        key_value: str | None = None
        if body is not None and key_field is not None:
            key_value = self._key_value(body, key_field, entries["body"][1], positions)
        ignore: tuple[str, ...] = ()
        if "ignore" in entries:
            ignore = self._ignore(entries["ignore"][1], body or {}, key_field)
        if endpoint is not None and path is not None and key_value is not None:
            self.app_id = address_key(endpoint, path, key_value)
            place = name_node if name_node is not None else None
            if place is not None:
                self.app_id_pos = pos_of(place)
            else:
                where = positions[key_field or ""]
                self.app_id_pos = Pos(where.line, where.column)
        if self.issues:
            return None
        assert endpoint is not None and path is not None and key_field is not None
        assert body is not None and key_value is not None
        return RestObject(
            name=name if name is not None else key_value,
            endpoint=endpoint,
            path=path,
            key_field=key_field,
            body=body,
            ignore=ignore,
            ensure="absent" if ensure == "absent" else "present",
            protect=protect,
            labels=labels,
            positions=positions,
        )

    def _name(self, node: Node) -> str | None:
        loc: Loc = ("metadata", "name")
        value = self._string(node, loc)
        if value is None:
            return None
        if not value or len(value) > MAX_NAME_CHARS or _CONTROL_RE.search(value):
            self.report(
                loc,
                pos_of(node),
                f"a name is 1 to {MAX_NAME_CHARS} characters, without control characters",
            )
            return None
        return value

    def _checked(
        self, entries: Entries, key: str, problem: Callable[[str], str | None]
    ) -> str | None:
        if key not in entries:
            return None
        node = entries[key][1]
        loc: Loc = ("spec", key)
        value = self._string(node, loc)
        if value is None:
            return None
        why = problem(value)
        if why:
            self.report(loc, pos_of(node), why)
            return None
        return value

    def _key_value(
        self, body: dict[str, Any], key_field: str, body_node: Node, positions: dict[str, Where]
    ) -> str | None:
        loc: Loc = ("spec", "body", key_field)
        if key_field not in body:
            self.report(
                loc,
                pos_of(body_node),
                f"the natural key field {shown(key_field)} (spec.key) must be in the body:"
                " it is how the object is found on the server",
            )
            return None
        value = body[key_field]
        text = key_text(value)
        where = positions[key_field]
        pos = Pos(where.line, where.column)
        if text is None or isinstance(value, float) or text == "":
            self.report(
                loc, pos, "the natural key must be a non-empty string or an integer"
            )
            return None
        return text

    def _ignore(self, node: Node, body: Mapping[str, Any], key_field: str | None) -> tuple[
        str, ...
    ]:
        loc: Loc = ("spec", "ignore")
        if not isinstance(node, SequenceNode):
            self.report(loc, pos_of(node), f"must be a list of field paths, not"
                        f" {describe_node(node)}")
            return ()
        if len(node.value) > MAX_IGNORE_PATHS:
            self.report(loc, pos_of(node), f"at most {MAX_IGNORE_PATHS} paths")
            return ()
        out: list[str] = []
        for index, item in enumerate(node.value):
            item_loc = (*loc, index)
            value = read_string(item, self._reporter(item_loc, item))
            if value is None:
                continue
            parts = value.split(".")
            if len(parts) > MAX_IGNORE_DEPTH or not all(
                part and len(part) <= MAX_BODY_KEY_CHARS and not _CONTROL_RE.search(part)
                for part in parts
            ):
                self.report(
                    item_loc,
                    pos_of(item),
                    f"a field path is field names joined by '.', at most {MAX_IGNORE_DEPTH}"
                    f" deep (e.g. updated_at, meta.etag), not {shown(value)}",
                )
                continue
            if value in out:
                self.report(item_loc, pos_of(item), f"duplicate path {shown(value)}")
                continue
            if value == key_field or value in body:
                self.report(
                    item_loc,
                    pos_of(item),
                    f"{shown(value)} is set in spec.body, so it is managed: remove it from"
                    " the body or from ignore",
                )
                continue
            out.append(value)
        return tuple(out)

    # --- the body: free-form JSON ------------------------------------------------------

    def _body(self, node: Node, positions: dict[str, Where]) -> dict[str, Any] | None:
        loc: Loc = ("spec", "body")
        if not isinstance(node, MappingNode):
            self.report(loc, pos_of(node), f"must be a mapping of fields, not"
                        f" {describe_node(node)}")
            return None
        out: dict[str, Any] = {}
        before = len(self.issues)
        for key, (_key_node, value_node) in self._json_keys(node, loc).items():
            positions[key] = self._where(value_node)
            out[key] = self._json(value_node, (*loc, key), 2)
            if isinstance(out[key], dict) and REF in out[key]:
                self._ref(out[key], value_node, (*loc, key))
        return out if len(self.issues) == before else None

    def _ref(self, value: dict[str, Any], node: Node, loc: Loc) -> None:
        """``{$ref: {path, key, key_field?, field?}}``: checked here, alone in its mapping;
        whether its target exists, and cycles, need every document (:func:`ref_issues`)."""
        report = self._reporter(loc, node)
        spec = value[REF]
        if len(value) != 1 or not isinstance(spec, dict):
            report(f"a reference is {{{REF}: {{path: /api/things/, key: KEY}}}} alone")
            return
        unknown = sorted(set(spec) - set(REF_KEYS))
        if unknown or "path" not in spec or "key" not in spec:
            report(
                f"a reference names path and key (and optionally key_field, field), not"
                f" {', '.join(shown(k) for k in unknown) or 'only ' + ', '.join(spec)}"
            )
            return
        path, key = spec["path"], spec["key"]
        if not isinstance(path, str) or _path_problem(path) is not None:
            report(_path_problem(str(path)) or "path must be a string")
        if not isinstance(key, str) or not key:
            report("key must be the target's natural key, as a string")
        for name in ("key_field", "field"):
            if name in spec and (
                not isinstance(spec[name], str) or _field_problem(spec[name]) is not None
            ):
                report(f"{name} must be a field name (letters, digits, _ and -)")

    def _json_keys(self, node: MappingNode, loc: Loc) -> Entries:
        entries = self._mapping(node, loc, None)
        for key, (key_node, _) in list(entries.items()):
            if key_node.tag != STR_TAG or len(key) > MAX_BODY_KEY_CHARS:
                self.report(
                    (*loc, key),
                    pos_of(key_node),
                    f"a field name must be a string of at most {MAX_BODY_KEY_CHARS} characters"
                    f" (quote {clipped(key)!s} if YAML reads it as something else)",
                )
                del entries[key]
            elif not key.isprintable():
                # A zero-width or bidi character shows in a plan as another field's name.
                self.report(
                    (*loc, ascii(key)[1:-1]),  # the path too shows the characters escaped
                    pos_of(key_node),
                    f"the field name {shown(key)} holds invisible or control characters",
                )
                del entries[key]
        return entries

    def _json(self, node: Node, loc: Loc, depth: int) -> Any:
        self._values += 1
        if self._values > MAX_BODY_VALUES:
            if self._values == MAX_BODY_VALUES + 1:
                self.report(loc, pos_of(node), f"a body holds at most {MAX_BODY_VALUES} values")
            return None
        if isinstance(node, MappingNode | SequenceNode) and depth > MAX_BODY_DEPTH:
            self.report(loc, pos_of(node), f"a body is at most {MAX_BODY_DEPTH} levels deep")
            return None
        if isinstance(node, MappingNode):
            return {
                key: self._json(value, (*loc, key), depth + 1)
                for key, (_, value) in self._json_keys(node, loc).items()
            }
        if isinstance(node, SequenceNode):
            return [self._json(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node, loc)

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        text = str(node.value)
        report = self._reporter(loc, node)
        if node.tag == STR_TAG:
            if len(text) > MAX_STRING_CHARS:
                report(f"a string is at most {MAX_STRING_CHARS} characters")
                return None
            if not node.style and _YAML12_NUMBER_RE.fullmatch(text):  # plain: None or ""
                report(
                    f"YAML 1.2 tools read {clipped(text)} as a number, this reader (YAML 1.1) as"
                    f" a string; quote it (\"{clipped(text)}\") for a string, or write the number"
                    " as a plain decimal (1000, 0.00025)"
                )
                return None
            return self._string(node, loc)
        if node.tag == NULL_TAG:
            if text in ("null", "~"):
                return None
            report(
                "the value is empty; write null for a JSON null, or \"\" for an empty string"
                " (or remove the field to leave it unmanaged)"
            )
            return None
        if node.tag == BOOL_TAG:
            return read_bool(node, report)
        if node.tag == INT_TAG:
            if not _DECIMAL_INT_RE.fullmatch(text):
                report(
                    f"write a plain decimal integer, not {clipped(text)} (YAML reads octal,"
                    " hex, 1_000 and 1:30 as numbers you did not write); quote it for a string"
                )
                return None
            if len(text) > 17 or abs(int(text)) > MAX_SAFE_INT:
                report(f"integers are at most 2^53 ({MAX_SAFE_INT}) in JSON; quote it")
                return None
            return int(text)
        if node.tag == FLOAT_TAG:
            return self._float(text, report)
        report(f"YAML reads {clipped(text)} as {_reading(node.tag)}; quote it for a string")
        return None

    def _float(self, text: str, report: Callable[[str], None]) -> float | None:
        try:
            value = float(text.replace("_", "")) if len(text) <= 40 else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            report(f"{clipped(text)} is not a JSON number; quote it for a string")
            return None
        if repr(value) != text:
            report(
                f"YAML reads {text} as the number {value!r}; write {value!r} for that number,"
                f' or quote it ("{text}") for a string'
            )
            return None
        return value


def _endpoint_problem(value: str) -> str | None:
    if ENDPOINT_NAME_RE.fullmatch(value):
        return None
    return (
        f"endpoint {shown(value)} is not an endpoint name (a name declared in the project"
        " file reconciler.yaml: lowercase letters, digits, - and _)"
    )


def _path_problem(value: str) -> str | None:
    if is_safe_path(value) and value.endswith("/"):
        return None
    return (
        f"path {shown(value)} must be a collection path: absolute, ending in /"
        " (letters, digits, - _ . ~; no query, no .. segments), e.g. /api/products/"
    )


def _field_problem(value: str) -> str | None:
    if FIELD_NAME_RE.fullmatch(value):
        return None
    return f"key {shown(value)} must be a field name (letters, digits, _ and -), e.g. sku"


def _reading(tag: str) -> str:
    kind = tag.removeprefix(TAG)
    return {"timestamp": "a date", "binary": "binary data"}.get(kind, f"a YAML {clipped(kind)}")

