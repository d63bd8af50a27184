"""A saved Akana plan, validated whole before anything runs (a plan is data, never code).

Every field has a strict schema; every write is one of :data:`OPERATIONS`; every address
parses and names this provider and the change's own kind; each payload is exactly the body its
handler sends (the wire models, which forbid unknown fields), and names what its address
names. Nothing from the file is quoted unless printable and short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

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
from reconciler.providers.akana.diff import Adoption
from reconciler.providers.akana.vocabulary import (
    OPERATIONS,
    PROVIDER,
    ROOT_KIND,
    ROOT_KINDS,
    VERSION_KIND,
)
from reconciler.providers.akana.wire import AppCreate, AppUpdate, VersionCreate, VersionUpdate

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
    if change.action == "update" and not isinstance((change.before or {}).get("id"), str):
        return "an update names its server id in before.id"
    return None


def _body(change: Change) -> Mapping[str, Any] | str:
    models: dict[tuple[str, str], type[BaseModel]] = {
        (ROOT_KIND, "create"): AppCreate,
        (ROOT_KIND, "update"): AppUpdate,
        (VERSION_KIND, "create"): VersionCreate,
        (VERSION_KIND, "update"): VersionUpdate,
    }
    model = models[(change.kind, change.action)]
    if change.payload is None:
        return "a create or update carries its body (payload)"
    try:
        model.model_validate(change.payload)
    except ValidationError as exc:
        return f"its body is not a valid {model.__name__} ({exc.error_count()} problems)"
    return change.payload
