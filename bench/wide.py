"""One wide app (issue 14): apply time against its floor, and the journal's size.

    python bench/wide.py [--attributes 1000] [--journal-sizes 250,500,1000,2000]
                         [--latency-ms 25] [--parallelism 16]

Against a real sandbox server (its own process):
1. **apply**: a fresh app (bench/fleet.py app 0, 2 versions) with ``--attributes`` attributes,
   planned and applied as `reconciler apply --auto-approve` does, at ``--latency-ms``.
   Floor = the plan's reads' floor + max(ceil(writes / parallelism), critical path) x latency,
   the critical path being the longest chain of writes that must wait for one another
   (reconciler/schedule.py: create -> version -> compatibilities -> review steps). Run
   from a checkout without reconciler/schedule.py (before issue 14), the critical path is
   every write of the app (they ran one at a time): that is the "before" figure.
2. **journal**: the same app with each of ``--journal-sizes`` attributes applied at 0 ms, its
   journal measured before the final save folds it, written both ways in one run: one line
   per changed resource (today) and one line per write holding the whole app record (the
   format before issue 14, reproduced by recording every write whole).

One run, ratios only (the machines are shared). Prints Markdown: copy it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet import make_app  # noqa: E402
from bench.measure import IDENTITY, http_client_factory, network_floor  # noqa: E402
from bench.server import TOKEN, start_sandbox  # noqa: E402
from reconciler.engine.plan import Change  # noqa: E402
from reconciler.providers.miniappcenter.apply import ApplyOptions, Executor  # noqa: E402
from reconciler.providers.miniappcenter.model import MiniApp  # noqa: E402
from reconciler.providers.miniappcenter.planning import make_plan  # noqa: E402
from reconciler.state import AppRecord, FileStateStore  # noqa: E402


def critical_path(changes: Sequence[Change]) -> int:
    try:
        from reconciler.providers.miniappcenter.schedule import critical_path as longest
    except ImportError:  # before issue 14: an app's writes ran one at a time
        return len(changes)
    return longest(changes)


class WholeRecordStore(FileStateStore):
    """Journals every write as the whole app record: the journal format before issue 14."""

    async def record(  # type: ignore[override]
        self, app_id: str, record: AppRecord | None, paths: Sequence[Any] = ()
    ) -> None:
        await super().record(app_id, record)


def wide_app(attributes: int) -> MiniApp:
    app = make_app(0)
    spec = app.spec.model_copy(
        update={"attributes": {f"ATTR{i:05d}": f"value {i}" for i in range(attributes)}}
    )
    return app.model_copy(update={"spec": spec})


async def apply_once(
    base_url: str, app: MiniApp, root: Path, parallelism: int, store_class: type[FileStateStore]
) -> dict[str, Any]:
    make_client = http_client_factory(base_url, TOKEN)
    store = store_class(root / "state.json")
    with store.lock("apply"):
        state = store.load(IDENTITY)
        async with make_client(parallelism) as client:
            start = time.perf_counter()
            plan = await make_plan(client, [app], state, identity=IDENTITY,
                                   parallelism=parallelism)
            reads = client.stats.reads
            writes_before = client.stats.writes
            result = await Executor(
                client, store, state, plan, options=ApplyOptions(parallelism=parallelism)
            ).run()
            executed = time.perf_counter()
            writes = client.stats.writes - writes_before
        journal = store.journal_path.stat().st_size if store.journal_path.exists() else 0
        store.save(state)
        saved = time.perf_counter()
    assert result.ok and writes == len(plan.changes), (result.as_dict()["summary"], writes)
    return {
        "changes": len(plan.changes),
        "plan_reads": reads,
        "writes": writes,
        "critical_path": critical_path(plan.changes),
        "wall_s": saved - start,
        "execute_s": executed - start,
        "journal_bytes": journal,
    }


def measure_apply(attributes: int, latency_ms: float, parallelism: int) -> dict[str, Any]:
    latency = latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="bench-wide-") as tmp:
        root = Path(tmp)
        with start_sandbox(root / "sandbox.db", latency_ms=latency_ms) as server:
            out = asyncio.run(
                apply_once(server.base_url, wide_app(attributes), root, parallelism,
                           FileStateStore)
            )
    out["floor_s"] = network_floor(out["plan_reads"], parallelism, latency) + network_floor(
        out["writes"], parallelism, latency, out["critical_path"]
    )
    out["vs_floor"] = out["wall_s"] / out["floor_s"] if out["floor_s"] else None
    return out


def measure_journal(attributes: int, parallelism: int) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name, store_class in (("per_resource", FileStateStore), ("whole_record", WholeRecordStore)):
        with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
            root = Path(tmp)
            with start_sandbox(root / "sandbox.db", latency_ms=0) as server:
                out = asyncio.run(
                    apply_once(server.base_url, wide_app(attributes), root, parallelism,
                               store_class)
                )
            sizes[name] = out["journal_bytes"]
    return sizes


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{math.ceil(size / 1000)} kB"


def report(applied: dict[str, Any], journals: dict[int, dict[str, int]], attributes: int,
           latency_ms: float, parallelism: int) -> str:
    out = [
        f"One app with {attributes} attributes (latency {latency_ms:g} ms, --parallelism"
        f" {parallelism}; one run)",
        "",
        "| changes | writes | plan reads | critical path | apply wall | floor |"
        " **apply / floor** |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {applied['changes']} | {applied['writes']} | {applied['plan_reads']} |"
        f" {applied['critical_path']} | {applied['wall_s']:.2f} s | {applied['floor_s']:.2f} s |"
        f" **{_x(applied['vs_floor'])}** |",
    ]
    if journals:
        out += [
            "",
            "Journal of that app's apply, before the save folds it (same run, both formats)",
            "",
            "| attributes | whole record per write (before) | one line per resource (now) |"
            " smaller by |",
            "|---:|---:|---:|---:|",
        ]
        for size, figures in journals.items():
            whole, now = figures["whole_record"], figures["per_resource"]
            out.append(f"| {size} | {_mb(whole)} | {_mb(now)} | {whole / max(now, 1):.0f}x |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--attributes", type=int, default=1000)
    parser.add_argument("--journal-sizes", default="250,500,1000,2000",
                        help="attribute counts for the journal sizes ('' to skip)")
    parser.add_argument("--latency-ms", type=float, default=25)
    parser.add_argument("--parallelism", type=int, default=16)
    args = parser.parse_args(argv)
    applied = measure_apply(args.attributes, args.latency_ms, args.parallelism)
    journals = {
        int(n): measure_journal(int(n), args.parallelism)
        for n in args.journal_sizes.split(",") if n
    }
    sys.stdout.write(
        report(applied, journals, args.attributes, args.latency_ms, args.parallelism)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
