"""`import`: write a manifest per existing resource from live state and record it as managed
in the state (mini apps by id; other providers' resources through their session)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.workflows.desired import check_provider
from reconciler.workflows.target import resolve_target, state_store

if TYPE_CHECKING:
    from reconciler.engine.session import Imported
    from reconciler.providers.miniappcenter.fetch import LiveState
    from reconciler.workflows.report import Reporter


def import_mini_apps(
    app_ids: Sequence[str],
    *,
    out: Path,
    versions: dict[str, dict[str, int]],
    label: Sequence[str],
    force: bool,
    state: Path | str | None,
    sandbox: bool,
    sandbox_db: Path | None,
    reporter: Reporter,
) -> None:
    """Import mini apps ``app_ids`` (checked ids; ``versions``: per app, code -> version id,
    since the API cannot list them) into manifests under ``out`` and the state."""
    import asyncio

    from reconciler.errors import ConfigError, ReconcilerError
    from reconciler.manifest import parse_selectors
    from reconciler.providers.miniappcenter.manifest import render_manifest

    labels = parse_selectors(list(label))
    where = resolve_target(sandbox, sandbox_db)
    reporter.say(f"Endpoint: {where.display}")
    targets = {app_id: out / f"{app_id}.yaml" for app_id in app_ids}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)} (use --force)")
    store = state_store(state, where.sandbox_db is not None)

    async def run() -> LiveState:
        from reconciler.providers.miniappcenter.fetch import FetchRequest, fetch_live

        requests = [
            FetchRequest(app_id, locations=True, versions=versions.get(app_id, {}))
            for app_id in app_ids
        ]
        async with where.client(8) as client:
            return await fetch_live(client, requests)

    with store.lock("import") as lock_info:
        if (notice := lock_info.takeover_notice()) is not None:
            reporter.say(notice)
        current = store.load(where.identity)
        managed = [app_id for app_id in app_ids if app_id in current.apps]
        if managed:
            # Re-importing would drop version ids and protection the state keeps.
            raise ConfigError(
                f"already managed: {', '.join(managed)}. Its manifest is the source of"
                " truth; to adopt it again, first `reconciler state rm` it"
            )
        live = asyncio.run(run())
        from reconciler.providers.miniappcenter.importer import import_app

        results = []
        for app_id in app_ids:
            live_app = live.apps.get(app_id)
            if live_app is None:
                raise ReconcilerError(f"mini app {app_id} does not exist on the server")
            if live_app.missing_versions:
                wrong = ", ".join(
                    f"{code}={versions[app_id][code]}" for code in live_app.missing_versions
                )
                raise ReconcilerError(
                    f"{app_id}: no version with that code and id on the server: {wrong}"
                )
            results.append(import_app(live_app, labels))
        out.mkdir(parents=True, exist_ok=True)
        for result in results:
            path = targets[result.app.id]
            schema = _schema_path(path)
            path.write_text(render_manifest(result.app, schema=schema), encoding="utf-8")
            current.apps[result.app.id] = result.record
            reporter.say(f"Imported {result.app.id} -> {path}")
            if result.skipped:
                reporter.say(
                    f"  not imported (the API returns URLs, writes need upload ids):"
                    f" {', '.join(result.skipped)}"
                )
        store.save(current)


def _schema_path(manifest: Path) -> str | None:
    """A relative path from the manifest to the repo's schema, when there is one."""
    import os

    schema = Path("schema/miniapp.schema.json")
    if not schema.exists():
        return None
    return os.path.relpath(schema.resolve(), manifest.parent.resolve())


def import_others(
    provider: str,
    refs: Sequence[str],
    *,
    out: Path,
    force: bool,
    state: Path | str | None,
    sandbox: bool,
    sandbox_db: Path | None,
    config: Path | None,
    reporter: Reporter,
) -> None:
    """Import through the provider's session: it finds each resource, records it in its
    section of the state and writes its manifest."""
    import asyncio
    import os
    from contextlib import AsyncExitStack

    from reconciler.engine.service import open_sessions
    from reconciler.errors import ConfigError
    from reconciler.limits import DEFAULT_PROBE_WINDOW
    from reconciler.state import ProviderState
    from reconciler.workflows.fleet import FleetOptions, connectors

    check_provider(provider)
    if provider not in connectors():
        raise ConfigError(f"import does not know the {provider} provider")
    options = FleetOptions(sandbox, sandbox_db, config, provider, False, None, 8,
                           DEFAULT_PROBE_WINDOW, ())  # fmt: skip
    store = state_store(state, sandbox)
    with store.lock("import") as lock_info:
        if (notice := lock_info.takeover_notice()) is not None:
            reporter.say(notice)
        current = store.read()
        section = current.providers.setdefault(provider, ProviderState())

        async def run() -> list[Imported]:
            async with AsyncExitStack() as stack:
                sessions = await open_sessions(
                    stack, connectors(), [provider], dict(os.environ),
                    sandbox_dir=options.sandbox_dir, config=config, parallelism=8,
                )  # fmt: skip
                session = sessions.by_name[provider]
                reporter.say(f"Endpoint ({provider}): {session.display}")
                session.bind(section)
                return [await session.import_resource(ref, section) for ref in refs]

        before = {key for records in section.resources.values() for key in records}
        results = asyncio.run(run())
        managed = [item.key for item in results if item.key in before]
        if managed:  # nothing is saved: re-importing would drop what the state keeps
            raise ConfigError(
                f"already managed: {', '.join(managed)}. Its manifest is the source of"
                " truth; to adopt it again, first remove it from the state"
            )
        paths = {item.key: out / f"{_file_name(item.key)}.yaml" for item in results}
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing and not force:  # checked before anything is saved or written
            raise ConfigError(f"refusing to overwrite {', '.join(existing)} (use --force)")
        out.mkdir(parents=True, exist_ok=True)
        for item in results:
            paths[item.key].write_text(item.manifest, encoding="utf-8")
            reporter.say(f"Imported {item.key} -> {paths[item.key]}")
        store.save(current)


def _file_name(key: str) -> str:
    """A manifest file name for a natural key (REST keys hold ``:`` and ``/``)."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-.")[:100]
    return name or "resource"
