"""What a provider gives the engine's service to plan, apply, detect drift and import: a
:class:`Connector` that opens a :class:`ProviderSession` on its endpoint(s) (or on its
in-process sandbox), and the session's four workflows.

The service (:mod:`reconciler.engine.service`) runs every session the same way: it hands each
one the manifests of its kinds and its section of the state, merges their plans into one,
enforces the fleet-wide guards (delete budget, stale saved plan) on the merged plan, and makes
each completed write durable through :data:`RecordWrite` before the next dependent write is
reported done. Nothing here knows a provider's fields (docs/decisions.md D84).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from reconciler.engine.drift import DriftReport
from reconciler.engine.plan import Change, Plan
from reconciler.errors import ApiError, ConfigError, ReconcilerError, TransportError, UsageError


class ProviderUnreadable(ReconcilerError):
    """Raised by a session's ``plan`` when nothing of its provider could be read (every
    listing failed): the provider is stuck for this run, as when its login fails."""


def provider_wide(error: BaseException) -> bool:
    """Whether ``error``, raised while a session read its endpoint (login, listing), stops
    that provider only: its endpoint is down, answers 5xx after the retries, refuses the
    login after a fresh one, or answers what cannot be read. The service then names the
    provider as stuck and runs the others; anything else (a usage error, the state, a bug)
    still stops the run."""
    if isinstance(error, UsageError):
        return False
    return isinstance(error, TransportError | ApiError | ConfigError | ProviderUnreadable)


@dataclass(frozen=True)
class Scope:
    """What one run covers (``--select``, ``--target``, ``--prune``): the same rule for every
    provider. ``key`` is the resource's grouping key in plans (``Change.app_id``)."""

    selectors: Mapping[str, str] = field(default_factory=dict)
    targets: frozenset[str] = frozenset()
    prune: bool = False
    # Every grouping key the manifests declare before --select/--target narrowed them: such
    # a resource is never a prune candidate, even when it is outside the selection.
    declared: frozenset[str] = frozenset()
    notices: tuple[str, ...] = ()  # said in the plan's warnings (e.g. a missing state file)
    # plan --changed-since: the grouping keys whose manifests changed (None: every one).
    only: frozenset[str] | None = None

    def includes(self, key: str, labels: Mapping[str, str]) -> bool:
        if self.targets and key not in self.targets:
            return False
        return all(labels.get(name) == value for name, value in self.selectors.items())


class Section(Protocol):
    """One provider's section of the state (``reconciler.state.ProviderState``): its endpoint
    binding, its counters and its records by kind and natural key, as JSON."""

    endpoint: str | None
    marks: dict[str, int]
    resources: dict[str, dict[str, dict[str, Any]]]


# After a completed write: (kind, natural key, the record as JSON or None when removed). The
# service returns once it is durable (journal fsync or a committed transaction).
RecordWrite = Callable[[str, str, Mapping[str, Any] | None], Awaitable[None]]

Outcome = Literal["applied", "failed", "skipped"]


@dataclass(frozen=True)
class ChangeEvent:
    """One change's result, as the progress line and the apply summary show it; or, with
    the outcome ``"started"``, that its write starts (the progress line and ``apply --format
    jsonl`` show it; it is not a result: never put in ``SectionApplied.events``). Every
    session reports each change it writes this way, once before its result."""

    change: Change
    outcome: Outcome | Literal["started"]
    message: str | None = None  # why it failed or was skipped; what was done otherwise
    stuck: bool = False  # skipped because its whole grouping key is stuck (the plan says why)


@dataclass
class SectionApplied:
    events: list[ChangeEvent] = field(default_factory=list)
    adopted: int = 0  # resources recorded without a write (adopt: true / found by key)
    stuck: list[str] = field(default_factory=list)  # grouping keys skipped for plan errors
    # Why each stuck key was skipped, when the session words it itself (else: the plan's
    # errors of that key).
    reasons: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False  # a graceful stop or a cancellation ended it early
    unresolved: list[str] = field(default_factory=list)  # writes whose outcome is unknown
    probe_reads: int = 0  # reads spent looking for what an earlier run may have created


