"""What the Akana platform has, as pure data: the app listing, and for each app that matters
(recorded in the state, or declared with ``adopt: true``) its detail and versions. The reader
is :func:`reconciler.providers.akana.fetch.read_live`; the diff sees only this data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.address import Address
from reconciler.engine.plan import Change
from reconciler.providers.akana.wire import AppDetail, AppSummary, AppVersion


@dataclass(frozen=True)
class LiveVersion:
    id: str
    name: str
    fields: Mapping[str, Any]  # description, tags, visibility, website_address


@dataclass(frozen=True)
class LiveApp:
    id: str
    name: str
    fields: Mapping[str, Any]  # summary, description, picture_id (the listing: description)
    business_id: str = ""
    versions: tuple[LiveVersion, ...] | None = None  # None: not read (an app left alone)

    def version(self, name: str) -> LiveVersion | None:
        return next((v for v in self.versions or () if v.name == name), None)


@dataclass(frozen=True)
class LiveAkana:
    apps: tuple[LiveApp, ...] = ()
    reads: int = 0
    _by_id: dict[str, LiveApp] = field(default_factory=dict, repr=False, compare=False)
    # By name too: a plan looks every desired app up by name when the state lacks it (a first
    # plan, adoption), and one scan per lookup made that quadratic in the fleet's size.
    _by_name: dict[str, list[LiveApp]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for app in self.apps:
            self._by_id[app.id] = app
            self._by_name.setdefault(app.name, []).append(app)

    def by_id(self, app_id: str) -> LiveApp | None:
        return self._by_id.get(app_id)

    def named(self, name: str) -> list[LiveApp]:
        """The apps called ``name``, in listing order (a new list: the caller's to keep)."""
        return list(self._by_name.get(name, ()))


def live_version(version: AppVersion) -> LiveVersion:
    return LiveVersion(
        version.version_id,
        version.name,
        {
            "description": version.description,
            "tags": list(version.tags),
            "visibility": version.visibility,
            "website_address": version.website_address,
        },
    )


def live_app(
    app: AppSummary, versions: Iterable[AppVersion] | None = None
) -> LiveApp:
    fields: dict[str, Any] = {"description": app.description}
    business_id = ""
    if isinstance(app, AppDetail):
        fields = {"summary": app.summary, "description": app.description,
                  "picture_id": app.picture_id}
        business_id = app.business_id
    return LiveApp(
        app.app_id,
        app.name,
        fields,
        business_id,
        None if versions is None else tuple(live_version(v) for v in versions),
    )


def fingerprints(changes: Sequence[Change], live: LiveAkana) -> dict[Address, str]:
    """A hash of what each existing app a plan changes read as (its fields and versions), by
    app address: apply can re-read and refuse a saved plan whose apps moved since. An app the
    plan creates has none."""
    server_ids: dict[Address, str] = {}
    for change in changes:
        server_id = (change.before or {}).get("id")
        if change.address.parent is None and isinstance(server_id, str):
            server_ids[change.address] = server_id
    out: dict[Address, str] = {}
    for change in changes:
        root = change.address.root
        if root in out:
            continue
        found = live.by_id(server_ids[root]) if root in server_ids else None
        if found is None:
            named = live.named(change.app_id)
            found = named[0] if len(named) == 1 else None
        if found is not None:
            out[root] = app_fingerprint(found)
    return out


def app_fingerprint(app: LiveApp) -> str:
    data = {
        "id": app.id,
        "name": app.name,
        "fields": dict(app.fields),
        "versions": [[v.id, v.name, dict(v.fields)] for v in app.versions or ()],
    }
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
