"""What the manifests ask for: load and check every manifest, split them by provider, and
narrow them by --provider, --select, --target and --changed-since; the checks on that
narrowing once the state is known."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.manifest import LoadedApp
    from reconciler.manifest.changed import ChangedFiles
    from reconciler.state import State


def root_provider() -> str:
    """The provider whose records live at the state's root (its connector says
    ``state_root``): its manifests are narrowed by id here, the others' by grouping key."""
    from reconciler.providers.registry import CONNECTORS

    return next(name for name, c in CONNECTORS.items() if getattr(c, "state_root", False))


def check_provider(provider: str | None) -> None:
    """``--provider`` names one of the providers this reconciler manages."""
    from reconciler.errors import UsageError
    from reconciler.providers.registry import PROVIDERS

    if provider is not None and provider not in PROVIDERS:
        raise UsageError(
            f"--provider {provider[:40]!r} is not one this reconciler manages: choose one of"
            f" {', '.join(sorted(PROVIDERS))}"
        )


def root_noun() -> str:
    """One resource of the state-root provider, as its registry entry names it."""
    from reconciler.providers.registry import PROVIDERS

    return str(getattr(PROVIDERS[root_provider()], "noun", "resource"))


@dataclass(frozen=True)
class Desired:
    apps: list[Any]  # the state-root provider's models, after --select / --target
    selectors: dict[str, str]
    declared: frozenset[str]  # every id the manifests declare, before narrowing
    targets: tuple[str, ...] = ()
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # declared id -> labels
    # plan --changed-since: only these ids are read and planned (apps only the state knows
    # included, so a removed manifest still shows as a prune candidate); None: every app.
    only: frozenset[str] | None = None
    # The other providers' documents (Akana apps, REST objects) after --select/--target, and
    # every grouping key their manifests declare before narrowing (never a prune candidate).
    others: dict[str, list[LoadedApp[Any]]] = field(default_factory=dict)
    others_declared: dict[str, frozenset[str]] = field(default_factory=dict)
    provider: str | None = None  # --provider: the only provider whose resources count

    @property
    def providers(self) -> list[str]:
        """The providers whose manifests these are (the state-root one first)."""
        return ([root_provider()] if self.declares_root else []) + sorted(self.others)

    @property
    def declares_root(self) -> bool:
        """Whether the manifests declare a resource of the state-root provider."""
        return bool(self.declared)

    @property
    def root_models(self) -> list[Any]:
        return self.apps

    @property
    def root_keys(self) -> list[str]:
        """The grouping keys of the state-root provider's models (after narrowing)."""
        from reconciler.providers.registry import PROVIDERS

        provider = PROVIDERS[root_provider()]
        return [provider.resource_key(model) for model in self.apps]

    def models(self, provider: str) -> list[Any]:
        if provider == root_provider():
            return self.apps
        return [item.app for item in self.others.get(provider, ())]


def load_desired(
    paths: Sequence[Path],
    select: Sequence[str],
    target: Sequence[str],
    roots: Sequence[Path] = (),
    changes: ChangedFiles | None = None,
    provider: str | None = None,
) -> Desired:
    """Load + validate every manifest (all errors at once), then narrow by --select/--target
    and, for ``plan --changed-since``, to the apps ``changes`` touch.

    The declared ids travel along: an app outside the selection is never a prune candidate.
    """
    from reconciler.manifest import load_manifests, parse_selectors, require_manifests, select_apps

    selectors = parse_selectors(list(select))
    from reconciler.engine.service import split_by_provider
    from reconciler.providers.registry import MANIFEST_KINDS, PROVIDERS

    every: list[LoadedApp[Any]] = load_manifests(
        list(paths), dict(os.environ), list(roots), kinds=MANIFEST_KINDS
    )
    require_manifests(list(paths), every)
    refuse_credentials(every)
    by_provider = split_by_provider(every, PROVIDERS)
    if provider is not None:
        by_provider = {name: items for name, items in by_provider.items() if name == provider}
        if not by_provider.get(provider):
            from reconciler.errors import ConfigError

            # As for paths without manifests: nothing would be checked (never "No changes"),
            # and --prune would delete every recorded resource of that provider.
            raise ConfigError(
                f"--provider {provider}: the paths given declare no {provider} resource, so"
                " nothing would be checked; give the paths that hold its manifests"
            )
    root = PROVIDERS[root_provider()]
    loaded: list[LoadedApp[Any]] = by_provider.pop(root.name, [])
    chosen = select_apps(loaded, selectors, list(target))
    only = None
    if changes is not None:
        from reconciler.manifest.changed import touched_ids

        only = touched_ids(loaded, changes)
        chosen = [item for item in chosen if root.resource_key(item.app) in only]
    labels = {root.resource_key(item.app): dict(root.resource_labels(item.app)) for item in loaded}
    others: dict[str, list[LoadedApp[Any]]] = {}
    others_declared: dict[str, frozenset[str]] = {}
    wanted = set(target)
    for name, items in by_provider.items():
        kind = PROVIDERS[name]
        keyed = [(kind.resource_key(i.app), dict(kind.resource_labels(i.app)), i) for i in items]
        others_declared[name] = frozenset(key for key, _, _ in keyed)
        labels.update({key: item_labels for key, item_labels, _ in keyed})
        others[name] = [
            item
            for key, item_labels, item in keyed
            if (not wanted or key in wanted)
            and all(item_labels.get(k) == v for k, v in selectors.items())
            and (changes is None or Path(item.file).resolve() in changes.present)
        ]
    return Desired(
        apps=[item.app for item in chosen],
        selectors=selectors,
        declared=frozenset(root.resource_key(item.app) for item in loaded),
        targets=tuple(target),
        labels=labels,
        only=only,
        others=others,
        others_declared=others_declared,
        provider=provider,
    )


