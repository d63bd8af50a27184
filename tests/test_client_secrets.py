"""The token never shows: not in reprs, exceptions, tracebacks or DEBUG logs.

The log tests run against a real HTTP server on 127.0.0.1 (httpcore only logs with a real
connection). That server echoes the key back in a response header and in error bodies, the
worst case: httpcore's DEBUG log prints every response header.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import pickle
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from reconciler.errors import AmbiguousWriteError, ApiError, ReconcilerError, TransportError
from reconciler.providers.miniappcenter.client import (
    Endpoint,
    MiniAppCenterClient,
    MiniAppCreate,
    RetryPolicy,
    Secret,
    VersionCreate,
)
from reconciler.transport import redact as redact_module
from reconciler.transport.redact import LOGGER_NAMES, RedactingFilter, redact
from reconciler.transport.redact import install_log_redaction as logging_install

TOKEN = "s3cret-TOKEN-4f9a1c77e2"
BASE = "https://mac.example.test/api"
ROOT = BASE + "/v1"
APP = "com.example.shop"
LOGGERS = ("httpx", "httpcore", "reconciler.providers.miniappcenter.client")


async def _instant(delay: float) -> None:
    return None


def _everything(exc: BaseException) -> str:
    """All text an exception can show: str, repr, args, attributes, full traceback."""
    parts = [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
    parts.extend(traceback.format_exception(exc))
    return "\n".join(parts)


def _record_texts(records: list[logging.LogRecord]) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.msg!r} {r.args!r} {r.exc_text or ''}" for r in records
    )


# --- reprs -------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = Secret(TOKEN)
    assert repr(secret) == str(secret) == f"{secret}" == "***"
    assert TOKEN not in repr([secret, {"t": secret}])
    assert secret.reveal() == TOKEN
    with pytest.raises(TypeError):
        pickle.dumps(secret)


async def test_client_and_endpoint_reprs_hold_no_token() -> None:
    async with MiniAppCenterClient(Endpoint(BASE), TOKEN) as client:
        session = client._session
        texts = [
            repr(client),
            str(client),
            repr(vars(client)),
            repr(client.endpoint),
            client.endpoint.display,
            repr(session),
            repr(vars(session)),
            repr(session._http.headers),  # the token is not a default header
            repr(session._http.auth),
            repr(client.stats),
            repr(client.retry),
        ]
        assert all(TOKEN not in text for text in texts)
        assert "APIKey-Auth" not in session._http.headers


async def test_request_repr_holds_no_token() -> None:
    with respx.mock(base_url=ROOT) as mock:
        mock.get(f"/miniapps/{APP}").mock(return_value=httpx.Response(200, json={"data": {}}))
        async with MiniAppCenterClient(Endpoint(BASE), TOKEN) as client:
            await client.get_miniapp(APP)
        request = mock.calls.last.request
        assert request.headers["APIKey-Auth"] == TOKEN  # it was sent...
        assert TOKEN not in repr(request)  # ...and the request does not print it
        assert TOKEN not in repr(request.url)


# --- exceptions --------------------------------------------------------------------------


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=ROOT, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[MiniAppCenterClient]:
    async with MiniAppCenterClient(
        Endpoint(BASE), TOKEN, retry=RetryPolicy(sleep=_instant, max_attempts=2)
    ) as c:
        yield c


async def _raised(coro: Any) -> ReconcilerError:
    with pytest.raises(ReconcilerError) as info:
        await coro
    return info.value


async def test_token_echoed_in_documented_error_body_is_redacted(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    body = {"errors": [{"code": 7, "message": f"API key {TOKEN} lacks scope"}]}
    mock.get(f"/miniapps/{APP}").mock(return_value=httpx.Response(403, json=body))
    error = await _raised(client.get_miniapp(APP))
    assert isinstance(error, ApiError)
    assert error.errors[0].message == "API key *** lacks scope"
    assert TOKEN not in _everything(error)


async def test_token_echoed_in_text_error_body_is_redacted(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.delete(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(401, text=f"<pre>APIKey-Auth: {TOKEN}</pre>")
    )
    error = await _raised(client.delete_miniapp(APP))
    assert isinstance(error, ApiError)
    assert "APIKey-Auth: ***" in error.text
    assert TOKEN not in _everything(error)


async def test_token_echoed_on_an_ambiguous_write_is_redacted(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.post("/miniapps").mock(return_value=httpx.Response(502, text=f"upstream saw {TOKEN}"))
    error = await _raised(client.create_miniapp(MiniAppCreate(id=APP)))
    assert isinstance(error, AmbiguousWriteError)
    assert "upstream saw ***" in str(error)
    assert TOKEN not in _everything(error)


async def test_token_in_a_network_error_message_is_redacted(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.get(f"/miniapps/{APP}").mock(side_effect=httpx.ConnectError(f"proxy said {TOKEN}"))
    error = await _raised(client.get_miniapp(APP))
    assert isinstance(error, TransportError)
    assert "proxy said ***" in str(error)
    assert TOKEN not in _everything(error)


async def test_token_echoed_in_a_malformed_success_body_is_redacted(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.get(f"/miniapps/{APP}/versions/3").mock(
        return_value=httpx.Response(200, json={"data": {"id": TOKEN, "code": "1"}})
    )
    mock.post(f"/miniapps/{APP}/versions").mock(
        return_value=httpx.Response(201, json={"data": {"id": TOKEN}})
    )
    read_error = await _raised(client.get_version(APP, 3))
    write_error = await _raised(client.create_version(APP, VersionCreate(code="1")))
    assert isinstance(read_error, ApiError)
    assert isinstance(write_error, AmbiguousWriteError)
    for error in (read_error, write_error):
        assert "***" in str(error)  # the validation summary was kept, redacted
        assert TOKEN not in _everything(error)


def test_redact_covers_str_and_bytes_reprs() -> None:
    token = "ab\\cd"
    text = f"{token} {token!r} {token.encode()!r}"
    assert redact(text, [token]) == "*** '***' b'***'"


# --- logs, over a real connection ---------------------------------------------------------


class _EchoServer:
    """Loopback HTTP server that echoes the key it receives (the worst case)."""

    def __init__(self) -> None:
        self.keys_seen: list[str | None] = []
        seen = self.keys_seen

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes) -> None:
                key = self.headers.get("APIKey-Auth")
                seen.append(key)
                self.send_response(status)
                self.send_header("X-Echo-Key", key or "")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.endswith("/locations"):
                    body = {"data": [{"id": 1, "name": "a", "geo_point": "POINT(1 2)"}]}
                    self._answer(200, json.dumps(body).encode())
                else:
                    self._answer(200, json.dumps({"data": {"id": APP}}).encode())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("APIKey-Auth")
                body = {"errors": [{"code": 1, "message": f"bad key {key}"}]}
                self._answer(401, json.dumps(body).encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api"


@pytest.fixture
def echo_server() -> Iterator[_EchoServer]:
    server = _EchoServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join()


async def _exercise(base_url: str) -> ReconcilerError:
    async with MiniAppCenterClient(Endpoint(base_url), TOKEN) as client:
        assert await client.get_miniapp(APP) is not None
        assert len(await client.list_locations(APP)) == 1
        with pytest.raises(ApiError) as info:
            await client.create_miniapp(MiniAppCreate(id=APP))
        return info.value


async def test_debug_logs_never_contain_the_token(
    echo_server: _EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    error = await asyncio.wait_for(_exercise(echo_server.base_url), timeout=20)

    # The token really went over the wire and came back in headers and bodies...
    assert echo_server.keys_seen == [TOKEN] * 3
    assert error.status == 401 and isinstance(error, ApiError)
    # ...httpcore really logged the response headers at DEBUG (so this test can fail)...
    names = {record.name for record in caplog.records}
    assert {"httpx", "httpcore.http11", "httpcore.connection"} <= names
    header_lines = [r.getMessage() for r in caplog.records if "X-Echo-Key" in r.getMessage()]
    assert len(header_lines) == 3
    assert all("(b'X-Echo-Key', b'***')" in line for line in header_lines)
    # ...and nowhere is the token: not in a record, not in the exception.
    assert TOKEN not in _record_texts(caplog.records)
    assert TOKEN not in caplog.text
    assert TOKEN not in _everything(error)


async def test_without_the_filter_the_same_run_would_leak(
    echo_server: _EchoServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the filter is needed (and that the test above can see a leak)."""
    monkeypatch.setattr(redact_module, "install_log_redaction", lambda: None)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    logging_install()  # the real one, captured before the monkeypatch
    filters = {
        name: [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        for name in LOGGER_NAMES
    }
    assert all(len(found) == 1 for found in filters.values())
    try:
        for name, found in filters.items():
            logging.getLogger(name).removeFilter(found[0])
        await asyncio.wait_for(_exercise(echo_server.base_url), timeout=20)
        assert TOKEN in _record_texts(caplog.records)
        leaking = {r.name for r in caplog.records if TOKEN in r.getMessage()}
        assert leaking == {"httpcore.http11"}  # response headers; request headers never
    finally:
        for name, found in filters.items():
            logging.getLogger(name).addFilter(found[0])


async def test_redaction_lasts_as_long_as_any_client_with_the_token(
    echo_server: _EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="httpcore")
    first = MiniAppCenterClient(Endpoint(echo_server.base_url), TOKEN)
    async with MiniAppCenterClient(Endpoint(echo_server.base_url), TOKEN) as second:
        await first.aclose()
        await first.aclose()  # closing twice must not drop the other client's registration
        await second.get_miniapp(APP)
    assert any("X-Echo-Key" in r.getMessage() for r in caplog.records)
    assert TOKEN not in _record_texts(caplog.records)
