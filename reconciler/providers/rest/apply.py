"""Apply REST changes: a closed table of handlers, one per (kind, action), each writing
through :class:`RestClient` and recording the result in the state's section.

- ``create``: ``POST {path}`` with the managed body (an ambiguous answer is resolved by the
  client by listing and matching the natural key, so a lost answer never makes a duplicate);
- ``update``: ``PATCH {path}{id}/`` with the changed managed fields only;
- ``delete``: ``DELETE {path}{id}/`` (already gone counts as done).

Changes of different objects are independent: they run concurrently (``parallelism``), each
under its own deadline, and a failure is one result among the others, never a stop. A 400
names each refused field at the manifest line that sets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.address import Address
from reconciler.engine.normalization import answered_fields, normalized_note
from reconciler.engine.plan import AppMeta, Change, Plan
from reconciler.errors import PlanError, ReconcilerError
from reconciler.providers.rest.client import (
    RestApiError,
    RestClient,
    RestValidationError,
    object_key,
)
from reconciler.providers.rest.model import RestObject, ref_of
from reconciler.providers.rest.records import (
    RestRecord,
    Section,
    drop_record,
    put_record,
    read_records,
)
from reconciler.providers.rest.vocabulary import (
    PROVIDER,
    ROOT_KIND,
    Adopt,
    address_key,
    adoptions_of,
    split_address_key,
)

DEFAULT_PARALLELISM = 8
DEFAULT_CHANGE_DEADLINE = 300.0  # seconds for one change, retries and listing included


@dataclass(frozen=True)
class RestResult:
    change: Change
    ok: bool
    message: str | None = None  # why it failed, or what is worth knowing (a 404 on delete)
    server_id: int | str | None = None


@dataclass(frozen=True)
class _Context:
    section: Section
    meta: Mapping[str, AppMeta]
    objects: Mapping[str, RestObject]
    # Deletes whose target id the state cannot vouch for (a saved plan's ensure: absent of
    # an object never recorded): the object is read first and must carry the change's key.
    confirm: frozenset[str] = frozenset()


Handler = Callable[[RestClient, Change, _Context], Awaitable[RestResult]]


def _where(change: Change) -> tuple[str, str, str]:
    assert change.address.key is not None
    return split_address_key(change.address.key)


def _record(
    change: Change,
    context: _Context,
    server_id: int | str,
    fields: Mapping[str, Any],
    answered: Mapping[str, Any],
) -> RestRecord:
    endpoint, path, key = _where(change)
    key_text = change.address.key or ""
    previous = read_records(context.section).get(key_text)
    meta = context.meta.get(key_text)
    protect = meta.protect if meta else bool(previous and previous.protect)
    labels = dict(meta.labels) if meta else dict(previous.labels) if previous else {}
    return RestRecord(
        id=server_id,
        endpoint=endpoint,
        path=path,
        key_field=change.key or (previous.key_field if previous else ""),
        key=key,
        fields=dict(fields),
        answered=dict(answered),
        protect=protect,
        labels=labels,
    )


class _Unresolved(ReconcilerError):
    """A reference whose target is not there when its change runs."""


async def _resolve(client: RestClient, change: Change, context: _Context) -> dict[str, Any]:
    """The change's payload with each reference (pending at plan time: its target was to be
    created in this run) replaced by the target's field, from the state's record of it (just
    written by its create) or, failing that, read from the server."""
    endpoint, _path, _key = _where(change)
    payload = dict(change.payload or {})
    records = read_records(context.section)
    for name, value in payload.items():
        ref = ref_of(value)
        if ref is None:
            continue
        record = records.get(address_key(endpoint, ref.path, ref.key))
        if record is not None and ref.field == "id":
            payload[name] = record.id
            continue
        if record is not None and ref.field in record.answered:
            payload[name] = record.answered[ref.field]
            continue
        key_field = ref.key_field or (record.key_field if record else None)
        found = await client.find(ref.path, key_field, ref.key) if key_field else None
        if found is None or ref.field not in found:
            raise _Unresolved(
                f"{name}: the referenced object {ref.path}{ref.key[:80]} is not there"
                " (was its create applied?)"
            )
        payload[name] = found[ref.field]
    return payload


def _sent(change: Change, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The managed fields as sent: the plan's, each reference as resolved."""
    after = dict(change.after or {})
    return {**after, **{name: payload[name] for name in after if name in payload}}


async def _create(client: RestClient, change: Change, context: _Context) -> RestResult:
    _endpoint, path, _key = _where(change)
    assert change.payload is not None and change.key is not None
    payload = await _resolve(client, change, context)
    answer = await client.create(path, change.key, payload)
    server_id = answer.get("id")
    if not isinstance(server_id, int | str) or isinstance(server_id, bool):
        return RestResult(change, False, "created, but the answer has no id; re-plan to adopt it")
    sent = _sent(change, payload)
    answered = answered_fields(sent, answer)
    put_record(context.section, _record(change, context, server_id, sent, answered))
    return RestResult(change, True, _notes(sent, change, answer), server_id)


