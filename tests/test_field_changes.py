"""``field_changes`` compares flat records directly (DeepDiff costs ~0.5 ms a call): the
direct comparison must say exactly what DeepDiff said, and nested records still go through
DeepDiff."""

from __future__ import annotations

import random
from typing import Any

from deepdiff import DeepDiff

import reconciler.providers.miniappcenter.diff as diff_module
from reconciler.engine.plan import FieldChange
from reconciler.providers.miniappcenter.diff import field_changes

KEYS = ["name", "geo_point", "icon", "it's", 'a"b', "a[0]", "ñ x", "", "x.y", "TIER"]
VALUES: list[Any] = [None, "", "x", "y", "1", 0, 1, 1.0, 2.5, True, False, -0.0]


def _via_deepdiff(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    """The old implementation, verbatim: DeepDiff, then its paths parsed."""
    if before == after:
        return ()
    found = DeepDiff(dict(before), dict(after), ignore_order=True, verbose_level=2)
    out: list[FieldChange] = []
    for kind in ("values_changed", "type_changes"):
        for path, detail in found.get(kind, {}).items():
            out.append(
                FieldChange(
                    diff_module._path(path), detail.get("old_value"), detail.get("new_value")
                )
            )
    for path, value in found.get("dictionary_item_added", {}).items():
        out.append(FieldChange(diff_module._path(path), None, value))
    for path, value in found.get("dictionary_item_removed", {}).items():
        out.append(FieldChange(diff_module._path(path), value, None))
    return tuple(sorted(out, key=lambda f: f.path))


def _record(rng: random.Random) -> dict[str, Any]:
    return {key: rng.choice(VALUES) for key in rng.sample(KEYS, rng.randint(0, 5))}


def test_flat_records_give_what_deepdiff_gave() -> None:
    rng = random.Random(14)
    compared = 0
    for _ in range(3000):
        before = _record(rng)
        after = dict(before) if rng.random() < 0.5 else _record(rng)
        if after and rng.random() < 0.5:
            after[rng.choice(list(after))] = rng.choice(VALUES)
        assert field_changes(before, after) == _via_deepdiff(before, after), (before, after)
        compared += before != after
    assert compared > 1000  # most pairs differ: the comparison was exercised


def test_type_changes_count_as_changes() -> None:
    # Unequal records in which one key keeps an equal value of another type: DeepDiff
    # reports it as a type change, and so must the direct comparison.
    got = field_changes({"a": 1, "b": "x"}, {"a": 1.0, "b": "y"})
    assert got == (FieldChange("a", 1, 1.0), FieldChange("b", "x", "y"))
    assert field_changes({"a": True, "b": 1}, {"a": 1, "b": 2})[0] == FieldChange("a", True, 1)


def test_flat_records_never_reach_deepdiff(monkeypatch: Any) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("DeepDiff called for a flat record")

    monkeypatch.setattr(diff_module, "DeepDiff", refuse)
    assert field_changes({"geo_point": "POINT(1 2)"}, {"geo_point": "POINT(3 4)"}) == (
        FieldChange("geo_point", "POINT(1 2)", "POINT(3 4)"),
    )


def test_nested_records_still_use_deepdiff_paths() -> None:
    got = field_changes({"a": 1, "b": [1, 2]}, {"a": 1, "b": [2, 1, 3], "c": {"d": 1}})
    assert got == (FieldChange("b[2]", None, 3), FieldChange("c", None, {"d": 1}))
