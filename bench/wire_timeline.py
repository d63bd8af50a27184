"""Where a request's cycle goes, hop by hop, for the tool's plan and the peer's (D108).

Both processes (this one and the sandbox server) log the moment each socket is written and
read, from asyncio's own socket transport, on the same monotonic clock (``perf_counter`` is
CLOCK_MONOTONIC on Linux, shared by processes). Matched by the client's local port, one
request's cycle splits into:

* ``client -> server``: the client wrote it, the server's loop read it (server busy = later);
* ``server``: read to the answer written (the injected latency plus the server's work and
  queueing);
* ``server -> client``: the answer written, the client's loop read it (client busy = later);
* ``client idle``: the answer read, the next request written on that connection.

Rounds alternate tool and peer on one server. Diagnostic only: it patches asyncio's socket
transport in both processes (the server through a ``sitecustomize`` on its PYTHONPATH).

    python bench/wire_timeline.py --apps 100 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from asyncio import selector_events
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import make_fleet
from bench.measure import apply_fleet, http_client_factory, plan_converged
from bench.peer import Peer, Recording
from bench.server import start_sandbox

# (kind "w"/"r", the connection's client-side port, perf_counter)
Event = tuple[str, int, float]

_SITE = """
import os, signal, time
from asyncio import selector_events as se
LOG = []
def _port(transport):
    try:
        return transport._extra["peername"][1]
    except Exception:
        return None
def _wrap(name, kind):
    original = getattr(se._SelectorSocketTransport, name)
    def logged(self, *args):
        LOG.append((kind, _port(self), time.perf_counter()))
        return original(self, *args)
    setattr(se._SelectorSocketTransport, name, logged)
_wrap("write", "w")
_wrap("_read_ready__get_buffer", "r")
_wrap("_read_ready__data_received", "r")
def _dump(*_):
    with open(os.environ["WIRE_TIMELINE_LOG"], "w") as out:
        out.writelines(f"{k} {p} {t!r}\\n" for k, p, t in LOG if p is not None)
    LOG.clear()
signal.signal(signal.SIGUSR1, _dump)
"""

_CLIENT: list[Event] = []


def _log_client_sockets() -> None:
    """Log this process's socket writes and reads (the client side)."""
    cls: Any = selector_events._SelectorSocketTransport

    def wrap(name: str, kind: str) -> None:
        original: Callable[..., Any] = getattr(cls, name)

        def logged(self: Any, *args: Any) -> Any:
            port = self._extra.get("sockname", (None, None))[1]
            if port is not None:
                _CLIENT.append((kind, port, time.perf_counter()))
            return original(self, *args)

        setattr(cls, name, logged)

    wrap("write", "w")
    wrap("_read_ready__get_buffer", "r")
    wrap("_read_ready__data_received", "r")


def _server_events(pid: int, log: Path) -> list[Event]:
    log.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(100):
        if log.exists() and log.stat().st_size:
            break
        time.sleep(0.02)
    time.sleep(0.05)  # the handler writes in one go; let it finish
    out: list[Event] = []
    for line in log.read_text(encoding="utf-8").splitlines():
        kind, port, at = line.split()
        out.append((kind, int(port), float(at)))
    return out


def _by_port(events: list[Event]) -> dict[int, list[tuple[float, str]]]:
    per: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for kind, port, at in events:
        per[port].append((at, kind))
    for timeline in per.values():
        timeline.sort()
    return per


def _first_after(timeline: list[tuple[float, str]], kind: str, after: float) -> float | None:
    return next((at for at, k in timeline if k == kind and at > after), None)


def breakdown(client: list[Event], server: list[Event]) -> dict[str, float]:
    """Mean milliseconds per hop over every request matched on both sides."""
    hops: dict[str, list[float]] = defaultdict(list)
    servers = _by_port(server)
    for port, timeline in _by_port(client).items():
        theirs = servers.get(port, [])
        writes = [at for at, kind in timeline if kind == "w"]
        previous_answer: float | None = None
        for sent in writes:
            if previous_answer is not None:
                hops["client idle"].append(sent - previous_answer)
            arrived = _first_after(theirs, "r", sent)
            answered = _first_after(theirs, "w", arrived) if arrived is not None else None
            back = _first_after(timeline, "r", sent)
            previous_answer = back
            if arrived is None or answered is None or back is None:
                continue
            hops["client -> server"].append(arrived - sent)
            hops["server"].append(answered - arrived)
            hops["server -> client"].append(back - answered)
    return {name: statistics.mean(values) * 1000 for name, values in hops.items() if values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--parallelism", type=int, default=16)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="wire-timeline-"))
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(_SITE, encoding="utf-8")
    server_log = work / "server-events.txt"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(work / "site"), os.environ.get("PYTHONPATH", "")]
    )
    os.environ["WIRE_TIMELINE_LOG"] = str(server_log)
    _log_client_sockets()

    apps = make_fleet(args.apps)
    parallelism = args.parallelism
    state = work / "state.json"
    print(f"{args.apps} apps, {args.latency_ms:g} ms, parallelism {parallelism}; mean ms per hop")
    print("| client | wall | client -> server | server | server -> client | client idle |")
    print("|---|---:|---:|---:|---:|---:|")
    with start_sandbox(work / "sandbox.db", latency_ms=args.latency_ms) as server:
        pid = server.process.pid
        make_client = http_client_factory(server.base_url, server.token)
        asyncio.run(apply_fleet(make_client, apps, state, parallelism))
        recorded: list[Recording] = []
        asyncio.run(plan_converged(make_client, apps, state, parallelism, recorded))

        async def peer_plan() -> float:
            async with Peer(server.base_url, server.token, parallelism) as peer:
                start = time.perf_counter()
                await peer.plan(recorded[0].reads)
                return time.perf_counter() - start

        def tool_plan() -> float:
            figures = asyncio.run(plan_converged(make_client, apps, state, parallelism))
            return float(figures["wall_s"])

        def peer_wall() -> float:
            return asyncio.run(peer_plan())

        runs: list[tuple[str, Callable[[], float]]] = [("tool", tool_plan), ("peer", peer_wall)]
        for round_ in range(args.rounds):
            for name, run in runs if round_ % 2 == 0 else runs[::-1]:
                _server_events(pid, server_log)  # drop what came before
                _CLIENT.clear()
                wall = run()
                hops = breakdown(list(_CLIENT), _server_events(pid, server_log))
                cells = " | ".join(
                    f"{hops.get(hop, float('nan')):.2f}"
                    for hop in ("client -> server", "server", "server -> client", "client idle")
                )
                print(f"| {name} | {wall * 1000:.0f} ms | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
