"""Apply Akana changes: a closed table of handlers, one per ``(kind, action)``, each doing one
write with :class:`AkanaClient` and recording its result in the state's Akana section.

A create whose answer is lost is resolved by the client (it lists and matches the Name); a
:class:`WriteNotDoneError` (proven not done) leaves the change failed and the section as it
was, so the next run creates it again. One app's changes run in order and stop at its first
failure (a version is never deleted after its replacement failed to be added); different apps
run in parallel, and an app that hangs holds only its own worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.engine.normalization import answered_fields, normalized_note
from reconciler.engine.plan import AppMeta, Change, Fact
from reconciler.errors import AmbiguousWriteError, ReconcilerError
from reconciler.providers.akana.client import AkanaApiError, AkanaClient
from reconciler.providers.akana.diff import Adoption
from reconciler.providers.akana.live import live_app, live_version
from reconciler.providers.akana.records import AkanaSection, AppRecord, VersionRecord
from reconciler.providers.akana.vocabulary import ROOT_KIND, VERSION_KIND
from reconciler.providers.akana.wire import AppCreate, AppUpdate, VersionCreate, VersionUpdate
from reconciler.secrets import bounded

Handler = Callable[[AkanaClient, Change, AkanaSection], Awaitable[str]]
Status = Literal["done", "failed", "skipped"]
DEFAULT_PARALLELISM = 4


class NotRecordedError(ReconcilerError):
    """A change to an app the state does not record (and the plan did not adopt)."""


class LastVersionError(ReconcilerError):
    """A version delete that would leave its app without versions (so delete the app)."""


def _fields(after: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (after or {}).items() if k not in ("id", "name", "version")}


def _record(section: AkanaSection, change: Change) -> AppRecord:
    record = section.apps.get(change.app_id)
    if record is None:
        raise NotRecordedError(
            f"{change.address}: the state does not record this Akana app; make the plan again"
        )
    return record


def _target_id(change: Change) -> str:
    value = (change.before or {}).get("id")
    if not isinstance(value, str):
        raise NotRecordedError(f"{change.address}: the plan does not say which server object")
    return value


async def create_app(client: AkanaClient, change: Change, section: AkanaSection) -> str:
    body = AppCreate.model_validate(change.payload)
    # In doubt until the outcome is known: a run that stops here (its answer and the re-read
    # both lost, or interrupted) leaves the next plan a Name to look up, not an unmanaged app.
    section.in_doubt.add(change.app_id)
    try:
        app_id = await client.create_app(body)
    except AmbiguousWriteError:
        raise
    except ReconcilerError:
        section.in_doubt.discard(change.app_id)  # refused, or proven not done
        raise
    old = section.apps.get(change.app_id)
    record = AppRecord(
        id=app_id,
        protect=old.protect if old else False,
        labels=dict(old.labels) if old else {},
        fields=_fields(change.after),
    )
    # Recorded before any further read: the AppID is known, whatever fails next.
    section.apps[change.app_id] = record
    section.in_doubt.discard(change.app_id)
    # The create answers the AppID only: the first version's id is read from its app.
    try:
        versions = await client.list_versions(app_id)
    except ReconcilerError as exc:
        return f"created AppID {app_id} (its first version's id is not known yet: {exc})"
    first = (change.after or {}).get("version") or {}
    found = next((v for v in versions if v.name == body.version.name), None)
    if found is not None:
        # The listing is the platform's answer for the first version: learned like an update's.
        sent = _fields(first)
        record.versions[body.version.name] = VersionRecord(
            id=found.version_id, fields=sent,
            answered=answered_fields(sent, live_version(found).fields),
        )  # fmt: skip
    return f"created AppID {app_id}"


async def update_app(client: AkanaClient, change: Change, section: AkanaSection) -> str:
    record = _record(section, change)
    detail = await client.update_app(record.id, AppUpdate.model_validate(change.payload))
    sent = _fields(change.after)
    answer = live_app(detail).fields  # the app as the platform now has it
    record.fields = {**record.fields, **sent}
    record.answered = {**record.answered, **answered_fields(sent, answer)}
    note = normalized_note(sent, answer)
    return f"updated; {note}" if note else "updated"


async def delete_app(client: AkanaClient, change: Change, section: AkanaSection) -> str:
    app_id = _target_id(change)
    try:
        await client.delete_app(app_id)
        note = "deleted (with its versions)"
    except AkanaApiError as exc:
        if exc.status != 404:
            raise
        note = "already gone"
    record = section.apps.get(change.app_id)
    if record is not None and record.id == app_id:
        del section.apps[change.app_id]
    return note


async def create_version(client: AkanaClient, change: Change, section: AkanaSection) -> str:
    record = _record(section, change)
    version_id = await client.add_version(record.id, VersionCreate.model_validate(change.payload))
    assert change.key is not None
    record.versions[change.key] = VersionRecord(id=version_id, fields=_fields(change.after))
    return f"created AppVersionID {version_id}"


async def update_version(client: AkanaClient, change: Change, section: AkanaSection) -> str:
    record = _record(section, change)
    version = await client.update_version(
        _target_id(change), VersionUpdate.model_validate(change.payload)
    )
    assert change.key is not None
    sent = _fields(change.after)
    answer = live_version(version).fields  # the version as the platform now has it
    record.versions[change.key] = VersionRecord(
        id=_target_id(change), fields=sent, answered=answered_fields(sent, answer)
    )
    note = normalized_note(sent, answer)
    return f"updated; {note}" if note else "updated"


async def delete_version(client: AkanaClient, change: Change, section: AkanaSection) -> str:
    record = _record(section, change)
    version_id = _target_id(change)
    # The platform deletes an app with its last version: a version change never does that,
    # whatever happened since the plan (one read buys the guarantee).
    others = [v for v in await client.list_versions(record.id) if v.version_id != version_id]
    if not others:
        raise LastVersionError(
            f"{change.address}: refusing to delete the app's only version (that would delete"
            " the app); add its replacement first"
        )
    await client.delete_version(version_id)
    assert change.key is not None
    record.versions.pop(change.key, None)
    return "deleted"


DISPATCH: Mapping[tuple[str, str], Handler] = {
    (ROOT_KIND, "create"): create_app,
    (ROOT_KIND, "update"): update_app,
    (ROOT_KIND, "delete"): delete_app,
    (VERSION_KIND, "create"): create_version,
    (VERSION_KIND, "update"): update_version,
    (VERSION_KIND, "delete"): delete_version,
}


@dataclass(frozen=True)
class ChangeResult:
    change: Change
    status: Status
    note: str | None = None  # what was done, or why it failed or was skipped


def record_adoptions(section: AkanaSection, learned: Sequence[Fact]) -> int:
    """Record the apps a plan adopts (its :class:`Adoption` facts); how many were new."""
    count = 0
    for item in learned:
        if not isinstance(item, Adoption):
            continue
        section.in_doubt.discard(item.name)
        old = section.apps.get(item.name)
        if old is not None and old.id == item.server_id:
            continue
        # New, or replacing a record whose app is gone (its protection and labels kept).
        section.apps[item.name] = AppRecord(
            id=item.server_id,
            protect=old.protect if old else False,
            labels=dict(old.labels) if old else {},
            versions={name: VersionRecord(id=vid) for name, vid in item.versions.items()},
        )
        count += 1
    return count


def record_meta(section: AkanaSection, app_meta: Mapping[str, AppMeta]) -> None:
    """Labels and protection live only in the state: kept for every recorded app."""
    for name, meta in app_meta.items():
        record = section.apps.get(name)
        if record is not None:
            record.protect = meta.protect
            record.labels = dict(meta.labels)


async def apply_changes(
    client: AkanaClient,
    changes: Sequence[Change],
    section: AkanaSection,
    *,
    parallelism: int = DEFAULT_PARALLELISM,
    on_result: Callable[[ChangeResult], None] | None = None,
    learned: Sequence[Fact] = (),
    app_meta: Mapping[str, AppMeta] | None = None,
    before_write: Callable[[Change], Awaitable[None]] | None = None,
    settled: Callable[[ChangeResult], Awaitable[None]] | None = None,
) -> list[ChangeResult]:
    """Apply ``changes`` (in plan order; grouped by their app): each app's in order, stopping at
    its first failure (the rest are skipped), ``parallelism`` apps at a time.

    ``before_write`` is awaited before each write is sent (e.g. to make an intent durable) and
    ``settled`` after each change's result, before the next change of that app starts (e.g.
    to make the write's record durable): an exception from either stops the run."""
    record_adoptions(section, learned)
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.app_id, []).append(change)
    queue: asyncio.Queue[list[Change]] = asyncio.Queue()
    for group in groups.values():
        queue.put_nowait(group)
    results: list[ChangeResult] = []

    async def emit(result: ChangeResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)
        if settled is not None:
            await settled(result)

    async def run_app(group: list[Change]) -> None:
        for index, change in enumerate(group):
            handler = DISPATCH.get((change.kind, change.action))
            if handler is None or change.step is not None:
                await emit(ChangeResult(change, "failed", "not an Akana operation"))
            else:
                if before_write is not None:
                    await before_write(change)
                try:
                    note = await handler(client, change, section)
                except ReconcilerError as exc:
                    await emit(ChangeResult(change, "failed", bounded(str(exc), 1000)))
                else:
                    await emit(ChangeResult(change, "done", note))
                    continue
            for rest in group[index + 1 :]:
                await emit(ChangeResult(rest, "skipped", f"{change.address} failed first"))
            return
        name = group[0].app_id
        if app_meta is not None and name in app_meta:
            # This app's entry only: walking all of app_meta here, once per app, was
            # quadratic in the fleet's size.
            record_meta(section, {name: app_meta[name]})

    async def worker() -> None:
        while True:
            try:
                group = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await run_app(group)

    await asyncio.gather(*(worker() for _ in range(max(1, min(parallelism, len(groups))))))
    if app_meta is not None:
        record_meta(section, app_meta)  # apps adopted or unchanged keep their labels too
    return results