@dataclass(frozen=True)
class RunContext:
    """What a session that declares ``attach(run)`` is given before it plans, applies or
    imports (docs/decisions.md D145): the whole state and its store, opaque here, for a
    provider whose records are typed and read across resources, and which journals its own
    writes (the store makes each line durable before the change is reported). A session
    without ``attach`` sees only its section."""

    state: Any
    store: Any = None  # None: a run that writes nothing (plan, drift)
    probe_window: int = 0
    verify_fingerprints: bool = False  # a saved plan: refuse a change whose live source moved
    out: Path | None = None  # import: the folder its manifests are written to
    # import: what the user said about each ref, the provider's to read (e.g. version ids an
    # API cannot list, labels to give the manifest).
    hints: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # apply: the run's graceful stop, polled before each change starts (None: never asked).
    stop: Stoppable | None = None


@dataclass(frozen=True)
class Imported:
    """``reconciler import``: the natural key recorded and the manifest to commit."""

    key: str
    manifest: str  # YAML text
    notes: tuple[str, ...] = ()  # said under its line (e.g. fields the manifest cannot carry)


class ProviderSession(Protocol):
    """One provider connected to its endpoint(s) for one run."""

    @property
    def identity(self) -> str:
        """What the plan (``endpoints[provider]``) and the state's section are bound to."""
        ...

    @property
    def display(self) -> str:
        """What the user is told it talks to: never a secret."""
        ...

    def bind(self, section: Section) -> None:
        """Refuse (ReconcilerError) a section recorded against another endpoint; bind an
        unbound one (a first run)."""
        ...

    async def plan(self, desired: Sequence[Any], section: Section, scope: Scope) -> Plan:
        """Read what the plan needs and diff: this provider's part of the plan, with
        ``endpoints == {provider: identity}``. ``desired``: its manifests' models, already
        narrowed by ``scope``. The delete budget is the service's (fleet-wide)."""
        ...

    async def apply(
        self,
        plan: Plan,
        section: Section,
        *,
        desired: Sequence[Any] | None,
        parallelism: int,
        record: RecordWrite,
        on_event: Callable[[ChangeEvent], None],
    ) -> SectionApplied:
        """Run this provider's part of ``plan`` (adoptions recorded first), skipping grouping
        keys with app-scoped errors, each completed write recorded with ``record`` before a
        write that depends on it starts. ``desired`` is None for a saved plan."""
        ...

    def drift(self, plan: Plan, section: Section) -> DriftReport:
        """Classify a fresh plan's differences for ``reconciler drift``."""
        ...

    async def import_resource(self, ref: str, section: Section) -> Imported:
        """Find the resource ``ref`` names (natural key or server id), record it in
        ``section`` and return its manifest."""
        ...


class Attachable(Protocol):
    """A session that needs the run's context (see :class:`RunContext`)."""

    def attach(self, run: RunContext) -> None: ...


class Connector(Protocol):
    """How a provider opens its session: from the environment (and its project file), or on
    its in-process sandbox."""

    @property
    def name(self) -> str: ...

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        """Whether a real endpoint is configured (a run that needs it and finds none fails,
        naming what to set)."""
        ...

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool = True,
    ) -> AbstractAsyncContextManager[ProviderSession]:
        """A session (logged in lazily, logged out on exit). ``sandbox_dir``: serve this
        provider's in-process sandbox from a SQLite file in that folder instead.
        ``keep_sandbox=False`` (plan, drift): create no file or folder; a sandbox whose file
        does not exist runs on an empty database that is not kept (same endpoint shown, same
        identity)."""
        ...


class Stoppable(Protocol):
    """Running writes a graceful stop asks to start nothing new."""

    @property
    def stopping(self) -> bool: ...

    def request_stop(self) -> None: ...


class StopSignal:
    """One run's graceful stop (Ctrl-C, SIGTERM): the CLI asks it, a session given the
    run's context polls it before each change starts; the writes in flight finish and are
    recorded."""

    def __init__(self) -> None:
        self._stop = False

    @property
    def stopping(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        self._stop = True


@dataclass(frozen=True)
class Binding:
    """What the state file is bound to, known before any session opens."""

    identity: str
    display: str  # never a secret


class BindsStateFile(Protocol):
    """The connector of the provider whose descriptor says ``state_root``: the state file
    is loaded bound to its endpoint (``StateStore.load(identity)``), so the engine asks
    that identity before the state is read and before any session is opened. Its session's
    ``identity`` is the same."""

    def binding(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        keep_sandbox: bool = True,
    ) -> Binding: ...
