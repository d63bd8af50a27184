"""The shared session-auth engine (``reconciler.transport.session_auth``) with a scripted
scheme: single flight, the read-write gate around renewals, replay after a refusal, a
refused refresh, sticky refused logins, secrets, and one credential carried across two event
loops. The providers' schemes are tested over real HTTP in tests/test_akana_auth.py and
tests/test_rest_auth.py."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import httpx
import pytest

from reconciler.secrets import live_secrets
from reconciler.transport.session_auth import Lease, LoginRefused, SessionAuth


@dataclass(frozen=True)
class Token:
    value: str
    lifetime: float | None

    def secrets(self) -> list[str]:
        return [self.value]


@dataclass
class Server:
    """What the fake platform believes: the live tokens (a renewal kills the old one)."""

    live: set[str] = field(default_factory=set)
    issued: int = 0

    def issue(self) -> str:
        self.issued += 1
        token = f"token-{self.issued:04d}-abcdefgh"
        self.live.add(token)
        return token


class Scheme:
    """A scripted scheme: counts its calls, can be told to refuse or to be slow."""

    def __init__(
        self,
        server: Server,
        *,
        lifetime: float | None = 60.0,
        refusal_needs_login: bool = False,
        login_error: Exception | None = None,
        renew_refused: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.server = server
        self.lifetime = lifetime
        self.refusal_needs_login = refusal_needs_login
        self.login_error = login_error
        self.renew_refused = renew_refused
        self.delay = delay
        self.renew_checks_live = True
        self.logins = self.renewals = self.logouts = 0

    def fixed_secrets(self) -> list[str]:
        return ["the-password-123"]

    async def login(self) -> Token:
        self.logins += 1
        await asyncio.sleep(self.delay)
        if self.login_error is not None:
            raise self.login_error
        return Token(self.server.issue(), self.lifetime)

    async def renew(self, current: Token) -> Token | None:
        self.renewals += 1
        await asyncio.sleep(self.delay)
        if self.renew_refused or (self.renew_checks_live and current.value not in self.server.live):
            return None
        self.server.live.discard(current.value)  # as the Akana sandbox does
        return Token(self.server.issue(), self.lifetime)

    async def logout(self, current: Token) -> None:
        self.logouts += 1
        self.server.live.discard(current.value)

    def attach(self, request: httpx.Request, credential: Token) -> None:
        request.headers["x-token"] = credential.value

    def refused(self, response: httpx.Response) -> bool:
        return response.status_code == 401

    def asks_renewal(self, response: httpx.Response) -> bool:
        return response.headers.get("x-renew") == "renew"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def request(
    engine: SessionAuth[Token], server: Server, hold: float = 0.0, replays: int = 0
) -> bool:
    """One request as a client sends it: a lease, the server checks the token at the *end*
    of its work (so a renewal during it would kill it), then a replay on refusal."""
    while True:
        lease: Lease[Token] = await engine.acquire()
        try:
            await asyncio.sleep(hold)
            ok = lease.credential.value in server.live
        finally:
            engine.release(lease)
        if ok:
            return True
        if not await engine.refused(lease, replays):
            return False
        replays += 1


async def test_fifty_concurrent_requests_cause_one_login() -> None:
    server = Server()
    scheme = Scheme(server, delay=0.01)
    engine = SessionAuth(scheme)
    results = await asyncio.gather(*(request(engine, server) for _ in range(50)))
    assert all(results)
    assert (scheme.logins, scheme.renewals) == (1, 0)


async def test_fifty_concurrent_requests_on_a_due_credential_cause_one_renewal() -> None:
    server, clock = Server(), Clock()
    scheme = Scheme(server, lifetime=100.0, delay=0.01)
    engine = SessionAuth(scheme, clock=clock)
    assert await request(engine, server)
    clock.now += 80  # within the margin (a quarter of the lifetime)
    results = await asyncio.gather(*(request(engine, server) for _ in range(50)))
    assert all(results)
    assert (scheme.logins, scheme.renewals) == (1, 1)


async def test_a_renewal_waits_for_the_requests_in_flight() -> None:
    # The renewal kills the old token; a request that is still on the wire with it would
    # be refused. Requests of random length overlap the moment the token becomes due.
    server, clock = Server(), Clock()
    scheme = Scheme(server, lifetime=100.0)
    engine = SessionAuth(scheme, clock=clock, max_replays=0)  # any refusal would surface
    rng = random.Random(7)

    async def later(delay: float) -> bool:
        await asyncio.sleep(delay)
        return await request(engine, server, hold=rng.uniform(0, 0.03))

    assert await request(engine, server)
    first = [asyncio.ensure_future(later(0)) for _ in range(25)]
    await asyncio.sleep(0.005)  # the first wave is on the wire
    clock.now += 80  # now due: the next request renews
    second = [asyncio.ensure_future(later(rng.uniform(0, 0.02))) for _ in range(25)]
    results = await asyncio.gather(*first, *second)
    assert all(results), results.count(False)
    assert scheme.renewals == 1 and scheme.logins == 1


async def test_a_renewal_waits_no_longer_than_the_old_credential_lives() -> None:
    # A request stuck on the wire cannot hold a renewal past the credential's end.
    server = Server()
    scheme = Scheme(server, lifetime=0.4)
    engine = SessionAuth(scheme)
    stuck = await engine.acquire()  # never released in time
    await asyncio.sleep(0.31)  # within the margin (0.1 s) of the end
    async with asyncio.timeout(2):
        lease = await engine.acquire()
    assert scheme.renewals == 1 and lease.generation == stuck.generation + 1
    engine.release(lease)
    engine.release(stuck)


async def test_a_refusal_renews_once_then_replays() -> None:
    server = Server()
    scheme = Scheme(server, delay=0.01)
    scheme.renew_checks_live = False  # the refresh token still works
    engine = SessionAuth(scheme)
    assert await request(engine, server)
    server.live.clear()  # the access token revoked server-side (a skewed clock, say)
    results = await asyncio.gather(*(request(engine, server) for _ in range(10)))
    assert all(results)
    assert (scheme.logins, scheme.renewals) == (1, 1)


async def test_a_refused_renewal_means_a_fresh_login() -> None:
    server, clock = Server(), Clock()
    scheme = Scheme(server, lifetime=100.0, renew_refused=True)
    engine = SessionAuth(scheme, clock=clock)
    assert await request(engine, server)
    clock.now += 80
    assert await request(engine, server)
    assert (scheme.logins, scheme.renewals) == (2, 1)


async def test_a_session_refusal_logs_in_when_the_scheme_says_so() -> None:
    server = Server()
    scheme = Scheme(server, refusal_needs_login=True)
    engine = SessionAuth(scheme)
    assert await request(engine, server)
    server.live.clear()  # the platform forgot every session
    results = await asyncio.gather(*(request(engine, server) for _ in range(16)))
    assert all(results)
    assert (scheme.logins, scheme.renewals) == (2, 0)


async def test_a_fresh_login_refused_again_is_given_up_never_a_loop() -> None:
    server = Server()
    scheme = Scheme(server, refusal_needs_login=True)
    engine = SessionAuth(scheme)

    async def always_refused() -> bool:
        replays = 0
        while True:
            lease = await engine.acquire()
            engine.release(lease)
            if not await engine.refused(lease, replays):
                return False
            replays += 1

    assert await always_refused() is False
    assert scheme.logins == 2  # the first, and one fresh login; then the caller's error


async def test_a_refused_login_is_sticky_and_shared() -> None:
    server = Server()
    error = LoginRefused("the login answered a pending task: ChangePassword")
    scheme = Scheme(server, login_error=error, delay=0.01)
    engine = SessionAuth(scheme)
    results = await asyncio.gather(
        *(request(engine, server) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, LoginRefused) for r in results)
    with pytest.raises(LoginRefused, match="pending task"):
        await engine.acquire()
    assert scheme.logins == 1


async def test_a_failed_login_that_is_no_refusal_is_shared_but_not_sticky() -> None:
    server = Server()
    scheme = Scheme(server, login_error=ConnectionError("down"), delay=0.01)
    engine = SessionAuth(scheme)
    results = await asyncio.gather(
        *(request(engine, server) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert scheme.logins == 1  # the waiters share the one attempt's outcome
    scheme.login_error = None
    assert await request(engine, server)
    assert scheme.logins == 2


async def test_a_renewal_asked_for_waits_until_nothing_is_in_flight() -> None:
    server = Server()
    scheme = Scheme(server)
    engine = SessionAuth(scheme)
    busy = await engine.acquire()
    engine.note_answer(httpx.Response(200, headers={"x-renew": "renew"}))
    other = await engine.acquire()  # one is in flight: no renewal, no wait
    assert scheme.renewals == 0
    engine.release(other)
    engine.release(busy)
    idle = await engine.acquire()  # nothing in flight now: renewed first
    engine.release(idle)
    assert scheme.renewals == 1 and idle.generation == busy.generation + 1


async def test_logout_never_logs_in_and_secrets_are_masked_while_held() -> None:
    server = Server()
    scheme = Scheme(server)
    before = set(live_secrets())
    engine = SessionAuth(scheme)
    await engine.logout()
    assert (scheme.logins, scheme.logouts) == (0, 0)
    assert await request(engine, server)
    token = f"token-{server.issued:04d}-abcdefgh"
    assert {"the-password-123", token} <= set(live_secrets())
    await engine.logout()
    assert scheme.logouts == 1 and not engine.has_credential
    engine.close()
    assert set(live_secrets()) == before


def test_one_credential_serves_two_event_loops() -> None:
    # The plan and the writes of one run: two asyncio.run calls, one login.
    server = Server()
    scheme = Scheme(server)
    engine = SessionAuth(scheme)
    assert asyncio.run(request(engine, server))
    busy = asyncio.run(engine.acquire())  # a lease the first loop never gave back
    assert busy.loop_epoch == 2
    assert asyncio.run(request(engine, server))  # not waiting for it
    assert (scheme.logins, scheme.renewals) == (1, 0)
    asyncio.run(engine.logout())
    assert scheme.logouts == 1
    engine.close()


async def test_a_failed_renewal_keeps_a_session_that_still_works() -> None:
    from reconciler.errors import TransportError

    server, clock = Server(), Clock()
    scheme = Scheme(server, lifetime=100.0)
    engine = SessionAuth(scheme, clock=clock)
    assert await request(engine, server)
    clock.now += 80  # due; the renewal endpoint is down

    async def down(current: Token) -> Token | None:
        scheme.renewals += 1
        raise TransportError("POST", "/renew", "HTTP 503 (gave up after 5 attempts)")

    scheme.renew = down  # type: ignore[method-assign]
    results = await asyncio.gather(*(request(engine, server) for _ in range(10)))
    assert all(results)
    assert scheme.renewals == 1  # tried once, not once per request
    clock.now += 30  # over: now the failure is the caller's
    with pytest.raises(TransportError):
        await request(engine, server)


async def test_a_static_key_is_the_simplest_session() -> None:
    from reconciler.transport.redact import Secret
    from reconciler.transport.session_auth import StaticKeyScheme

    key = "static-key-0123456789"
    engine = SessionAuth(StaticKeyScheme("APIKey-Auth", Secret(key)))
    assert key in live_secrets()
    lease = await engine.acquire()
    request = httpx.Request("GET", "https://api.example/v1/miniapps")
    engine.attach(request, lease)
    engine.release(lease)
    assert request.headers["APIKey-Auth"] == key
    assert not engine.is_refusal(httpx.Response(401))  # a refused key is never replayed
    await engine.logout()
    engine.close()
    assert key not in live_secrets()
