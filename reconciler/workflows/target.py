"""Where a run keeps its state: the state store, and the notice when it holds none yet.
(Each provider's endpoint is its connector's: see reconciler.providers.registry.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.limits import DEFAULT_SANDBOX_DB

if TYPE_CHECKING:
    from reconciler.state import StateStore
    from reconciler.workflows.report import Reporter

__all__ = ["DEFAULT_SANDBOX_DB", "state_notices", "state_store"]

def state_store(state: Path | str | None, target_is_sandbox: bool) -> StateStore:
    from reconciler.state import DEFAULT_STATE_DIR, default_state_path, open_state_store

    if state is not None:
        return open_state_store(state)
    if target_is_sandbox:
        return open_state_store(Path.cwd() / DEFAULT_STATE_DIR / "sandbox-state.json")
    return open_state_store(default_state_path())


def state_notices(
    store: StateStore, reporter: Reporter | None, providers: Iterable[str] | None = None
) -> tuple[str, ...]:
    """A missing state file is said, never silent: a deleted CI cache or a mistyped
    RECONCILER_STATE must not look like a normal run. Said to ``reporter`` (None: not said,
    a saved plan carries its own) and returned for the plan's warnings (JSON, Markdown).
    ``providers``: the ones taking part (None: every registered one); only they are asked
    what they adopt, so that no other provider is imported for the words."""
    if store.exists():
        return ()
    notices = (
        f"no state file was found at {store.describe()}: starting from the API."
        f" {_adopted(providers)},"
        " and their versions found by reading (a first run, or a lost state file: check"
        " --state / RECONCILER_STATE if you expected one)",
    )
    if reporter is not None:
        for notice in notices:
            reporter.say(f"Warning: {notice}")
    return notices


def _adopted(providers: Iterable[str] | None) -> str:
    """What a first run adopts, from what each provider taking part declares on its registry
    entry."""
    from reconciler.providers.registry import PROVIDERS

    names = list(PROVIDERS) if providers is None else [n for n in PROVIDERS if n in set(providers)]
    chosen = [PROVIDERS[name] for name in names]
    adopts = [getattr(p, "first_run_adopts", None) for p in chosen]
    caveats = [getattr(p, "first_run_caveat", None) for p in chosen]
    text = f"{' and '.join(a for a in adopts if a) or 'Resources'} that exist there are adopted"
    if any(caveats):
        text += f" ({'; '.join(c for c in caveats if c)})"
    return text
