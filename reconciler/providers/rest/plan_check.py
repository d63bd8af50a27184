"""A saved REST plan is data, never code: validated whole before anything runs.

Checked: strict types and no unknown keys (pydantic, extra="forbid"); every change's
(kind, action) in :data:`OPERATIONS`; every address a ``rest_object[ENDPOINT:PATH:KEY]``
whose endpoint and path are what the checker accepts; the change's shape by action (a create
has a payload and no target, an update a payload of the fields it changes and a target (a
positive integer or a URL-safe string id), a delete a target and no payload); the
natural-key field a field name;
``app_id`` the address key; adoptions valid records filed under their own address;
the summary equal to the counts. The file's values are never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from reconciler.address import AddressError, parse_address
from reconciler.engine.plan import FORMAT_VERSION, Plan
from reconciler.errors import PlanError
from reconciler.providers.rest.config import is_safe_path
from reconciler.providers.rest.manifest.document import ENDPOINT_NAME_RE
from reconciler.providers.rest.model import FIELD_NAME_RE, SERVER_ID_RE
from reconciler.providers.rest.records import RestRecord
from reconciler.providers.rest.vocabulary import (
    OPERATIONS,
    PROVIDER,
    ROOT_KIND,
    ROOT_KINDS,
    Adopt,
    split_address_key,
)

MAX_CHANGES = 100_000
Json = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _FieldChange(_Strict):
    path: StrictStr
    before: Any = None
    after: Any = None


class _Change(_Strict):
    provider: Literal["rest"]
    kind: Literal["rest_object"]
    address: StrictStr = Field(max_length=2048)
    action: Literal["create", "update", "delete"]
    app_id: StrictStr
    before: Json | None = None
    after: Json | None = None
    key: StrictStr
    # An integer id, or a URL-safe string one (a slug, a UUID: D95).
    target_id: (
        Annotated[StrictInt, Field(gt=0)]
        | Annotated[StrictStr, Field(pattern=f"^(?:{SERVER_ID_RE.pattern})$")]
        | None
    ) = None
    payload: Json | None = None
    fields: list[_FieldChange] = Field(default_factory=list)
    reason: StrictStr | None = Field(default=None, max_length=500)
    # Other REST objects' changes this one runs after (references between objects).
    depends_on: list[Annotated[StrictStr, Field(max_length=2048)]] = Field(
        default_factory=list, max_length=1_000
    )


class _Adopt(_Strict):
    address: StrictStr = Field(max_length=2048)
    adopt: Json


class _Details(_Strict):
    warnings: list[Json] = Field(default_factory=list)
    errors: list[Json] = Field(default_factory=list)


class _Meta(_Strict):
    protect: StrictBool = False
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class _PlanFile(_Strict):
    format_version: Literal[2]
    incremental: Json | None = None
    endpoints: dict[StrictStr, StrictStr]
    summary: dict[StrictStr, StrictInt]
    changes: list[_Change] = Field(max_length=MAX_CHANGES)
    warnings: list[StrictStr] = Field(default_factory=list)
    errors: list[StrictStr] = Field(default_factory=list)
    details: _Details = Field(default_factory=_Details)
    state: Json = Field(default_factory=dict)
    fingerprints: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    apps: list[StrictStr] = Field(default_factory=list)
    app_meta: dict[StrictStr, _Meta] = Field(default_factory=dict)
    learned: list[_Adopt] = Field(default_factory=list)


def _fail(source: str, where: str, why: str) -> PlanError:
    return PlanError(f"{source}: not a plan this reconciler made ({where}: {why}); re-run plan")


def _check_key(text: str) -> tuple[str, str, str]:
    endpoint, path, key = split_address_key(text)
    if not ENDPOINT_NAME_RE.fullmatch(endpoint) or not is_safe_path(path) or not key:
        raise ValueError("bad endpoint, path or key")
    return endpoint, path, key


def _check_change(index: int, change: _Change, source: str) -> None:
    where = f"changes[{index}]"
    if (change.kind, change.action, None) not in OPERATIONS:
        raise _fail(source, where, "unknown operation")
    try:
        address = parse_address(change.address, ROOT_KINDS)
        if address.parent is not None or address.instance is not None or address.key is None:
            raise ValueError("nested address")
        _check_key(address.key)
    except (AddressError, ValueError):
        raise _fail(source, where, "bad address") from None
    if change.app_id != address.key:
        raise _fail(source, where, "app_id is not the address key")
    for dependency in change.depends_on:
        try:
            other = parse_address(dependency, ROOT_KINDS)
            if other.kind != ROOT_KIND or other.key is None:
                raise ValueError(dependency)
            _check_key(other.key)
        except (AddressError, ValueError):
            raise _fail(source, where, "depends_on names no REST object") from None
    if not FIELD_NAME_RE.fullmatch(change.key):
        raise _fail(source, where, "key is not a field name")
    if change.action == "create":
        if change.payload is None or change.target_id is not None:
            raise _fail(source, where, "a create has a payload and no target")
        if change.key not in change.payload:
            raise _fail(source, where, "a create's payload holds its key field")
    elif change.action == "update":
        if change.payload is None or change.target_id is None or not change.payload:
            raise _fail(source, where, "an update has a payload and a target")
        if set(change.payload) != {f.path for f in change.fields}:
            raise _fail(source, where, "an update's payload is not its changed fields")
    elif change.payload is not None or change.target_id is None:
        raise _fail(source, where, "a delete has a target and no payload")


def _read_fact(item: Mapping[str, Any]) -> Adopt:
    record = RestRecord.model_validate(item["adopt"])
    return Adopt(record.address_key, record.as_json())


def load_saved_plan(data: Mapping[str, Any], source: str) -> Plan:
    """The REST plan in ``data`` (parsed JSON), validated whole, or PlanError."""
    try:
        parsed = _PlanFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])[:200]
        raise _fail(source, where or "plan", first["type"]) from None
    if set(parsed.endpoints) != {PROVIDER}:
        raise _fail(source, "endpoints", f"a REST plan names the {PROVIDER} provider only")
    for index, change in enumerate(parsed.changes):
        _check_change(index, change, source)
    for index, fact in enumerate(parsed.learned):
        where = f"learned[{index}]"
        try:
            record = RestRecord.model_validate(fact.adopt)
            address = parse_address(fact.address, ROOT_KINDS)
        except (ValidationError, AddressError):
            raise _fail(source, where, "not an adoption") from None
        if address.kind != ROOT_KIND or address.key != record.address_key:
            raise _fail(source, where, "filed under another address")
    counts = {action: 0 for action in ("create", "update", "delete")}
    for change in parsed.changes:
        counts[change.action] += 1
    if parsed.learned:
        counts["adopt"] = len(parsed.learned)
    if parsed.summary != counts:
        raise _fail(source, "summary", "does not match the changes")
    try:
        return Plan.from_dict(data, root_kinds=ROOT_KINDS, read_fact=_read_fact)
    except (KeyError, ValueError, TypeError):
        raise _fail(source, "plan", "unreadable") from None


__all__ = ["FORMAT_VERSION", "load_saved_plan"]
