"""Find versions the state does not know, by reading (never by asking a person).

The API cannot list versions, but it assigns their ids in sequence and reads any one by id.
So a version whose create went unanswered (timeout, dropped connection, 5xx), whose create was
refused as a duplicate, or that exists on an app the state lost, is found by reading
``GET .../versions/{id}`` for ids above a lower bound, a batch at a time (growing up to
``parallelism`` reads at once), stopping as soon as every wanted code is found. The window
bounds the cost of one run; the next run goes on from where this one stopped.

A read matches a wanted version when its code and every plain field that was sent are the
same (the real server might not scope version ids by app, so the code alone could name
another app's version). Only when no exact match is in the window is a version with the same
code but other fields taken: the manifest changed since it was created, and the plan then
shows those fields as updates. Ids the state records for other versions are never read.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.providers.miniappcenter.addresses import version_address
from reconciler.providers.miniappcenter.client import MiniAppCenterClient, VersionData
from reconciler.providers.miniappcenter.fetch import (
    LiveState,
    fingerprint,
    live_version,
    transient,
)
from reconciler.providers.miniappcenter.model import (
    VERSION_OBJECT_FIELDS,
    LiveApp,
    MiniApp,
    ProbeHit,
    ProbeMiss,
    version_fields,
)
from reconciler.providers.miniappcenter.vocabulary import DEFAULT_PROBE_WINDOW
from reconciler.state import UNKNOWN, State


@dataclass
class ProbeResult:
    found: dict[str, VersionData] = field(default_factory=dict)  # code -> the version read
    exact: set[str] = field(default_factory=set)  # codes found with every sent field
    reads: int = 0
    first: int = 0  # first id read
    last: int = 0  # last id read (the next run starts above it)

    @property
    def range(self) -> tuple[int, int]:
        return (self.first, self.last)


def matches(version: VersionData, code: str, sent: Mapping[str, Any]) -> bool:
    """Same code and every plain field that was sent (object fields read back as URLs)."""
    if version.code != code:
        return False
    live = live_version(code, version)
    return all(
        getattr(live, name) == value
        for name, value in sent.items()
        if name not in VERSION_OBJECT_FIELDS and name != "code"
    )


def ascending(after: int) -> Iterator[int]:
    """Ids ``after+1``, ``after+2``, ...: where a version created after the mark is."""
    return itertools.count(after + 1)


def around(center: int, *, floor: int = 1, ceiling: int | None = None) -> Iterator[int]:
    """Ids nearest ``center`` first (``center``, +1, -1, +2, -2, ...), none below ``floor``
    nor above ``ceiling``: where a version is likely to be when its neighbours' ids say so."""
    top = ceiling
    center = max(center, floor)
    if top is not None:
        center = min(center, top)
        if center < floor:
            return
    yield center
    for distance in itertools.count(1):
        up, down = center + distance, center - distance
        up_ok = top is None or up <= top
        if up_ok:
            yield up
        if down >= floor:
            yield down
        elif not up_ok:
            return


async def probe_versions(
    client: MiniAppCenterClient,
    app_id: str,
    wanted: Mapping[str, Mapping[str, Any]],
    *,
    after: int,
    window: int,
    skip_ids: Collection[int] = (),
    parallelism: int = 16,
    exact_only: bool = False,
    order: Iterator[int] | None = None,
    ceiling: int | None = None,
) -> ProbeResult:
    """Read at most ``window`` version ids of ``app_id`` (ids in ``skip_ids`` are not read
    and cost nothing), in ``order`` (default: ascending from ``after+1``), until every code
    in ``wanted`` (code -> the fields sent) is found exactly; then, for codes without an
    exact match, the first version with that code, unless ``exact_only``: after our own
    unanswered create, a same-code version with other fields may be another app's (a server
    that does not scope version ids by app); not found, the create is sent again and a
    duplicate refusal says whether the code really exists in this app. ``ceiling``: no id
    above it is read (:func:`probe_ceiling`)."""
    ids = order if order is not None else ascending(after)
    result = ProbeResult(first=after + 1, last=after)
    exact: dict[str, VersionData] = {}
    same_code: dict[str, VersionData] = {}
    # Batches of 1, 2, 4, ... up to `parallelism` reads: an unanswered create is nearly
    # always the next id, so the common case costs one read, and a far one few round trips.
    batch_size = 1
    budget = max(0, window)
    # A set is used as it is: ids found for other apps while this probe runs join it.
    skip = skip_ids if isinstance(skip_ids, set) else set(skip_ids)
    lowest: int | None = None
    highest = after
    exhausted = False
    while not exhausted and result.reads < budget and len(exact) < len(wanted):
        batch: list[int] = []
        while len(batch) < min(batch_size, budget - result.reads):
            vid = next(ids, None)
            if vid is None or (ceiling is not None and vid > ceiling):
                exhausted = True  # a bounded order ran out, or ascending passed the ceiling
                break
            if vid not in skip:
                batch.append(vid)
        if not batch:
            break
        answers = await asyncio.gather(*(client.get_version(app_id, vid) for vid in batch))
        batch_size = min(batch_size * 2, max(1, parallelism))
        result.reads += len(batch)
        lowest = min(batch) if lowest is None else min(lowest, *batch)
        highest = max(highest, *batch)
        for version in answers:
            if version is None or version.code not in wanted:
                continue
            code = version.code
            if code not in exact and matches(version, code, wanted[code]):
                exact[code] = version
            elif code not in same_code:
                same_code[code] = version
    # Every id from the first to the last read was read or skipped (both orders read a
    # contiguous range): the next run goes on above ``last``.
    result.first = lowest if lowest is not None else after + 1
    result.last = highest
    fallback = {} if exact_only else {c: v for c, v in same_code.items() if c not in exact}
    result.found = {**fallback, **exact}
    result.exact = set(exact)
    return result