def check_scope(desired: Desired, state: State) -> None:
    """A ``--select``/``--target`` matching no declared app and no app the state records is
    an error (exit 1), never a green "No changes". Called once the state is loaded: a target
    only the state knows (``--target X --prune`` after its manifest was removed) is valid."""
    from reconciler.manifest import check_selection

    # Under --provider only that provider's records count: a mini app recorded in the state
    # must not make `--provider akana --select team=cafe` look like it matched something.
    wanted = desired.provider
    recorded: dict[str, Mapping[str, str]] = {}
    if wanted in (None, root_provider()):
        recorded.update({app_id: record.labels for app_id, record in state.apps.items()})
    for name, section in state.providers.items():
        if wanted is not None and name != wanted:
            continue
        for records in section.resources.values():
            # Every provider keeps a resource's labels under "labels" in its record.
            recorded.update({key: _labels_of(data) for key, data in records.items()})
    check_selection(desired.selectors, desired.targets, desired.labels, recorded)


def _labels_of(record: Mapping[str, Any]) -> dict[str, str]:
    labels = record.get("labels")
    if not isinstance(labels, Mapping):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def check_project_references(loaded: Sequence[LoadedApp[Any]], config: Path | None) -> None:
    """What a provider checks of its manifests against the project file (a REST object's
    endpoint must be declared there), asked of each provider that offers it
    (``project_issues``): `validate` says what `plan` would refuse."""
    from reconciler.engine.provider import split_by_provider
    from reconciler.errors import ManifestError
    from reconciler.providers.registry import PROVIDERS

    env = dict(os.environ)
    if config is None and env.get("RECONCILER_CONFIG"):
        config = Path(env["RECONCILER_CONFIG"])
    issues = []
    for name, items in split_by_provider(loaded, PROVIDERS).items():
        check = getattr(PROVIDERS[name], "project_issues", None)
        if check is not None:
            issues += check(items, config, env)
    if issues:
        raise ManifestError(issues)


def refuse_credentials(loaded: Sequence[LoadedApp[Any]], config: Path | None = None) -> None:
    """Defence in depth: a manifest value equal to (or holding) a credential would be printed
    in plans, PR comments and the state. Refuse before anything is shown. The credentials are
    what every registered provider declares (``Provider.credential_variables``): ``validate``
    and ``plan`` refuse the same values. ``config``: the project file (``--config``; else
    ``RECONCILER_CONFIG``, else the default one)."""
    from reconciler.errors import ManifestError, ManifestIssue
    from reconciler.providers.registry import PROVIDERS

    env = dict(os.environ)
    if config is None and env.get("RECONCILER_CONFIG"):
        config = Path(env["RECONCILER_CONFIG"])
    names = sorted(
        {name for p in PROVIDERS.values() for name in p.credential_variables(env, config)}
    )
    secrets = {
        name: env[name]
        for name in names
        if len(env.get(name, "")) >= 8  # shorter: too many false alarms
    }
    if not secrets:
        return
    issues = [
        ManifestIssue(
            item.file,
            *_place(item, name, value),
            "",
            f"contains the value of {name}; a secret must never be written into a manifest",
        )
        for item in loaded
        for name, value in secrets.items()
        if _holds(_as_text(item.app), value)
    ]
    if issues:
        raise ManifestError(issues)


def _place(item: LoadedApp[Any], name: str, value: str) -> tuple[int, int]:
    """(line, column) of the first line of ``item``'s document holding ``value`` or a
    ``${name}`` reference; the document's start when neither is found (a value built by
    the checker)."""
    try:
        lines = Path(item.file).read_text("utf-8", "replace").splitlines()
    except OSError:
        return item.line, 1
    for number in range(item.line, len(lines) + 1):
        line = lines[number - 1]
        if number > item.line and line.rstrip() == "---":  # the next document
            break
        for needle in (value, "${" + name):
            at = line.find(needle)
            if at >= 0:
                return number, at + 1
    return item.line, 1


def _holds(text: str, value: str) -> bool:
    import json

    # _as_text is JSON: a value with quotes or backslashes shows there escaped.
    return value in text or json.dumps(value, ensure_ascii=False)[1:-1] in text


def _as_text(model: Any) -> str:
    """Every value a checked manifest holds, as text (pydantic models and dataclasses)."""
    import dataclasses
    import json

    if hasattr(model, "model_dump_json"):
        return str(model.model_dump_json())
    if dataclasses.is_dataclass(model) and not isinstance(model, type):
        return json.dumps(dataclasses.asdict(model), default=str, ensure_ascii=False)
    return repr(model)
