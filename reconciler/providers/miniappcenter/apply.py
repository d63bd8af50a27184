"""Execute a plan: every write as soon as what it waits for is done (reconciler/schedule.py),
the writes of all apps sharing the ``--parallelism`` slots, every write recorded.

Apply reads only the plan (never re-plans). Each successful write is recorded in the state
journal (durably) before it is reported done and before anything waiting on it starts, so a
crash or Ctrl-C loses nothing. Creates are never
repeated blindly: an ambiguous create (timeout, 5xx, dropped connection) is resolved by
re-reading (mini apps by id, locations by name, versions by reading the ids above the mark
the state keeps: reconciler/recover.py). An ambiguous review step is re-sent: the server
refuses a step that already happened. Apps the plan marks stuck are skipped, named, and the
others applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.address import Address
from reconciler.engine.normalization import answered_fields, normalized_note
from reconciler.engine.plan import Change, Plan
from reconciler.engine.result import ApplyResult, ChangeResult, Outcome
from reconciler.engine.session import Stoppable
from reconciler.errors import AmbiguousWriteError, ApiError, ReconcilerError
from reconciler.providers.miniappcenter.addresses import locations_address, version_address
from reconciler.providers.miniappcenter.client import (
    LocationBody,
    MiniAppCenterClient,
    MiniAppCreate,
    MiniAppUpdate,
    VersionCreate,
    VersionUpdate,
)
from reconciler.providers.miniappcenter.fetch import (
    FetchRequest,
    fetch_live,
    fingerprint,
    live_app,
    live_version,
)
from reconciler.providers.miniappcenter.model import (
    APP_IMAGE_FIELDS,
    VERSION_OBJECT_FIELDS,
    file_source,
    object_key,
)
from reconciler.providers.miniappcenter.plan_check import unshown_writes
from reconciler.providers.miniappcenter.recover import (
    ProbeResult,
    probe_ceiling,
    probe_versions,
)
from reconciler.providers.miniappcenter.review import (
    STATUSES,
    after_step,
    describe_unknown,
    probe_step,
    status_path,
)
from reconciler.providers.miniappcenter.schedule import Slots, write_waits
from reconciler.providers.miniappcenter.vocabulary import (
    DEFAULT_PROBE_WINDOW,
    LEARN_STATUS,
    Learned,
    exists_not_found,
    learned_of,
)
from reconciler.state import (
    EXISTS,
    UNKNOWN,
    AppRecord,
    JournalPath,
    LocationRecord,
    ObjectRef,
    State,
    StateStore,
    VersionRecord,
)

__all__ = ["ApplyOptions", "ApplyResult", "ChangeResult", "Executor", "Outcome"]


class _Failed(ReconcilerError):
    """A change that failed; its message is shown in the summary."""


def _location_id(change: Change) -> int:
    """A location's id: an integer (the saved plan's check refuses anything else)."""
    if not isinstance(change.target_id, int) or isinstance(change.target_id, bool):
        raise _Failed(f"{change.address}: the plan carries no location id")
    return change.target_id


# How often an unanswered review step is re-sent within one run before it is left to the next.
STEP_RESENDS = 3
# Bound on the steps one status change may send while learning an unknown status.
MAX_LEARNING_STEPS = 12
# A refusal by the review flow (a step from the wrong status) or of a duplicate version code.
_REFUSAL_STATUSES = (400, 409, 422)


@dataclass
class ApplyOptions:
    parallelism: int = 16
    # Saved plans: re-read each app's live objects before its first write and refuse the app
    # when they no longer match what the plan saw.
    verify_fingerprints: bool = False
    on_result: Callable[[ChangeResult], None] | None = None
    on_start: Callable[[Change], None] | None = None
    probe_window: int = DEFAULT_PROBE_WINDOW
    # The run's graceful stop (Ctrl-C): polled before each change starts.
    stop: Stoppable | None = None


class Executor:
    def __init__(
        self,
        client: MiniAppCenterClient,
        store: StateStore,
        state: State,
        plan: Plan,
        *,
        options: ApplyOptions | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.state = state
        self.plan = plan
        self.options = options or ApplyOptions()
        self.result = ApplyResult()
        self._stop = False
        # Per version, the status its planned steps end at, and the versions whose status
        # was settled by learning in this run (adopted by a create: see _adopt_found).
        self._status_goals = {
            (c.app_id, c.version_code or ""): str((c.after or {}).get("status"))
            for c in plan.changes
            if c.kind == "status"
        }
        self._settled: set[tuple[str, str]] = set()
        # Apps whose record this run made: journaled whole once, then by resource.
        self._unjournaled: set[str] = set()
        # The id mark, folded once with every id the state records (a replayed journal's
        # included); from here on every id this run records is noted as it comes, so a
        # create reads the mark without walking the whole state.
        state.note_version_id(state.version_mark())

    @property
    def stopping(self) -> bool:
        return self._stop or (self.options.stop is not None and self.options.stop.stopping)

    def request_stop(self) -> None:
        """Start no new change; the writes in flight finish and are recorded."""
        self._stop = True

    async def run(self) -> ApplyResult:
        slots = Slots(self.options.parallelism)
        by_app = self.plan.changes_by_app()
        # Facts learnt by reading go into the state first (no API write): adoptions, and how
        # far a version probe read. A stuck app's too: the next run starts from them. From a
        # saved plan, each adopted version is read back first: an edited id is never recorded.
        stale = await self._stale_adoptions() if self.options.verify_fingerprints else {}
        await self._record_learned(skip=set(stale))
        stuck = self.plan.stuck_apps
        self.result.unresolved = [str(problem) for problem in self.plan.unresolved]

        async def one(rank: int, app_id: str, changes: list[Change]) -> None:
            if app_id in stale:
                for change in changes:
                    self._report(ChangeResult(change, "failed", stale[app_id]))
                return
            if app_id in stuck:
                self._skip_stuck(app_id, changes, "; ".join(e.message for e in stuck[app_id]))
                return
            await self._run_app(app_id, changes, slots, rank)

        for app_id in stuck:
            by_app.setdefault(app_id, [])
        try:
            async with asyncio.TaskGroup() as group:
                for rank, (app_id, changes) in enumerate(by_app.items()):
                    group.create_task(one(rank, app_id, changes))
        except asyncio.CancelledError:
            self.result.interrupted = True
            raise
        finally:
            await self._remember_metadata()
        return self.result

    async def _run_app(
        self, app_id: str, changes: list[Change], slots: Slots, rank: int
    ) -> None:
        """The app's changes, each as soon as what it waits for is done (schedule.py), each
        holding one of the run's ``--parallelism`` slots while it writes."""
        if self.stopping:
            self._skip_all(changes)
            return
        if self.options.verify_fingerprints:
            try:
                async with slots.slot((rank, -1)):
                    problem = await self._stale(app_id, changes)
            except Exception as exc:  # one app's failed re-read must not stop the others
                problem = f"could not re-read the live objects to check the saved plan: {exc}"
            if problem:
                for change in changes:
                    self._report(ChangeResult(change, "failed", problem))
                return
        waits = write_waits(changes)
        finished = [asyncio.Event() for _ in changes]
        applied: set[Address] = set()

        async def one(index: int) -> None:
            try:
                for earlier in waits[index]:
                    await finished[earlier].wait()
                if await self._run_change(changes[index], applied, slots, (rank, index)):
                    applied.add(changes[index].address)
            finally:
                finished[index].set()

        if len(changes) == 1:  # most apps of a converged fleet: no task needed
            await one(0)
            return
        async with asyncio.TaskGroup() as group:
            for index in range(len(changes)):
                group.create_task(one(index))

    async def _run_change(
        self, change: Change, applied: set[Address], slots: Slots, rank: tuple[int, int]
    ) -> bool:
        """Run one change whose waits are over; True when it was applied."""
        # Yield to the loop: an in-process sandbox never does, and a Ctrl-C must be seen.
        await asyncio.sleep(0)
        if self.stopping:
            self._skip_all([change])
            return False
        if not applied.issuperset(change.depends_on):
            # Run only after everything it depends on was applied (not merely "not
            # failed"): a status step never runs before its version is right.
            self._report(ChangeResult(change, "skipped", "skipped: a change it depends on failed"))
            return False
        async with slots.slot(rank):
            if self.stopping:  # stopped while it waited for a slot
                self._skip_all([change])
                return False
            if self.options.on_start:
                self.options.on_start(change)
            try:
                # A store that leases apps confirms it still holds this one (it may have been
                # cut off from its database): never write an app another run may hold.
                guard = getattr(self.store, "before_write", None)
                if guard is not None:
                    await guard(change.app_id)
                note = await self._execute(change)
            except ReconcilerError as exc:
                self._report(ChangeResult(change, "failed", str(exc)))
                return False
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                # A saved plan edited by hand, or from another version: fail this change only.
                message = f"the plan's payload for this change is invalid: {exc}"
                self._report(ChangeResult(change, "failed", message))
                return False
            except Exception as exc:
                # A bug of ours must not cancel the other writes in flight (the task group
                # would): fail this change, report it, go on.
                message = f"internal error: {type(exc).__name__}: {exc} (please report it)"
                self._report(ChangeResult(change, "failed", message))
                return False
        self._report(ChangeResult(change, "applied", note))
        return True

    def _skip_stuck(self, app_id: str, changes: Sequence[Change], why: str) -> None:
        self.result.stuck[app_id] = why
        for change in changes:
            self._report(
                ChangeResult(change, "skipped", f"skipped: {app_id} is stuck: {why}", stuck=True)
            )

    def _skip_all(self, changes: Sequence[Change]) -> None:
        self.result.interrupted = True
        for change in changes:
            self._report(ChangeResult(change, "skipped", "not started: the run was interrupted"))

    def _report(self, result: ChangeResult) -> None:
        self.result.results.append(result)
        if self.options.on_result:
            self.options.on_result(result)

    async def _stale(self, app_id: str, changes: list[Change]) -> str | None:
        wants_locations = locations_address(app_id) in self.plan.fingerprints
        versions = {
            code: vid
            for code in {c.version_code for c in changes if c.version_code}
            if version_address(app_id, code) in self.plan.fingerprints
            and (vid := self.state.version_id(app_id, code)) is not None
        }
        live = await fetch_live(
            self.client, [FetchRequest(app_id, locations=wants_locations, versions=versions)]
        )
        for key, value in live.fingerprints.items():
            planned = self.plan.fingerprints.get(key)
            if planned is not None and planned != value:
                return (
                    f"{key} changed since the plan was made; the saved plan is stale: run"
                    " `reconciler plan` again"
                )
        return unshown_writes(changes, live.apps.get(app_id))

    # --- state bookkeeping -----------------------------------------------------------------

    def _record(self, app_id: str) -> AppRecord:
        record = self.state.apps.get(app_id)
        if record is None:
            meta = self.plan.app_meta.get(app_id)
            record = AppRecord(
                protect=meta.protect if meta else False,
                labels=dict(meta.labels) if meta else {},
            )
            self.state.apps[app_id] = record
            self._unjournaled.add(app_id)  # its first journal line carries it whole
        return record

    async def _commit(self, app_id: str, *paths: JournalPath) -> None:
        """Journal what a write changed, durably, before it is reported done: the parts of
        the app's record at ``paths`` (one journal line each); the whole record when the app
        is new to the journal in this run or was removed."""
        record = self.state.apps.get(app_id)
        if record is None or app_id in self._unjournaled:
            self._unjournaled.discard(app_id)
            await self.store.record(app_id, record)
        else:
            await self.store.record(app_id, record, paths)

    async def _remember_metadata(self) -> None:
        """Labels and protection live only in the state: refresh them for every app the plan
        keeps (this is how an applied `protect: false` lifts a protection). They travel in
        the plan, so `apply --plan` records them too."""
        changed: list[str] = []
        for app_id, meta in self.plan.app_meta.items():
            record = self.state.apps.get(app_id)
            if record is None:
                continue
            if record.protect != meta.protect or record.labels != meta.labels:
                record.protect = meta.protect
                record.labels = dict(meta.labels)
                changed.append(app_id)
        await asyncio.gather(*(self._commit(a, ("protect",), ("labels",)) for a in changed))

    # --- uploads -----------------------------------------------------------------------------

    async def _uploaded(
        self, payload: Mapping[str, Any], fields: Sequence[str]
    ) -> dict[str, Any]:
        """The body to send: each file-sourced object uploaded now, right before use, since an
        upload id expires minutes after the upload. The file must still be what was planned."""
        body = dict(payload)
        for name in fields:
            source = file_source(body[name]) if isinstance(body.get(name), str) else None
            if source is None:
                continue
            path, digest = source
            try:
                content = await asyncio.to_thread(_read_bytes, path)
            except OSError as exc:
                raise _Failed(f"cannot read {path} for {name}: {exc.strerror or exc}") from exc
            if hashlib.sha256(content).hexdigest() != digest:
                raise _Failed(f"{path} changed since the plan was made; run plan again")
            body[name] = await self.client.upload_object(os.path.basename(path), content)
        return body

    # --- dispatch ----------------------------------------------------------------------------

    async def _execute(self, change: Change) -> str | None:
        """Run one change; returns a note for the summary (how an ambiguity was resolved).
        One lookup in a closed table: nothing from the plan ever names a callable."""
        handler = DISPATCH.get((change.kind, change.action, change.step))
        if handler is None:
            raise _Failed(
                f"no operation for {change.kind} {change.action}"
                + (f" step {change.step!r}" if change.step is not None else "")
            )
        return await handler(self, change)

    # --- facts learnt by reading -------------------------------------------------------------

    async def _stale_adoptions(self) -> dict[str, str]:
        """Apps whose adopted versions no longer read as the plan saw them (app -> why)."""
        adopted = [
            item for item in learned_of(self.plan)
            if item.version_id is not None and item.code is not None
        ]
        # Concurrently: the client's pool (one lane per --parallelism slot) bounds it.
        answers = await asyncio.gather(
            *(self.client.get_version(item.app_id, item.version_id or 0) for item in adopted),
            return_exceptions=True,  # one app's failed read stops that app, not the fleet
        )
        stale: dict[str, str] = {}
        for item, data in zip(adopted, answers, strict=True):
            if isinstance(data, ReconcilerError):
                stale[item.app_id] = f"could not read {item.address} back to check it: {data}"
                continue
            if isinstance(data, BaseException):
                raise data
            planned = self.plan.fingerprints.get(item.address)
            if data is None or data.code != item.code or fingerprint(data) != planned:
                stale[item.app_id] = (
                    f"{item.address} (id {item.version_id}) does not read as it did when the"
                    " plan was made; the saved plan is stale: run `reconciler plan` again"
                )
        return stale

    async def _record_learned(self, skip: set[str]) -> None:
        touched: dict[str, set[JournalPath]] = {}
        for item in learned_of(self.plan):
            if item.app_id in skip:
                continue
            self._learn(item)
            paths = touched.setdefault(item.app_id, set())
            if item.code is not None:
                paths.add(("versions", item.code))
            self.result.adopted += int(item.adopts)
        # Concurrently: their lines share the group commit's fsyncs.
        await asyncio.gather(
            *(self._commit(app_id, *sorted(paths)) for app_id, paths in sorted(touched.items()))
        )

    def _learn(self, item: Learned) -> None:
        record = self._record(item.app_id)
        if item.code is None:
            return  # the app itself: recorded as managed by _record
        if item.version_id is not None:
            record.versions[item.code] = VersionRecord.found(item.version_id, fresh=item.fresh)
            self.state.note_version_id(item.version_id)
            return
        known = record.versions.get(item.code)
        if known is not None and known.create_outcome is not None and item.probed is not None:
            known.probed_to = max(known.probed_to or 0, item.probed[1])

    # mini app
    async def _miniapp_create(self, change: Change) -> str | None:
        payload = dict(change.payload or {})
        app_id = change.app_id
        body = await self._uploaded(payload, APP_IMAGE_FIELDS)
        try:
            await self.client.create_miniapp(MiniAppCreate(**body))
        except AmbiguousWriteError:
            # The id is ours: read it back. A second create is safe because the server
            # refuses a duplicate id.
            if await self.client.get_miniapp(app_id) is None:
                await self.client.create_miniapp(MiniAppCreate(**body))
        record = self._record(app_id)
        fields = {k: v for k, v in payload.items() if k != "id"}
        return await self._store_app_fields(app_id, record, fields)

    async def _miniapp_update(self, change: Change) -> str | None:
        payload = dict(change.payload or {})
        body = await self._uploaded(payload, APP_IMAGE_FIELDS)
        await self.client.update_miniapp(change.app_id, MiniAppUpdate(**body))
        record = self._record(change.app_id)
        return await self._store_app_fields(change.app_id, record, payload)

    async def _store_app_fields(
        self, app_id: str, record: AppRecord, fields: Mapping[str, Any]
    ) -> str | None:
        """Record what was sent, and what the server holds now; the normalization note."""
        images = {k: v for k, v in fields.items() if k in APP_IMAGE_FIELDS}
        plain = {k: v for k, v in fields.items() if k not in APP_IMAGE_FIELDS}
        record.fields.update(plain)
        # A write answers no body: read the app back, once. The server answers upload ids
        # as URLs (remember both, so that the next plan compares ids with ids and drift
        # compares URLs with URLs), and may store a plain field in another form than sent
        # (learned: the hand-written normalizers know only the documented forms).
        live = await self.client.get_miniapp(app_id)
        for name, value in images.items():
            url = getattr(live, name, None) if live is not None else None
            record.objects[name] = ObjectRef(object_id=object_key(value), url=url)
        note = None
        if plain and live is not None:
            spec = live_app(app_id, live, None, {}).app.spec
            answer = {name: getattr(spec, name, None) for name in plain}
            record.answered = {**record.answered, **answered_fields(plain, answer)}
            note = normalized_note(plain, answer)
        await self._commit(app_id, *_app_paths(fields))
        return note

    async def _miniapp_delete(self, change: Change) -> None:
        try:
            await self.client.delete_miniapp(change.app_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
        self.state.apps.pop(change.app_id, None)
        await self._commit(change.app_id)

    # attributes (POST is a set: create and update are the same call)
    async def _attribute_create(self, change: Change) -> None:
        payload = change.payload or {}
        await self.client.set_attribute(change.app_id, payload["field"], payload["value"])
        record = self._record(change.app_id)
        if record.attributes is None:
            record.attributes = {}
        record.attributes[payload["field"]] = payload["value"]
        await self._commit(change.app_id, ("attributes", payload["field"]))

    async def _attribute_delete(self, change: Change) -> None:
        assert change.key is not None
        try:
            await self.client.delete_attribute(change.app_id, change.key)
        except ApiError as exc:
            if exc.status != 404:
                raise
        record = self._record(change.app_id)
        if record.attributes is not None:
            record.attributes.pop(change.key, None)
        await self._commit(change.app_id, ("attributes", change.key))

    # locations
    async def _location_create(self, change: Change) -> None:
        payload = change.payload or {}
        body = LocationBody(name=payload["name"], geo_point=payload["geo_point"])
        try:
            location_id = await self.client.create_location(change.app_id, body)
        except AmbiguousWriteError:
            # Re-list and match by name; only when it is not there is a second create safe.
            found = [
                loc
                for loc in await self.client.list_locations(change.app_id)
                if loc.name == payload["name"]
            ]
            if found:
                location_id = max(loc.id for loc in found)
            else:
                location_id = await self.client.create_location(change.app_id, body)
        await self._store_location(
            change.app_id, payload["name"], location_id, payload["geo_point"]
        )

    async def _location_update(self, change: Change) -> None:
        payload = change.payload or {}
        location_id = _location_id(change)
        body = LocationBody(name=payload["name"], geo_point=payload["geo_point"])
        await self.client.update_location(change.app_id, location_id, body)
        await self._store_location(
            change.app_id, payload["name"], location_id, payload["geo_point"]
        )

    async def _store_location(
        self, app_id: str, name: str, location_id: int, geo_point: str
    ) -> None:
        record = self._record(app_id)
        if record.locations is None:
            record.locations = {}
        record.locations[name] = LocationRecord(id=location_id, geo_point=geo_point)
        await self._commit(app_id, ("locations", name))

    async def _location_delete(self, change: Change) -> None:
        try:
            await self.client.delete_location(change.app_id, _location_id(change))
        except ApiError as exc:
            if exc.status != 404:
                raise
        record = self._record(change.app_id)
        if record.locations is not None and change.key is not None:
            kept = record.locations.get(change.key)
            if kept is not None and kept.id == change.target_id:
                del record.locations[change.key]
        await self._commit(change.app_id, ("locations", change.key or ""))

    # versions
    async def _version_create(self, change: Change) -> str | None:
        payload = dict(change.payload or {})
        code = payload["code"]
        app_id = change.app_id
        record = self._record(app_id)
        body = await self._uploaded(payload, VERSION_OBJECT_FIELDS)  # no version POST yet
        # Intent right before the POST: if we die between the POST and the record below, the
        # next plan knows the create may have happened and looks for it above this mark
        # rather than creating a second version.
        previous = record.versions.get(code)
        # A duplicate refusal after an earlier unanswered create: that create landed above
        # the mark recorded with it (not necessarily above where a probe read: a slow server
        # may have committed it after the probe read its id as free).
        earlier_mark = previous.probe_from if previous and previous.create_outcome else None
        # The lowest mark of every send of this code so far: any of them may land late.
        mark = self.state.version_id_mark
        if earlier_mark is not None:
            mark = min(mark, earlier_mark)
        record.versions[code] = VersionRecord(create_outcome=UNKNOWN, probe_from=mark)
        await self._commit(app_id, ("versions", code))
        try:
            created = await self.client.create_version(app_id, VersionCreate(**body))
        except AmbiguousWriteError as exc:
            return await self._find_created_version(app_id, code, body, payload, mark, str(exc))
        except ApiError as exc:
            if _duplicate_refusal(exc):
                return await self._adopt_existing_version(
                    app_id, code, body, payload, exc, earlier_mark or 0
                )
            del record.versions[code]  # a definite refusal: nothing was created
            await self._commit(app_id, ("versions", code))
            raise
        except ReconcilerError:
            del record.versions[code]
            await self._commit(app_id, ("versions", code))
            raise
        await self._created_version(app_id, code, created.id, payload)
        return None

    async def _created_version(
        self, app_id: str, code: str, version_id: int, payload: Mapping[str, Any]
    ) -> None:
        """Record a brand-new version (created, or our unanswered create found by reading).
        ``payload`` is the plan's, before uploads: file-sourced objects are recorded by
        content digest, as the next plan compares them."""
        fields = _without_code(payload)
        version = VersionRecord.found(version_id, fresh=True)
        self._record(app_id).versions[code] = version
        self.state.note_version_id(version_id)
        await self._store_version_fields(app_id, code, version, fields)

    async def _probe(
        self, app_id: str, code: str, payload: Mapping[str, Any], after: int,
        *, exact_only: bool = False,
    ) -> ProbeResult:
        # Our own unanswered create (exact_only) is looked for up to where it can have
        # landed; a version the server said exists, until found (recover.probe_ceiling).
        ceiling = probe_ceiling(self.state, self.options.parallelism) if exact_only else None
        result = await probe_versions(
            self.client,
            app_id,
            {code: _without_code(payload)},
            after=after,
            window=self.options.probe_window,
            skip_ids=self.state.recorded_version_ids(),
            parallelism=self.options.parallelism,
            exact_only=exact_only,
            ceiling=ceiling,
        )
        self.result.probe_reads += result.reads
        return result

    async def _find_created_version(
        self,
        app_id: str,
        code: str,
        body: Mapping[str, Any],
        payload: Mapping[str, Any],
        mark: int,
        why: str,
    ) -> str | None:
        """The create went unanswered: read the ids above the mark taken just before it.
        Found: adopted. Not found: it did not land, so it is sent once more; the server
        refuses a code it already has, so even a late landing cannot make a duplicate."""
        # Only an exact match is ours (a same-code one may be another app's on a server that
        # does not scope ids); a real same-code version shows as a duplicate refusal below.
        result = await self._probe(app_id, code, payload, mark, exact_only=True)
        found = result.found.get(code)
        record = self._record(app_id)
        if found is not None:
            # Found by an exact match (exact_only): ours, brand new, the plan goes on.
            await self._created_version(app_id, code, found.id, payload)
            return f"no answer; found it by reading: id {found.id} ({result.reads} reads)"
        read = f"reading version ids {result.first}-{result.last} ({result.reads} reads)"
        # The ids read were free then, which proves little: this send, or a late commit of the
        # first, may land on any id above the first send's mark, so a probe starts there again.
        record.versions[code] = VersionRecord(create_outcome=UNKNOWN, probe_from=mark)
        await self._commit(app_id, ("versions", code))
        try:
            created = await self.client.create_version(app_id, VersionCreate(**body))
        except AmbiguousWriteError as exc:
            raise _Failed(
                f"{why}; {read} did not find it, and sending it again got no answer either"
                f" ({exc.reason}): the next run looks for it again"
            ) from exc
        except ApiError as exc:
            if _duplicate_refusal(exc):
                # Our first send landed after all (a late commit): above the same mark.
                return await self._adopt_existing_version(
                    app_id, code, body, payload, exc, mark
                )
            del record.versions[code]
            await self._commit(app_id, ("versions", code))
            raise
        await self._created_version(app_id, code, created.id, payload)
        return f"no answer; {read} did not find it, so it was sent again: id {created.id}"

    async def _adopt_existing_version(
        self,
        app_id: str,
        code: str,
        body: Mapping[str, Any],
        payload: Mapping[str, Any],
        refusal: ApiError,
        after: int,
    ) -> str | None:
        """The server refused the code as a duplicate: the version exists (made outside, or
        before the state was lost). Find it by reading and adopt it."""
        result = await self._probe(app_id, code, body, after)
        found = result.found.get(code)
        record = self._record(app_id)
        if found is None:
            record.versions[code] = VersionRecord(
                create_outcome=EXISTS, probe_from=after, probed_to=result.last
            )
            await self._commit(app_id, ("versions", code))
            raise _Failed(
                exists_not_found(
                    result.first, result.last, result.reads, self.options.probe_window
                )
                + OTHER_STATE_HINT
            )
        return await self._adopt_found(app_id, code, body, payload, found.id, result)

    async def _adopt_found(
        self,
        app_id: str,
        code: str,
        body: Mapping[str, Any],
        payload: Mapping[str, Any],
        version_id: int,
        result: ProbeResult,
    ) -> str:
        """A version that existed before this create (made outside, or before the state was
        lost): adopt it, then make it what the create would have made. Its fields are sent
        (a PUT is idempotent); its compatibilities are added by the plan's next changes
        (idempotent too); its review status is unknown, so this version's status steps in
        this plan are replaced by learning it (see _status_update)."""
        record = self._record(app_id)
        version = VersionRecord.found(version_id, fresh=False)
        record.versions[code] = version
        self.state.note_version_id(version_id)
        await self._commit(app_id, ("versions", code))
        await self.client.update_version(app_id, version_id, VersionUpdate(**_without_code(body)))
        await self._store_version_fields(app_id, code, version, _without_code(payload))
        return (
            "refused as a duplicate code: it already existed; found it by reading at id"
            f" {version_id} ({result.reads} reads), adopted it and sent its fields"
            + OTHER_STATE_HINT
        )

    async def _version_update(self, change: Change) -> str | None:
        payload = dict(change.payload or {})
        assert change.version_code is not None
        version_id = self._version_id(change)
        body = await self._uploaded(payload, VERSION_OBJECT_FIELDS)
        await self.client.update_version(change.app_id, version_id, VersionUpdate(**body))
        record = self._record(change.app_id)
        version = record.versions.setdefault(change.version_code, VersionRecord(id=version_id))
        return await self._store_version_fields(
            change.app_id, change.version_code, version, payload
        )

    async def _store_version_fields(
        self, app_id: str, code: str, version: VersionRecord, fields: Mapping[str, Any]
    ) -> str | None:
        """As _store_app_fields, for a version: the note when the server normalized."""
        objects = {k: v for k, v in fields.items() if k in VERSION_OBJECT_FIELDS}
        plain = {k: v for k, v in fields.items() if k not in VERSION_OBJECT_FIELDS}
        version.fields.update(plain)
        note = None
        if version.id is not None:
            live = await self.client.get_version(app_id, version.id)
            for name, value in objects.items():
                url = getattr(live, name, None) if live is not None else None
                version.objects[name] = ObjectRef(object_id=object_key(value), url=url)
            if plain and live is not None:
                spec = live_version(code, live)
                answer = {name: getattr(spec, name, None) for name in plain}
                version.answered = {**version.answered, **answered_fields(plain, answer)}
                note = normalized_note(plain, answer)
        await self._commit(app_id, ("versions", code))
        return note

    def _version_id(self, change: Change) -> int:
        assert change.version_code is not None
        version_id = self.state.version_id(change.app_id, change.version_code)
        if version_id is None:
            raise _Failed(
                f"the id of version {change.version_code} is not known (it was not created)"
            )
        return version_id

    # compatibility
    async def _compatibility_create(self, change: Change) -> None:
        await self._compatibility(change, add=True)

    async def _compatibility_delete(self, change: Change) -> None:
        await self._compatibility(change, add=False)

    async def _compatibility(self, change: Change, *, add: bool) -> None:
        version_id = self._version_id(change)
        superapp_version = int((change.payload or {})["superapp_version"])
        if add:
            await self.client.add_compatibility(change.app_id, version_id, superapp_version)
        else:
            await self.client.delete_compatibility(change.app_id, version_id, superapp_version)
        assert change.version_code is not None
        version = self._record(change.app_id).versions[change.version_code]
        current = set(version.compatibility or [])
        current = current | {superapp_version} if add else current - {superapp_version}
        version.compatibility = sorted(current)
        await self._commit(change.app_id, ("versions", change.version_code))

    # review status steps
    async def _status_update(self, change: Change) -> str | None:
        version_id = self._version_id(change)
        assert change.version_code is not None
        if change.key == LEARN_STATUS:
            return await self._learn_status(change, version_id)
        step = change.step or ""
        if step not in _STEP_CALLS:
            raise _Failed(f"unknown review step {step!r}")
        version = self._record(change.app_id).versions[change.version_code]
        if version.status == UNKNOWN or (change.app_id, change.version_code) in self._settled:
            # Adopted during this run (its create found it existed): the steps were planned
            # for a brand-new version, so learn where it is and take it to the plan's goal.
            return await self._settle_adopted_status(change, version_id)
        source = str((change.before or {}).get("status"))
        target = str((change.after or {}).get("status"))
        # Not readable back: while the step is in flight it is "source or target".
        version.status = UNKNOWN
        version.status_candidates = [source, target]
        await self._commit(change.app_id, ("versions", change.version_code))
        outcome = await self._send_step(change.app_id, version_id, step)
        resends = 0
        while outcome == "unknown" and resends < STEP_RESENDS:
            # Re-send the same step: accepted means the first had not landed; refused by the
            # review flow means it had (no step is accepted from its own target).
            resends += 1
            outcome = await self._send_step(change.app_id, version_id, step)
        if outcome == "unknown":
            await self._commit(change.app_id, ("versions", change.version_code))
            raise _Failed(
                f"{step}: no answer after {1 + resends} attempts; the status is '{source}' or"
                f" '{target}', and the next run learns which by re-sending the step"
            )
        if outcome == "refused" and resends == 0:
            # Refused at the first send: the version was not where the state said (changed
            # outside). Remember what the refusal tells; the next run learns the rest.
            version.status_candidates = sorted(
                after_step(STATUSES, step, "refused"), key=STATUSES.index
            )
            await self._commit(change.app_id, ("versions", change.version_code))
            raise _Failed(
                f"{step} was refused: the version is not in '{source}' (changed outside?);"
                " its status is learnt on the next run"
            )
        version.status = target
        version.status_candidates = None
        await self._commit(change.app_id, ("versions", change.version_code))
        return f"no answer at first; re-sent {resends}x and settled" if resends else None

    async def _settle_adopted_status(self, change: Change, version_id: int) -> str | None:
        key = (change.app_id, change.version_code or "")
        if key in self._settled:
            return "settled with the version's first status change"
        self._settled.add(key)
        goal = self._status_goals.get(key, str((change.after or {}).get("status")))
        learning = dataclasses.replace(change, key=LEARN_STATUS, after={"status": goal})
        return await self._learn_status(learning, version_id)

    async def _send_step(self, app_id: str, version_id: int, step: str) -> str:
        """``accepted``, ``refused`` (by the review flow: a step from the wrong status, which
        changes nothing) or ``unknown`` (no answer)."""
        try:
            await _STEP_CALLS[step](self.client, app_id, version_id)
        except AmbiguousWriteError:
            return "unknown"
        except ApiError as exc:
            if exc.status in _REFUSAL_STATUSES:
                return "refused"
            raise
        return "accepted"

    async def _learn_status(self, change: Change, version_id: int) -> str | None:
        """Learn an unknown status by steps the server refuses when they do not apply, never
        moving the version away from ``desired`` (review.py), then take it there."""
        assert change.version_code is not None
        app_id, code = change.app_id, change.version_code
        version = self._record(app_id).versions[code]
        desired = str((change.after or {}).get("status"))
        candidates = frozenset(version.status_candidates or STATUSES)
        sent: list[str] = []
        for _ in range(MAX_LEARNING_STEPS):
            if len(candidates) == 1:
                (current,) = candidates
                path = status_path(current, desired)
                if path is None:
                    await self._set_status(app_id, code, version, candidates)
                    raise _Failed(
                        f"review status is '{current}' (learnt by {len(sent)} step(s)), and"
                        f" cannot go to '{desired}'. Publish a new version instead."
                    )
                if not path:
                    await self._set_status(app_id, code, version, candidates)
                    steps = ", ".join(sent) or "none accepted"
                    return f"status learnt and set: {current} (steps sent: {steps})"
                step = path[0][0]
            else:
                next_step = probe_step(candidates, desired)
                if next_step is None:
                    await self._set_status(app_id, code, version, candidates)
                    raise _Failed(describe_unknown(candidates, desired, app_id, code))
                step = next_step
            outcome = await self._send_step(app_id, version_id, step)
            sent.append(f"{step}:{outcome}")
            candidates = after_step(candidates, step, outcome)
            if not candidates:  # refused from the one status it had to be in: moved outside
                candidates = frozenset(STATUSES)
            await self._set_status(app_id, code, version, candidates)
        raise _Failed(
            f"review status still one of {', '.join(sorted(candidates))} after"
            f" {MAX_LEARNING_STEPS} steps (the server kept not answering); the next run goes on"
        )

    async def _set_status(
        self, app_id: str, code: str, version: VersionRecord, candidates: frozenset[str]
    ) -> None:
        if len(candidates) == 1:
            (version.status,) = candidates
            version.status_candidates = None
        else:
            version.status = UNKNOWN
            version.status_candidates = sorted(candidates, key=STATUSES.index)
        await self._commit(app_id, ("versions", code))


_STEP_CALLS: Mapping[str, Callable[[MiniAppCenterClient, str, int], Awaitable[None]]] = {
    "send_to_review": MiniAppCenterClient.send_to_review,
    "in_review": MiniAppCenterClient.in_review,
    "ready": MiniAppCenterClient.ready,
    "rejected": MiniAppCenterClient.rejected,
}


def _app_paths(fields: Mapping[str, Any]) -> tuple[JournalPath, ...]:
    """Where an app write's fields go in its record: plain fields, image objects, or both."""
    images = any(name in APP_IMAGE_FIELDS for name in fields)
    plain = any(name not in APP_IMAGE_FIELDS for name in fields)
    return (("fields",), ("answered",)) * plain + (("objects",),) * images


def _without_code(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A version create's fields without its code (what a PUT and the state record take)."""
    return {k: v for k, v in payload.items() if k != "code"}


# A version code taken that this state did not make: after an interrupted create or a lost
# state that is expected; otherwise the likely cause is a second state (another shard's state
# file) managing the same app, which no file state can see (the API keeps no owner mark).
OTHER_STATE_HINT = (
    ". If this state was not lost or interrupted, another state (another shard's state file"
    " or workspace against this endpoint) probably manages this app too: give each app to"
    " exactly one state (docs/scaling.md)"
)


def _duplicate_refusal(exc: ApiError) -> bool:
    """A create refused because the code is taken. The API's error codes are not published:
    a 409, or a 400 whose message says so (the sandbox: "already has a version with code")."""
    if exc.status == 409:
        return True
    text = (exc.detail or "").lower()
    return exc.status == 400 and any(w in text for w in ("duplicate", "already", "exists"))


_Handler = Callable[[Executor, Change], Awaitable[str | None]]

# (resource, action, step) -> the one method that performs it. Closed: exactly the keys of
# plan.OPERATIONS (a test pins it); anything else cannot be executed.
DISPATCH: Mapping[tuple[str, str, str | None], _Handler] = {
    ("miniapp", "create", None): Executor._miniapp_create,
    ("miniapp", "update", None): Executor._miniapp_update,
    ("miniapp", "delete", None): Executor._miniapp_delete,
    ("attribute", "create", None): Executor._attribute_create,
    ("attribute", "update", None): Executor._attribute_create,  # POST sets: same call
    ("attribute", "delete", None): Executor._attribute_delete,
    ("location", "create", None): Executor._location_create,
    ("location", "update", None): Executor._location_update,
    ("location", "delete", None): Executor._location_delete,
    ("version", "create", None): Executor._version_create,
    ("version", "update", None): Executor._version_update,
    ("compatibility", "create", None): Executor._compatibility_create,
    ("compatibility", "delete", None): Executor._compatibility_delete,
    # Each review step goes to its one endpoint through _STEP_CALLS (a closed table too);
    # step None is the change that learns an unknown status (key "learn").
    **{("status", "update", step): Executor._status_update for step in _STEP_CALLS},
    ("status", "update", None): Executor._status_update,
}


def _read_bytes(path: str) -> bytes:
    # Same rules as when the plan was made: a regular file, capped, a FIFO cannot hang.
    from pathlib import Path

    from reconciler.manifest.files import MAX_OBJECT_BYTES, FileRefused, read_regular_file

    try:
        return read_regular_file(Path(path), MAX_OBJECT_BYTES, "file")
    except FileRefused as exc:
        raise OSError(str(exc)) from None
