"""MiniApp -> the YAML text of one manifest document (the inverse of loading it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.manifest.nodes import escape_references
from reconciler.providers.miniappcenter.manifest.document import SPEC_STRINGS, VERSION_KEYS
from reconciler.providers.miniappcenter.model import API_VERSION, KIND, Location, MiniApp, Version

SCHEMA_COMMENT = "# yaml-language-server: $schema={}\n"


class _Flow(list[Any]):
    """Written inline: ``compatibility: [1, 2]``."""


class _FlowMap(dict[str, Any]):
    """Written inline: ``labels: {team: cafe, env: prod}``."""


class _Quoted(str):
    """Always double-quoted (version codes, which look like numbers so often)."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    # Indent list items under their key, as the documented manifests do.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: _Dumper, data: str) -> yaml.ScalarNode:
    # PyYAML writes NEL (U+0085) raw inside single quotes, where it reads back as a line
    # break; double quotes escape it as \N.
    style = '"' if "\x85" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)
_Dumper.add_representer(
    _FlowMap, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)
_Dumper.add_representer(
    _Quoted, lambda d, data: d.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')
)


def render_manifest(
    app: MiniApp,
    *,
    labels: Mapping[str, str] | None = None,
    schema: str | None = None,
) -> str:
    """The manifest document for ``app``, in the documented key order.

    ``labels`` are added to (and override) the app's own; ``schema``, when given, is the path
    or URL written in the ``# yaml-language-server: $schema=...`` comment. Only managed
    fields (not None) are written; strings that YAML would read as something else are quoted,
    and a literal ``${`` is written as ``$${`` so that loading does not substitute it.
    """
    metadata: dict[str, Any] = {"id": app.id}
    all_labels = {**app.labels, **(labels or {})}
    if all_labels:
        metadata["labels"] = _FlowMap({k: escape_references(v) for k, v in all_labels.items()})
    metadata["protect"] = app.protect
    document = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": _spec(app)}
    text = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=2**16,  # never fold long values over lines
    )
    return (SCHEMA_COMMENT.format(schema) if schema else "") + text


def _spec(app: MiniApp) -> dict[str, Any]:
    spec = app.spec
    out: dict[str, Any] = {}
    if spec.ensure != "present":
        out["ensure"] = spec.ensure
    for field in SPEC_STRINGS:
        value = getattr(spec, field)
        if value is not None:
            out[field] = escape_references(value)
    if spec.attributes is not None:
        out["attributes"] = {k: escape_references(v) for k, v in spec.attributes.items()}
    if spec.locations is not None:
        out["locations"] = [_location(location) for location in spec.locations]
    if spec.versions is not None:
        out["versions"] = [_version(version) for version in spec.versions]
    return out


def _location(location: Location) -> dict[str, Any]:
    return {"name": escape_references(location.name), "geo_point": location.geo_point}


def _version(version: Version) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in VERSION_KEYS:
        value = getattr(version, field)
        if value is None:
            continue
        if field == "code":
            value = _Quoted(escape_references(value))
        elif field == "compatibility":
            value = _Flow(value)
        elif isinstance(value, str):
            value = escape_references(value)
        out[field] = value
    return out
