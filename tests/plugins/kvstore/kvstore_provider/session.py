"""The kvstore's session for the engine's service (:mod:`reconciler.engine.session`).

:data:`KVSTORE_CONNECTOR` opens a :class:`KvSession` on ``KVSTORE_URL`` with
``KVSTORE_API_KEY``, or on the in-process sandbox (``--sandbox``: a JSON file beside the Mini
App Center's sandbox database, an API key made for this process only). The state's section
holds one record per entry (``{"id", "value", "labels"}``) under the kind ``kv_entry``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from kvstore_provider.manifest import KEY_RE, KvEntry, render_manifest
from kvstore_provider.provider import PROVIDER, ROOT_KIND
from kvstore_provider.sandbox import API_KEY_HEADER, make_app
from reconciler.address import root_address
from reconciler.engine.drift import DriftItem, DriftKind, DriftReport
from reconciler.engine.plan import AppMeta, Change, FieldChange, Plan
from reconciler.engine.session import (
    ChangeEvent,
    Connector,
    Imported,
    ProviderSession,
    RecordWrite,
    Scope,
    Section,
    SectionApplied,
)
from reconciler.errors import ApiError, ConfigError, ReconcilerError, TransportError
from reconciler.secrets import redact, secrets_registered
from reconciler.transport.body import read_body
from reconciler.transport.config import limits_from_env
from reconciler.transport.guard import GuardedTransport

URL_ENV = "KVSTORE_URL"
API_KEY_ENV = "KVSTORE_API_KEY"
SANDBOX_FILE = "kvstore-sandbox.json"
SANDBOX_ORIGIN = "http://localhost"  # never dialled: the ASGI transport serves it in-process


class KvClient:
    """The store's HTTP API: every answer bounded in size and time, errors redacted."""

    def __init__(self, client: httpx.AsyncClient, env: Mapping[str, str]) -> None:
        self.client = client
        self.limits = limits_from_env(env)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        # The deadline and the size cap are the engine's guarded transport's (connect()); the
        # bounded reader only keeps this client from holding more than the cap.
        try:
            request = self.client.build_request(method, path, json=body)
            response = await self.client.send(request, stream=True)
            try:
                read = await read_body(response, self.limits.max_response_bytes)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            # Masked before it is cut: no prefix of a secret survives.
            reason = redact(f"{type(exc).__name__}: {exc}")[:300]
            raise TransportError(method, path, reason) from None
        if read.truncated:
            raise TransportError(method, path, "the answer is larger than the response cap")
        if response.status_code >= 400 and response.status_code != 404:
            text = redact(read.content.decode("utf-8", "replace"))[:200]
            raise ApiError(method, path, response.status_code, text=text)
        data = json.loads(read.content) if read.content else None
        return response.status_code, data

    async def entries(self) -> dict[str, str]:
        _, data = await self.call("GET", "/entries")
        return {str(item["key"]): str(item["value"]) for item in data["entries"]}


