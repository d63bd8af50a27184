"""A saved plan is data, never code: validate it whole before anything is written.

`apply --plan FILE` executes what a file says, and the file may have been edited (by hand, by
a compromised CI step, by another version of the tool). So before the lock, the prompt or any
request, the file is checked against what `plan` itself could have produced:

1. schema: strict types, no unknown keys, bounded sizes (:class:`_PlanFile`);
2. vocabulary: (resource, action, step) is one of :data:`reconciler.engine.plan.OPERATIONS`;
3. ids: app ids and attribute fields on the URL allow-lists, positive bounded integer ids,
   version codes and location names printable text;
4. consistency: every address recomputed from (app_id, resource, key, version_code, step,
   target_id) with the diff's own helpers; payload/before/after matching the change (a
   status step's before/after are that step's source/target, a location payload's name is
   its key, ...); depends_on naming earlier changes of the same app; summary = the counts;
5. deletes: an app the plan's manifests keep is never deleted, nor one protected there.

:func:`check_against_state` then re-checks, under the lock, what needs the state: protection
recorded in the state, status chains starting where the state says, and location ids.

The first problem is reported as one line naming the change (index and address); the file's
values are never echoed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from reconciler.address import Address, AddressError, parse_address
from reconciler.engine.plan import FORMAT_VERSION, Change, Plan
from reconciler.engine.plan_file import bounded_json
from reconciler.engine.plan_schema import (
    MAX_CHANGES,
    MAX_INT,
    MAX_NAME,
    MAX_TEXT,
    STRICT,
)
from reconciler.engine.plan_schema import Address as _Address
from reconciler.engine.plan_schema import AppMeta as _AppMeta
from reconciler.engine.plan_schema import Name as _Name
from reconciler.engine.plan_schema import StateRef as _StateRef
from reconciler.engine.plan_schema import Summary as _Summary
from reconciler.engine.plan_schema import Text as _Text
from reconciler.errors import PlanError
from reconciler.providers.miniappcenter.addresses import (
    app_address,
    attribute_address,
    compatibility_address,
    location_address,
    locations_address,
    status_address,
    version_address,
)
from reconciler.providers.miniappcenter.diff import field_changes
from reconciler.providers.miniappcenter.ids import (
    app_id_problem,
    attribute_field_problem,
    location_name_problem,
    version_code_problem,
)
from reconciler.providers.miniappcenter.model import (
    APP_FIELDS,
    APP_IMAGE_FIELDS,
    FILE_SOURCE_RE,
    GXUPLOAD_RE,
    STATUSES,
    VERSION_FIELDS,
    VERSION_OBJECT_FIELDS,
    LiveApp,
    normalize_geo_point,
)
from reconciler.providers.miniappcenter.vocabulary import (
    LEARN_STATUS,
    OPERATIONS,
    ROOT_KINDS,
    STATUS_STEPS,
    Learned,
    learned_of,
)
from reconciler.state import UNKNOWN, State

MAX_DEPTH = 6  # before/after/fields values: flat records, one level of lists
MAX_ITEMS = 10_000

_PositiveInt = Annotated[int, Field(gt=0, le=MAX_INT)]


def _bounded_json(value: Any) -> Any:
    """A JSON value of bounded depth and size (before/after/payload/fields)."""
    return bounded_json(
        value,
        max_depth=MAX_DEPTH, max_items=MAX_ITEMS, max_text=MAX_TEXT, max_key=MAX_NAME,
        max_int=MAX_INT,
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
    provider: Literal["miniappcenter"]
    kind: Literal["miniapp", "attribute", "location", "version", "compatibility", "status"]
    address: Annotated[str, Field(min_length=1, max_length=4 * MAX_NAME)]
    action: Literal["create", "update", "delete"]
    app_id: _Name
    before: _Record | None
    after: _Record | None
    key: _Name | None = None
    version_code: _Name | None = None
    target_id: _PositiveInt | None = None
    step: _Name | None = None
    payload: _Record | None = None
    fields: Annotated[list[_FieldChange], Field(max_length=100)] = []
    depends_on: Annotated[list[_Address], Field(max_length=1_000)] = []
    reason: _Text | None = None


class _Problem(_Strict):
    message: _Text
    app_id: _Name | None = None
    address: Annotated[str, Field(max_length=4 * MAX_NAME)] | None = None
    scope: Literal["fleet", "app", "version"] | None = None  # errors only


class _Learned(_Strict):
    """A fact learnt by reading (plan.Learned): apply records it with no API write."""

    address: _Address
    app_id: _Name
    code: _Name | None = None
    version_id: _PositiveInt | None = None
    fresh: bool = False
    probed: Annotated[list[Annotated[int, Field(ge=0, le=MAX_INT)]],
                      Field(min_length=2, max_length=2)] | None = None
    reads: Annotated[int, Field(ge=0, le=MAX_INT)] = 0


class _Details(_Strict):
    warnings: Annotated[list[_Problem], Field(max_length=MAX_CHANGES)]
    errors: Annotated[list[_Problem], Field(max_length=MAX_CHANGES)]


class _PlanFile(_Strict):
    format_version: Literal[2]
    endpoints: Annotated[
        dict[Literal["miniappcenter"], Annotated[str, Field(min_length=1, max_length=4096)]],
        Field(min_length=1),
    ]
    summary: _Summary
    changes: Annotated[list[_Change], Field(max_length=MAX_CHANGES)]
    warnings: Annotated[list[_Text], Field(max_length=MAX_CHANGES)]
    errors: Annotated[list[_Text], Field(max_length=MAX_CHANGES)]
    details: _Details
    state: _StateRef
    fingerprints: Annotated[dict[Annotated[str, Field(max_length=4 * MAX_NAME)],
                                 Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]],
                            Field(max_length=MAX_CHANGES)]
    apps: Annotated[list[_Name], Field(max_length=MAX_CHANGES)]
    app_meta: Annotated[dict[_Name, _AppMeta], Field(max_length=MAX_CHANGES)]
    learned: Annotated[list[_Learned], Field(max_length=MAX_CHANGES)] = []


# --- entry points ------------------------------------------------------------------------


def load_saved_plan(data: object, source: str) -> Plan:
    """The plan in ``data`` (parsed JSON), or :class:`PlanError` naming the first problem."""
    if not isinstance(data, dict):
        raise PlanError(f"plan file {source} is not a saved plan (expected a JSON object)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        shown = version if isinstance(version, int) and not isinstance(version, bool) else "?"
        older = isinstance(version, int) and not isinstance(version, bool) and version < 2
        why = (
            " (it was made before plans named each change's provider and kind)"
            if older
            else ""
        )
        raise PlanError(
            f"plan file {source}: unsupported format_version {shown}{why}; this reconciler"
            f" reads {FORMAT_VERSION}. Nothing was applied: re-run `reconciler plan --out"
            " FILE` with this version and review it again"
        )
    if "incremental" in data:
        # plan --changed-since read only the apps changed since a revision: what it did not
        # read it cannot vouch for, and a PR's review plan is not what the merge applies.
        raise PlanError(
            f"plan file {source} is incremental (made with plan --changed-since): it read only"
            " the mini apps changed since that revision, so apply refuses it; make the plan to"
            " apply without --changed-since" + _REFUSED
        )
    try:
        parsed = _PlanFile.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_schema_message(source, data, exc)) from None
    problem = _address_problem(parsed)
    if problem is not None:
        raise PlanError(f"plan file {source}: {problem}{_REFUSED}")
    plan = Plan.from_dict(
        _without_absent_optionals(parsed.model_dump()),
        root_kinds=ROOT_KINDS,
        read_fact=Learned.from_dict,
    )
    problem = _first_problem(plan, parsed)
    if problem is not None:
        raise PlanError(f"plan file {source}: {problem}{_REFUSED}")
    return plan


def _address_problem(parsed: _PlanFile) -> str | None:
    """Every address in the file parses, and each change's provider and kind are its own."""
    for index, change in enumerate(parsed.changes):
        shown = change.address if _printable(change.address) else "address not printable"
        where = f"change {index} ({shown[:200]})"
        try:
            address = parse_address(change.address, ROOT_KINDS)
            for dependency in change.depends_on:
                parse_address(dependency, ROOT_KINDS)
        except AddressError as exc:
            return f"{where}: an address is not valid: {exc}"
        if address.provider != change.provider or address.kind != change.kind:
            return f"{where}: provider and kind do not match its address"
    texts = [item.address for item in parsed.learned]
    texts += [p.address for p in (*parsed.details.warnings, *parsed.details.errors) if p.address]
    texts += list(parsed.fingerprints)
    for text in texts:
        try:
            parse_address(text, ROOT_KINDS)
        except AddressError as exc:
            return f"an address is not valid: {exc}"
    return None


