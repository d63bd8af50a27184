"""Where state lives: the :class:`StateStore` protocol every store implements (what the
workflows need: load, lock, record each write durably, save) and the choice of a store from
``--state`` / ``RECONCILER_STATE``. The stores are imported on use: a file state never loads
the PostgreSQL driver.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from reconciler.state.model import DEFAULT_STATE_DIR, AppRecord, JournalPath, LockInfo, State


class StateStore(Protocol):
    """Where state lives. The planner only ever sees a loaded :class:`State`."""

    def load(self, endpoint: str) -> State: ...

    def read(self) -> State: ...

    def save(self, state: State) -> None: ...

    async def record(
        self, app_id: str, record: AppRecord | None, paths: Sequence[JournalPath] = ()
    ) -> None: ...

    async def record_resource(
        self, provider: str, kind: str, key: str, record: Mapping[str, Any] | None
    ) -> None:
        """Another provider's completed write, durable once this returns."""
        ...

    def ensure_base(self, state: State) -> None: ...

    @property
    def dirty(self) -> bool: ...

    def lock(
        self, operation: str, *, apps: Collection[str] | None = None, timeout: float = 0.0
    ) -> contextlib.AbstractContextManager[LockInfo]:
        """Exclusive right to write. ``apps``: the apps the run may write (a store that locks
        per app locks only those; None: everything). ``timeout``: seconds a store that can
        wait for a holder waits before failing."""
        ...

    def unlock(self, lock_id: str) -> LockInfo: ...

    def describe(self) -> str: ...

    def exists(self) -> bool: ...


def default_state_path(env: dict[str, str] | None = None, cwd: Path | None = None) -> Path:
    env = env if env is not None else dict(os.environ)
    if env.get("RECONCILER_STATE"):
        return Path(env["RECONCILER_STATE"])
    return (cwd or Path.cwd()) / DEFAULT_STATE_DIR / "state.json"


def open_state_store(location: Path | str) -> StateStore:
    """The store ``--state`` / RECONCILER_STATE names: ``postgresql://...`` is a database
    (reconciler.state.pg), anything else a file."""
    if isinstance(location, str) and location.startswith(("postgresql://", "postgres://")):
        from reconciler.state.pg import PgStateStore

        return PgStateStore(location)
    from reconciler.state.file import FileStateStore

    return FileStateStore(Path(location))
