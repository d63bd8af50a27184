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
from collections.abc import Collection, Mapping, Sequence
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
) -> ProbeResult:
    """Read ids ``after+1`` .. ``after+window`` (minus ``skip_ids``) of ``app_id`` until every
    code in ``wanted`` (code -> the fields sent) is found exactly; then, for codes without an
    exact match, the first version with that code, unless ``exact_only``: after our own
    unanswered create, a same-code version with other fields may be another app's (a server
    that does not scope version ids by app); not found, the create is sent again and a
    duplicate refusal says whether the code really exists in this app."""
    result = ProbeResult(first=after + 1, last=after)
    exact: dict[str, VersionData] = {}
    same_code: dict[str, VersionData] = {}
    # Batches of 1, 2, 4, ... up to `parallelism` reads: an unanswered create is nearly
    # always the next id, so the common case costs one read, and a far one few round trips.
    batch_size = 1
    next_id = after + 1
    end = after + max(0, window)
    skip = set(skip_ids)
    while next_id <= end and len(exact) < len(wanted):
        batch: list[int] = []
        while next_id <= end and len(batch) < batch_size:
            if next_id not in skip:
                batch.append(next_id)
            next_id += 1
        answers = await asyncio.gather(*(client.get_version(app_id, vid) for vid in batch))
        batch_size = min(batch_size * 2, max(1, parallelism))
        result.reads += len(batch)
        result.last = next_id - 1
        for version in answers:
            if version is None or version.code not in wanted:
                continue
            code = version.code
            if code not in exact and matches(version, code, wanted[code]):
                exact[code] = version
            elif code not in same_code:
                same_code[code] = version
    fallback = {} if exact_only else {c: v for c, v in same_code.items() if c not in exact}
    result.found = {**fallback, **exact}
    result.exact = set(exact)
    return result


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
    skip = state.recorded_version_ids()
    jobs: list[tuple[str, int, dict[str, dict[str, Any]], bool]] = []
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
        jobs.extend((app.id, after, wanted, exact) for (after, exact), wanted in groups.items())

    async def one(
        app_id: str, after: int, wanted: dict[str, dict[str, Any]], exact_only: bool
    ) -> None:
        try:
            result = await probe_versions(
                client, app_id, wanted, after=after, window=window, skip_ids=skip,
                parallelism=parallelism, exact_only=exact_only,
            )
        except ReconcilerError as error:
            if not transient(error):
                raise
            # Only this app waits: what it could not find is looked for again next run.
            live.unread[app_id] = (
                f"its versions could not be looked for ({error}); nothing of it was changed,"
                " the next run reads on"
            )
            return
        current = live.apps[app_id]
        assert current is not None
        live.apps[app_id] = with_probe_result(current, wanted, result)
        for code, found in result.found.items():
            # A saved plan's adoption is checked against this before apply records it.
            live.fingerprints[version_address(app_id, code)] = fingerprint(found)

    # Each probe sends `parallelism` reads at a time; the client's pool (one lane per slot)
    # bounds what is in flight across apps.
    try:
        async with asyncio.TaskGroup() as group:
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
    for code in wanted:
        found = result.found.get(code)
        if found is None:
            not_found[code] = ProbeMiss(result.range, result.reads)
            continue
        recovered[code] = ProbeHit(result.range, result.reads, found.id, code in result.exact)
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