def check_against_state(plan: Plan, state: State, source: str) -> None:
    """Re-check what needs the state (call under the lock, before any write)."""
    created = {
        (c.app_id, c.key) for c in plan.changes if c.kind == "version" and c.action == "create"
    } | {  # versions the plan adopts: recorded by apply before any step, as fresh or unknown
        (item.app_id, item.code) for item in learned_of(plan) if item.version_id is not None
    }
    first_steps: set[Address] = set()
    versions: set[tuple[str, str | None]] = set()
    for change in plan.changes:
        if change.kind == "status" and (change.app_id, change.version_code) not in versions:
            versions.add((change.app_id, change.version_code))
            first_steps.add(change.address)
    for index, change in enumerate(plan.changes):
        problem = _state_problem(change, state, change.address in first_steps, created)
        if problem is not None:
            raise PlanError(f"plan file {source}: {_where(index, change)}: {problem}{_REFUSED}")
    for index, item in enumerate(learned_of(plan)):
        problem = _learned_state_problem(item, state)
        if problem is not None:
            raise PlanError(f"plan file {source}: learned fact {index}: {problem}{_REFUSED}")


def _learned_state_problem(item: Learned, state: State) -> str | None:
    """An adoption must fit what the state knows: "fresh" (brand new, pending: its steps run
    without learning) only for our own unanswered create, and never an id the state already
    records for another version."""
    if item.version_id is None or item.code is None:
        return None
    record = state.apps.get(item.app_id)
    known = record.versions.get(item.code) if record is not None else None
    if item.fresh and (known is None or known.create_outcome != UNKNOWN):
        return "fresh is said of a version the state records no unanswered create for"
    for app_id, other in state.apps.items():
        for code, version in other.versions.items():
            if version.id == item.version_id and (app_id, code) != (item.app_id, item.code):
                return "adopts an id the state records for another version"
    return None


