"""Synthetic fleets: N mini apps, each with 2 attributes, 2 locations and 1-2 versions.

Deterministic (a fleet of N is always the same apps), so runs are comparable. No image or
version ``metadata`` fields: those make apply read the object back (an extra GET per write),
which would blur "one write per change".
"""

from __future__ import annotations

from pathlib import Path

from reconciler.providers.miniappcenter.model import Location, MiniApp, MiniAppSpec, Version
from reconciler.state import AppRecord, LocationRecord, State, VersionRecord

SUPERAPP = "com.genexus.benchbank"
TEAMS = ("cafe", "payments", "travel", "retail")


def app_id(index: int) -> str:
    return f"com.bench.fleet.app{index:05d}"


def make_app(index: int) -> MiniApp:
    """App ``index``: 1 version when odd, 2 when even (the second one sent to review)."""
    lon = -56.0 + (index % 1000) / 10_000
    lat = -34.0 - (index % 997) / 10_000
    versions = [
        Version(
            code="1.0.0",
            platform_id="iOS",
            integrated_security=True,
            main_name="startObject",
            main_type="Panel",
            service_url=f"https://apps.example.com/app{index}/",
            compatibility=(1,),
            status="pending",
        )
    ]
    if index % 2 == 0:
        versions.append(
            Version(
                code="1.1.0",
                platform_id="Android",
                integrated_security=False,
                main_name="startObject",
                main_type="Menu",
                service_url=f"https://apps.example.com/app{index}/v11/",
                compatibility=(1, 2),
                status="waiting_for_review",
            )
        )
    return MiniApp(
        id=app_id(index),
        labels={"team": TEAMS[index % len(TEAMS)], "shard": str(index % 8)},
        spec=MiniAppSpec(
            name=f"Bench app {index}",
            description=f"Synthetic mini app number {index} of the benchmark fleet",
            superapp_id=SUPERAPP,
            type="Native" if index % 3 else "Web",
            keywords=f"bench fleet app{index}",
            attributes={"COUNTRY": "Uruguay", "TIER": f"t{index % 5}"},
            locations=(
                Location(name="Central", geo_point=f"POINT({lon} {lat})"),
                Location(name="Pocitos", geo_point=f"POINT({lon + 0.01} {lat - 0.01})"),
            ),
            versions=tuple(versions),
        ),
    )


def make_fleet(n: int) -> list[MiniApp]:
    return [make_app(i) for i in range(n)]


def write_manifests(apps: list[MiniApp], folder: Path) -> list[Path]:
    """One YAML file per app (render_manifest), in ``folder/<team>/``."""
    from reconciler.providers.miniappcenter.manifest import render_manifest

    paths: list[Path] = []
    for app in apps:
        team_dir = folder / app.labels["team"]
        team_dir.mkdir(parents=True, exist_ok=True)
        path = team_dir / f"{app.id}.yaml"
        path.write_text(render_manifest(app), encoding="utf-8")
        paths.append(path)
    return paths


# --- synthetic live state and state records (for the pure-diff CPU measurement) ------------


def converged_state(apps: list[MiniApp]) -> State:
    """The state a successful apply of ``apps`` would leave (server ids made up)."""
    state = State(endpoint="bench")
    state.serial = 1
    next_id = 1
    for app in apps:
        spec = app.spec
        locations: dict[str, LocationRecord] = {}
        for loc in spec.locations or ():
            locations[loc.name] = LocationRecord(id=next_id, geo_point=loc.geo_point)
            next_id += 1
        versions: dict[str, VersionRecord] = {}
        for version in spec.versions or ():
            fields = {
                k: v
                for k in (
                    "platform_id",
                    "integrated_security",
                    "main_name",
                    "main_type",
                    "service_url",
                )
                if (v := getattr(version, k)) is not None
            }
            versions[version.code] = VersionRecord(
                id=next_id,
                fields=fields,
                compatibility=sorted(version.compatibility or ()),
                status=version.status,
            )
            next_id += 1
        state.apps[app.id] = AppRecord(
            labels=dict(app.labels),
            fields=spec.app_fields(),
            attributes=dict(spec.attributes or {}),
            locations=locations,
            versions=versions,
        )
    return state


def live_from(apps: list[MiniApp], state: State) -> dict[str, object]:
    """Live apps as fetch would build them from the API's answers, for ``apps``."""
    from reconciler.providers.miniappcenter.client.wire import (
        LocationData,
        MiniAppData,
        VersionData,
    )
    from reconciler.providers.miniappcenter.fetch import live_app

    live: dict[str, object] = {}
    for app in apps:
        record = state.apps[app.id]
        spec = app.spec
        data = MiniAppData(
            id=app.id,
            **spec.app_fields(),
            additional_attributes=[
                {"field": k, "value": v} for k, v in (spec.attributes or {}).items()
            ],
        )
        locations = (
            [
                LocationData(
                    id=record.locations[loc.name].id, name=loc.name, geo_point=loc.geo_point
                )
                for loc in spec.locations or ()
            ]
            if record.locations is not None
            else None
        )
        versions = {}
        for version in spec.versions or ():
            vid = record.versions[version.code].id
            versions[version.code] = VersionData(
                id=vid,
                code=version.code,
                platform_id=version.platform_id,
                integrated_security=version.integrated_security,
                main_name=version.main_name,
                main_type=version.main_type,
                service_url=version.service_url,
            )
        live[app.id] = live_app(app.id, data, locations, versions)
    return live


def with_changes(apps: list[MiniApp], every: int = 10) -> list[MiniApp]:
    """A desired fleet where every ``every``-th app changed: new name, a moved location,
    a changed attribute, one more compatibility and a new version."""
    out: list[MiniApp] = []
    for i, app in enumerate(apps):
        if i % every:
            out.append(app)
            continue
        spec = app.spec
        locations = list(spec.locations or ())
        locations[0] = Location(name=locations[0].name, geo_point="POINT(-56.2 -34.95)")
        versions = list(spec.versions or ())
        versions[0] = versions[0].model_copy(update={"compatibility": (1, 3)})
        versions.append(
            Version(code="9.9.9", platform_id="iOS", main_name="startObject", main_type="Panel")
        )
        out.append(
            app.model_copy(
                update={
                    "spec": spec.model_copy(
                        update={
                            "name": spec.name + " (renamed)",
                            "attributes": {**(spec.attributes or {}), "TIER": "gold"},
                            "locations": tuple(locations),
                            "versions": tuple(versions),
                        }
                    )
                }
            )
        )
    return out


def with_moved_locations(apps: list[MiniApp]) -> list[MiniApp]:
    """Every location of every app moved: 2 location updates per app, nothing else."""
    out: list[MiniApp] = []
    for app in apps:
        locations = tuple(
            Location(name=loc.name, geo_point=f"POINT(-57.{i + 1} -35.{i + 1})")
            for i, loc in enumerate(app.spec.locations or ())
        )
        out.append(
            app.model_copy(update={"spec": app.spec.model_copy(update={"locations": locations})})
        )
    return out
