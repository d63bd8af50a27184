"""`import`: write a manifest per existing resource from live state and record it as managed
in the state (the state-root provider's through its connector; the others' through their
session)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.workflows.desired import check_provider
from reconciler.workflows.target import state_store

if TYPE_CHECKING:
    from reconciler.engine.session import Imported
    from reconciler.workflows.report import Reporter


def import_root(
    refs: Sequence[str],
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
    """Import the state-root provider's resources ``refs`` (checked ids; ``versions``: per
    resource, code -> version id, since its API cannot list them) into manifests under
    ``out`` and the state."""
    from reconciler.manifest import parse_selectors
    from reconciler.workflows.fleet import root_connector

    labels = parse_selectors(list(label))
    connector = root_connector()
    session = connector.session(sandbox, sandbox_db, 8)
    reporter.say(f"Endpoint: {session.display}")
    connector.import_resources(
        refs, out=out, versions=versions, labels=labels, force=force,
        store=state_store(state, sandbox), session=session, say=reporter.say,
    )  # fmt: skip


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
    from reconciler.workflows.fleet import FleetOptions, connectors, endpoint_settings

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
                    settings=endpoint_settings(),
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
            text = _with_schema_line(item.manifest, provider, paths[item.key])
            paths[item.key].write_text(text, encoding="utf-8")
            reporter.say(f"Imported {item.key} -> {paths[item.key]}")
        store.save(current)


def _with_schema_line(manifest: str, provider: str, path: Path) -> str:
    """``manifest`` with a first line pointing editors at its schema, when it has none and
    the repository holds one (``schema/<kind>.schema.json`` in a folder above ``path``, as
    `reconciler schema --write schema/` writes it): a path relative to the file, so that it
    works in the user's repository, wherever that is."""
    import os

    from reconciler.providers.registry import DESCRIPTORS

    if manifest.startswith("# yaml-language-server:"):
        return manifest
    kinds = [d.root_kind for d in DESCRIPTORS if d.name == provider]
    if not kinds:
        return manifest
    name = f"{kinds[0].replace('_', '-')}.schema.json"
    folder = path.parent.resolve()
    for above in (folder, *folder.parents):
        if (above / "schema" / name).is_file():
            relative = os.path.relpath(above / "schema" / name, folder)
            return f"# yaml-language-server: $schema={relative}\n{manifest}"
    return manifest


def _file_name(key: str) -> str:
    """A manifest file name for a natural key (some hold ``:`` and ``/``)."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-.")[:100]
    return name or "resource"
