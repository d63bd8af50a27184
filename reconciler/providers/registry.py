"""The providers this reconciler manages, in one place: the composition root the CLI hands to
the engine (the engine itself never imports a provider).

Every provider, built in or a plugin, is known first by its :class:`ProviderDescriptor`
(name, root kind, manifest kinds): plain data. The public mappings below have those keys, and
their values import the provider on first use, so a run imports only the providers its
manifests, its state or its saved plan name (``validate`` of a Mini App Center file never
imports the Akana or REST clients). A plugin registers its descriptor under the
``reconciler.providers`` entry point group (docs/how-to/writing-a-provider.md); the built-in three
are described here with the same type. Two providers claiming one name, one root kind or one
``(apiVersion, kind)`` are refused, as is a plugin that fails to import: a ConfigError naming
its package, never a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.engine.descriptor import DEFAULT_PROJECT_FILE, ENTRY_POINT_GROUP, ProviderDescriptor
from reconciler.errors import ConfigError

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
    from reconciler.engine.provider import Provider
    from reconciler.engine.session import Connector, ProviderSession
    from reconciler.manifest.loader import CheckerFactory, ManifestKinds

_P = "reconciler.providers"
BUILTIN: tuple[ProviderDescriptor, ...] = (
    ProviderDescriptor(
        name="miniappcenter",
        root_kind="miniapp",
        manifest_kinds=(("miniappcenter/v1", "MiniApp"),),
        provider=f"{_P}.miniappcenter.provider:MINIAPPCENTER",
        credentials=("MAC_API_TOKEN",),
        state_root=True,
        noun="mini app",
        title="GeneXus Mini App Center",
        sandbox_api="miniappcenter",
        sandbox_help="the Mini App Center (default file $MAC_SANDBOX_DB, else"
        " .reconciler/sandbox.db; --token, else $MAC_API_TOKEN, else random); prints"
        " `export MAC_BASE_URL=...` and `export MAC_API_TOKEN=...`",
        variables=(
            ("MAC_BASE_URL", "API base URL as the docs give it, e.g. https://host/api"),
            ("MAC_API_TOKEN", "API token, sent as APIKey-Auth (never printed)"),
            ("MAC_API_VERSION", "API version path segment (default v1)"),
            ("MAC_SANDBOX_DB", "embedded sandbox database (like --sandbox-db)"),
        ),
        # Its records live at the state's root and the state file is bound to its endpoint
        # (its connector is also an engine.session.BindsStateFile).
        connector=f"{_P}.miniappcenter.session:MINIAPPCENTER_CONNECTOR",
    ),
    ProviderDescriptor(
        name="akana",
        root_kind="akana_app",
        manifest_kinds=(("akana/v1", "App"),),
        provider=f"{_P}.akana.provider:AKANA",
        credentials=("AKANA_PASSWORD",),
        noun="Akana app",
        title="Akana API Platform apps",
        sandbox_api="akana",
        sandbox_help="Akana apps with session login (default file $AKANA_SANDBOX_DB, else"
        " .reconciler/akana-sandbox.db; logs in with $AKANA_EMAIL / $AKANA_PASSWORD, else"
        " admin@sandbox.local and a random password, printed; --session-seconds: the"
        " cookie's lifetime)",
        variables=(
            ("AKANA_BASE_URL", "the platform's root, e.g. https://host (the client adds /api)"),
            ("AKANA_EMAIL", "the user who logs in"),
            ("AKANA_PASSWORD", "that user's password (never printed)"),
            ("AKANA_BUSINESS_ID", "optional: list and create in this organization only"),
        ),
        connector=f"{_P}.akana.session:AKANA_CONNECTOR",
    ),
    ProviderDescriptor(
        name="rest",
        root_kind="rest_object",
        manifest_kinds=(("rest/v1", "RestObject"),),
        provider=f"{_P}.rest.provider:REST",
        project_credentials=f"{_P}.rest.config:credential_variables",
        noun="REST object",
        title="JSON REST APIs (JWT + Api-Key)",
        sandbox_api="tenant",
        sandbox_help="the JWT + Api-Key tenant API (credentials from $TENANT_USERNAME,"
        " $TENANT_PASSWORD and $TENANT_API_KEY, else random)",
        variables=(
            (
                "RECONCILER_CONFIG",
                "the project file declaring REST endpoints and the names of the variables"
                " holding their secrets (like --config; default reconciler.yaml)",
            ),
        ),
        connector=f"{_P}.rest.session:REST_CONNECTOR",
    ),
)

_MAX_SHOWN = 300  # characters of an import error's text in a message


def _failed(descriptor: ProviderDescriptor, what: str, exc: BaseException) -> ConfigError:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return ConfigError(
        f"the {descriptor.name} provider (package {descriptor.package}) failed to load its"
        f" {what}: {text}"
    )


def _import(descriptor: ProviderDescriptor, ref: str, what: str) -> Any:
    module_name, _, attribute = ref.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # a plugin's own bug or a missing dependency: named, not a trace
        raise _failed(descriptor, what, exc) from exc


class LazyProvider:
    """A provider known by its descriptor, imported on the first use of anything else."""

    def __init__(self, descriptor: ProviderDescriptor) -> None:
        self.descriptor = descriptor
        self._provider: Provider | None = None
        self._kinds = _LazyKinds({kind: self for kind in descriptor.manifest_kinds})

    def loaded(self) -> Provider:
        if self._provider is None:
            provider = _import(self.descriptor, self.descriptor.provider, "provider")
            self._check(provider)
            self._provider = provider
        return self._provider

    def _check(self, provider: Any) -> None:
        """The object must be what its descriptor promised: the registry routed manifests,
        addresses and state sections by the descriptor's word."""
        d = self.descriptor
        try:
            name, root, kinds = provider.name, provider.root_kind, set(provider.manifest_kinds)
        except Exception as exc:
            raise _failed(d, "provider", exc) from exc
        noun = getattr(provider, "noun", None)
        if d.noun is not None and noun is not None and noun != d.noun:
            raise ConfigError(
                f"the {d.name} provider (package {d.package}) does not match its descriptor:"
                f" its noun is {str(noun)[:40]!r}, its descriptor's {d.noun[:40]!r}"
            )
        if (name, root, kinds) != (d.name, d.root_kind, set(d.manifest_kinds)):
            raise ConfigError(
                f"the {d.name} provider (package {d.package}) does not match its descriptor:"
                f" it declares name {str(name)[:40]!r}, root kind {str(root)[:40]!r} and"
                f" manifest kinds {sorted(kinds)!s:.200}"
            )

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def root_kind(self) -> str:
        return self.descriptor.root_kind

    @property
    def manifest_kinds(self) -> ManifestKinds:
        return self._kinds

    @property
    def title(self) -> str:
        return self.loaded().title

    @property
    def noun(self) -> str:
        """One of its resources, as the commands count them (from the descriptor when it
        says, so that counting imports nothing)."""
        if self.descriptor.noun is not None:
            return self.descriptor.noun
        return str(getattr(self.loaded(), "noun", f"{self.name} resource"))

    @property
    def levels(self) -> Mapping[str, int]:
        return self.loaded().levels

    @property
    def operations(self) -> frozenset[tuple[str, str, str | None]]:
        return self.loaded().operations

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        return self.loaded().load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return self.loaded().resource_key(model)

    def resource_labels(self, model: Any) -> Mapping[str, str]:
        return self.loaded().resource_labels(model)

    def credential_variables(self, env: Mapping[str, str], config: Path | None) -> frozenset[str]:
        """What its descriptor declares, without importing the provider (``validate`` refuses
        every provider's credential values but loads only the providers its files name); a
        loaded provider answers itself."""
        if self._provider is not None:
            return self._provider.credential_variables(env, config)
        d = self.descriptor
        if not d.credentials and d.project_credentials is None:
            # It declares none up front (a plugin may keep them on its provider): ask it.
            return self.loaded().credential_variables(env, config)
        names = set(d.credentials)
        project = config if config is not None else Path(DEFAULT_PROJECT_FILE)
        if d.project_credentials is not None and project.is_file():
            names |= _import(d, d.project_credentials, "project file's credentials")(env, config)
        return frozenset(names)

    def __getattr__(self, attribute: str) -> Any:
        # A provider's own extras (e.g. ``connector``); never for private names, so that
        # copying or pickling the proxy does not import the provider.
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self.loaded(), attribute)

    def __repr__(self) -> str:
        return f"<provider {self.name} ({'loaded' if self._provider else 'not loaded'})>"