_REFUSED = "; the saved plan is refused and nothing was written (make it again with `plan --out`)"


# --- schema errors -----------------------------------------------------------------------


def _schema_message(source: str, data: Mapping[str, Any], exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    # The first bad change (lowest index), else the first top-level problem.
    def order(error: Any) -> tuple[int, int]:
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "changes" and isinstance(loc[1], int):
            return (0, loc[1])
        return (1, 0)

    first = min(errors, key=order)
    loc = list(first["loc"])
    where = "the plan"
    if len(loc) >= 2 and loc[0] == "changes" and isinstance(loc[1], int):
        index = loc[1]
        address = _safe_address(data, index)
        where = f"change {index}" + (f" ({address})" if address else "")
        loc = loc[2:]
    field = ".".join(str(part) for part in loc[:4]) or "(whole)"
    message = str(first["msg"])[:200]
    return f"plan file {source}: {where}: field {field[:120]}: {message}{_REFUSED}"


def _safe_address(data: Mapping[str, Any], index: int) -> str | None:
    changes = data.get("changes")
    if not isinstance(changes, list) or index >= len(changes):
        return None
    change = changes[index]
    address = change.get("address") if isinstance(change, dict) else None
    if isinstance(address, str) and len(address) <= 4 * MAX_NAME and _printable(address):
        return address if len(address) <= 200 else address[:200] + "..."
    return None


def _where(index: int, change: Change) -> str:
    # The address comes from the file: shown only when printable, and cut short.
    text = str(change.address)
    address = text if _printable(text) else "address not printable"
    if len(address) > 200:
        address = address[:200] + "..."
    return f"change {index} ({address})"


# --- whole-plan consistency --------------------------------------------------------------


def _first_problem(plan: Plan, parsed: _PlanFile) -> str | None:
    problem = _plan_level_problem(plan, parsed)
    if problem is not None:
        return problem
    seen: dict[Address, Change] = {}
    created_versions: set[tuple[str, str]] = set()
    last_status: dict[tuple[str, str], str] = {}
    for index, change in enumerate(plan.changes):
        problem = (
            _change_problem(plan, change)
            or _order_problem(change, seen)
            or _status_chain_problem(change, created_versions, last_status)
        )
        if problem is not None:
            return f"{_where(index, change)}: {problem}"
        if change.address in seen:
            return f"{_where(index, change)}: the same address appears twice"
        seen[change.address] = change
        if change.kind == "version" and change.action == "create" and change.key:
            created_versions.add((change.app_id, change.key))
    return None


def _plan_level_problem(plan: Plan, parsed: _PlanFile) -> str | None:
    if parsed.summary.model_dump(exclude_none=True) != plan.summary:  # adopt: only if any
        return "summary does not match the counts of its changes"
    for index, item in enumerate(learned_of(plan)):
        problem = _learned_problem(plan, item)
        if problem is not None:
            return f"learned fact {index}: {problem}"
    if len(set(plan.apps)) != len(plan.apps):
        return "apps lists an app twice"
    for app_id in (*plan.apps, *plan.app_meta):
        problem = app_id_problem(app_id)
        if problem:
            return f"an app id in apps/app_meta is invalid: it {problem}"
    if not set(plan.app_meta) <= set(plan.apps):
        return "app_meta names an app that is not in apps"
    for key in plan.fingerprints:
        app_id = key.root.key or ""
        if key not in _fingerprinted(app_id, key) or app_id_problem(app_id):
            return "a fingerprint key is not an address of this plan's apps"
    return None


def _fingerprinted(app_id: str, key: Address) -> tuple[Address, ...]:
    """What a plan fingerprints for an app: the app, its location list, one version."""
    version = key.key_of("version")
    return (
        app_address(app_id),
        locations_address(app_id),
        *((version_address(app_id, version),) if version is not None else ()),
    )


def _change_problem(plan: Plan, change: Change) -> str | None:
    operation = (change.kind, change.action, change.step)
    if operation not in OPERATIONS:
        if change.kind == "status":
            steps = ", ".join(sorted({s for _, _, s in OPERATIONS if s}))
            return f"a status change is an update whose step is one of {steps}; this one is not"
        step = "" if change.step is None else " with a step"
        return f"{change.kind} {change.action}{step} is not an operation apply performs"
    problem = app_id_problem(change.app_id)
    if problem:
        return f"app_id is invalid: it {problem}"
    if change.app_id not in plan.apps:
        return "its app is not in the plan's apps"
    if change.app_id not in plan.app_meta and (change.kind, change.action) != (
        "miniapp", "delete"
    ):
        # Only an app the manifests keep gets writes, and its labels and protection are
        # recorded with them.
        return "its app has no app_meta (labels and protection) in the plan"
    for text, what in ((change.key, "key"), (change.version_code, "version_code"),
                       (change.reason, "reason")):
        if text is not None and not _printable(text):
            return f"{what} contains control characters"
    for dependency in change.depends_on:
        if dependency == change.address:
            return "depends on itself"
    # What the rendered plan shows per field is recomputed, as the diff computes it.
    expected = (
        field_changes(change.before or {}, change.after or {})
        if change.action == "update" and change.kind in ("miniapp", "version", "location")
        else ()
    )
    if change.fields != expected:
        return "fields do not match its before and after"
    checker = _CHECKS[change.kind]
    return checker(plan, change)


def _order_problem(change: Change, seen: Mapping[Address, Change]) -> str | None:
    for dependency in change.depends_on:
        earlier = seen.get(dependency)
        if earlier is None:
            return "depends_on names an address that is not an earlier change of the plan"
        if earlier.app_id != change.app_id:
            return "depends_on names a change of another app"
    return None


def _status_chain_problem(
    change: Change,
    created_versions: set[tuple[str, str]],
    last_status: dict[tuple[str, str], str],
) -> str | None:
    """Steps of one version follow each other: each starts where the previous one ended
    (a new version starts at pending)."""
    if change.kind != "status" or change.version_code is None:
        return None
    version = (change.app_id, change.version_code)
    if change.key == LEARN_STATUS and change.step is None:
        # Learnt first, from whatever the server says: the next step starts at the goal.
        last_status[version] = str((change.after or {}).get("status"))
        return None
    before = (change.before or {}).get("status")
    expected = last_status.get(version)
    if expected is None and version in created_versions:
        expected = "pending"
    if expected is not None and before != expected:
        return f"status step starts from '{before}' but the previous step ends at '{expected}'"
    last_status[version] = str((change.after or {}).get("status"))
    return None


# --- per resource ------------------------------------------------------------------------


def _no_extras(change: Change, allowed: set[str]) -> str | None:
    present = {
        name
        for name in ("key", "version_code", "target_id", "step")
        if getattr(change, name) is not None
    }
    extra = sorted(present - allowed)
    if extra:
        return f"{', '.join(extra)} does not belong to a {change.kind} change"
    missing = sorted(allowed - present - {"target_id"})
    if missing:
        return f"{', '.join(missing)} is missing"
    return None


def _shape(change: Change) -> str | None:
    """Before/after/payload present exactly as the action says."""
    if change.action == "create" and change.before is not None:
        return "a create has no before"
    if change.action == "delete":
        if change.after is not None:
            return "a delete has no after"
        if change.payload is not None and change.kind != "compatibility":
            return "a delete carries no payload"
    return None


def _fields_problem(payload: Mapping[str, Any], allowed: Sequence[str],
                    objects: Sequence[str]) -> str | None:
    for name, value in payload.items():
        if name not in allowed:
            return f"payload field {name[:40]!r} is not a managed field"
        if name == "integrated_security":
            if not isinstance(value, bool):
                return "payload field integrated_security must be true or false"
            continue
        if not isinstance(value, str):
            return f"payload field {name} must be a string"
        if name in objects and not _object_value_ok(value):
            return (
                f"payload field {name} must be an upload id or a relative file: path pinned"
                " to its sha256"
            )
    return None


def _object_value_ok(value: str) -> bool:
    if GXUPLOAD_RE.match(value):
        return True
    match = FILE_SOURCE_RE.match(value)
    if match is None:
        return False
    path = match["path"]
    # A saved plan must not make apply read (and upload) an arbitrary file.
    return _printable(path) and not path.startswith(("/", "\\")) and ":" not in path[:3]


def _check_miniapp(plan: Plan, change: Change) -> str | None:
    problem = _no_extras(change, set()) or _shape(change)
    if problem:
        return problem
    if change.address != app_address(change.app_id):
        return "address does not match its app_id"
    if change.action == "delete":
        meta = plan.app_meta.get(change.app_id)
        if meta is not None:
            return (
                "deletes an app the plan's manifests keep"
                + (" (and protect: true)" if meta.protect else "")
            )
        return None
    payload = dict(change.payload or {})
    if change.payload is None or not payload:
        return "payload is missing"
    if change.action == "create":
        if payload.pop("id", None) != change.app_id:
            return "payload id does not match its app_id"
        if change.after != payload:
            return "after does not match the payload"
    elif "id" in payload:
        return "an update payload carries no id"
    elif not _after_sent(change.after, payload):
        return "after does not match what the payload sends"
    elif not {"name", "superapp_id", "type"} <= set(payload):
        # A PUT carries what the create requires (D19): a replacing server would blank them.
        return "an update payload carries name, superapp_id and type"
    if "superapp_id" in payload and isinstance(payload["superapp_id"], str) and app_id_problem(
        payload["superapp_id"]
    ):
        return "payload superapp_id is not a valid id"
    return _fields_problem(payload, APP_FIELDS, APP_IMAGE_FIELDS)


def _after_sent(after: Mapping[str, Any] | None, payload: Mapping[str, Any]) -> bool:
    """An update's after (the fields that change) is exactly what the payload sends for them."""
    return bool(after) and all(name in payload and payload[name] == value
                               for name, value in (after or {}).items())


def _check_attribute(plan: Plan, change: Change) -> str | None:
    problem = _no_extras(change, {"key"}) or _shape(change)
    if problem:
        return problem
    assert change.key is not None
    field_problem = attribute_field_problem(change.key)
    if field_problem:
        return f"key is not a valid attribute field: it {field_problem}"
    if change.address != attribute_address(change.app_id, change.key):
        return "address does not match its app_id and key"
    if change.action == "delete":
        return None
    payload = change.payload or {}
    if set(payload) != {"field", "value"} or payload["field"] != change.key:
        return "payload must be {field, value} with field equal to the key"
    if not isinstance(payload["value"], str):
        return "payload value must be a string"
    if change.after != {"value": payload["value"]}:
        return "after does not match the payload"
    return None


def _check_location(plan: Plan, change: Change) -> str | None:
    problem = _no_extras(change, {"key", "target_id"}) or _shape(change)
    if problem:
        return problem
    assert change.key is not None
    if not _name_ok(change.key):
        return "key is not a valid location name"
    address = location_address(change.app_id, change.key)
    if change.action == "create":
        if change.target_id is not None:
            return "a location create has no target_id"
    elif change.target_id is None:
        return f"a location {change.action} needs the target_id of the location"
    # A duplicate location (same name twice on the server) is deleted by id: NAME#ID.
    duplicate = (
        change.action == "delete"
        and isinstance(change.target_id, int)
        and change.address == address.duplicate(change.target_id)
    )
    if change.address != address and not duplicate:
        return "address does not match its app_id and key"
    if change.action == "delete":
        return None
    payload = change.payload or {}
    if set(payload) != {"name", "geo_point"} or payload["name"] != change.key:
        return "payload must be {name, geo_point} with name equal to the key"
    geo = payload["geo_point"]
    try:
        normalized = normalize_geo_point(geo) if isinstance(geo, str) else None
    except ValueError:
        normalized = None
    if normalized is None or normalized != geo:
        return "payload geo_point is not a WKT POINT(lon lat)"
    if change.after != {"geo_point": geo}:
        return "after does not match the payload"
    return None


def _check_version(plan: Plan, change: Change) -> str | None:
    problem = _no_extras(change, {"key", "version_code", "target_id"}) or _shape(change)
    if problem:
        return problem
    assert change.key is not None
    if change.version_code != change.key or not _version_code_ok(change.key):
        return "key and version_code must be the same valid version code"
    if change.address != version_address(change.app_id, change.key):
        return "address does not match its app_id and version code"
    payload = dict(change.payload or {})
    if not payload:
        return "payload is missing"
    if change.action == "create":
        if change.target_id is not None:
            return "a version create has no target_id"
        if payload.pop("code", None) != change.key:
            return "payload code does not match the key"
        if change.after != {"code": change.key, **payload}:
            return "after does not match the payload"
    elif "code" in payload:
        return "an update payload carries no code"
    elif not _after_sent(change.after, payload):
        return "after does not match what the payload sends"
    elif not {"platform_id", "main_name", "main_type"} <= set(payload):
        return "an update payload carries platform_id, main_name and main_type"  # D19
    return _fields_problem(payload, VERSION_FIELDS, VERSION_OBJECT_FIELDS)


def _check_compatibility(plan: Plan, change: Change) -> str | None:
    problem = _no_extras(change, {"key", "version_code"}) or _shape(change)
    if problem:
        return problem
    assert change.key is not None and change.version_code is not None
    if not _version_code_ok(change.version_code):
        return "version_code is not a valid version code"
    if not re.fullmatch(r"[1-9][0-9]{0,15}", change.key):
        return "key must be a Super App version id (a positive integer)"
    sav = int(change.key)
    if change.address != compatibility_address(change.app_id, change.version_code, sav):
        return "address does not match its app_id, version code and key"
    record = {"superapp_version": sav}
    if change.payload != record:
        return "payload superapp_version must equal the key"
    side = change.after if change.action == "create" else change.before
    if side != record:
        return "before/after does not match the key"
    return None


def _without_absent_optionals(data: dict[str, Any]) -> dict[str, Any]:
    """The model's dump with the keys that are absent when empty taken out again (a
    ``None`` elsewhere, e.g. a field change's ``before``, is a value and stays)."""
    if data["summary"].get("adopt") is None:
        data["summary"].pop("adopt", None)
    for problem in (*data["details"]["warnings"], *data["details"]["errors"]):
        if problem.get("scope") is None:
            problem.pop("scope", None)
    return data


def _learned_problem(plan: Plan, item: Learned) -> str | None:
    if item.app_id not in plan.apps or app_id_problem(item.app_id):
        return "names an app that is not in the plan's apps"
    if item.code is not None and not _version_code_ok(item.code):
        return "code is not a valid version code"
    if item.code is None and (item.version_id is not None or item.probed is not None):
        return "an app adoption carries no version facts"
    if item.probed is not None and item.probed[0] > item.probed[1] + 1:
        return "probed is not a range of ids"
    if item.fresh and item.version_id is None:
        return "fresh is said only of a version found"
    if item.version_id is not None and item.address not in plan.fingerprints:
        # apply reads the adopted version back and compares, before recording it
        return "an adopted version has no fingerprint of what was read"
    return None


def _check_learn_status(change: Change) -> str | None:
    """The change that learns an unknown status: no step, no payload, candidates named."""
    problem = _no_extras(change, {"key", "version_code"})
    if problem:
        return problem
    assert change.version_code is not None
    if not _version_code_ok(change.version_code):
        return "version_code is not a valid version code"
    if change.address != version_address(change.app_id, change.version_code).child("status"):
        return "address does not match its app_id and version code"
    if change.payload is not None:
        return "a status change carries no payload"
    candidates = (change.before or {}).get("candidates")
    if (
        set(change.before or {}) != {"status", "candidates"}
        or (change.before or {}).get("status") != UNKNOWN
        or not isinstance(candidates, list)
        or len(candidates) < 2
        or not all(isinstance(c, str) and c in STATUSES for c in candidates)
        or len(set(candidates)) != len(candidates)
    ):
        return "before must be {status: unknown, candidates: [two or more statuses]}"
    if change.after is None or set(change.after) != {"status"}:
        return "after must be {status: ...}"
    if change.after["status"] not in STATUSES:
        return "after names no review status"
    return None


def _check_status(plan: Plan, change: Change) -> str | None:
    if change.step is None and change.key == LEARN_STATUS:
        return _check_learn_status(change)
    problem = _no_extras(change, {"key", "version_code", "step"})
    if problem:
        return problem
    if change.step is None or change.version_code is None:
        return "a status step names its step and version"
    if change.key != change.step:
        return "key must equal the step"
    if not _version_code_ok(change.version_code):
        return "version_code is not a valid version code"
    if change.address != status_address(change.app_id, change.version_code, change.step):
        return "address does not match its app_id, version code and step"
    if change.payload is not None:
        return "a status step carries no payload"
    before = (change.before or {}).get("status")
    after = (change.after or {}).get("status")
    if change.before != {"status": before} or change.after != {"status": after}:
        return "before and after must be {status: ...}"
    if before not in STATUSES or STATUS_STEPS.get((str(before), change.step)) != after:
        return (
            f"step {change.step} does not go from '{str(before)[:40]}' to '{str(after)[:40]}'"
            " in the review flow"
        )
    return None


_CHECKS = {
    "miniapp": _check_miniapp,
    "attribute": _check_attribute,
    "location": _check_location,
    "version": _check_version,
    "compatibility": _check_compatibility,
    "status": _check_status,
}


# --- against the state -------------------------------------------------------------------


def _state_problem(
    change: Change, state: State, first_step: bool, created: set[tuple[str, str | None]]
) -> str | None:
    record = state.apps.get(change.app_id)
    deletes_app = change.kind == "miniapp" and change.action == "delete"
    if deletes_app and record is not None and record.protect:
        return "deletes a mini app the state records as protected (protect: true)"
    if record is None:
        return None
    if change.kind == "location" and change.target_id is not None and record.locations:
        for name, location in record.locations.items():
            if location.id == change.target_id and name != change.key:
                return "target_id is the id of another location in the state"
    if change.kind == "compatibility" and change.action == "delete":
        version = record.versions.get(change.version_code or "")
        recorded = version.compatibility if version is not None else None
        if recorded is None or change.key not in {str(sav) for sav in recorded}:
            return "removes a compatibility the state does not record for that version"
    if change.kind == "status" and first_step and change.version_code is not None:
        version = record.versions.get(change.version_code)
        known = version is not None and (change.app_id, change.version_code) not in created
        if known and version is not None and version.status != (change.before or {}).get(
            "status"
        ):
            return "status step does not start from the status the state records"
    return None


# --- text rules --------------------------------------------------------------------------


def _printable(text: str) -> bool:
    return all(unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn") for ch in text)


def _name_ok(text: str) -> bool:
    return location_name_problem(text) is None


def _version_code_ok(text: str) -> bool:
    """A version code never enters a URL, but is part of addresses and messages (the rule
    manifests are validated with)."""
    return version_code_problem(text) is None


# --- against the live objects (apply, once the fingerprints matched) ---------------------


def _foreign_location(change: Change, live: LiveApp) -> str | None:
    """A location update or delete must name, by its target_id, a location of this app that
    has the change's name on the server (read with the locations): an edited id would write
    another app's location, or fail half-way through the plan."""
    if change.kind != "location" or change.action == "create" or not live.locations_read:
        return None
    ids = live.location_ids.get(change.key or "", ())
    if change.target_id in ids:
        return None
    return (
        f"{change.address}: the saved plan's target_id is not the id of this app's location of"
        " that name on the server; refusing it: run `reconciler plan` again"
    )


def _target_problem(change: Change, live: LiveApp | None) -> str | None:
    """What a saved change writes must be as the plan saw it on the server: a create names
    something the server has not, an update or delete something it has, with ``before`` as
    it is now. An edit that moves a change to another app, attribute or location (keeping
    the rest) then meets an object that is not what the reviewer was shown."""
    if change.kind in ("compatibility", "status"):
        return None  # unreadable on the API: checked against the state (_state_problem)
    if live is None:
        if change.action == "create":
            return None  # the app is created by this plan (or its create is refused)
        return f"{change.address}: the saved plan changes it, but its app is not on the server"
    spec = live.app.spec
    key = change.key or ""
    exists: bool
    current: dict[str, Any] | None = None
    if change.kind == "miniapp":
        exists = True
        current = {name: getattr(spec, name, None) for name in (change.before or {})}
    elif change.kind == "attribute":
        attributes = spec.attributes or {}
        exists = key in attributes
        current = {"value": attributes[key]} if exists else None
    elif change.kind == "location":
        if not live.locations_read:
            return None
        geo = {loc.name: loc.geo_point for loc in spec.locations or ()}
        exists = key in geo
        current = {"geo_point": geo[key]} if exists else None
    elif change.kind == "version":
        found = live.app.version(key)
        exists = found is not None or key in live.version_ids
        if found is not None:
            current = {name: getattr(found, name, None) for name in (change.before or {})}
    else:
        return None
    if change.action == "create":
        if exists:
            return (
                f"{change.address}: the saved plan creates it, but the server already has it;"
                " refusing it: run `reconciler plan` again"
            )
        return None
    if not exists:
        return (
            f"{change.address}: the saved plan changes it, but the server does not have it;"
            " refusing it: run `reconciler plan` again"
        )
    if change.before is not None and current is not None and current != change.before:
        return (
            f"{change.address}: the saved plan shows it before the change as something the"
            " server does not have; refusing it: run `reconciler plan` again"
        )
    return None


def unshown_writes(changes: Sequence[Change], live: LiveApp | None) -> str | None:
    """An update's PUT sends every managed field, but the plan shows (and the reviewer saw)
    only those in ``after``. Every other field the payload sends must be what the server
    already has, or a hand-edited payload would change something nobody reviewed. And every
    change's target and ``before`` must be what the server has (:func:`_target_problem`)."""
    for change in changes:
        problem = _target_problem(change, live)
        if problem is not None:
            return problem
    if live is None:
        return None
    for change in changes:
        problem = _foreign_location(change, live)
        if problem is not None:
            return problem
        if change.action != "update" or change.payload is None:
            continue
        current: Any = None
        if change.kind == "miniapp":
            current = live.app.spec
        elif change.kind == "version" and change.version_code is not None:
            current = live.app.version(change.version_code)
        if current is None:
            continue
        shown = change.after or {}
        for name, value in change.payload.items():
            if name not in shown and getattr(current, name, None) != value:
                return (
                    f"{change.address}: the saved plan's payload changes {name[:40]}, which the"
                    " plan does not show changing; refusing it: run `reconciler plan` again"
                )
        for name, value in (change.before or {}).items():
            if getattr(current, name, None) != value:
                return (
                    f"{change.address}: the saved plan shows {name[:40]} before the change as"
                    " something the server does not have; refusing it: run `reconciler plan`"
                    " again"
                )
    return None
