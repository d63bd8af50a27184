"""Assembling the Starlette application: routes, error shapes, auth, faults, store lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.sandbox.auth import ApiKeyAuthMiddleware
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.errors import ApiError, ErrorCode, error_body
from reconciler.sandbox.faults import DroppedConnection, FaultInjectionMiddleware
from reconciler.sandbox.routes import ROUTES
from reconciler.sandbox.store import SandboxStore

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: ErrorCode.ROUTE_NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unmatched paths and methods get the API's error shape too, not Starlette's plain text.
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INTERNAL)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return JSONResponse(
        error_body([(code, message)]), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, DroppedConnection):
        # Injected on purpose; the response has started, so this one is never sent.
        return Response(status_code=500)
    logger.error("sandbox error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body([(ErrorCode.INTERNAL, "internal server error")]), status_code=500
    )


def create_app(config: SandboxConfig) -> Starlette:
    """The sandbox as an ASGI app. Its store is ``app.state.store`` (closed at lifespan end)."""
    store = SandboxStore(config.db_path)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    app = Starlette(
        routes=ROUTES,
        # Listed outermost first: faults act like the network/gateway in front of the server,
        # so even unauthenticated requests are delayed, failed and rate limited.
        middleware=[
            Middleware(
                FaultInjectionMiddleware,
                latency_ms=config.latency_ms,
                fail_rate=config.fail_rate,
                ambiguous_rate=config.ambiguous_rate,
                seed=config.seed,
                rate_limit=config.rate_limit,
            ),
            Middleware(ApiKeyAuthMiddleware, token=config.token),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.store = store
    return app
