"""The manifests' JSON Schemas, one per registered provider's kind, for `reconciler schema`.

Each ships in the package as ``reconciler/schema/<root-kind>.schema.json`` (``akana_app`` ->
``akana-app.schema.json``), so that printing one imports no provider; a provider without a
shipped file (a plugin) is asked for its own (``manifest_json_schema_text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Schema:
    provider: str
    kind: str  # the root kind: miniapp, akana_app, ...
    manifest: str  # apiVersion/kind of the documents it describes
    file_name: str

    def text(self) -> str:
        shipped = resources.files("reconciler") / "schema" / self.file_name
        if shipped.is_file():
            return shipped.read_text(encoding="utf-8")
        from reconciler.errors import ConfigError
        from reconciler.providers.registry import PROVIDERS

        provider: Any = PROVIDERS[self.provider]
        make = getattr(provider, "manifest_json_schema_text", None)
        if make is None:
            raise ConfigError(f"the {self.provider} provider ships no JSON Schema")
        return str(make())


def schemas() -> list[Schema]:
    """Every registered provider's schema, the state-root provider's first."""
    from reconciler.providers.registry import DESCRIPTORS

    found = [
        Schema(
            d.name,
            d.root_kind,
            ", ".join(f"{api}/{kind}" for api, kind in d.manifest_kinds),
            f"{d.root_kind.replace('_', '-')}.schema.json",
        )
        for d in DESCRIPTORS
    ]
    return sorted(found, key=lambda s: not _is_root(s.provider))


def _is_root(name: str) -> bool:
    from reconciler.workflows.desired import root_provider

    return name == root_provider()


def choose(kind: str | None) -> list[Schema]:
    """The schema ``kind`` names (a provider's name, a root kind, or a manifest ``kind``,
    case-insensitive); None: every one. Raises ValueError naming the known ones."""
    every = schemas()
    if kind is None:
        return every
    wanted = kind.casefold()
    for schema in every:
        names = {schema.provider, schema.kind, schema.file_name.removesuffix(".schema.json")}
        names |= {m.rpartition("/")[2] for m in schema.manifest.split(", ")}
        if wanted in {n.casefold() for n in names}:
            return [schema]
    known = ", ".join(f"{s.kind} ({s.provider})" for s in every)
    raise ValueError(f"no schema for {kind[:60]!r}; known: {known}")


def write(chosen: list[Schema], folder: Path) -> tuple[list[Path], list[str]]:
    """Write ``chosen`` into ``folder`` (made if missing): the paths written, and the
    providers left out because they ship no schema (a plugin may not)."""
    from reconciler.errors import ConfigError

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[str] = []
    for schema in chosen:
        try:
            text = schema.text()
        except ConfigError:
            if len(chosen) == 1:
                raise
            skipped.append(schema.provider)
            continue
        path = folder / schema.file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written, skipped
