"""The peer: the best hand-written asyncio + httpx client doing the same requests as the
tool's plan and apply, so that "tool / peer" is measured in one run, on one machine.

What "the same requests" means: the tool's own requests are recorded (method, path, body,
per app, in order) while it runs, and the peer replays them against a sandbox holding the
same data, with:

* ``parallelism`` lanes, each its own ``httpx.AsyncClient`` holding one keep-alive
  connection; a request takes a free lane and gives it back (the tool's concurrency). This
  is the reference peer: the tool's own transport also gives each connection one lane.
  ``lanes=False`` is the older peer, kept as an extra row: one ``AsyncClient`` whose pool
  of ``parallelism`` connections is shared by every request behind an
  ``asyncio.Semaphore(parallelism)``; that pool re-assigns connections under load, which
  handicaps it (it read as "the tool beats the peer" when it was the peer's pool);
* the tool's order: a plan reads each app, then its locations and versions together; an
  apply first reads every app, then runs each app's writes one after another (the tool's
  dependency order), apps in parallel;
* only what it needs: each body is parsed as JSON (the tool needs the data), ids returned by
  creates are put into the later paths of the same app (a fresh server numbers them in
  another order); no validation, no diff, no retries, no state, no journal.

It is the floor for this library stack, not for the network: a 2xx check and ``json()`` per
answer. ``bench/run.py`` reports tool / peer for plan and apply.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler.providers.miniappcenter.client import MiniAppCenterClient

# A created resource's id as it appears in a later path of the same app.
_ID_IN_PATH = re.compile(r"/(locations|versions)/(\d+)")


@dataclass
class Recorded:
    method: str
    path: str
    content: bytes | None
    content_type: str | None
    created: int | None = None  # the id a create answered, to map in later paths


@dataclass
class Recording:
    """The tool's requests, per app in the order it sent them."""

    by_app: dict[str, list[Recorded]] = field(default_factory=dict)
    # reads of the plan phase (app GETs before any write), per app
    reads: dict[str, list[Recorded]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(map(len, self.by_app.values())) + sum(map(len, self.reads.values()))


def _app_of(path: str, content: bytes | None) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "miniapps" and parts[2] not in ("", "upload"):
        return parts[2]
    body = json.loads(content or b"{}")  # POST /miniapps: the id is in the body
    return str(body.get("id", ""))


def record(client: MiniAppCenterClient) -> Recording:
    """Record every request ``client`` sends from now on (wraps its session's ``call``)."""
    recording = Recording()
    session = client._session
    call = session.call

    async def recorded(method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        response = await call(method, path, **kwargs)
        content = kwargs.get("content")
        headers = kwargs.get("headers") or {}
        entry = Recorded(method, path, content, headers.get("Content-Type"))
        app = _app_of(path, content)
        if method == "GET" and not recording.by_app.get(app):
            recording.reads.setdefault(app, []).append(entry)
            return response
        creates = path.endswith(("/locations", "/versions"))
        if method == "POST" and creates and response is not None and response.content:
            data = response.json().get("data")
            if isinstance(data, dict) and isinstance(data.get("id"), int):
                entry.created = data["id"]
        recording.by_app.setdefault(app, []).append(entry)
        return response

    session.call = recorded  # type: ignore[method-assign]
    return recording


class Peer:
    """The hand-written client: ``parallelism`` one-connection lanes (the reference), or
    with ``lanes=False`` one shared pool behind a semaphore."""

    def __init__(self, base_url: str, token: str, parallelism: int, *, lanes: bool = True) -> None:
        self._root = base_url.rstrip("/") + "/v1"
        self.lanes = lanes
        headers = {"APIKey-Auth": token, "Accept": "application/json"}
        per_client = 1 if lanes else parallelism
        self._clients = [
            httpx.AsyncClient(
                headers=headers,
                limits=httpx.Limits(
                    max_connections=per_client, max_keepalive_connections=per_client
                ),
                timeout=30,
            )
            for _ in range(parallelism if lanes else 1)
        ]
        # Free lanes (one client each), or the one shared client behind the semaphore.
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self._clients:
            self._free.put_nowait(client)
        self._slots = asyncio.Semaphore(parallelism)
        self.requests = 0

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients:
            await client.aclose()

    async def _request(self, entry: Recorded, url: str) -> httpx.Response:
        headers = {"Content-Type": entry.content_type} if entry.content_type else None
        if not self.lanes:
            async with self._slots:
                return await self._clients[0].request(
                    entry.method, url, content=entry.content, headers=headers
                )
        client = await self._free.get()
        try:
            return await client.request(entry.method, url, content=entry.content, headers=headers)
        finally:
            self._free.put_nowait(client)

    async def send(self, entry: Recorded, path: str | None = None) -> Any:
        response = await self._request(entry, self._root + (path or entry.path))
        self.requests += 1
        if response.status_code == 404 and entry.method == "GET":
            return None
        response.raise_for_status()
        return response.json() if response.content else None

    async def plan(self, reads: dict[str, list[Recorded]]) -> None:
        """Each app, then its other reads together (they need the app to exist)."""

        async def one(entries: list[Recorded]) -> None:
            first, *rest = entries
            if await self.send(first) is not None:
                await asyncio.gather(*(self.send(entry) for entry in rest))

        await asyncio.gather(*(one(entries) for entries in reads.values()))

    async def apply(self, recording: Recording) -> None:
        """The plan's reads, then each app's writes in order, apps in parallel."""
        await self.plan(recording.reads)

        async def chain(entries: list[Recorded]) -> None:
            ids: dict[str, str] = {}
            for entry in entries:
                path = _ID_IN_PATH.sub(
                    lambda m: f"/{m.group(1)}/{ids.get(m.group(0), m.group(2))}", entry.path
                )
                answer = await self.send(entry, path)
                if entry.created is not None:
                    new = answer["data"]["id"]
                    kind = "locations" if entry.path.endswith("/locations") else "versions"
                    ids[f"/{kind}/{entry.created}"] = str(new)

        await asyncio.gather(*(chain(entries) for entries in recording.by_app.values()))


async def timed(run: Callable[[], Awaitable[None]]) -> dict[str, float]:
    cpu = time.process_time()
    start = time.perf_counter()
    await run()
    return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}


def plan_reads(recording: Recording) -> dict[str, list[Recorded]]:
    """A converged plan's reads, per app (a plan records only reads)."""
    return {app: entries for app, entries in recording.reads.items()}
