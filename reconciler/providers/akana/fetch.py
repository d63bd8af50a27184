"""Reading the Akana platform: one listing, then the detail and versions of the apps that
matter, concurrently and bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from reconciler.providers.akana.client import AkanaClient
from reconciler.providers.akana.live import LiveAkana, LiveApp, live_app
from reconciler.providers.akana.model import AkanaApp
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.wire import AppDetail, AppSummary, AppVersion

# Apps whose detail and versions are read at once (each is two GETs).
READ_CONCURRENCY = 8


async def read_live(
    client: AkanaClient,
    desired: Sequence[AkanaApp],
    section: AkanaSection,
    business_id: str | None = None,
    *,
    concurrency: int = READ_CONCURRENCY,
    also_list: Iterable[str | None] = (),
) -> LiveAkana:
    """One listing per organization level involved (usually one: ``business_id``'s), then the
    detail and versions of every app recorded in ``section``, declared with ``adopt: true`` or
    whose create is in doubt, ``concurrency`` apps at a time. An app recorded but absent from
    the listing is looked up by its id (it may have moved); gone, it is not in the answer.
    ``also_list``: more organization levels to list (where an interrupted create may have left
    an app)."""
    levels = {business_id or ""}
    levels.update(level or "" for level in also_list)
    levels.update(app.business_id for app in desired if app.business_id)
    levels.update(
        str(r.fields["business_id"]) for r in section.apps.values() if r.fields.get("business_id")
    )
    listings = await asyncio.gather(*(client.list_apps(level or None) for level in sorted(levels)))
    listed: dict[str, AppSummary] = {}
    for listing in listings:
        listed.update({app.app_id: app for app in listing})
    # Declared with adopt: true, or this tool's own create of that Name is in doubt.
    adopting = {app.name for app in desired if app.adopt or app.name in section.in_doubt}
    wanted = {record.id for record in section.apps.values()}
    wanted.update(app_id for app_id, app in listed.items() if app.name in adopting)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def detail(app_id: str) -> tuple[AppDetail | None, list[AppVersion]]:
        async with gate:
            found = await client.get_app(app_id)
            if found is None:
                return None, []
            return found, await client.list_versions(app_id)

    details = await asyncio.gather(*(detail(app_id) for app_id in sorted(wanted)))
    apps: dict[str, LiveApp] = {app_id: live_app(app) for app_id, app in listed.items()}
    reads = len(levels) + sum(2 if found else 1 for found, _ in details)
    for found, versions in details:
        if found is not None:
            apps[found.app_id] = live_app(found, versions)
    for app_id in wanted - {found.app_id for found, _ in details if found is not None}:
        apps.pop(app_id, None)  # listed, then gone before its detail was read
    return LiveAkana(tuple(sorted(apps.values(), key=lambda a: (a.name, a.id))), reads)
