"""Session renewal under load: a 1,000-app Akana apply whose session expires every few seconds,
counted for surfaced 401s and timed against the same apply on a sandbox whose sessions never
expire (issue 21: "zero 401s surfacing at 1,000 apps, even on a loaded machine").

    python bench/akana_renewals.py [--apps 1000] [--runs 5] [--session-seconds 3]
                                   [--latency-ms 25] [--parallelism 16] [--cpu-hog]
                                   [--results-md]

Each run is a pair on fresh sandbox servers (``bench/akana_server.py``, its own process,
requests counted there), in alternating order: one with ``--session-seconds`` (the session
auth renews every ``0.75 x`` that, with requests in flight), one whose sessions last a year
(renewed only when the platform asks with ``Atmo-Renew-Token`` and nothing is in flight).
Both plan and apply ``--apps`` fresh apps through the library (``read_live`` + ``diff``,
``apply_changes``) with one client. ``--cpu-hog`` runs ``python -c 'while True: pass'``
beside the runs (killed at the end), so the client and server are starved of CPU.

Per run: the apply's wall time, the writes that failed with a 401 (*surfaced*: must be 0),
the 401s the server answered (refused and replayed by the session auth, never surfaced),
logins and renewals. The ratio is expiring / never-expiring apply wall time, per pair.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.akana_fleet import (  # noqa: E402
    LOGIN,
    RENEW,
    apply,
    client_for,
    machine_note,
    make_akana_fleet,
    plan,
    write_results_section,
)
from bench.akana_server import start_akana_sandbox  # noqa: E402
from reconciler.providers.akana.records import AkanaSection  # noqa: E402

NEVER: float = 365 * 24 * 3600.0
SECTION_TITLE = "## Akana session renewal under load: surfaced 401s and what renewal costs"


async def _plan_and_apply(server: Any, n: int, parallelism: int) -> dict[str, Any]:
    fleet = make_akana_fleet(n, 4)
    section = AkanaSection()
    client = client_for(server, parallelism)
    try:
        planned, _ = await plan(client, fleet, section, parallelism)
        assert not planned.errors, [str(e) for e in planned.errors[:3]]
        before = server.requests()
        started = time.perf_counter()
        results = await apply(client, planned, section, parallelism)
        wall = time.perf_counter() - started
    finally:
        await client.aclose()
    requests, refused = server.requests()
    failed = [r for r in results if r.status != "done"]
    surfaced = [r for r in failed if "401" in (r.note or "")]
    return {
        "apply_s": wall,
        "changes": len(planned.changes),
        "failed": len(failed),
        "surfaced_401": len(surfaced),
        "failed_notes": [str(r.note)[:200] for r in failed[:3]],
        "refused_401": sum(v for k, v in (refused - before[1]).items() if k.endswith(" 401")),
        "logins": requests[LOGIN],
        "renewals": (requests - before[0])[RENEW],
    }


def one_run(
    n: int, *, session_seconds: float, latency_ms: float, parallelism: int
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-akana-renew-"))
    try:
        with start_akana_sandbox(
            root / "akana.db", latency_ms=latency_ms, session_seconds=session_seconds
        ) as server:
            return asyncio.run(_plan_and_apply(server, n, parallelism))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(
    n: int, *, runs: int, session_seconds: float, latency_ms: float, parallelism: int,
    cpu_hog: bool,
) -> dict[str, Any]:
    hog = (
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) if cpu_hog else None
    )
    pairs: list[dict[str, Any]] = []
    try:
        for turn in range(runs):
            order = [session_seconds, NEVER] if turn % 2 == 0 else [NEVER, session_seconds]
            got = {
                seconds: one_run(
                    n, session_seconds=seconds, latency_ms=latency_ms, parallelism=parallelism
                )
                for seconds in order
            }
            pair = {"expiring": got[session_seconds], "never": got[NEVER]}
            pair["ratio"] = pair["expiring"]["apply_s"] / pair["never"]["apply_s"]
            pairs.append(pair)
            print(
                f"run {turn + 1}: expiring {pair['expiring']['apply_s']:.2f} s"
                f" ({pair['expiring']['renewals']} renewals, {pair['expiring']['refused_401']}"
                f" 401s replayed, {pair['expiring']['surfaced_401']} surfaced), never"
                f" {pair['never']['apply_s']:.2f} s ({pair['never']['renewals']} renewals):"
                f" {pair['ratio']:.2f}x",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait(10)
    return {
        "n": n, "runs": runs, "session_seconds": session_seconds, "latency_ms": latency_ms,
        "parallelism": parallelism, "cpu_hog": cpu_hog, "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "surfaced_401": sum(p["expiring"]["surfaced_401"] + p["never"]["surfaced_401"]
                            for p in pairs),
    }


def report(result: dict[str, Any], command: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    hog = " with `python -c 'while True: pass'` running beside it" if result["cpu_hog"] else ""
    lines = [
        SECTION_TITLE,
        "",
        f"`{command}` ({when}; {machine_note()}){hog}. {result['n']} fresh apps planned and"
        f" applied ({result['pairs'][0]['never']['changes']:,} creates) with one client,"
        f" parallelism {result['parallelism']},"
        f" {result['latency_ms']:g} ms per request, sandbox in its own process. Each run is a"
        f" pair on fresh servers, alternating order: sessions of {result['session_seconds']:g} s"
        " (renewed at 3/4 of that, requests in flight) against sessions that never expire."
        " *Surfaced* 401s are writes that failed with a 401; *replayed* ones are 401s the"
        " server answered that the session auth renewed for and sent again.",
        "",
        "| run | expiring: apply | renewals | logins | 401s replayed | **401s surfaced** |"
        " never expiring: apply | renewals | **ratio** |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, pair in enumerate(result["pairs"], 1):
        e, v = pair["expiring"], pair["never"]
        lines.append(
            f"| {i} | {e['apply_s']:.2f} s | {e['renewals']} | {e['logins']} |"
            f" {e['refused_401']} | **{e['surfaced_401']}** | {v['apply_s']:.2f} s |"
            f" {v['renewals']} | **{pair['ratio']:.2f}x** |"
        )
    lines += [
        "",
        f"401s surfaced in all runs: **{result['surfaced_401']}**; median ratio"
        f" **{result['median_ratio']:.2f}x** (expiring / never expiring apply wall time).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--session-seconds", type=float, default=3.0)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--cpu-hog", action="store_true")
    parser.add_argument("--results-md", action="store_true")
    args = parser.parse_args(argv)
    if args.apps < 1 or args.runs < 1 or args.session_seconds <= 0 or args.parallelism < 1:
        parser.error("--apps, --runs, --parallelism must be >= 1 and --session-seconds > 0")
    result = measure(
        args.apps, runs=args.runs, session_seconds=args.session_seconds,
        latency_ms=args.latency_ms, parallelism=args.parallelism, cpu_hog=args.cpu_hog,
    )
    command = "python bench/akana_renewals.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text = report(result, command.strip())
    sys.stdout.write(text)
    if args.results_md:
        write_results_section(text, ROOT / "bench" / "RESULTS.md", SECTION_TITLE)
    return 0 if result["surfaced_401"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
