"""Reading a saved plan file: bounded, strict JSON, then its provider validates it whole.

`apply --plan FILE` executes what a file says, and a file can be edited after review, so it is
read with limits (size, duplicate keys, huge numbers, nesting) and handed to the provider that
made it, which checks every field and operation before anything runs (a plan is data, never
code). Nothing here quotes the file in a message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.engine.plan import FORMAT_VERSION, Plan
from reconciler.engine.provider import Provider
from reconciler.errors import PlanError

MAX_PLAN_BYTES = 32 * 1024 * 1024


def bounded_json(
    value: Any,
    *,
    max_depth: int,
    max_items: int,
    max_text: int,
    max_key: int,
    max_int: int | None = None,
) -> Any:
    """``value`` when it is a JSON value within the bounds (depth, count of values, string and
    key lengths, finite numbers, integers up to ``max_int`` when given), else ValueError.
    Each provider's saved-plan schema checks its records with its own bounds."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if depth > max_depth or seen > max_items:
            raise ValueError("value nested too deep or too large")
        if isinstance(item, str):
            if len(item) > max_text:
                raise ValueError(f"a string longer than {max_text} characters")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if max_int is not None and abs(item) > max_int:
                raise ValueError("an integer out of range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("a number that is not finite")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str) or len(key) > max_key:
                    raise ValueError("a key that is not a short string")
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
        else:
            raise ValueError("not a JSON value")
    return value


class DuplicateKeyError(ValueError):
    """A JSON object with the same key twice."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook: refuse duplicate keys (which one wins depends on the
    reader, so the reviewed file and the applied one could differ)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def read_plan_file(path: Path, providers: Mapping[str, Provider]) -> Plan:
    """The plan saved at ``path``, validated whole by its provider, or PlanError."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist") from None
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanError(f"plan file {path} is larger than {MAX_PLAN_BYTES} bytes; refusing it")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except DuplicateKeyError:
        # Viewers disagree on which of two equal keys wins: a reviewer could see the other.
        raise PlanError(f"plan file {path} has an object with the same key twice; refusing"
                        " it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        # The position only: the message must not quote the file.
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise PlanError(f"plan file {path} is not JSON{where}") from None
    except (ValueError, RecursionError):  # huge integers, nesting bombs
        raise PlanError(f"plan file {path} is not a valid saved plan (a value is too large"
                        " or nested too deep)") from None
    return _provider_of(data, path, providers).load_saved_plan(data, str(path))


def _provider_of(data: Any, path: Path, providers: Mapping[str, Provider]) -> Provider:
    """The one provider the plan was made for (its ``endpoints``); a format-1 plan goes to the
    only provider format 1 knew, whose check refuses it with "re-run plan"."""
    if not isinstance(data, dict):
        raise PlanError(f"plan file {path} is not a saved plan (expected a JSON object)")
    endpoints = data.get("endpoints")
    if data.get("format_version") != FORMAT_VERSION or not isinstance(endpoints, dict):
        return next(iter(providers.values()))
    names = [name for name in endpoints if isinstance(name, str)]
    unknown = [name for name in names if name not in providers]
    if unknown or len(names) != len(endpoints):
        known = ", ".join(sorted(providers))
        raise PlanError(
            f"plan file {path} names a provider this reconciler does not manage (it manages"
            f" {known}); make the plan again with this version"
        )
    if len(names) != 1:
        raise PlanError(
            f"plan file {path} spans {len(names)} providers; a saved plan covers one provider"
            " in this version: make one plan per provider with --select"
        )
    return providers[names[0]]
