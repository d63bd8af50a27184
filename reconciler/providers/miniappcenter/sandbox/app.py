"""Assembling the Starlette application: routes, error shapes, auth, faults, store lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from reconciler.providers.miniappcenter.sandbox.auth import ApiKeyAuthMiddleware
from reconciler.providers.miniappcenter.sandbox.config import SandboxConfig
from reconciler.providers.miniappcenter.sandbox.errors import ApiError, ErrorCode, error_body
from reconciler.providers.miniappcenter.sandbox.routes import ROUTES
from reconciler.providers.miniappcenter.sandbox.store import SandboxStore
from reconciler.sandbox_kit.faults import DroppedConnection, FaultInjectionMiddleware, FaultKind

logger = logging.getLogger(__name__)

_FAULT_CODES = {
    "unavailable": ErrorCode.FAULT_UNAVAILABLE,
    "ambiguous": ErrorCode.FAULT_AMBIGUOUS,
    "rate_limited": ErrorCode.RATE_LIMITED,
}


def fault_body(kind: FaultKind, message: str) -> Any:
    """An injected fault answers in the Mini App Center's own error format."""
    return error_body([(_FAULT_CODES[kind], message)])

async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    # A path or method that is not the API's is answered the way the web server in front of
    # a real API answers it: plain text, without the API's ``{"errors": [...]}`` body (as
    # Starlette's default). The client reads only a 404 with that body as "absent", so a
    # wrong MAC_BASE_URL against the sandbox fails as it would against a real host.
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


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
    store = SandboxStore(
        config.db_path,
        unique_version_codes=config.unique_version_codes,
        refuse_unknown_fields=config.refuse_unknown_fields,
        review_flow=config.review_flow,
    )

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
                fault_body=fault_body,
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