async def _update(client: RestClient, change: Change, context: _Context) -> RestResult:
    _endpoint, path, _key = _where(change)
    assert change.payload is not None and change.target_id is not None
    payload = await _resolve(client, change, context)
    answer = await client.update(path, change.target_id, payload)
    previous = read_records(context.section).get(change.address.key or "")
    sent = _sent(change, payload)
    fields = {**(previous.fields if previous else {}), **sent}
    answered = {**(previous.answered if previous else {}), **answered_fields(sent, answer)}
    put_record(context.section, _record(change, context, change.target_id, fields, answered))
    return RestResult(change, True, _notes(sent, change, answer), change.target_id)


async def _delete(client: RestClient, change: Change, context: _Context) -> RestResult:
    _endpoint, path, key = _where(change)
    assert change.target_id is not None
    if change.app_id in context.confirm:
        live = await client.get(path, change.target_id)
        if live is None:
            return RestResult(change, True, "already gone", change.target_id)
        if change.key is None or object_key(live, change.key) != key:
            return RestResult(
                change, False, "the object with the plan's target id is not this one on the"
                " server (the saved plan does not match it): plan again"
            )
    existed = await client.delete(path, change.target_id)
    drop_record(context.section, change.address.key or "")
    note = None if existed else "already gone"
    return RestResult(change, True, note, change.target_id)


def saved_plan_deletes_to_confirm(plan: Plan, section: Section) -> frozenset[str]:
    """Check a saved plan's targets against the state before anything runs (the plan file is
    data: an edited ``target_id`` must not PATCH or DELETE another object). An update's
    target is always the id the state records, or the one the plan's own adoption records:
    anything else is a PlanError. A delete of an object the state does not record under that
    id (``ensure: absent`` of an unmanaged object) is returned, to be read and confirmed by
    its key before it is sent."""
    ids = {key: record.id for key, record in read_records(section).items()}
    for fact in adoptions_of(plan):
        ids[fact.key] = RestRecord.model_validate(fact.record).id
    confirm: set[str] = set()
    for change in plan.changes:
        if change.provider != PROVIDER or change.action == "create":
            continue
        if change.app_id in ids and ids[change.app_id] == change.target_id:
            continue
        if change.action == "update":
            raise PlanError(
                f"{change.address}: the saved plan's update target is not the object the"
                " state records under this address: not a plan this reconciler made; re-run plan"
            )
        confirm.add(change.app_id)
    return frozenset(confirm)


# The closed table: a plan's (kind, action) picks one of these, nothing else runs.
DISPATCH: Mapping[tuple[str, str], Handler] = {
    (ROOT_KIND, "create"): _create,
    (ROOT_KIND, "update"): _update,
    (ROOT_KIND, "delete"): _delete,
}


def _notes(sent: Mapping[str, Any], change: Change, answer: Mapping[str, Any]) -> str | None:
    notes = [note for note in (normalized_note(sent, answer), _ignored(change, answer)) if note]
    return "; ".join(notes) or None


def _ignored(change: Change, answer: Mapping[str, Any]) -> str | None:
    """Managed fields the server's answer lacks: it ignored them (unknown to it)."""
    missing = sorted(name for name in (change.payload or {}) if name not in answer)
    if not missing:
        return None
    return f"the server ignored field(s) {', '.join(missing)} (unknown to it? check spelling)"


def record_adoptions(section: Section, adoptions: Sequence[Adopt]) -> None:
    """Record the objects a plan adopts (no API write)."""
    for fact in adoptions:
        put_record(section, RestRecord.model_validate(dict(fact.record)))


def explain_failure(
    change: Change, error: BaseException, objects: Mapping[str, RestObject]
) -> str:
    """What went wrong, a 400's fields each at the manifest line that sets them."""
    if isinstance(error, RestValidationError):
        obj = objects.get(change.address.key or "")
        parts: list[str] = []
        for name, messages in error.fields.items():
            text = "; ".join(messages)
            where = obj.where(name) if obj is not None else None
            if obj is not None and name in obj.body and where is not None:
                parts.append(f"{where}: spec.body.{name}: {text}")
            elif where is not None:
                parts.append(f"{where}: spec.body: {name}: {text}")
            else:
                parts.append(f"{name}: {text}")
        parts += error.general
        head = f"{error.method} {error.path} refused (400)"
        return head + "".join(f"\n  {part}" for part in parts)
    if isinstance(error, RestApiError) and error.status == 404 and change.action == "update":
        return f"{error}; the object was deleted since the plan: re-plan"
    if isinstance(error, TimeoutError):
        return "no result within the change's deadline"
    return str(error)


