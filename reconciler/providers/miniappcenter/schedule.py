"""When each write of a plan may start: which earlier writes of its app it waits for, and the
``--parallelism`` slots every app's writes share.

The writes of one app used to run one at a time; most of them are independent (an app with
1,000 attributes took 1,000 round trips). They now run concurrently, ordered only where it
matters, by two kinds of edge:

- ``depends_on`` (the plan's): wait for it, and run only if it was applied;
- conflicts (here): wait for it to finish, whatever its outcome, because both touch the same
  thing. The app's create and delete touch everything (a barrier: the app exists before any
  of its parts are written, and is deleted after them); otherwise two writes conflict when
  they touch the same resource: one attribute, one location (by name), one version. A
  version's create or update, and each of its review steps, holds its version alone; its
  compatibility adds and removes run together (each one sav), after the create or update and
  before the next review step. So the review steps of a version run in plan order.

Versions are never deleted (the API cannot), so no "create before delete" rule exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from reconciler.address import Address
from reconciler.engine.plan import Change


@dataclass
class _Lane:
    """The writes of one resource since its last exclusive write."""

    exclusive: int | None = None
    shared: list[int] = field(default_factory=list)


def _lane(change: Change) -> tuple[str, str, bool] | None:
    """(kind, key, exclusive) of the resource a write touches; None for a barrier."""
    if change.kind == "miniapp":
        if change.action == "update":
            return ("miniapp", "", True)
        return None  # create or delete: every other write of the app waits on it
    if change.kind in ("attribute", "location"):
        return (change.kind, change.key or "", True)
    code = change.version_code or change.key or ""
    return ("version", code, change.kind != "compatibility")


def write_waits(changes: Sequence[Change]) -> list[tuple[int, ...]]:
    """For each change of ONE app (in plan order), the indices of the earlier changes it
    waits for: its ``depends_on`` and its conflicts (see the module docstring). Linear in
    the number of changes."""
    position: dict[Address, int] = {}
    lanes: dict[tuple[str, str], _Lane] = {}
    barrier: int | None = None
    since_barrier: list[int] = []
    waits: list[tuple[int, ...]] = []
    for index, change in enumerate(changes):
        before: set[int] = {position[d] for d in change.depends_on if d in position}
        lane = _lane(change)
        if lane is None:
            before.update(since_barrier)
            if barrier is not None:
                before.add(barrier)
            barrier, since_barrier = index, []
            lanes.clear()
        else:
            kind, key, exclusive = lane
            if barrier is not None:
                before.add(barrier)
            state = lanes.setdefault((kind, key), _Lane())
            if state.exclusive is not None:
                before.add(state.exclusive)
            if exclusive:
                before.update(state.shared)
                state.exclusive, state.shared = index, []
            else:
                state.shared.append(index)
            since_barrier.append(index)
        position[change.address] = index
        waits.append(tuple(sorted(before)))
    return waits


def critical_path(changes: Sequence[Change]) -> int:
    """The most writes of one app that must run one after another (the longest chain of
    waits): with unlimited parallelism, the app takes this many round trips."""
    depth: list[int] = []
    for before in write_waits(changes):
        depth.append(1 + max((depth[i] for i in before), default=0))
    return max(depth, default=0)


class Slots:
    """``--parallelism`` slots shared by every app's writes. A freed slot goes to the waiting
    write that comes first in the plan (its app first, then its place in the app), so the
    apps finish roughly in plan order and a stop (Ctrl-C) leaves few apps half-applied,
    rather than every app's first write going before any app's second."""

    def __init__(self, size: int) -> None:
        self._free = max(1, size)
        self._waiting: list[tuple[tuple[int, int], int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, rank: tuple[int, int]) -> AsyncIterator[None]:
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: tuple[int, int]) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a cancelled waiter is skipped
                granted.set_result(None)
                return
        self._free += 1
