"""Every registered provider against hostile servers: peak RSS, time to the error, secrets.

Runs the CLI (``reconciler plan``) as a child process per provider and per hostile answer,
through the provider contract suite's own hooks (``Provider.contract_example``) and helpers
(``tests/test_provider_contract.py``, ``tests/hostile_server.py``), and prints one Markdown
table:

* peak RSS of the child (``wait4``'s ``ru_maxrss``) under a 100 MB answer, a 100 MB error
  body and an endless chunked body (default limits);
* seconds to the error under a slowloris (status line and headers dripped) with
  ``RECONCILER_REQUEST_DEADLINE=10`` (``--deadline``);
* whether any credential (or a 16-character piece of one, in any encoding) was seen in
  stdout, stderr, ``--format json`` or the files the run wrote, under a server echoing the
  request (401 to everything; a granted login then 400 to everything).

Usage: ``python bench/hostile.py [--deadline 10] [--provider NAME]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.providers.registry import PROVIDERS  # noqa: E402
from tests.test_provider_contract import (  # noqa: E402
    HUGE,
    _origin,
    hostile,
    leaks,
    plan_args,
    run_cli,
    setup,
)


def measure(name: str, deadline: float) -> list[str]:
    provider = PROVIDERS[name]
    row = [name]
    for mode, options in (
        ("huge_body", {"body_size": HUGE}),
        ("huge_error", {"body_size": HUGE}),
        ("endless_chunked", {}),
    ):
        with tempfile.TemporaryDirectory() as folder, hostile(mode, **options) as server:
            root = Path(folder)
            example = setup(provider, _origin(server), root)
            run = run_cli(plan_args(example, "--format", "json"), example.env, root)
        row.append(f"{run.rss_mb:.0f} MB (exit {run.code})")
    slow = hostile("slow_headers", drip_interval=0.2)
    with tempfile.TemporaryDirectory() as folder, slow as server:
        root = Path(folder)
        example = setup(provider, _origin(server), root)
        env = {**example.env, "RECONCILER_REQUEST_DEADLINE": f"{deadline:g}"}
        run = run_cli(plan_args(example), env, root, timeout=600)
        requests = server.requests
    said = "deadline named" if "RECONCILER_REQUEST_DEADLINE" in run.stdout + run.stderr else "?"
    row.append(f"{run.seconds:.1f} s, {requests} requests (exit {run.code}, {said})")
    seen: list[str] = []
    for status in (401, 400):
        with tempfile.TemporaryDirectory() as folder, hostile(
            "echo", echo_status=status, grant_logins=status == 400
        ) as server:
            root = Path(folder)
            example = setup(provider, _origin(server), root)
            runs = [
                run_cli(plan_args(example, "--format", "json"), example.env, root),
                run_cli(plan_args(example), example.env, root),
            ]
            secrets = [*example.secrets, *server.issued]
        for run in runs:
            seen += leaks(run.everything(), secrets)
    row.append("yes: " + ", ".join(sorted(set(seen))) if seen else "no")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadline", type=float, default=10.0)
    parser.add_argument("--provider", action="append", choices=sorted(PROVIDERS))
    args = parser.parse_args()
    names = args.provider or sorted(PROVIDERS)
    print(
        "| provider | peak RSS, 100 MB answer | peak RSS, 100 MB error body |"
        f" peak RSS, endless chunked | slowloris, RECONCILER_REQUEST_DEADLINE={args.deadline:g} |"
        " secret seen (echo) |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name in names:
        print("| " + " | ".join(measure(name, args.deadline)) + " |", flush=True)


if __name__ == "__main__":
    main()