class KvSession:
    def __init__(self, client: KvClient, identity: str, display: str) -> None:
        self.client = client
        self._identity = identity
        self._display = display

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def display(self) -> str:
        return self._display

    def bind(self, section: Section) -> None:
        if section.endpoint is None:
            section.endpoint = self._identity
        elif section.endpoint != self._identity:
            raise ReconcilerError(
                f"the state's kvstore section was applied to {section.endpoint[:200]}, not"
                f" {self._identity[:200]}: use the state of that store"
            )

    async def plan(self, desired: Sequence[Any], section: Section, scope: Scope) -> Plan:
        records = section.resources.get(ROOT_KIND, {})
        live = await self.client.entries()
        changes: list[Change] = []
        wanted: dict[str, KvEntry] = {entry.name: entry for entry in _entries(desired)}
        for key, entry in sorted(wanted.items()):
            address = root_address(PROVIDER, ROOT_KIND, key)
            after = {"value": entry.value}
            if key not in live:
                reason = "deleted outside since the last apply" if key in records else None
                changes.append(
                    Change(
                        address, ROOT_KIND, "create", key, None, after, payload=after, reason=reason
                    )
                )
            elif live[key] != entry.value:
                before = {"value": live[key]}
                changes.append(
                    Change(
                        address,
                        ROOT_KIND,
                        "update",
                        key,
                        before,
                        after,
                        payload=after,
                        fields=(FieldChange("value", live[key], entry.value),),
                    )
                )
        if scope.prune:
            for key, record in sorted(records.items()):
                labels = dict(record.get("labels") or {})
                if key in wanted or key in scope.declared or not scope.includes(key, labels):
                    continue
                if key in live:
                    address = root_address(PROVIDER, ROOT_KIND, key)
                    changes.append(
                        Change(address, ROOT_KIND, "delete", key, {"value": live[key]}, None)
                    )
        keys = sorted({*wanted, *(c.app_id for c in changes)})
        meta = {key: AppMeta(False, dict(entry.labels)) for key, entry in wanted.items()}
        return Plan(
            endpoints={PROVIDER: self._identity},
            changes=tuple(changes),
            apps=tuple(keys),
            app_meta=meta,
        )

    async def apply(
        self,
        plan: Plan,
        section: Section,
        *,
        desired: Sequence[Any] | None,
        parallelism: int,
        record: RecordWrite,
        on_event: Callable[[ChangeEvent], None],
    ) -> SectionApplied:
        applied = SectionApplied()
        records = section.resources.setdefault(ROOT_KIND, {})
        stuck = {key: problems[0].message for key, problems in plan.stuck_apps.items()}
        for change in plan.changes:
            if change.provider != PROVIDER:
                continue
            key = change.app_id
            if key in stuck:
                applied.stuck.append(key)
                _tell(applied, on_event, ChangeEvent(change, "skipped", stuck[key]))
                continue
            on_event(ChangeEvent(change, "started"))  # its write starts (not a result)
            try:
                path = f"/entries/{quote(key, safe='')}"
                if change.action == "delete":
                    await self.client.call("DELETE", path)
                    records.pop(key, None)
                    await record(ROOT_KIND, key, None)
                else:
                    assert change.payload is not None
                    await self.client.call("PUT", path, dict(change.payload))
                    meta = plan.app_meta.get(key)
                    labels = dict(meta.labels) if meta is not None else {}
                    records[key] = {"id": key, "value": change.payload["value"], "labels": labels}
                    await record(ROOT_KIND, key, records[key])
            except ReconcilerError as exc:
                _tell(applied, on_event, ChangeEvent(change, "failed", str(exc)))
                continue
            _tell(applied, on_event, ChangeEvent(change, "applied"))
        return applied

    def drift(self, plan: Plan, section: Section) -> DriftReport:
        """A create of a recorded entry: missing; an update whose manifest still says what was
        applied: changed outside; anything else: pending."""
        records = section.resources.get(ROOT_KIND, {})
        items: list[DriftItem] = []
        for change in plan.changes:
            if change.provider != PROVIDER:
                continue
            record = records.get(change.app_id)
            applied = record.get("value") if record is not None else None
            after = (change.after or {}).get("value")
            before = (change.before or {}).get("value")
            kind: DriftKind
            if change.action == "create" and record is not None:
                kind = "missing"
            elif change.action == "update" and record is not None and applied == after:
                kind = "changed_outside"
            else:
                kind = "pending"
            items.append(
                DriftItem(
                    kind,
                    change.address,
                    change.app_id,
                    ROOT_KIND,
                    "value",
                    expected=after,
                    live=before,
                    last_applied=applied,
                )
            )
        return DriftReport(
            endpoint=self._identity,
            items=tuple(items),
            apps_checked=len(plan.apps),
            errors=plan.errors,
            warnings=plan.warnings,
        )

    async def import_resource(self, ref: str, section: Section) -> Imported:
        if not KEY_RE.fullmatch(ref):
            raise ConfigError(f"import: {ref[:100]!r} is not an entry key")
        records = section.resources.setdefault(ROOT_KIND, {})
        if ref in records:
            raise ReconcilerError(
                f"{ref} is already in the state: its manifest is what plan compares"
            )
        status, data = await self.client.call("GET", f"/entries/{quote(ref, safe='')}")
        if status == 404:
            raise ReconcilerError(f"the store has no entry {ref}")
        value = str(data["value"])
        records[ref] = {"id": ref, "value": value, "labels": {}}
        return Imported(ref, render_manifest(ref, value, {}))


def _tell(
    applied: SectionApplied, on_event: Callable[[ChangeEvent], None], event: ChangeEvent
) -> None:
    applied.events.append(event)
    on_event(event)


def _entries(desired: Sequence[Any]) -> list[KvEntry]:
    return [item if isinstance(item, KvEntry) else item.app for item in desired]


class KvConnector:
    name = PROVIDER

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        return bool(env.get(URL_ENV))

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool = True,
    ) -> AbstractAsyncContextManager[KvSession]:
        return self._session(env, sandbox_dir, keep_sandbox)

    @asynccontextmanager
    async def _session(
        self, env: Mapping[str, str], sandbox_dir: Path | None, keep_sandbox: bool
    ) -> AsyncIterator[KvSession]:
        if sandbox_dir is not None:
            store = sandbox_dir.resolve() / SANDBOX_FILE
            if keep_sandbox:  # plan and drift create no file or folder
                store.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(24)  # this process's own: never shown, never stored
            transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=make_app(store, key))
            base, identity = SANDBOX_ORIGIN, f"sandbox:{store}"
            display = f"the embedded kvstore sandbox (in-process, {store})"
        else:
            base, key = env.get(URL_ENV, ""), env.get(API_KEY_ENV, "")
            if not base or not key:
                raise ConfigError(
                    f"the kvstore provider needs {URL_ENV} and {API_KEY_ENV} (or --sandbox)"
                )
            # The engine's guarded transport: the per-request deadline and the size cap apply
            # to every byte of every answer, whatever this client does with it.
            transport = GuardedTransport(httpx.AsyncHTTPTransport(), limits_from_env(env))
            identity = display = base.rstrip("/")
        with secrets_registered(key):  # masked in every message while the session is open
            async with httpx.AsyncClient(
                transport=transport,
                base_url=base,
                headers={API_KEY_HEADER: key},
                timeout=httpx.Timeout(30.0),
                follow_redirects=False,
            ) as client:
                yield KvSession(KvClient(client, env), identity, display)


KVSTORE_CONNECTOR = KvConnector()

if TYPE_CHECKING:  # the engine's protocols, checked by mypy

    def _conforms(session: KvSession) -> tuple[Connector, ProviderSession]:
        return KVSTORE_CONNECTOR, session
