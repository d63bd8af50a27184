"""A saved Akana plan, validated whole before anything runs (a plan is data, never code).

Every field has a strict schema; every write is one of :data:`OPERATIONS`; every address
parses and names this provider and the change's own kind; each payload is exactly the body its
handler sends (the wire models, which forbid unknown fields), and names what its address
names. Nothing from the file is quoted unless printable and short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from reconciler.address import AddressError, parse_address
from reconciler.engine.plan import FORMAT_VERSION, Change, Plan
from reconciler.engine.plan_file import bounded_json
from reconciler.engine.plan_schema import MAX_CHANGES, MAX_NAME, MAX_TEXT, STRICT
from reconciler.engine.plan_schema import Address as _Address
from reconciler.engine.plan_schema import AppMeta as _AppMeta
from reconciler.engine.plan_schema import Name as _Name
from reconciler.engine.plan_schema import StateRef as _StateRef
from reconciler.engine.plan_schema import Summary as _Summary
from reconciler.engine.plan_schema import Text as _Text
from reconciler.errors import PlanError
from reconciler.providers.akana.diff import Adoption, _app_before, _version_before
from reconciler.providers.akana.live import live_app, live_version
from reconciler.providers.akana.model import VISIBILITIES
from reconciler.providers.akana.records import AkanaSection
from reconciler.providers.akana.vocabulary import (
    OPERATIONS,
    PROVIDER,
    ROOT_KIND,
    ROOT_KINDS,
    VERSION_KIND,
)
from reconciler.providers.akana.wire import (
    AppCreate,
    AppDetail,
    AppUpdate,
    AppVersion,
    VersionCreate,
    VersionUpdate,
)

_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    (ROOT_KIND, "create"): AppCreate,
    (ROOT_KIND, "update"): AppUpdate,
    (VERSION_KIND, "create"): VersionCreate,
    (VERSION_KIND, "update"): VersionUpdate,
}
MAX_DEPTH = 4  # before/after/payload: flat records, one nested version, lists of tags
MAX_ITEMS = 2_000
_REFUSED = ". Nothing was applied: make the plan again and review it"


def _bounded_json(value: Any) -> Any:
    """A JSON value of bounded depth and size (before/after/payload/fields)."""
    return bounded_json(
        value,
        max_depth=MAX_DEPTH, max_items=MAX_ITEMS, max_text=MAX_TEXT, max_key=MAX_NAME,
    )


_Json = Annotated[Any, AfterValidator(_bounded_json)]
_Record = Annotated[dict[str, Any], AfterValidator(_bounded_json)]


class _Strict(BaseModel):
    model_config = STRICT


class _FieldChange(_Strict):
    path: _Name
    before: _Json
    after: _Json


class _Change(_Strict):
    provider: Literal["akana"]
    kind: Literal["akana_app", "version"]
    address: _Address
    action: Literal["create", "update", "delete"]
    app_id: _Name
    before: _Record | None
    after: _Record | None
    key: _Name | None = None
    payload: _Record | None = None
    fields: Annotated[list[_FieldChange], Field(max_length=100)] = []
    depends_on: Annotated[list[_Address], Field(max_length=1_000)] = []
    reason: _Text | None = None


class _Problem(_Strict):
    message: _Text
    app_id: _Name | None = None
    address: _Address | None = None
    scope: Literal["fleet", "app", "version"] | None = None


class _Adoption(_Strict):
    address: _Address
    app_id: _Name
    server_id: _Name
    versions: Annotated[dict[_Name, _Name], Field(max_length=1_000)]


class _Details(_Strict):
    warnings: Annotated[list[_Problem], Field(max_length=MAX_CHANGES)]
    errors: Annotated[list[_Problem], Field(max_length=MAX_CHANGES)]


class _PlanFile(_Strict):
    format_version: Literal[2]
    endpoints: Annotated[
        dict[Literal["akana"], Annotated[str, Field(min_length=1, max_length=4096)]],
        Field(min_length=1),
    ]
    summary: _Summary
    changes: Annotated[list[_Change], Field(max_length=MAX_CHANGES)]
    warnings: Annotated[list[_Text], Field(max_length=MAX_CHANGES)]
    errors: Annotated[list[_Text], Field(max_length=MAX_CHANGES)]
    details: _Details
    state: _StateRef
    fingerprints: Annotated[dict[_Address, Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]],
                            Field(max_length=MAX_CHANGES)]
    apps: Annotated[list[_Name], Field(max_length=MAX_CHANGES)]
    app_meta: Annotated[dict[_Name, _AppMeta], Field(max_length=MAX_CHANGES)]
    learned: Annotated[list[_Adoption], Field(max_length=MAX_CHANGES)] = []


def load_saved_plan(data: object, source: str) -> Plan:
    """The Akana plan in ``data`` (parsed JSON), or :class:`PlanError` naming the first problem."""
    if not isinstance(data, dict):
        raise PlanError(f"plan file {source} is not a saved plan (expected a JSON object)")
    if data.get("format_version") != FORMAT_VERSION:
        raise PlanError(f"plan file {source}: unsupported format_version; this reconciler reads"
                        f" {FORMAT_VERSION}{_REFUSED}")
    if "incremental" in data:
        raise PlanError(f"plan file {source} is incremental (made with plan --changed-since);"
                        f" apply refuses it{_REFUSED}")
    try:
        parsed = _PlanFile.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_schema_message(source, exc)) from None
    problem = _address_problem(parsed)
    if problem is None:
        plan = Plan.from_dict(
            parsed.model_dump(exclude_none=True, exclude={"summary": {"adopt"}}),
            root_kinds=ROOT_KINDS,
            read_fact=Adoption.from_dict,
        )
        problem = _plan_problem(plan, parsed)
    if problem is not None:
        raise PlanError(f"plan file {source}: {problem}{_REFUSED}")
    return plan


def _schema_message(source: str, exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"][:5]) or "(whole)"
    return f"plan file {source}: field {field[:120]}: {str(first['msg'])[:200]}{_REFUSED}"


def _printable(text: str) -> str:
    shown = text if text.isprintable() else "address not printable"
    return shown if len(shown) <= 200 else shown[:200] + "..."


def _address_problem(parsed: _PlanFile) -> str | None:
    texts = [a for c in parsed.changes for a in (c.address, *c.depends_on)]
    texts += [item.address for item in parsed.learned]
    texts += [p.address for p in (*parsed.details.warnings, *parsed.details.errors) if p.address]
    texts += list(parsed.fingerprints)
    for text in texts:
        try:
            parse_address(text, ROOT_KINDS)
        except AddressError as exc:
            return f"an address is not valid: {exc}"
    return None


def _plan_problem(plan: Plan, parsed: _PlanFile) -> str | None:
    for index, change in enumerate(plan.changes):
        problem = _change_problem(change)
        if problem is not None:
            return f"change {index} ({_printable(str(change.address))}): {problem}"
    for item in plan.learned:
        assert isinstance(item, Adoption)
        if item.address.parent is not None:
            return "an adoption must name an app"
    summary = parsed.summary
    if (summary.create, summary.update, summary.delete) != tuple(
        plan.summary[a] for a in ("create", "update", "delete")
    ):
        return "its summary does not count its changes"
    return None


def _change_problem(change: Change) -> str | None:
    address = change.address
    if (change.kind, change.action, change.step) not in OPERATIONS:
        return "not an Akana operation"
    if address.provider != PROVIDER or address.kind != change.kind or address.instance:
        return "provider and kind do not match its address"
    if address.root.key != change.app_id:
        return "app_id does not match its address"
    if change.kind == ROOT_KIND:
        if address.parent is not None or change.key is not None:
            return "an app's address is akana_app[NAME]"
        name = change.app_id
    else:
        if address.parent is None or address.parent.parent is not None or (
            address.key != change.key
        ):
            return "a version's address is akana_app[NAME].version[NAME] and key is its name"
        name = str(change.key)
    if change.action == "delete":
        if change.payload is not None or change.after is not None:
            return "a delete sends no body"
        if not isinstance((change.before or {}).get("id"), str):
            return "a delete names its server id in before.id"
        return None
    body = _body(change)
    if isinstance(body, str):
        return body
    if body.get("Name") != name:
        return "its body's Name is not the name its address gives"
    unshown = _unshown(change)
    if unshown is not None:
        return f"its body's {_printable(unshown)[:40]} is not what the plan shows (after)"
    if change.action == "update" and not isinstance((change.before or {}).get("id"), str):
        return "an update names its server id in before.id"
    return None


def _unshown(change: Change) -> str | None:
    """The first field whose value the body sends differs from the change's ``after`` (what
    the reviewer saw), or None. A visibility the body cannot carry is not sent (kept)."""
    model = _MODELS[(change.kind, change.action)]
    sent = model.model_validate(change.payload).model_dump(mode="json", exclude_none=True)
    return _first_difference(sent, change.after or {})


# Sent, never shown in ``after``: the environment a new version starts in (a create-time
# setting the platform does not read back, so no diff or `before` can hold it).
_UNSHOWN_FIELDS = frozenset({"id", "initial_environment"})


def _first_difference(sent: Mapping[str, Any], shown: Mapping[str, Any]) -> str | None:
    for key in sorted((set(sent) | set(shown)) - _UNSHOWN_FIELDS):
        value, seen = sent.get(key), shown.get(key)
        if isinstance(value, Mapping) and isinstance(seen, Mapping):
            inner = _first_difference(value, seen)
            if inner is not None:
                return f"{key}.{inner}"
        elif value != seen and not (key == "visibility" and value is None
                                    and seen not in VISIBILITIES):  # fmt: skip
            return key
    return None


def _body(change: Change) -> Mapping[str, Any] | str:
    model = _MODELS[(change.kind, change.action)]
    if change.payload is None:
        return "a create or update carries its body (payload)"
    try:
        model.model_validate(change.payload)
    except ValidationError as exc:
        return f"its body is not a valid {model.__name__} ({exc.error_count()} problems)"
    return change.payload


# --- at apply time: each change's target and `before` against the platform and the state ----

_SHOWN = 5  # problems named in the refusal (the rest counted)


class PlatformReader(Protocol):
    """The two reads the check makes (the Akana client has them; this module stays pure of
    any transport)."""

    async def get_app(self, app_id: str) -> AppDetail | None: ...

    async def list_versions(self, app_id: str) -> list[AppVersion]: ...


async def stale_saved_plan(client: PlatformReader, plan: Plan, akana: AkanaSection) -> str | None:
    """Why a saved plan is stale, or None: every update and delete's ``before`` (the object
    the reviewer saw: its server id, name and fields) must be what the platform has now, read
    again, and its id what the state records for the change's address. Checked for the whole
    plan before its first write: a plan edited to aim at another object, or made before
    someone changed one, is refused whole (nothing of it applied)."""
    stuck = plan.stuck_apps
    checked = [
        c for c in plan.changes
        if c.provider == PROVIDER and c.action != "create" and c.app_id not in stuck
    ]  # fmt: skip
    if not checked:
        return None
    adopted = {
        item.name: item.server_id for item in plan.learned if isinstance(item, Adoption)
    }
    versions_of: dict[str, asyncio.Task[list[AppVersion]]] = {}
    gate = asyncio.Semaphore(4)

    async def versions(server_id: str) -> list[AppVersion]:
        async with gate:
            return await client.list_versions(server_id)

    async def detail(server_id: str) -> AppDetail | None:
        async with gate:
            return await client.get_app(server_id)

    async def problem(change: Change) -> str | None:
        before = change.before or {}
        target = before.get("id")
        if not isinstance(target, str):
            return "it names no server id in before.id"
        record = akana.apps.get(change.app_id)
        app_server = record.id if record is not None else adopted.get(change.app_id)
        if change.kind == ROOT_KIND:
            if app_server is not None and app_server != target:
                return "it names a server id the state does not record for it"
            found = await detail(target)
            now = None if found is None else _app_before(live_app(found))
        else:
            recorded = record.versions.get(change.key or "") if record is not None else None
            if recorded is not None and recorded.id != target:
                return "it names a server id the state does not record for it"
            if app_server is None:
                return "the state records no app for it"
            if app_server not in versions_of:
                versions_of[app_server] = asyncio.ensure_future(versions(app_server))
            listed = await versions_of[app_server]
            match = next((v for v in listed if v.version_id == target), None)
            now = None if match is None else _version_before(live_version(match))
        if now is None:
            return "the object it names is no longer on the platform"
        differ = sorted(k for k, v in before.items() if now.get(k) != v)
        if differ:
            shown = ", ".join(_printable(k)[:40] for k in differ[:5])
            return f"the platform has another {shown} than the plan shows"
        return None

    found = await asyncio.gather(*(problem(c) for c in checked))
    problems = [
        f"{_printable(str(c.address))}: {why}"
        for c, why in zip(checked, found, strict=True) if why is not None
    ]  # fmt: skip
    if not problems:
        return None
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    return (
        f"stale saved plan: {'; '.join(problems[:_SHOWN])}{more}. Nothing of it was applied:"
        " run `reconciler plan --out` again and review it"
    )
