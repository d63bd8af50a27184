"""Akana session auth over real loopback HTTP: login, CSRF on writes, renewal (asked for, and
before expiry), one re-login for many concurrent 401s, refused logins that never loop,
logout, and no secret in DEBUG logs."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest

from reconciler.errors import ReconcilerError
from reconciler.providers.akana.auth import AkanaLoginError, AkanaPendingTaskError
from reconciler.providers.akana.client import AkanaApiError, AkanaClient
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.wire import AppCreate, AppUpdate, VersionCreate
from reconciler.secrets import live_secrets
from reconciler.transport.redact import Secret
from reconciler.transport.session_auth import carried_sessions
from tests.fixtures_akana import (
    FED,
    PASSWORD,
    PENDING_EMAIL,
    PENDING_PASSWORD,
    Recorder,
    RunningAkana,
    SettableClock,
    akana_client,
    fast_retry,
)

CSRF_HEADER = f"X-Csrf-Token_{FED}"


def new_app(name: str = "Crosfhocal") -> AppCreate:
    return AppCreate(name=name, version=VersionCreate(name="1.0"))


async def test_one_login_serves_many_calls(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        for _ in range(5):
            await client.list_apps()
        await client.create_app(new_app())
    assert akana.store.count("login") == 1


async def test_csrf_header_on_writes_only(akana: RunningAkana) -> None:
    recorder = Recorder()
    async with akana_client(akana, transport=recorder) as client:
        app_id = await client.create_app(new_app())
        await client.list_apps()
        await client.update_app(app_id, AppUpdate(name="Crosfhocal"))
        await client.delete_app(app_id)
    for request in recorder.requests:
        path = request.url.path
        if path == "/api/login":
            assert CSRF_HEADER not in request.headers and "cookie" not in request.headers
            continue
        assert f"AtmoAuthToken_{FED}=" in request.headers["cookie"]
        wants_csrf = request.method != "GET"
        assert (CSRF_HEADER in request.headers) is wants_csrf, (request.method, path)
    assert {r.method for r in recorder.requests} >= {"POST", "PUT", "DELETE", "GET"}


async def test_a_renew_header_renews_before_the_next_request(akana: RunningAkana) -> None:
    recorder = Recorder()
    async with akana_client(akana, transport=recorder) as client:
        await client.list_apps()
        assert akana.store.count("renew") == 0  # a read asks for nothing
        await client.create_app(new_app())  # answers Atmo-Renew-Token: renew
        assert akana.store.count("renew") == 0  # done before the next request, not after
        await client.list_apps()
        assert akana.store.count("renew") == 1
        await client.list_apps()
    assert akana.store.count("renew") == 1
    assert akana.store.count("login") == 1  # the renewed cookie was used (the old one is dead)
    [renew] = recorder.sent("POST", "/api/login/renewToken")
    assert renew.headers["content-type"] == "application/x-www-form-urlencoded"
    assert renew.content == b""


async def test_renewal_before_the_cookie_expires(akana: RunningAkana) -> None:
    clock = SettableClock(1000.0)
    async with akana_client(akana, clock=clock) as client:
        await client.list_apps()
        clock.advance(1800 - 61)  # more than the 60 s margin left: nothing to do
        await client.list_apps()
        assert akana.store.count("renew") == 0
        clock.advance(2)  # within the margin
        await client.list_apps()
        assert akana.store.count("renew") == 1
        clock.advance(30)  # the renewed cookie has a fresh lifetime
        await client.list_apps()
    assert (akana.store.count("renew"), akana.store.count("login")) == (1, 1)


async def test_an_expired_renewal_logs_in_again(akana_factory: Any) -> None:
    server_clock = SettableClock(time.time())
    running = akana_factory(clock=server_clock)
    client_clock = SettableClock(0.0)
    async with akana_client(running, clock=client_clock) as client:
        await client.list_apps()
        server_clock.advance(1801)
        client_clock.advance(1801)
        assert await client.list_apps() == []
    assert (running.store.count("renew"), running.store.count("login")) == (1, 2)


async def test_sixteen_concurrent_401s_cause_one_login(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        await client.create_app(new_app())
        await client.list_apps()  # the renewal asked for by the create is done here
        akana.store.expire_all_sessions()  # server-side: the client does not know
        results = await asyncio.gather(*(client.list_apps() for _ in range(16)))
        assert all(len(apps) == 1 for apps in results)
        # Writes too: the CSRF token of the new session is used on the replay.
        await client.update_app(results[0][0].app_id, AppUpdate(name="Crosfhocal"))
    assert akana.store.count("login") == 2  # the first, and exactly one re-login


async def test_a_second_401_after_a_fresh_login_is_an_error(akana: RunningAkana) -> None:
    # A proxy that drops the cookie: every request is 401 even right after a login.
    class DropCookies(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path != "/api/login":
                del request.headers["cookie"]
            return await super().handle_async_request(request)

    recorder = DropCookies()
    async with akana_client(akana, transport=recorder) as client:
        with pytest.raises(AkanaApiError) as caught:
            await client.list_apps()
    assert caught.value.status == 401
    assert "AKANA_EMAIL" in str(caught.value)
    assert akana.store.count("login") == 2  # one re-login, never a loop
    assert len(recorder.sent("GET", "/api/apps")) == 2


async def test_a_pending_task_is_a_clear_error_and_never_a_loop(akana: RunningAkana) -> None:
    async with akana_client(akana, email=PENDING_EMAIL, password=PENDING_PASSWORD) as client:
        results = await asyncio.gather(
            *(client.list_apps() for _ in range(8)), return_exceptions=True
        )
        with pytest.raises(AkanaPendingTaskError) as caught:
            await client.create_app(new_app())
    assert all(isinstance(r, AkanaPendingTaskError) for r in results)
    assert caught.value.task == "ChangePassword"
    assert "pending task" in str(caught.value) and "ChangePassword" in str(caught.value)
    assert akana.store.count("login") == 1
    assert akana.store.count("logout") == 0  # no session: nothing to log out of


async def test_a_wrong_password_is_tried_once(akana: RunningAkana) -> None:
    async with akana_client(akana, password="wrong-password-123") as client:
        results = await asyncio.gather(
            *(client.list_apps() for _ in range(8)), return_exceptions=True
        )
    assert all(isinstance(r, AkanaLoginError) for r in results)
    message = str(results[0])
    assert "HTTP 401" in message and "AKANA_PASSWORD" in message and "lock" in message
    assert akana.store.count("login") == 1


async def test_a_login_answering_503_is_retried_like_an_unsent_request(
    akana_factory: Any,
) -> None:
    running = akana_factory()
    failures = iter([True, True, False])

    class FailLogins(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/api/login" and next(failures):
                self.requests.append(request)
                return httpx.Response(503, text="busy", request=request)
            return await super().handle_async_request(request)

    recorder = FailLogins()
    async with akana_client(running, transport=recorder) as client:
        await client.create_app(new_app())  # a write: retried because it was never sent
    assert len(recorder.sent("POST", "/api/login")) == 3
    assert len(recorder.sent("POST", "/api/apps")) == 1
    assert running.store.count("login") == 1


async def test_closing_logs_out(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        await client.list_apps()
        assert client.auth.has_credential
    assert akana.store.count("logout") == 1
    assert not client.auth.has_credential


async def test_closing_without_a_session_sends_nothing(akana: RunningAkana) -> None:
    recorder = Recorder()
    async with akana_client(akana, transport=recorder):
        pass
    assert recorder.requests == []


async def test_no_secret_in_debug_logs_or_errors(
    akana: RunningAkana, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    errors: list[str] = []
    before = set(live_secrets())
    async with akana_client(akana, transport=recorder) as client:
        app_id = await client.create_app(new_app())
        await client.list_apps()  # renews
        akana.store.expire_all_sessions()
        await client.list_apps()  # 401, re-login
        for failing in (client.create_app(new_app()), client.delete_app(f"nope.{FED}")):
            try:
                await failing
            except ReconcilerError as exc:
                errors.append(str(exc))
        await client.update_app(app_id, AppUpdate(name="Crosfhocal"))
    async with akana_client(akana, password="wrong-password-123") as bad:
        with pytest.raises(AkanaLoginError) as refused:
            await bad.list_apps()
    errors.append(str(refused.value))

    secrets = {PASSWORD, "wrong-password-123"}
    for response in recorder.responses:
        for header in response.headers.get_list("set-cookie"):
            value = header.split(";", 1)[0].split("=", 1)[1].strip('"')
            if value:
                secrets.add(value)
    for request in recorder.requests:
        if CSRF_HEADER in request.headers:
            secrets.add(request.headers[CSRF_HEADER])
    assert len(secrets) >= 6  # password x2, 2 session cookies + 1 renewed, CSRF tokens
    logged = caplog.text + "\n".join(errors)
    # The log did see the headers (so the test can fail): masked, not absent.
    assert f"AtmoAuthToken_{FED}=***" in caplog.text
    assert "renewToken" in caplog.text and "401" in caplog.text
    for secret in secrets:
        assert secret not in logged
    assert len(errors) == 3
    assert set(live_secrets()) == before  # unregistered once the clients closed


async def test_a_renewal_never_kills_a_request_in_flight(akana_factory: Any) -> None:
    # The sandbox kills the old cookie on renewal; 16 slow reads are on the wire when the
    # session becomes due. The server must refuse none of them (no 401 at all, not even one
    # that a replay would hide), and the renewal waits for them instead.
    running = akana_factory(latency_ms=60)
    clock = SettableClock(1000.0)
    recorder = Recorder()
    async with akana_client(running, clock=clock, transport=recorder) as client:
        await client.list_apps()
        first = [asyncio.ensure_future(client.list_apps()) for _ in range(16)]
        await asyncio.sleep(0.02)  # sent, and waiting in the server's latency
        clock.advance(1800 - 30)  # now within the renewal margin
        second = [asyncio.ensure_future(client.list_apps()) for _ in range(16)]
        await asyncio.gather(*first, *second)
        # Creates answer "renew" while others are in flight: still nothing refused.
        await asyncio.gather(*(client.create_app(new_app(f"app-{i}")) for i in range(8)))
        await asyncio.gather(*(client.list_apps() for _ in range(8)))
    refused = [r for r in recorder.responses if r.status_code == 401]
    assert refused == []
    assert running.store.count("login") == 1
    assert running.store.count("renew") >= 1


@pytest.mark.parametrize("mode", ["endless_chunked", "huge_error"])
async def test_a_hostile_login_answer_is_read_bounded(mode: Any) -> None:
    # An endless or huge answer to the login is read only up to a small cap (a login answer
    # is a few hundred bytes), then refused with one clear line; never held in memory.
    from tests.hostile_server import hostile_server

    async with hostile_server(mode, max_bytes=64 * 1024**2) as server:
        config = AkanaConfig(
            akana_endpoint(f"http://127.0.0.1:{server.port}"), "a@b.example", Secret(PASSWORD)
        )
        async with AkanaClient(config, retry=fast_retry()) as client:
            with pytest.raises(ReconcilerError) as caught:
                await client.list_apps()
    # What the server managed to write: the client's reads plus socket buffers, far from
    # the 64 MiB each answer offered.
    assert server.bytes_sent < 16 * 1024**2, server.bytes_sent
    message = str(caught.value)
    assert "/api/login" in message and "\n" not in message
    assert PASSWORD not in message


def _one_phase(running: RunningAkana, *, write: bool = False) -> None:
    async def phase() -> None:
        async with akana_client(running) as client:
            await client.list_apps()
            if write:
                await client.create_app(new_app())

    asyncio.run(phase())


def test_a_run_logs_in_once_for_its_plan_and_its_writes(akana: RunningAkana) -> None:
    # apply plans in one event loop and writes in another (the prompt between them): the
    # session is carried over, with its cookie, instead of a second login.
    with carried_sessions() as carrier:
        _one_phase(akana)  # the plan
        assert (akana.store.count("login"), akana.store.count("logout")) == (1, 0)
        carrier.last_phase()
        _one_phase(akana, write=True)  # the writes: no login, a logout at the end
        assert (akana.store.count("login"), akana.store.count("logout")) == (1, 1)
    assert (akana.store.count("login"), akana.store.count("logout")) == (1, 1)
    assert not live_secrets_of(PASSWORD)


def test_a_run_that_stops_before_its_writes_still_logs_out(akana: RunningAkana) -> None:
    with carried_sessions():
        _one_phase(akana)  # the plan; then no change, or the prompt declined
    assert (akana.store.count("login"), akana.store.count("logout")) == (1, 1)
    assert not live_secrets_of(PASSWORD)


def test_a_carried_session_that_expired_at_the_prompt_logs_in_again(
    akana_factory: Any,
) -> None:
    server_clock = SettableClock(time.time())
    running = akana_factory(clock=server_clock)
    with carried_sessions() as carrier:
        _one_phase(running)
        server_clock.advance(3600)  # a person read the plan for an hour
        carrier.last_phase()
        _one_phase(running, write=True)
    assert running.store.count("login") == 2  # one fresh login, no error


def live_secrets_of(value: str) -> bool:
    return value in live_secrets()
