"""`reconciler import`: turn live mini apps into manifests and adopt them into the state.

What the API reads back as URLs (icon, card, banner, a version's metadata) cannot be written
into a manifest (writes need upload ids), and review status and compatibilities are not
readable at all: those fields are left out of the manifest, which means "not managed" until
the user adds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.providers.miniappcenter.model import (
    APP_IMAGE_FIELDS,
    VERSION_FIELDS,
    VERSION_OBJECT_FIELDS,
    LiveApp,
    Location,
    MiniApp,
    MiniAppSpec,
    Version,
)
from reconciler.state import AppRecord, LocationRecord, VersionRecord

# Written as ids, read as URLs: never imported into a manifest.
NOT_IMPORTED = (*APP_IMAGE_FIELDS, "organization_id")


@dataclass(frozen=True)
class Imported:
    app: MiniApp  # what the manifest will say
    record: AppRecord  # what the state will remember
    skipped: tuple[str, ...]  # fields the server has that the manifest cannot carry


def import_app(live: LiveApp, labels: dict[str, str] | None = None) -> Imported:
    spec = live.app.spec
    skipped = [f for f in NOT_IMPORTED if getattr(spec, f) is not None and f != "organization_id"]
    fields = {
        name: value
        for name in ("name", "description", "superapp_id", "type", "keywords")
        if (value := getattr(spec, name)) is not None
    }
    versions: list[Version] = []
    version_records: dict[str, VersionRecord] = {}
    for version in spec.versions or ():
        values = {
            name: value
            for name in VERSION_FIELDS
            if name not in VERSION_OBJECT_FIELDS and (value := getattr(version, name)) is not None
        }
        if version.metadata is not None:
            skipped.append(f"versions[{version.code}].metadata")
        versions.append(Version(code=version.code, **values))
        version_records[version.code] = VersionRecord(
            id=live.version_ids[version.code], fields=dict(values)
        )
    locations = [
        Location(name=loc.name, geo_point=loc.geo_point) for loc in spec.locations or ()
    ]
    app = MiniApp(
        id=live.app.id,
        labels=dict(labels or {}),
        spec=MiniAppSpec(
            **fields,
            attributes=dict(spec.attributes or {}),
            locations=tuple(locations),
            versions=tuple(versions) or None,
        ),
    )
    record = AppRecord(
        labels=dict(labels or {}),
        fields=dict(fields),
        attributes=dict(spec.attributes or {}),
        locations={
            loc.name: LocationRecord(id=live.location_ids[loc.name][0], geo_point=loc.geo_point)
            for loc in locations
        },
        versions=version_records,
    )
    return Imported(app=app, record=record, skipped=tuple(skipped))
