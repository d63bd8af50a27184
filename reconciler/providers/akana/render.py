"""AkanaApp -> the YAML text of one ``akana/v1`` ``App`` manifest (the inverse of loading it).

PyYAML quotes every string another YAML reader would take for a number, boolean or date
(a version named ``1.10`` comes out as ``'1.10'``); ``${`` is written ``$${`` so that loading
gives back the same text.
"""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.manifest.nodes import escape_references
from reconciler.providers.akana.model import (
    API_VERSION,
    APP_CREATE_ONLY,
    APP_FIELDS,
    KIND,
    VERSION_CREATE_ONLY,
    VERSION_FIELDS,
    AkanaApp,
)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return escape_references(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def render_manifest(app: AkanaApp) -> str:
    metadata: dict[str, Any] = {"name": _plain(app.name)}
    if app.labels:
        metadata["labels"] = {k: _plain(v) for k, v in app.labels.items()}
    if app.protect:
        metadata["protect"] = True
    if app.adopt:
        metadata["adopt"] = True
    spec: dict[str, Any] = {}
    if app.ensure != "present":
        spec["ensure"] = app.ensure
    for key in (*APP_FIELDS, *APP_CREATE_ONLY):
        if getattr(app, key) is not None:
            spec[key] = _plain(getattr(app, key))
    if app.versions:
        spec["versions"] = [
            {
                "name": _plain(version.name),
                **{
                    key: _plain(getattr(version, key))
                    for key in (*VERSION_FIELDS, *VERSION_CREATE_ONLY)
                    if getattr(version, key) is not None
                },
            }
            for version in app.versions
        ]
    document = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
