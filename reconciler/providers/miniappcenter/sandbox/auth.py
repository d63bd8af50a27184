"""The ``APIKey-Auth`` check, as a pure ASGI middleware in front of every route."""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.providers.miniappcenter.sandbox.errors import ErrorCode, error_body

HEADER = b"apikey-auth"  # ASGI lower-cases header names


class ApiKeyAuthMiddleware:
    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        if given is None:
            problem = (ErrorCode.AUTH_MISSING, "missing APIKey-Auth header")
        elif not hmac.compare_digest(given, self._token):  # constant time: no timing oracle
            problem = (ErrorCode.AUTH_INVALID, "invalid API token")
        else:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(error_body([problem]), status_code=401)
        await response(scope, receive, send)
