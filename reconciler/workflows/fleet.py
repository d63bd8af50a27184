"""What plan, apply and drift share across providers: which providers take part in a run,
their sessions, and one merged plan. The provider-neutral steps are the engine's service
(:mod:`reconciler.engine.service`): every provider, the one whose descriptor binds the state
file included, is planned, applied and checked for drift through its session. No provider is
named here: they come from the registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.limits import DEFAULT_SANDBOX_DB
from reconciler.workflows.desired import Desired, root_provider

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
    from reconciler.engine.service import Sessions
    from reconciler.engine.session import Binding, Connector, RunContext, Scope, Section
    from reconciler.state import State, StateStore
    from reconciler.workflows.report import Reporter


@dataclass(frozen=True)
class FleetOptions:
    """The options every planning command shares."""

    sandbox: bool
    sandbox_db: Path | None
    config: Path | None
    provider: str | None
    prune: bool
    max_deletes: int | None
    parallelism: int
    probe_window: int
    targets: tuple[str, ...]
    # False for a read-only run (plan, drift): the in-process sandboxes create no file or
    # folder (a missing file is served empty, in memory); apply and import keep theirs.
    keep_sandbox: bool = True

    @property
    def sandbox_dir(self) -> Path | None:
        """Where the in-process sandboxes keep their SQLite files (beside --sandbox-db's)."""
        if not self.sandbox:
            return None
        return (self.sandbox_db or Path(DEFAULT_SANDBOX_DB)).resolve().parent


@dataclass
class Fleet:
    """Who takes part in a run (the provider that binds the state file first, then the
    others by name), the state, and what the state file is bound to."""

    state: State
    names: list[str]
    binding: Binding | None = None  # None: the provider that binds the state takes no part
    notices: list[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return self.binding.identity if self.binding is not None else ""


def connectors() -> Mapping[str, Connector]:
    """Every registered provider's connector (imported on first use)."""
    from reconciler.providers.registry import CONNECTORS

    return CONNECTORS


def fleet_env(options: FleetOptions) -> dict[str, str]:
    """The environment the connectors read: ``--sandbox-db`` travels as its variable, so the
    in-process sandbox of the provider that binds the state is that file."""
    from reconciler.limits import SANDBOX_DB_ENV

    env = dict(os.environ)
    if options.sandbox and options.sandbox_db is not None:
        env[SANDBOX_DB_ENV] = str(options.sandbox_db)
    return env


def state_binding(options: FleetOptions) -> Binding:
    """What the state file is bound to: the endpoint of the provider whose descriptor says
    it binds the state (resolved and checked; nothing connected)."""
    from typing import cast

    from reconciler.engine.session import BindsStateFile

    binder = cast("BindsStateFile", connectors()[root_provider()])
    return binder.binding(fleet_env(options), sandbox_dir=options.sandbox_dir,
                          config=options.config, keep_sandbox=options.keep_sandbox)  # fmt: skip


def open_fleet(
    desired: Desired | None,
    store: StateStore,
    options: FleetOptions,
    reporter: Reporter,
    *,
    only: Sequence[str] | None = None,
) -> Fleet:
    """Decide who takes part and load the state (bound to the endpoint of the provider that
    binds the state file, when it takes part). A provider takes part when the manifests
    declare its resources, or when the state records some and its endpoint is configured (or
    --sandbox); recorded but not configured, it is named in a warning (and --prune, which
    could not delete them, is an error). ``only``: the providers of a saved plan."""
    from reconciler.errors import ConfigError

    env = fleet_env(options)
    wanted = set(only) if only is not None else None
    if options.provider is not None:
        wanted = {options.provider} if wanted is None else wanted & {options.provider}
    # A saved plan of the provider that binds the state needs it whatever the state holds.
    root_name = root_provider()
    root_declared = (desired is not None and desired.declares_root) or (
        only is not None and root_name in only
    )
    peek: State | None = None
    if root_declared:
        root_in = wanted is None or root_name in wanted
    else:
        peek = store.read()
        root_in = bool(peek.apps) and (wanted is None or root_name in wanted)
    binding: Binding | None = None
    if root_in:
        # Said before the state is read: the state file is bound to this endpoint.
        binding = state_binding(options)
        reporter.say(f"Endpoint: {binding.display}")
        state = store.load(binding.identity)
    else:
        state = peek if peek is not None else store.read()
    others: list[str] = []
    notices: list[str] = []
    for name, connector in sorted(connectors().items()):
        if name == root_name or (wanted is not None and name not in wanted):
            continue
        declared = desired is not None and bool(desired.others_declared.get(name))
        if desired is not None and desired.only is not None:
            # plan --changed-since: only a provider with a changed manifest is read.
            if desired.others.get(name):
                others.append(name)
            continue
        section = state.providers.get(name)
        recorded = section is not None and any(section.resources.values())
        if declared or (only is not None and name in only):
            others.append(name)
        elif recorded:
            if options.sandbox_dir is not None or connector.configured(env, options.config):
                others.append(name)
            elif options.prune:
                raise ConfigError(
                    f"the state records {name} resources that --prune may delete, but no"
                    f" {name} endpoint is configured; configure it or leave out --prune"
                )
            else:
                notices.append(
                    f"the state records {name} resources that were not checked: no {name}"
                    " endpoint is configured in this run"
                )
    if not root_in and not others:
        which = f"the {options.provider} provider" if options.provider else "any provider"
        raise ConfigError(
            f"nothing to check: no manifest declares a resource of {which} and the state"
            " records none"
        )
    proxy = proxy_variable(env)
    if proxy is not None and options.sandbox_dir is None:
        taking_part = [name for name in (root_name if root_in else None, *others) if name]
        direct = [name for name in taking_part if is_direct(name)]
        if direct:
            # Said, not silently ignored: a pipeline behind a proxy must know why it cannot
            # connect. Only the shared transport's lanes connect directly.
            reporter.say(
                f"Warning: {proxy} is set, but the {' and '.join(direct)} clients do not use"
                " proxies: they connect to their endpoints directly"
            )
    for notice in notices:
        reporter.say(f"Warning: {notice}")
    names = ([root_name] if root_in else []) + others
    return Fleet(state, names, binding, notices)


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy")  # fmt: skip


def is_direct(name: str) -> bool:
    """Whether the provider's client runs on the shared transport's lanes, which never use a
    proxy (it says so on its registry entry; asked only of the providers taking part)."""
    from reconciler.providers.registry import PROVIDERS

    return bool(getattr(PROVIDERS[name], "direct", False))


def proxy_variable(env: Mapping[str, str]) -> str | None:
    """The first proxy variable set (non-empty), if any."""
    return next((name for name in PROXY_VARIABLES if env.get(name)), None)


def sections_of(fleet: Fleet) -> dict[str, Section]:
    """Each provider's section of the state. The provider that binds the state keeps its
    records typed at the state's root and works on the run's context (``attach``): it is
    given a detached section, never one saved beside its records."""
    from reconciler.state import ProviderState

    binder = root_provider() if fleet.binding is not None else None
    return {
        name: ProviderState(endpoint=fleet.state.endpoint)
        if name == binder
        else fleet.state.providers.setdefault(name, ProviderState())
        for name in fleet.names
    }


def scope_of(desired: Desired | None, options: FleetOptions, notices: Sequence[str]) -> Scope:
    from reconciler.engine.session import Scope
    from reconciler.providers.registry import PROVIDERS

    declared: frozenset[str] = frozenset()
    selectors: dict[str, str] = {}
    only: frozenset[str] | None = None
    if desired is not None:
        declared = frozenset(key for keys in desired.others_declared.values() for key in keys)
        declared |= desired.declared
        selectors = dict(desired.selectors)
    targets = frozenset(options.targets)
    if desired is not None and desired.only is not None:
        # plan --changed-since: read and plan only the resources whose manifests changed
        # (the keys of manifests removed since included: still prune candidates).
        only = desired.only | {
            PROVIDERS[name].resource_key(item.app)
            for name, items in desired.others.items()
            for item in items
        }
        targets = only
    return Scope(
        selectors=selectors,
        targets=targets,
        prune=options.prune,
        declared=declared,
        notices=tuple(notices),
        only=only,
    )


def endpoint_settings() -> dict[str, str]:
    """What to set to configure each provider, from its registry descriptor's variables (the
    optional ones left out): ``AKANA_BASE_URL, AKANA_EMAIL and AKANA_PASSWORD``."""
    from reconciler.providers.registry import DESCRIPTORS

    out: dict[str, str] = {}
    for descriptor in DESCRIPTORS:
        names = [n for n, what in descriptor.variables if not what.startswith("optional")]
        if names:
            out[descriptor.name] = (
                names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            )
    return out


async def open_sessions(
    stack: AsyncExitStack,
    fleet: Fleet,
    options: FleetOptions,
    reporter: Reporter,
    *,
    say: bool = True,
    run: RunContext | None = None,
) -> Sessions:
    """The sessions of every provider taking part, each given ``run`` when it asks for the
    run's context (``attach``). The endpoint the state is bound to was said already."""
    from reconciler.engine.service import attach
    from reconciler.engine.service import open_sessions as open_each

    sessions = await open_each(
        stack,
        connectors(),
        fleet.names,
        fleet_env(options),
        sandbox_dir=options.sandbox_dir,
        config=options.config,
        parallelism=options.parallelism,
        settings=endpoint_settings(),
        keep_sandbox=options.keep_sandbox,
    )
    if run is not None:
        attach(sessions, run)
    binder = root_provider() if fleet.binding is not None else None
    for name, session in sorted(sessions.by_name.items()) if say else ():
        if name != binder:
            reporter.say(f"Endpoint ({name}): {session.display}")
    return sessions


@contextmanager
def reads_shown(reporter: Reporter) -> Iterator[Callable[[str], None] | None]:
    """The live reads of a plan, counted per provider for a reporter that shows them (its
    optional ``progress_read(provider)``; ``progress_read_end()`` once planning ends, however
    it ends): what to give ``plan_parts`` as ``on_read``."""
    on_read = getattr(reporter, "progress_read", None)
    try:
        yield on_read
    finally:
        if (end := getattr(reporter, "progress_read_end", None)) is not None:
            end()


@dataclass(frozen=True)
class FleetPlan:
    merged: Plan
    parts: Mapping[str, Plan]


async def plan_fleet(
    fleet: Fleet,
    desired: Desired,
    options: FleetOptions,
    notices: Sequence[str],
    reporter: Reporter,
) -> FleetPlan:
    """Every taking part provider's plan, read concurrently, merged into one."""
    from reconciler.engine.service import merge_plans, plan_parts, raise_if_all_stuck
    from reconciler.engine.session import RunContext

    scope = scope_of(desired, options, [*notices, *fleet.notices])
    run = RunContext(state=fleet.state, probe_window=options.probe_window)
    async with AsyncExitStack() as stack:
        sessions = await open_sessions(stack, fleet, options, reporter, run=run)
        models = {name: desired.models(name) for name in fleet.names}
        with reads_shown(reporter) as on_read:
            parts = await plan_parts(sessions, models, sections_of(fleet), scope,
                                     on_read=on_read)  # fmt: skip
    # Every provider stuck: nothing was read, the run stops on the first error (exit 1).
    ordered = [parts[name] for name in fleet.names]
    raise_if_all_stuck(ordered)
    merged = merge_plans(
        ordered,
        max_deletes=options.max_deletes,
        state_lineage=fleet.state.lineage if fleet.state.serial else None,
        state_serial=fleet.state.serial,
    )
    return FleetPlan(merged, parts)


def split_saved(saved: Plan) -> dict[str, Plan]:
    """A saved plan covers one provider (engine.plan_file): its part, by provider."""
    (name,) = saved.endpoints
    return {name: saved}
