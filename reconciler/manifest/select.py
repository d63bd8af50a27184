"""``--select KEY=VALUE`` and ``--target APP_ID``: which loaded mini apps a command handles."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from reconciler.errors import ConfigError, UsageError
from reconciler.manifest.labels import label_key_problem
from reconciler.manifest.loader import LoadedApp


class Labelled(Protocol):
    """What selection reads of a desired resource: its natural key and labels."""

    @property
    def id(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


AppT = TypeVar("AppT", bound="LoadedApp[Any] | Labelled")


def parse_selectors(values: Iterable[str]) -> dict[str, str]:
    """``["team=cafe", "env=prod"]`` -> ``{"team": "cafe", "env": "prod"}``."""
    selectors: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid selector {_quoted(raw)}: expected KEY=VALUE, e.g. team=cafe")
        problem = label_key_problem(key)
        if problem:
            raise UsageError(f"invalid selector {_quoted(raw)}: {problem}")
        if selectors.get(key, value) != value:
            raise UsageError(
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


def _matches(app: Labelled, selectors: Mapping[str, str], targets: Collection[str]) -> bool:
    if targets and app.id not in targets:
        return False
    return all(app.labels.get(key) == value for key, value in selectors.items())


# --- a selection that matches nothing is an error, never a green "no changes" ------------

MAX_LISTED = 12  # ids or labels named in one message
MAX_SHOWN = 80  # characters of one user-given value echoed back


def check_selection(
    selectors: Mapping[str, str],
    targets: Sequence[str],
    declared: Mapping[str, Mapping[str, str]],
    recorded: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Refuse a ``--select``/``--target`` that matches nothing: a command that checked
    nothing must not exit 0 as if everything were fine (a typo in a CI job would stay green
    forever).

    ``declared``: id -> labels of every app the manifests declare; ``recorded``: the same for
    the apps the state records (None where there is no state: ``validate``). Each target must
    name a declared or recorded app (a recorded one keeps ``--target X --prune`` working for an
    app whose manifest was removed), and the whole selection must match at least one of them.
    """
    if not selectors and not targets:
        return
    # An app both declared and recorded is selected by its manifest's labels, as the plan does.
    known: dict[str, Mapping[str, str]] = {**(recorded or {}), **declared}
    where = "declared in the manifests" + (
        "" if recorded is None else " or recorded in the state"
    )
    missing = [t for t in dict.fromkeys(targets) if t not in known]
    if missing:
        raise ConfigError(_unknown_targets(missing, known, where))
    matched = [
        app_id
        for app_id, labels in known.items()
        if (not targets or app_id in targets)
        and all(labels.get(key) == value for key, value in selectors.items())
    ]
    if not matched:
        raise ConfigError(_empty_selection(selectors, targets, known, where))


def _unknown_targets(
    missing: Sequence[str], known: Mapping[str, Mapping[str, str]], where: str
) -> str:
    names = ", ".join(f"--target {_shown(t)}" for t in missing[:MAX_LISTED])
    verb = "matches" if len(missing) == 1 else "match"
    message = f"{names} {verb} no app {where}"
    closest = {
        t: close[0]
        for t in missing
        if (close := difflib.get_close_matches(t, list(known), n=1, cutoff=0.6))
    }
    # One typo: "did you mean X?"; several: say which one each may be.
    hints = (
        list(closest.values())
        if len(missing) == 1
        else [f"{_shown(t)} -> {c}" for t, c in closest.items()]
    )
    if hints:
        message += f"; did you mean {_listed(hints)}?"
    elif known:
        message += "."
    if known:
        message += f" Known ids: {_listed(sorted(known))}"
    else:
        message += " (none is)"
    return message


def _empty_selection(
    selectors: Mapping[str, str],
    targets: Sequence[str],
    known: Mapping[str, Mapping[str, str]],
    where: str,
) -> str:
    asked = [f"--select {_shown(f'{k}={v}')}" for k, v in selectors.items()]
    asked += [f"--target {_shown(t)}" for t in targets]
    message = f"{' '.join(asked)} matches no app {where}"
    present = sorted({f"{k}={v}" for labels in known.values() for k, v in labels.items()})
    if not present:
        return message + "; none of them has labels"
    wanted = [f"{k}={v}" for k, v in selectors.items() if f"{k}={v}" not in present]
    hints = [
        close[0] for w in wanted if (close := difflib.get_close_matches(w, present, n=1))
    ]
    if hints:
        message += f"; did you mean {_listed(hints)}?"
    return message + f" Labels present: {_listed(present)}"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(_shown(item) for item in items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def _shown(value: str) -> str:
    """A user-given value echoed back: bounded, and control characters made visible."""
    text = value if value.isprintable() else repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _quoted(value: str) -> str:
    return repr(value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 3] + "...")
