"""bench/plan_json.py must not rot: at 5 apps, both writers produce the same plan and the new
file reads back through the saved-plan validation. Sizes only, never timings."""

from __future__ import annotations

import json
from pathlib import Path

from bench.plan_json import before, large_plan, measure


def test_before_and_after_write_the_same_plan(tmp_path: Path) -> None:
    figures = measure(5, 1, tmp_path)
    assert figures["changes"] == len(large_plan(5).changes) > 0
    assert 0 < figures["after_mb"] < figures["before_mb"]
    old = json.loads((tmp_path / "before.json").read_text(encoding="utf-8"))
    new = json.loads((tmp_path / "after.json").read_text(encoding="utf-8"))
    assert old == new == json.loads(before(large_plan(5)))
