"""Scripted faults: "the next write to /api/products/ is done, then answered 502".

The random fault flags (:class:`reconciler.sandbox_kit.faults.FaultInjectionMiddleware`) model a
flaky network; tests of one precise situation need the fault on one precise request. Faults
are queued on ``app.state.faults`` and each is used once, by the first request it matches.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.sandbox_kit.faults import DroppedConnection

FaultKind = Literal["500", "502", "503", "commit-then-502", "commit-then-drop", "delay"]


@dataclass
class _Fault:
    method: str
    path: str
    kind: FaultKind
    seconds: float


class ScriptedFaults:
    def __init__(self) -> None:
        self._queue: list[_Fault] = []

    def add(self, method: str, path: str, kind: FaultKind, *, seconds: float = 0.0) -> None:
        """Fail the next ``method`` request whose path starts with ``path`` as ``kind``."""
        self._queue.append(_Fault(method.upper(), path, kind, seconds))

    def take(self, method: str, path: str) -> _Fault | None:
        for index, fault in enumerate(self._queue):
            if fault.method == method and path.startswith(fault.path):
                return self._queue.pop(index)
        return None

    @property
    def pending(self) -> int:
        return len(self._queue)


class ScriptedFaultMiddleware:
    def __init__(self, app: ASGIApp, *, faults: ScriptedFaults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = None
        if scope["type"] == "http":
            fault = self.faults.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            await self.app(scope, receive, send)
            return
        if fault.kind.startswith("commit-then-"):

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, receive, discard)  # the write is done, its answer lost
            if fault.kind == "commit-then-drop":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 201,
                        "headers": [(b"content-length", b"1")],
                    }
                )
                raise DroppedConnection("injected fault: connection dropped after commit")
            status = 502
        else:
            status = int(fault.kind)
        body = {"detail": f"injected fault: HTTP {status}"}
        await JSONResponse(body, status_code=status)(scope, receive, send)
