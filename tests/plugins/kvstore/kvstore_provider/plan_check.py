"""A saved kvstore plan, validated whole before anything runs: only this provider's kind and
its closed vocabulary of writes, each with the payload its handler sends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvstore_provider.manifest import KEY_RE
from kvstore_provider.provider import OPERATIONS, PROVIDER, ROOT_KINDS
from reconciler.engine.plan import Plan
from reconciler.errors import PlanError


def _fail(source: str, where: str, why: str) -> PlanError:
    return PlanError(f"plan file {source[:200]}: {where}: {why}; re-run plan")


def load_saved_plan(data: Mapping[str, Any], source: str) -> Plan:
    if set(data.get("endpoints") or {}) != {PROVIDER}:
        raise _fail(source, "endpoints", f"a kvstore plan names the {PROVIDER} provider only")
    changes = data.get("changes")
    if not isinstance(changes, list):
        raise _fail(source, "changes", "not a list")
    for index, change in enumerate(changes):
        where = f"changes[{index}]"
        if not isinstance(change, dict):
            raise _fail(source, where, "not an object")
        operation = (change.get("kind"), change.get("action"), change.get("step"))
        if operation not in OPERATIONS or change.get("provider") != PROVIDER:
            raise _fail(source, where, "not a kvstore write")
        key = change.get("app_id")
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise _fail(source, where, "not an entry key")
        payload = change.get("payload")
        if change["action"] == "delete":
            if payload is not None:
                raise _fail(source, where, "a delete sends no body")
        elif not (
            isinstance(payload, dict)
            and set(payload) == {"value"}
            and isinstance(payload["value"], str)
        ):
            raise _fail(source, where, "the body is not {value: text}")
    if data.get("learned"):
        raise _fail(source, "learned", "the kvstore provider adopts nothing")
    try:
        return Plan.from_dict(data, root_kinds=ROOT_KINDS, read_fact=_no_fact)
    except (KeyError, ValueError, TypeError) as exc:
        raise _fail(source, "plan", type(exc).__name__) from None


def _no_fact(data: Mapping[str, Any]) -> Any:
    raise ValueError("no facts")
