"""Execute a plan: in dependency order inside an app, apps in parallel, every write recorded.

Apply reads only the plan (never re-plans). Each successful write is recorded in the state
journal before the next one starts, so a crash or Ctrl-C loses nothing. Creates are never
repeated blindly: an ambiguous create (timeout, 5xx, dropped connection) is resolved by
re-reading (mini apps by id, locations by name); versions cannot be listed, so an ambiguous
version create is marked unknown and left to the user to adopt.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from reconciler.client import (
    LocationBody,
    MiniAppCenterClient,
    MiniAppCreate,
    MiniAppUpdate,
    VersionCreate,
    VersionUpdate,
)
from reconciler.errors import AmbiguousWriteError, ApiError, ReconcilerError
from reconciler.fetch import FetchRequest, fetch_live
from reconciler.model import (
    APP_IMAGE_FIELDS,
    VERSION_OBJECT_FIELDS,
    file_source,
    object_key,
)
from reconciler.plan import Change, Plan
from reconciler.state import (
    UNKNOWN,
    AppRecord,
    LocationRecord,
    ObjectRef,
    State,
    StateStore,
    VersionRecord,
)

Outcome = Literal["applied", "failed", "skipped"]


@dataclass(frozen=True)
class ChangeResult:
    change: Change
    outcome: Outcome
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.change.address,
            "resource": self.change.resource,
            "action": self.change.action,
            "app_id": self.change.app_id,
            "outcome": self.outcome,
        }
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class ApplyResult:
    results: list[ChangeResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def applied(self) -> int:
        return self.count("applied")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.skipped == 0 and not self.interrupted

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": {"applied": self.applied, "failed": self.failed, "skipped": self.skipped},
            "interrupted": self.interrupted,
            "results": [r.as_dict() for r in self.results],
        }


class _Failed(ReconcilerError):
    """A change that failed; its message is shown in the summary."""


@dataclass
class ApplyOptions:
    parallelism: int = 16
    # Saved plans: re-read each app's live objects before its first write and refuse the app
    # when they no longer match what the plan saw.
    verify_fingerprints: bool = False
    on_result: Callable[[ChangeResult], None] | None = None
    on_start: Callable[[Change], None] | None = None


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

    @property
    def stopping(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        """Start no new change; the writes in flight finish and are recorded."""
        self._stop = True

    async def run(self) -> ApplyResult:
        semaphore = asyncio.Semaphore(max(1, self.options.parallelism))
        by_app = self.plan.changes_by_app()

        async def one(app_id: str, changes: list[Change]) -> None:
            async with semaphore:
                await self._run_app(app_id, changes)

        try:
            async with asyncio.TaskGroup() as group:
                for app_id, changes in by_app.items():
                    group.create_task(one(app_id, changes))
        except asyncio.CancelledError:
            self.result.interrupted = True
            raise
        finally:
            self._remember_metadata()
        return self.result

    async def _run_app(self, app_id: str, changes: list[Change]) -> None:
        applied: set[str] = set()
        if self._stop:
            self._skip_all(changes)
            return
        if self.options.verify_fingerprints:
            try:
                problem = await self._stale(app_id, changes)
            except Exception as exc:  # one app's failed re-read must not stop the others
                problem = f"could not re-read the live objects to check the saved plan: {exc}"
            if problem:
                for change in changes:
                    self._report(ChangeResult(change, "failed", problem))
                return
        for index, change in enumerate(changes):
            # Yield to the loop: an in-process sandbox never does, and a Ctrl-C must be seen.
            await asyncio.sleep(0)
            if self._stop:
                self._skip_all(changes[index:])
                return
            if not applied.issuperset(change.depends_on):
                # Run only after everything it depends on was applied (not merely "not
                # failed"): a status step never runs before its version is right.
                self._report(
                    ChangeResult(change, "skipped", "skipped: a change it depends on failed")
                )
                continue
            if self.options.on_start:
                self.options.on_start(change)
            try:
                await self._execute(change)
            except ReconcilerError as exc:
                self._report(ChangeResult(change, "failed", str(exc)))
                continue
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                # A saved plan edited by hand, or from another version: fail this change only.
                message = f"the plan's payload for this change is invalid: {exc}"
                self._report(ChangeResult(change, "failed", message))
                continue
            except Exception as exc:
                # A bug of ours must not cancel the other apps' writes in flight (the task
                # group would): fail this change, report it, go on.
                message = f"internal error: {type(exc).__name__}: {exc} (please report it)"
                self._report(ChangeResult(change, "failed", message))
                continue
            applied.add(change.address)
            self._report(ChangeResult(change, "applied"))

    def _skip_all(self, changes: Sequence[Change]) -> None:
        self.result.interrupted = True
        for change in changes:
            self._report(ChangeResult(change, "skipped", "not started: the run was interrupted"))

    def _report(self, result: ChangeResult) -> None:
        self.result.results.append(result)
        if self.options.on_result:
            self.options.on_result(result)

    async def _stale(self, app_id: str, changes: list[Change]) -> str | None:
        wants_locations = f"miniapp[{app_id}].locations" in self.plan.fingerprints
        versions = {
            code: vid
            for code in {c.version_code for c in changes if c.version_code}
            if f"miniapp[{app_id}].version[{code}]" in self.plan.fingerprints
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
        return None

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
        return record

    def _commit(self, app_id: str) -> None:
        self.store.record(app_id, self.state.apps.get(app_id))

    def _remember_metadata(self) -> None:
        """Labels and protection live only in the state: refresh them for every app the plan
        keeps (this is how an applied `protect: false` lifts a protection). They travel in
        the plan, so `apply --plan` records them too."""
        for app_id, meta in self.plan.app_meta.items():
            record = self.state.apps.get(app_id)
            if record is None:
                continue
            if record.protect != meta.protect or record.labels != meta.labels:
                record.protect = meta.protect
                record.labels = dict(meta.labels)
                self._commit(app_id)

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

    async def _execute(self, change: Change) -> None:
        handler = getattr(self, f"_{change.resource}_{change.action}", None)
        if handler is None:  # pragma: no cover - the diff only emits known pairs
            raise _Failed(f"no handler for {change.resource} {change.action}")
        await handler(change)

    # mini app
    async def _miniapp_create(self, change: Change) -> None:
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
        await self._store_app_fields(app_id, record, fields)

    async def _miniapp_update(self, change: Change) -> None:
        payload = dict(change.payload or {})
        body = await self._uploaded(payload, APP_IMAGE_FIELDS)
        await self.client.update_miniapp(change.app_id, MiniAppUpdate(**body))
        record = self._record(change.app_id)
        await self._store_app_fields(change.app_id, record, payload)

    async def _store_app_fields(
        self, app_id: str, record: AppRecord, fields: Mapping[str, Any]
    ) -> None:
        images = {k: v for k, v in fields.items() if k in APP_IMAGE_FIELDS}
        for name, value in fields.items():
            if name not in APP_IMAGE_FIELDS:
                record.fields[name] = value
        if images:
            # The server answers upload ids as URLs: remember both, so that the next plan
            # compares ids with ids and drift compares URLs with URLs.
            live = await self.client.get_miniapp(app_id)
            for name, value in images.items():
                url = getattr(live, name, None) if live is not None else None
                record.objects[name] = ObjectRef(object_id=object_key(value), url=url)
        self._commit(app_id)

    async def _miniapp_delete(self, change: Change) -> None:
        try:
            await self.client.delete_miniapp(change.app_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
        self.state.apps.pop(change.app_id, None)
        self._commit(change.app_id)

    # attributes (POST is a set: create and update are the same call)
    async def _attribute_create(self, change: Change) -> None:
        payload = change.payload or {}
        await self.client.set_attribute(change.app_id, payload["field"], payload["value"])
        record = self._record(change.app_id)
        if record.attributes is None:
            record.attributes = {}
        record.attributes[payload["field"]] = payload["value"]
        self._commit(change.app_id)

    _attribute_update = _attribute_create

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
        self._commit(change.app_id)

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
        self._store_location(change.app_id, payload["name"], location_id, payload["geo_point"])

    async def _location_update(self, change: Change) -> None:
        payload = change.payload or {}
        assert change.target_id is not None
        body = LocationBody(name=payload["name"], geo_point=payload["geo_point"])
        await self.client.update_location(change.app_id, change.target_id, body)
        self._store_location(change.app_id, payload["name"], change.target_id, payload["geo_point"])

    def _store_location(self, app_id: str, name: str, location_id: int, geo_point: str) -> None:
        record = self._record(app_id)
        if record.locations is None:
            record.locations = {}
        record.locations[name] = LocationRecord(id=location_id, geo_point=geo_point)
        self._commit(app_id)

    async def _location_delete(self, change: Change) -> None:
        assert change.target_id is not None
        try:
            await self.client.delete_location(change.app_id, change.target_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
        record = self._record(change.app_id)
        if record.locations is not None and change.key is not None:
            kept = record.locations.get(change.key)
            if kept is not None and kept.id == change.target_id:
                del record.locations[change.key]
        self._commit(change.app_id)

    # versions
    async def _version_create(self, change: Change) -> None:
        payload = dict(change.payload or {})
        code = payload["code"]
        app_id = change.app_id
        record = self._record(app_id)
        body = await self._uploaded(payload, VERSION_OBJECT_FIELDS)  # no version POST yet
        # Intent right before the POST: if we die between the POST and the record below, the
        # next plan knows the create may have happened and will not create a second version.
        record.versions[code] = VersionRecord(create_outcome=UNKNOWN)
        self._commit(app_id)
        try:
            created = await self.client.create_version(app_id, VersionCreate(**body))
        except AmbiguousWriteError as exc:
            raise _Failed(
                f"{exc}. The API cannot list versions, so it is not retried: find the version's"
                f" id in the Mini App Center and run `reconciler state adopt-version {app_id}"
                f" {code} ID`, or `reconciler state rm {app_id} --version {code}` if it was"
                " not created"
            ) from exc
        except ReconcilerError:
            # A definite refusal: nothing was created.
            del record.versions[code]
            self._commit(app_id)
            raise
        fields = {k: v for k, v in payload.items() if k != "code"}
        version = VersionRecord(id=created.id, compatibility=[], status="pending")
        record.versions[code] = version
        await self._store_version_fields(app_id, version, fields)

    async def _version_update(self, change: Change) -> None:
        payload = dict(change.payload or {})
        assert change.version_code is not None
        version_id = self._version_id(change)
        body = await self._uploaded(payload, VERSION_OBJECT_FIELDS)
        await self.client.update_version(change.app_id, version_id, VersionUpdate(**body))
        record = self._record(change.app_id)
        version = record.versions.setdefault(change.version_code, VersionRecord(id=version_id))
        await self._store_version_fields(change.app_id, version, payload)

    async def _store_version_fields(
        self, app_id: str, version: VersionRecord, fields: Mapping[str, Any]
    ) -> None:
        objects = {k: v for k, v in fields.items() if k in VERSION_OBJECT_FIELDS}
        for name, value in fields.items():
            if name not in VERSION_OBJECT_FIELDS:
                version.fields[name] = value
        if objects and version.id is not None:
            live = await self.client.get_version(app_id, version.id)
            for name, value in objects.items():
                url = getattr(live, name, None) if live is not None else None
                version.objects[name] = ObjectRef(object_id=object_key(value), url=url)
        self._commit(app_id)

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
        self._commit(change.app_id)

    # review status steps
    async def _status_update(self, change: Change) -> None:
        version_id = self._version_id(change)
        assert change.version_code is not None and change.step is not None
        version = self._record(change.app_id).versions[change.version_code]
        previous = version.status
        target = (change.after or {}).get("status")
        # Not readable back: mark unknown while the step is in flight.
        version.status = UNKNOWN
        self._commit(change.app_id)
        step = getattr(self.client, change.step)
        try:
            await step(change.app_id, version_id)
        except AmbiguousWriteError as exc:
            raise _Failed(
                f"{exc}. The API does not return review status; check it in the Mini App"
                f" Center and record it with `reconciler state set-status {change.app_id}"
                f" {change.version_code} STATUS`"
            ) from exc
        except ReconcilerError:
            version.status = previous
            self._commit(change.app_id)
            raise
        version.status = target
        self._commit(change.app_id)


def _read_bytes(path: str) -> bytes:
    # Same rules as when the plan was made: a regular file, capped, a FIFO cannot hang.
    from pathlib import Path

    from reconciler.manifest.files import MAX_OBJECT_BYTES, FileRefused, read_regular_file

    try:
        return read_regular_file(Path(path), MAX_OBJECT_BYTES, "file")
    except FileRefused as exc:
        raise OSError(str(exc)) from None