class _LazyKinds(Mapping[tuple[str, str], "CheckerFactory"]):
    """(apiVersion, kind) -> its checker, imported from its provider on first lookup."""

    def __init__(self, owners: Mapping[tuple[str, str], LazyProvider]) -> None:
        self._owners = dict(owners)

    def __getitem__(self, kind: tuple[str, str]) -> CheckerFactory:
        return self._owners[kind].loaded().manifest_kinds[kind]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._owners)

    def __len__(self) -> int:
        return len(self._owners)


class LazyConnector:
    """A provider's connector, imported when a session is first asked of it."""

    def __init__(self, descriptor: ProviderDescriptor) -> None:
        assert descriptor.connector is not None
        self.descriptor = descriptor
        self._connector: Connector | None = None

    def loaded(self) -> Connector:
        if self._connector is None:
            assert self.descriptor.connector is not None
            self._connector = _import(self.descriptor, self.descriptor.connector, "connector")
        return self._connector

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def state_root(self) -> bool:
        # From the descriptor: choosing the state-root provider imports no connector.
        return self.descriptor.state_root

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        return self.loaded().configured(env, config)

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool = True,
    ) -> AbstractAsyncContextManager[ProviderSession]:
        connector = self.loaded()
        if keep_sandbox or not _takes_keep_sandbox(connector):
            # A plugin written before read-only runs existed is called as it expects.
            return connector.connect(
                env, sandbox_dir=sandbox_dir, config=config, parallelism=parallelism
            )
        return connector.connect(
            env, sandbox_dir=sandbox_dir, config=config, parallelism=parallelism,
            keep_sandbox=False,
        )  # fmt: skip

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self.loaded(), attribute)

    def __repr__(self) -> str:
        return f"<connector {self.name} ({'loaded' if self._connector else 'not loaded'})>"