def probe_ceiling(state: State, parallelism: int) -> int | None:
    """The highest id an unanswered create of ours can have landed on, but for a version
    made elsewhere meanwhile: the highest id the endpoint answered, plus one for every
    create whose answer is still unknown, plus the creates that may be in flight. A miss
    below it means the create did not land, and it is sent again: the server refuses a code
    it already has, and that refusal sends a probe with no ceiling. So an unanswered create
    that did not land costs a few reads, not ``--probe-window``. None when the state knows
    no id at all (a lost state): nothing bounds where the versions are."""
    mark = state.version_mark()
    if mark == 0:
        return None
    unresolved = sum(
        1
        for record in state.apps.values()
        for version in record.versions.values()
        if version.create_outcome is not None
    )
    return mark + unresolved + 2 * max(1, parallelism)


class _Neighbours:
    """Where the versions of an app the state lost probably are, from its neighbours'.

    A fleet this tool created was created in plan order, and the server hands out version
    ids in increasing order across the endpoint: so an app's versions sit about as many ids
    after its nearest placed neighbour's (in plan order) as the versions declared between
    them. The ids the state records, and those found in this run, place the neighbours."""

    def __init__(self, desired: Sequence[MiniApp], state: State) -> None:
        self.index: dict[str, int] = {}
        self.declared_before: list[int] = []  # by plan index: versions declared before it
        count = 0
        for app in desired:
            self.index[app.id] = len(self.declared_before)
            self.declared_before.append(count)
            if not app.absent:
                count += len(app.spec.versions or ())
        self.first_id: dict[int, int] = {}  # plan index -> its lowest version id known
        self.placed_at: list[int] = []  # those plan indexes, sorted (nearest by bisection)
        for app in desired:
            record = state.app(app.id)
            known = [v.id for v in record.versions.values() if v.id] if record else []
            if known:
                self._place(self.index[app.id], min(known))

    def _place(self, i: int, first: int) -> None:
        if i not in self.first_id:
            bisect.insort(self.placed_at, i)
        self.first_id[i] = first

    def placed(self, app_id: str, ids: Collection[int]) -> None:
        if ids:
            self._place(self.index[app_id], min(ids))

    def center(self, app_id: str) -> int:
        """The likeliest id of the app's first version (the fresh endpoint's when no
        neighbour is placed yet)."""
        i = self.index[app_id]
        if not self.placed_at:
            return self.declared_before[i] + 1
        at = bisect.bisect_left(self.placed_at, i)
        # The nearest placed neighbour in plan order; the one before wins a tie.
        candidates = self.placed_at[max(0, at - 1):at + 1]
        near = min(candidates, key=lambda j: (abs(j - i), j > i))
        return self.first_id[near] + self.declared_before[i] - self.declared_before[near]


