"""``--select KEY=VALUE`` and ``--target APP_ID``: which loaded mini apps a command handles."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar

from reconciler.errors import ConfigError
from reconciler.manifest.document import label_key_problem
from reconciler.manifest.loader import LoadedApp
from reconciler.model import MiniApp

AppT = TypeVar("AppT", LoadedApp, MiniApp)


def parse_selectors(values: Iterable[str]) -> dict[str, str]:
    """``["team=cafe", "env=prod"]`` -> ``{"team": "cafe", "env": "prod"}``."""
    selectors: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid selector {raw!r}: expected KEY=VALUE, e.g. team=cafe")
        problem = label_key_problem(key)
        if problem:
            raise ConfigError(f"invalid selector {raw!r}: {problem}")
        if selectors.get(key, value) != value:
            raise ConfigError(
                f"conflicting selectors {key}={selectors[key]} and {raw}:"
                " no mini app can match both"
            )
        selectors[key] = value
    return selectors


def select_apps(
    apps: Iterable[AppT], selectors: Mapping[str, str], targets: Collection[str] = ()
) -> list[AppT]:
    """The apps whose labels match every selector and, when targets are given, whose id is one."""
    return [
        item
        for item in apps
        if _matches(item.app if isinstance(item, LoadedApp) else item, selectors, targets)
    ]


def _matches(app: MiniApp, selectors: Mapping[str, str], targets: Collection[str]) -> bool:
    if targets and app.id not in targets:
        return False
    return all(app.labels.get(key) == value for key, value in selectors.items())