def _takes_keep_sandbox(connector: Connector) -> bool:
    """Whether a connector's ``connect`` accepts ``keep_sandbox`` (every built-in one does)."""
    import inspect

    try:
        parameters = inspect.signature(connector.connect).parameters
    except (TypeError, ValueError):
        return False
    return "keep_sandbox" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def plugin_descriptors(
    entry_points: Callable[[], Iterable[Any]] | None = None,
) -> list[ProviderDescriptor]:
    """The descriptors the installed plugins register (``reconciler.providers`` entry
    points). Each entry point's name must be its provider's name."""
    if entry_points is None:
        from importlib.metadata import entry_points as installed

        def entry_points() -> Iterable[Any]:
            return installed(group=ENTRY_POINT_GROUP)

    out: list[ProviderDescriptor] = []
    for point in entry_points():
        dist = getattr(point, "dist", None)
        package = str(getattr(dist, "name", None) or point.value.partition(":")[0])
        shown = f"provider plugin {str(point.name)[:40]!r} (package {package[:60]})"
        try:
            descriptor = point.load()
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            raise ConfigError(
                f"the {shown} failed to import: {text[:_MAX_SHOWN]}"
                f"{'...' if len(text) > _MAX_SHOWN else ''}; fix or uninstall that package"
            ) from exc
        if not isinstance(descriptor, ProviderDescriptor):
            raise ConfigError(
                f"the {shown} registers {type(descriptor).__name__}, not a ProviderDescriptor"
            )
        problems = descriptor.problems()
        if descriptor.name != point.name:
            problems.append(f"its entry point is named {point.name!r}, not {descriptor.name!r}")
        if problems:
            raise ConfigError(f"the {shown} is malformed: {'; '.join(problems)}")
        out.append(_with_package(descriptor, package))
    return sorted(out, key=lambda d: d.name)


def _with_package(descriptor: ProviderDescriptor, package: str) -> ProviderDescriptor:
    import dataclasses

    return dataclasses.replace(descriptor, package=package)


def checked(descriptors: Sequence[ProviderDescriptor]) -> tuple[ProviderDescriptor, ...]:
    """``descriptors`` in their order, or a ConfigError naming two that claim one provider
    name, one root kind (addresses would be ambiguous) or one (apiVersion, kind) (a manifest
    would have two readers)."""
    claims: dict[tuple[str, object], ProviderDescriptor] = {}
    for descriptor in descriptors:
        wanted: list[tuple[str, object]] = [
            ("the provider name", descriptor.name),
            ("the root kind", descriptor.root_kind),
        ]
        wanted += [("the manifest kind", kind) for kind in descriptor.manifest_kinds]
        for claim in wanted:
            other = claims.get(claim)
            if other is not None:
                what, value = claim
                shown = (
                    f"apiVersion {value[0]}, kind {value[1]}"
                    if isinstance(value, tuple)
                    else str(value)
                )
                raise ConfigError(
                    f"providers clash: {other.name} (package {other.package}) and"
                    f" {descriptor.name} (package {descriptor.package}) both claim {what}"
                    f" {shown}; uninstall one of them"
                )
            claims[claim] = descriptor
    return tuple(descriptors)


# The built-in providers first (the Mini App Center leads: a plan file without provider names
# is its), then the plugins by name.
DESCRIPTORS: tuple[ProviderDescriptor, ...] = checked([*BUILTIN, *plugin_descriptors()])

_LAZY = {d.name: LazyProvider(d) for d in DESCRIPTORS}
PROVIDERS: Mapping[str, Provider] = _LAZY
ROOT_KINDS: Mapping[str, str] = {d.root_kind: d.name for d in DESCRIPTORS}
# Every (apiVersion, kind) a manifest may declare, with its provider's checker (imported on
# first lookup).
MANIFEST_KINDS: ManifestKinds = _LazyKinds(
    {kind: provider for provider in _LAZY.values() for kind in provider.descriptor.manifest_kinds}
)
# How each provider opens its session (imported on first use).
CONNECTORS: Mapping[str, Connector] = {
    d.name: LazyConnector(d) for d in DESCRIPTORS if d.connector is not None
}