async def recover_unknown_versions(
    client: MiniAppCenterClient,
    desired: Sequence[MiniApp],
    state: State,
    live: LiveState,
    *,
    window: int = DEFAULT_PROBE_WINDOW,
    parallelism: int = 16,
) -> None:
    """Before the plan: look for the versions the state cannot place, and put what was found
    into ``live`` (in place), so the diff plans from facts rather than asking a person.

    - an app on the server that the state does not know (a lost state file, or made
      outside): each of its declared versions, from id 1;
    - a version whose create went unanswered in an earlier run (above the mark recorded
      with that create), or that the server said exists (refused as a duplicate): on from
      where the last probe stopped.
    """
    skip = set(state.recorded_version_ids())
    neighbours = _Neighbours(desired, state)
    ceiling = probe_ceiling(state, parallelism)
    jobs: list[tuple[str, int, dict[str, dict[str, Any]], bool]] = []
    lost: list[tuple[str, dict[str, dict[str, Any]]]] = []  # apps the state does not know
    for app in desired:
        live_app = live.apps.get(app.id)
        if app.absent or app.spec.versions is None or live_app is None:
            continue
        record = state.app(app.id)
        # (where to start, exact matches only) -> the codes looked for there
        groups: dict[tuple[int, bool], dict[str, dict[str, Any]]] = {}
        for version in app.spec.versions:
            known = record.versions.get(version.code) if record is not None else None
            if record is None:
                key = (0, False)
            elif known is not None and known.create_outcome is not None:
                # Our own unanswered create: only an exact match is ours (probe_versions).
                after = max(known.probe_from or 0, known.probed_to or 0)
                key = (after, known.create_outcome == UNKNOWN)
            else:
                continue
            groups.setdefault(key, {})[version.code] = version_fields(version)
        if record is None and groups:
            lost.append((app.id, groups[(0, False)]))
            continue
        jobs.extend((app.id, after, wanted, exact) for (after, exact), wanted in groups.items())

    async def one(
        app_id: str, after: int, wanted: dict[str, dict[str, Any]], exact_only: bool,
        order: Iterator[int] | None = None,
    ) -> None:
        try:
            result = await probe_versions(
                client, app_id, wanted, after=after, window=window, skip_ids=skip,
                parallelism=parallelism, exact_only=exact_only, order=order,
                # Only our own unanswered create can be missing: one the server said
                # exists is looked for until found.
                ceiling=ceiling if exact_only else None,
            )
        except ReconcilerError as error:
            if not transient(error):
                raise
            # Only this app waits: what it could not find is looked for again next run.
            live.unread[app_id] = (
                f"the versions of {app_id} could not be looked for ({error}); nothing of it"
                " was changed, the next run looks again"
            )
            return
        current = live.apps[app_id]
        assert current is not None
        live.apps[app_id] = with_probe_result(current, wanted, result)
        for code, found in result.found.items():
            # A saved plan's adoption is checked against this before apply records it.
            live.fingerprints[version_address(app_id, code)] = fingerprint(found)
        # Exact finds only: a same-code version with other fields may sit anywhere.
        placed = {found.id for code, found in result.found.items() if code in result.exact}
        skip.update(placed)  # another app's probe never reads them
        neighbours.placed(app_id, placed)

    # An app the state lost is looked for around where its placed neighbours say, in plan
    # order, a few at a time, so each starts from the latest placements: the first alone
    # (on an endpoint holding other versions it finds the offset), then up to `parallelism`.
    gate = asyncio.Semaphore(max(1, parallelism))

    async def guided(rank: int, app_id: str, wanted: dict[str, dict[str, Any]]) -> None:
        async with gate:
            # An app the state lost while it knows others (its create's answer was lost):
            # its versions, if any, lie below the ceiling; with no state at all, anywhere.
            order = around(neighbours.center(app_id), ceiling=ceiling)
            await one(app_id, 0, wanted, False, order)

    async def all_lost() -> None:
        if not lost:
            return
        await guided(0, *lost[0])
        async with asyncio.TaskGroup() as group:
            for rank, (app_id, wanted) in enumerate(lost[1:], start=1):
                group.create_task(guided(rank, app_id, wanted))

    # Each probe sends `parallelism` reads at a time; the client's pool (one lane per slot)
    # bounds what is in flight across apps.
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(all_lost())
            for app_id, after, wanted, exact_only in jobs:
                group.create_task(one(app_id, after, wanted, exact_only))
    except* ReconcilerError as failures:
        raise failures.exceptions[0] from None


def with_probe_result(
    live_app: LiveApp, wanted: Mapping[str, Mapping[str, Any]], result: ProbeResult
) -> LiveApp:
    """``live_app`` with the versions the probe found added, and the misses noted."""
    recovered = dict(live_app.recovered)
    not_found = dict(live_app.not_found)
    version_ids = dict(live_app.version_ids)
    versions = list(live_app.app.spec.versions or ())
    for rank, code in enumerate(wanted):
        # One probe looked for all of them: its reads are counted once, with the first code.
        reads = result.reads if rank == 0 else 0
        found = result.found.get(code)
        if found is None:
            not_found[code] = ProbeMiss(result.range, reads)
            continue
        recovered[code] = ProbeHit(result.range, reads, found.id, code in result.exact)
        version_ids[code] = found.id
        versions = [v for v in versions if v.code != code] + [live_version(code, found)]
    spec = live_app.app.spec.model_copy(update={"versions": tuple(versions)})
    app = live_app.app.model_copy(update={"spec": spec})
    return live_app.model_copy(
        update={
            "app": app,
            "version_ids": version_ids,
            "recovered": recovered,
            "not_found": not_found,
        }
    )
