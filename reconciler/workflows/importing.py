"""`import`: write a manifest per existing resource from live state and record it as managed
in the state, through the provider's session (the engine's service opens it like any)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.workflows.desired import check_provider, root_provider
from reconciler.workflows.target import state_store

if TYPE_CHECKING:
    from reconciler.engine.session import Imported
    from reconciler.state import State
    from reconciler.workflows.report import Reporter


def run_import(
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
    hints: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Import through the provider's session: it finds each resource, records it in the
    state and returns its manifest. ``hints``: what the user said about each ref, the
    provider's to read. A provider whose connector checks refs (``check_ref``, a ref that
    is its natural key) has them, a managed one and an existing file refused before any
    request."""
    import asyncio
    from contextlib import AsyncExitStack

    from reconciler.engine.service import attach, open_sessions
    from reconciler.engine.session import RunContext
    from reconciler.errors import ConfigError
    from reconciler.limits import DEFAULT_PROBE_WINDOW
    from reconciler.state import ProviderState
    from reconciler.workflows.fleet import (
        FleetOptions,
        connectors,
        endpoint_settings,
        fleet_env,
        state_binding,
    )

    check_provider(provider)
    if provider not in connectors():
        raise ConfigError(f"import does not know the {provider} provider")
    connector = connectors()[provider]
    check_ref = getattr(connector, "check_ref", None)
    keys = [str(check_ref(ref)) for ref in refs] if check_ref is not None else None
    options = FleetOptions(sandbox, sandbox_db, config, provider, False, None, 8,
                           DEFAULT_PROBE_WINDOW, ())  # fmt: skip
    binding = state_binding(options) if provider == root_provider() else None
    if binding is not None:  # said before the state is read: it is bound to this endpoint
        reporter.say(f"Endpoint: {binding.display}")
    if keys is not None:
        _refuse_existing([out / f"{_file_name(key)}.yaml" for key in keys], force)
    store = state_store(state, sandbox)
    with store.lock("import") as lock_info:
        if (notice := lock_info.takeover_notice()) is not None:
            reporter.say(notice)
        current = store.load(binding.identity) if binding is not None else store.read()
        if binding is not None:
            section = ProviderState(endpoint=current.endpoint)  # its records are the root's
        else:
            section = current.providers.setdefault(provider, ProviderState())
        before = _recorded(current, provider)
        if keys is not None:
            _refuse_managed([key for key in keys if key in before])
        run = RunContext(state=current, store=store, out=out, hints=dict(hints or {}))

        async def imported() -> list[Imported]:
            async with AsyncExitStack() as stack:
                sessions = await open_sessions(
                    stack, connectors(), [provider], fleet_env(options),
                    sandbox_dir=options.sandbox_dir, config=config, parallelism=8,
                    settings=endpoint_settings(),
                )  # fmt: skip
                attach(sessions, run)
                session = sessions.by_name[provider]
                if binding is None:
                    reporter.say(f"Endpoint ({provider}): {session.display}")
                session.bind(section)
                return [await session.import_resource(ref, section) for ref in refs]

        results = asyncio.run(imported())
        # Nothing is saved: re-importing would drop what the state keeps.
        _refuse_managed([item.key for item in results if item.key in before])
        paths = {item.key: out / f"{_file_name(item.key)}.yaml" for item in results}
        _refuse_existing(list(paths.values()), force)  # before anything is saved or written
        out.mkdir(parents=True, exist_ok=True)
        for item in results:
            text = _with_schema_line(item.manifest, provider, paths[item.key])
            paths[item.key].write_text(text, encoding="utf-8")
            reporter.say(f"Imported {item.key} -> {paths[item.key]}")
            for note in item.notes:
                reporter.say(f"  {note}")
        store.save(current)


def _recorded(state: State, provider: str) -> set[str]:
    """The natural keys the state records for ``provider`` (the records of the provider
    that binds the state are the state's root)."""
    if provider == root_provider():
        return set(state.apps)
    section = state.providers.get(provider)
    if section is None:
        return set()
    return {key for records in section.resources.values() for key in records}


def _refuse_managed(managed: Sequence[str]) -> None:
    from reconciler.errors import ConfigError

    if managed:
        raise ConfigError(
            f"already managed: {', '.join(managed)}. Its manifest is the source of"
            " truth; to adopt it again, first remove it from the state (`reconciler state rm`)"
        )


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    from reconciler.errors import ConfigError

    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)} (use --force)")


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
