"""``reconciler import`` for Akana: an existing app -> its manifest text and its state record."""

from __future__ import annotations

from reconciler.errors import InvalidIdError, ReconcilerError
from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.model import VISIBILITIES, AkanaApp, AkanaVersion
from reconciler.providers.akana.records import AppRecord, VersionRecord
from reconciler.providers.akana.render import render_manifest
from reconciler.providers.akana.wire import AppDetail


class AkanaImportError(ReconcilerError):
    """The app to import is not there, or its name is not unique."""


async def find_app(client: AkanaClient, name_or_id: str, business_id: str | None = None
                   ) -> AppDetail:
    """The app with that Name (in ``business_id``'s listing), else with that AppID."""
    named = [a for a in await client.list_apps(business_id) if a.name == name_or_id]
    if len(named) > 1:
        raise AkanaImportError(f"{len(named)} Akana apps are named {name_or_id!r}; import one by"
                           " its AppID")
    try:
        found = await client.get_app(named[0].app_id if named else name_or_id)
    except InvalidIdError:  # not an AppID either
        found = None
    if found is None:
        raise AkanaImportError(f"no Akana app named (or with AppID) {name_or_id!r}")
    return found


async def import_app(
    client: AkanaClient, name_or_id: str, business_id: str | None = None
) -> tuple[str, AppRecord]:
    """The manifest of the live app (every field it has, so applying it changes nothing) and
    the record that makes the state own it."""
    _name, text, record = await import_named(client, name_or_id, business_id)
    return text, record


async def import_named(
    client: AkanaClient, name_or_id: str, business_id: str | None = None
) -> tuple[str, str, AppRecord]:
    """:func:`import_app` with the app's Name (its natural key) first."""
    detail = await find_app(client, name_or_id, business_id)
    versions = await client.list_versions(detail.app_id)
    app = AkanaApp(
        name=detail.name,
        summary=detail.summary,
        description=detail.description,
        picture_id=detail.picture_id,
        versions=tuple(
            AkanaVersion(
                name=v.name,
                description=v.description,
                tags=tuple(v.tags),
                visibility=v.visibility if v.visibility in VISIBILITIES else None,
                website_address=v.website_address,
            )
            for v in versions
        ),
    )
    record = AppRecord(
        id=detail.app_id,
        fields=app.fields(),
        versions={
            v.name: VersionRecord(id=v.version_id, fields=version.fields())
            for v, version in zip(versions, app.versions, strict=True)
        },
    )
    return detail.name, render_manifest(app), record