async def apply_changes(
    clients: Mapping[str, RestClient],
    changes: Sequence[Change],
    section: Section,
    *,
    meta: Mapping[str, AppMeta] | None = None,
    objects: Mapping[str, RestObject] | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
    change_deadline: float = DEFAULT_CHANGE_DEADLINE,
    on_result: Callable[[RestResult], None] | None = None,
    after_write: Callable[[RestResult], Awaitable[None]] | None = None,
    confirm: frozenset[str] = frozenset(),
    on_start: Callable[[Change], None] | None = None,
) -> list[RestResult]:
    """Run ``changes`` (REST ones; each through :data:`DISPATCH`), at most ``parallelism`` at
    once; results in the order of ``changes``. ``meta``: labels/protect by address key (the
    plan's ``app_meta``); ``objects``: the manifests' objects by address key, to point 400s
    at their lines (absent for a saved plan: fields are then named only). ``after_write``
    is awaited after each completed write (the section already updated), before
    ``on_result`` reports it: the engine's service makes the record durable there.
    ``confirm``: the address keys whose delete reads the object first
    (:func:`saved_plan_deletes_to_confirm`). ``on_start`` is told each change whose write
    starts (a change refused before it is sent has none)."""
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    context = _Context(section, meta or {}, objects or {}, confirm)
    gate = asyncio.Semaphore(parallelism)
    # A write that could not be recorded: no other change starts (checked at the gate, as a
    # waiting task may get it before the cancellation below reaches it).
    stopped: list[Change] = []

    # Creates and updates after the objects they reference, deletes after the changes of
    # the objects referencing theirs (the plan's depends_on); a change whose dependency
    # failed is not sent. A cycle (only a hand-edited saved plan has one) fails its changes.
    waiting_on, cyclic = _dependencies(changes)
    tasks_by_address: dict[Address, asyncio.Future[RestResult]] = {}

    async def run(change: Change) -> RestResult:
        if change.address in cyclic:
            return _reported(RestResult(change, False, "its dependencies form a cycle; refused"))
        for dependency in waiting_on.get(change.address, ()):
            before = await asyncio.shield(tasks_by_address[dependency])
            if not before.ok:
                why = f"not sent: {dependency} was not applied"
                return _reported(RestResult(change, False, why))
        return _reported(await attempt(change))

    def _reported(result: RestResult) -> RestResult:
        if on_result is not None:
            on_result(result)
        return result

    async def attempt(change: Change) -> RestResult:
        handler = DISPATCH.get((change.kind, change.action))
        if handler is None or change.address.kind != change.kind:
            result = RestResult(change, False, "not a REST operation; refused")
        else:
            endpoint = _where(change)[0]
            client = clients.get(endpoint)
            if client is None:
                result = RestResult(change, False, f"no client for endpoint {endpoint!r}")
            else:
                async with gate:
                    if stopped:
                        raise asyncio.CancelledError  # the run is raising already
                    if on_start is not None:
                        on_start(change)
                    try:
                        async with asyncio.timeout(change_deadline):
                            result = await handler(client, change, context)
                    except (ReconcilerError, TimeoutError) as exc:
                        why = explain_failure(change, exc, context.objects)
                        result = RestResult(change, False, why)
                    if result.ok and after_write is not None:
                        # Inside the gate: at most ``parallelism`` writes not yet durable.
                        try:
                            await after_write(result)
                        except BaseException:
                            stopped.append(change)
                            raise
        return result

    tasks = [asyncio.ensure_future(run(change)) for change in changes]
    for change, task in zip(changes, tasks, strict=True):
        tasks_by_address[change.address] = task
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # A write that cannot be recorded (or an interrupt) stops the run: changes not
        # started never start, rather than write what the state could not say, and those in
        # flight are cancelled (a create cut short is found by its key next time: D81).
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _dependencies(
    changes: Sequence[Change],
) -> tuple[dict[Address, tuple[Address, ...]], frozenset[Address]]:
    """Each change's dependencies among ``changes`` (others are ignored: not in this run),
    and the changes caught in a cycle (Kahn's algorithm: what never becomes free)."""
    present = {change.address for change in changes}
    waiting = {
        change.address: tuple(d for d in change.depends_on if d in present and d != change.address)
        for change in changes
    }
    left = {address: set(deps) for address, deps in waiting.items()}
    free = [address for address, deps in left.items() if not deps]
    while free:
        done = free.pop()
        for address, deps in left.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    free.append(address)
        left.pop(done, None)
    return {a: d for a, d in waiting.items() if d}, frozenset(left)


async def apply_plan(
    clients: Mapping[str, RestClient],
    plan: Plan,
    section: Section,
    *,
    objects: Mapping[str, RestObject] | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
    on_result: Callable[[RestResult], None] | None = None,
) -> list[RestResult]:
    """Adoptions first (recorded), then the plan's REST changes. Objects with an app-scoped
    error are skipped; a plan with fleet errors is refused by the caller before this."""
    record_adoptions(section, adoptions_of(plan))
    stuck = plan.stuck_apps
    todo = [
        c for c in plan.changes if c.provider == "rest" and c.app_id not in stuck
    ]
    return await apply_changes(
        clients,
        todo,
        section,
        meta=plan.app_meta,
        objects=objects,
        parallelism=parallelism,
        on_result=on_result,
    )
