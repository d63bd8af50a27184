"""The provider seam: what one API (Mini App Center, Akana, a JSON REST API) gives the engine.

The engine never knows a provider's fields. A provider owns everything about its API: the
manifest kinds it reads (and their checkers), its model and JSON Schema, how it reads live
state and diffs, the closed table of handlers that apply its changes, what its saved changes
may say, its drift classification, its importer and its endpoint configuration. The engine is
given the providers (``reconciler.providers.registry``) and never imports one.

Rules every provider keeps (docs/decisions.md D71):

- **A plan is data, never code.** Its writes form a closed vocabulary ``(kind, action, step)``
  (:attr:`Provider.operations`), each mapped to exactly one handler; a saved plan is validated
  whole by its provider (:meth:`Provider.load_saved_plan`) before anything runs. Nothing is
  looked up by a name that came from a file.
- **Addresses have one type** (:class:`reconciler.address.Address`); each provider's root kind
  is unique, so a parsed address names its provider.
- **Decisions read structured fields** (kind, action, step, address parts), never display
  strings.
- A provider never imports another; only its client touches HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: validate loads providers without the planner
    from reconciler.engine.plan import Plan
    from reconciler.manifest.loader import LoadedApp, ManifestKinds


@dataclass(frozen=True)
class ContractExample:
    """What the provider contract suite (``tests/contract/``) needs to run the CLI against
    a server it controls: everything a user would set, pointed at ``origin``.

    ``env``: the endpoint variables and dummy credentials; ``files``: the files to write into
    an empty working folder (relative path -> text: at least one manifest, and any project
    file); ``manifests``: the paths given to ``validate``/``plan``; ``args``: extra options
    those commands need; ``secrets``: every credential value in ``env``/``files`` that must
    never show anywhere (output, logs, state, files).
    """

    env: Mapping[str, str]
    files: Mapping[str, str]
    manifests: tuple[str, ...]
    secrets: tuple[str, ...]
    args: tuple[str, ...] = field(default=())


class Provider(Protocol):
    @property
    def name(self) -> str:
        """Its name in plans, state files and address owners (``miniappcenter``)."""
        ...

    @property
    def title(self) -> str:
        """What users call the API (``Mini App Center``)."""
        ...

    @property
    def root_kind(self) -> str:
        """The kind at the root of every address it makes (``miniapp``)."""
        ...

    @property
    def manifest_kinds(self) -> ManifestKinds:
        """The ``(apiVersion, kind)`` documents it reads, with their checkers."""
        ...

    @property
    def levels(self) -> Mapping[str, int]:
        """Dependency level of each of its kinds inside one root resource."""
        ...

    @property
    def operations(self) -> frozenset[tuple[str, str, str | None]]:
        """Its closed vocabulary of writes: exactly the keys of its handler table."""
        ...

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        """The saved plan in ``data`` (parsed JSON), validated whole, or PlanError."""
        ...

    def resource_key(self, model: Any) -> str:
        """The grouping key (``Change.app_id``) of a desired resource its checker made: what
        ``--target`` names and what prune candidates are matched against."""
        ...

    def resource_labels(self, model: Any) -> Mapping[str, str]:
        """The labels ``--select`` matches."""
        ...

    def credential_variables(self, env: Mapping[str, str], config: Path | None) -> frozenset[str]:
        """The environment variables holding its credentials (passwords, tokens, API keys):
        a manifest holding one's value is refused by ``validate`` and ``plan`` alike.
        ``config``: the project file option, for providers whose names are declared there."""
        ...

    def contract_example(self, origin: str) -> ContractExample:
        """A tiny working setup against ``origin`` (``http://127.0.0.1:PORT``): the hook the
        provider contract suite runs every guarantee through, so a registered provider gets
        the suite for free."""
        ...


@dataclass(frozen=True)
class SandboxServe:
    """`reconciler sandbox serve` as the CLI parsed it, for the provider whose sandbox it
    serves (its registry entry's ``sandbox_api``). ``db``: --db, else None; ``default_db``:
    where the default sandbox's file is (``$MAC_SANDBOX_DB`` or the default path)."""

    host: str
    port: int
    db: Path | None
    default_db: Path
    token: str | None
    latency_ms: float
    fail_rate: float
    ambiguous_rate: float
    seed: int | None
    rate_limit: float | None
    session_seconds: float
    # --drop-assumption NAMEs (each one of the provider's ``sandbox_assumptions``).
    drop_assumptions: frozenset[str] = frozenset()


class ProviderBase:
    """The plain parts every provider states as data (its module's constants), so that a
    provider class only names them and writes what is its own (the saved-plan check, the
    resource key). Labels are every manifest model's ``labels``."""

    name: str
    title: str
    root_kind: str
    manifest_kinds: ManifestKinds
    levels: Mapping[str, int]
    operations: frozenset[tuple[str, str, str | None]]
    # What the commands say about it, as data (the CLI and the workflows name no provider):
    # What a first run (no state file) adopts, in plural ("REST objects"), and a caveat.
    first_run_adopts: str | None = None
    first_run_caveat: str | None = None
    direct: bool = False  # its client runs on the shared transport's lanes (no proxy)
    sandbox_api: str | None = None  # `sandbox serve --api NAME` serves its sandbox
    # What its sandbox guarantees beyond the API's docs, each of which `sandbox serve
    # --drop-assumption NAME` turns off: NAME -> what the sandbox then stops doing.
    sandbox_assumptions: Mapping[str, str] = MappingProxyType({})

    def serve_sandbox(self, options: SandboxServe) -> None:
        """Serve its sandbox over HTTP until stopped (UsageError: an option it does not
        take; ListenError: it cannot listen)."""
        raise NotImplementedError(f"{self.name} has no sandbox to serve")

    # The variables holding its credentials (see Provider.credential_variables).
    credentials: frozenset[str] = frozenset()

    @property
    def noun(self) -> str:
        """One of its resources, as the commands count them: a provider names its own."""
        return f"{self.name} resource"

    def resource_labels(self, model: Any) -> Mapping[str, str]:
        return dict(model.labels)

    def credential_variables(self, env: Mapping[str, str], config: Path | None) -> frozenset[str]:
        return self.credentials


def root_kinds(providers: Mapping[str, Provider]) -> dict[str, str]:
    """Root kind -> provider name, for :func:`reconciler.address.parse_address`. Two providers
    claiming one root kind would make addresses ambiguous: refused."""
    out: dict[str, str] = {}
    for name, provider in providers.items():
        kind = provider.root_kind
        if kind in out:
            raise ValueError(f"providers {out[kind]} and {name} both claim root kind {kind}")
        out[kind] = name
    return out


def split_by_provider(
    loaded: Iterable[LoadedApp[Any]], providers: Mapping[str, Provider]
) -> dict[str, list[LoadedApp[Any]]]:
    """Each loaded document under the provider whose ``(apiVersion, kind)`` it declares (only
    the kinds' names are read: no provider is imported for it)."""
    owner = {kind: name for name, provider in providers.items() for kind in provider.manifest_kinds}
    out: dict[str, list[LoadedApp[Any]]] = {}
    for item in loaded:
        name = owner.get(item.document)
        if name is None:  # the loader only returns documents of a known kind
            raise ValueError(f"no provider reads {item.document!r} ({item.file}:{item.line})")
        out.setdefault(name, []).append(item)
    return out
