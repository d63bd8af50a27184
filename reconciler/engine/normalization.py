"""Normalization learned from the server's answers, never configured: one rule for every
provider.

A server may store a value in another form than it was sent (a decimal ``12.5`` answered
``"12.50"``, trimmed or case-folded text, a URL answered for an upload id). After each write a
provider records, per field, what it *sent* and what the server *answered*; a field then
counts as unchanged when the manifest still says what was sent and the server still holds
what it answered then. Someone else changed it only when the manifest says what was sent and
the server holds something other than its own answer.

The functions take plain mappings (a provider's record keeps ``sent`` and ``answered`` its own
way), so the rule is written once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SHORT = 60  # characters of a value shown in the normalization note


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1`` (Python says it is), ``12`` is
    ``12.0`` (a server may answer either for a number), key order does not count."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping | list | tuple | int | float) or isinstance(
        b, Mapping | list | tuple | int | float
    ):
        return False
    return bool(a == b)  # strings and null


def _as_last_sent(name: str, desired: Any, sent: Mapping[str, Any]) -> bool:
    """The manifest still says what was last sent for ``name``."""
    return name in sent and json_equal(desired, sent[name])


def agrees(
    name: str,
    desired: Any,
    live: Any,
    sent: Mapping[str, Any] | None,
    answered: Mapping[str, Any] | None,
) -> bool:
    """``desired`` and ``live`` agree for field ``name``: equal, or ``desired`` is what was
    last sent and ``live`` is what the server answered for it then (its normal form; what
    was sent when no answer was recorded)."""
    if json_equal(desired, live):
        return True
    return sent is not None and _as_last_sent(name, desired, sent) and json_equal(
        live, (answered or {}).get(name, sent[name])
    )


def changed_outside(
    name: str,
    desired: Any,
    live: Any,
    sent: Mapping[str, Any] | None,
    answered: Mapping[str, Any] | None,
) -> bool:
    """The manifest still says what was last sent for ``name``, and the server no longer
    holds what it answered then: someone else changed it."""
    return (
        sent is not None
        and _as_last_sent(name, desired, sent)
        and not json_equal(live, (answered or {}).get(name, sent[name]))
    )


def answered_fields(sent: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """What the server answered for each field sent (those it answered at all)."""
    return {name: answer[name] for name in sent if name in answer}


def normalized_note(sent: Mapping[str, Any], answer: Mapping[str, Any]) -> str | None:
    """The fields the server answered in another form than sent, said once (from then on its
    form counts as the one sent): ``the server normalized price: 12.5 -> "12.50"``."""
    moved = [
        f"{name}: {_short(sent[name])} -> {_short(answer[name])}"
        for name in sent
        if name in answer and not json_equal(sent[name], answer[name])
    ]
    if not moved:
        return None
    return "the server normalized " + ", ".join(moved)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."
