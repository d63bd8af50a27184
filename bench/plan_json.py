"""How long `plan --out` takes to write a large plan, before and after D44, in one run.

    python bench/plan_json.py                 # 4,000 apps created from nothing: ~22 MB
    python bench/plan_json.py --apps 200      # quicker

"before" is how the plan used to be written (``Plan.as_dict`` with the old ``_plain``, then
``json.dumps(indent=2)``: CPython's pure-Python encoder); "after" is
``reconciler.engine.render.render_json`` (the faster ``_plain``, the C encoder, one change a line).
Each is timed as encode + write to a file, best of ``--repeat``, interleaved so that both see
the same machine. The written file is then read back the way `apply --plan` reads
it (``load_saved_plan``: the whole validation) and must give the same plan.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import make_fleet
from reconciler.engine import plan as plan_module
from reconciler.engine.plan import Plan
from reconciler.engine.plan_file import unique_keys
from reconciler.engine.render import render_json
from reconciler.providers.miniappcenter.diff import build_plan
from reconciler.providers.miniappcenter.plan_check import load_saved_plan
from reconciler.state import State


def _plain_before(value: Any) -> Any:
    """``reconciler.engine.plan._plain`` as it was before D44 (an ABC check on every value)."""
    if isinstance(value, Mapping):
        return {k: _plain_before(v) for k, v in value.items()}
    if isinstance(value, tuple | list | set | frozenset):
        items = [_plain_before(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    return value


def before(plan: Plan) -> str:
    """What `plan --out` did before D44: the old ``_plain``, then ``json.dumps(indent=2)``."""
    current = plan_module._plain
    plan_module._plain = _plain_before
    try:
        return json.dumps(plan.as_dict(), indent=2, ensure_ascii=False) + "\n"
    finally:
        plan_module._plain = current


def large_plan(apps: int) -> Plan:
    """Every app of the bench fleet created from nothing: 9 changes an app, ~5.5 kB."""
    fleet = make_fleet(apps)
    return build_plan(fleet, {}, State(), endpoint="https://bench.example/api")


def measure(apps: int, repeat: int, folder: Path) -> dict[str, Any]:
    plan = large_plan(apps)
    times: dict[str, list[float]] = {"before": [], "after": []}
    sizes: dict[str, int] = {}
    for _ in range(repeat):
        for name, encode in (("before", before), ("after", render_json)):
            path = folder / f"{name}.json"
            start = time.perf_counter()
            path.write_text(encode(plan), encoding="utf-8")
            times[name].append(time.perf_counter() - start)
            sizes[name] = path.stat().st_size
    start = time.perf_counter()
    raw = (folder / "after.json").read_bytes()
    loaded = load_saved_plan(json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys), "x")
    load_s = time.perf_counter() - start
    assert loaded.as_dict() == plan.as_dict(), "the written plan does not read back the same"
    return {
        "apps": apps,
        "changes": len(plan.changes),
        "before_s": min(times["before"]),
        "after_s": min(times["after"]),
        "before_mb": sizes["before"] / 1e6,
        "after_mb": sizes["after"] / 1e6,
        "after_lines": raw.count(b"\n"),
        "load_s": load_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-plan-json-") as folder:
        r = measure(args.apps, args.repeat, Path(folder))
    print(f"{r['apps']} apps, {r['changes']} changes; best of {args.repeat}, interleaved")
    print("| writer | file | encode + write | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| before: `json.dumps(indent=2)` | {r['before_mb']:.1f} MB | {r['before_s']:.2f} s"
          " | 1.00x |")
    print(f"| after: `render_json` (C encoder, one change a line) | {r['after_mb']:.1f} MB |"
          f" {r['after_s']:.2f} s | **{r['before_s'] / r['after_s']:.1f}x faster** |")
    print(f"\nRead back and validated whole (`load_saved_plan`): {r['load_s']:.2f} s,"
          f" {r['after_lines']} lines, same plan.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
