"""Session auth, one engine for every provider: a credential that is obtained (a login or a
token call), attached to each request, renewed, and ended.

A provider supplies only its wire specifics as an :class:`AuthScheme`: which request logs in
and how its answer reads, what a renewal and a logout send, what each request carries, which
answer is an auth refusal, and whether an answer asks for a renewal. Its login, renewal and
logout requests go through the provider client's ordinary send path (per-request deadline,
bounded decompressed body, redaction), never around it. The engine owns the rest:

* **Single flight.** One login or renewal at a time; every request that needs it meanwhile
  waits for that one and shares its outcome (N concurrent requests on an expired session
  cause one login, and a login that fails fails them all, once).
* **A read-write gate.** Each request holds a *lease* on the credential while it is on the
  wire. A renewal first stops new leases, then waits for the leases on the old credential to
  end, then renews: a platform that kills the old credential on renewal (the Akana sandbox
  does) never sees a request in flight carry a dead one. The wait is bounded by the old
  credential's own end, so a stuck request cannot hold a renewal past it.
* **Replay of provable refusals.** A request the server refused as unauthenticated (the
  scheme says which answers are: a 401) did nothing, so it is replayed after one renewal (or
  a login when the scheme says a refusal means the session is gone, or the renewal is
  refused). Only a request whose credential is still the current one triggers that; the
  others just replay with the newer one. A credential fresh from a login that is refused
  again is the caller's error, never a loop.
* **Renewal only when needed.** Before the credential's end (within a margin: a quarter of
  its lifetime, at most ``max_margin``), or after a refusal. An answer asking for a renewal
  (Akana's ``Atmo-Renew-Token: renew``) is honoured only when no request is in flight, where
  it costs no request a wait; otherwise the next renewal that is due serves it.
* **Sticky refusals.** A refused login (:class:`LoginRefused`: wrong password, a pending task)
  is raised for every later request and never sent again: repeated failed logins lock
  accounts.
* **Secrets.** Every value of every credential, and the scheme's fixed secrets (password, API
  key), are registered for redaction while the engine holds them (replaced values stay masked
  for a while: a late log line may carry one).
* **Carried across event loops.** The credential is plain data; the engine's waiting
  primitives are made per event loop, so one engine (one login) can serve a run whose plan and
  writes run in two loops (:func:`carried_sessions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import httpx

from reconciler.errors import ReconcilerError
from reconciler.secrets import MIN_SECRET_LENGTH
from reconciler.transport.redact import Secret, register_token, unregister_token

log = logging.getLogger("reconciler.transport.session_auth")

DEFAULT_MAX_MARGIN: Final = 60.0
MARGIN_FRACTION: Final = 0.25
MAX_REPLAYS: Final = 3
# Replaced credential values stay masked this long (counted in values, not time).
_KEEP_MASKED: Final = 16


class LoginRefused(ReconcilerError):
    """The server refused the login itself (credentials, a pending task): never retried."""


class Credential(Protocol):
    """What a scheme's login or renewal yields: opaque to the engine but for these two."""

    @property
    def lifetime(self) -> float | None:
        """Seconds it is valid from receipt; None: unknown (only refusals renew it)."""

    def secrets(self) -> Iterable[str]:
        """Every value to mask while it is held."""


C = TypeVar("C", bound=Credential)


class AuthScheme(Protocol[C]):
    """A provider's wire specifics. ``login``/``renew``/``logout`` send through the client's
    own path; raising :class:`LoginRefused` makes the refusal sticky, any other error is
    shared by the requests waiting for that login and not remembered."""

    # True: a refusal means the session is gone (log in, do not try to renew it).
    refusal_needs_login: bool

    def fixed_secrets(self) -> Sequence[str]: ...

    def login(self) -> Awaitable[C]: ...

    def renew(self, current: C) -> Awaitable[C | None]:
        """The renewed credential; None when the server refused the renewal (log in)."""
        ...

    def logout(self, current: C) -> Awaitable[None]: ...

    def attach(self, request: httpx.Request, credential: C) -> None: ...

    def refused(self, response: httpx.Response) -> bool:
        """Whether this (read, bounded) answer is an auth refusal: nothing was done."""
        ...

    def asks_renewal(self, response: httpx.Response) -> bool: ...


@dataclass(frozen=True)
class _Held(Generic[C]):
    credential: C
    generation: int
    expires_at: float | None  # on the engine's clock
    margin: float
    from_login: bool


@dataclass(frozen=True)
class Lease(Generic[C]):
    """One request's hold on the credential it was sent with."""

    credential: C
    generation: int
    from_login: bool
    loop_epoch: int


class _Change:
    """A login or renewal in progress (or waiting for the gate to drain), in one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.drained = asyncio.Event()


class SessionAuth(Generic[C]):
    """The engine (see the module docstring). ``clock``: monotonic seconds."""

    def __init__(
        self,
        scheme: AuthScheme[C],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_margin: float = DEFAULT_MAX_MARGIN,
        max_replays: int = MAX_REPLAYS,
    ) -> None:
        self._scheme = scheme
        self._clock = clock
        self._max_margin = max_margin
        self.max_replays = max_replays
        self._held: _Held[C] | None = None
        self._generation = 0
        self._failure: LoginRefused | None = None
        self._renewal_asked = False
        self._renew_not_before = -float("inf")
        self._in_flight = 0
        self._change: _Change | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_epoch = 0
        self._masked: deque[str] = deque()
        self._current_secrets: list[str] = []
        self._fixed = [s for s in scheme.fixed_secrets() if len(s) >= MIN_SECRET_LENGTH]
        for value in self._fixed:
            register_token(value)
        self._closed = False
        self.logins = 0
        self.renewals = 0
        self.replays = 0

    def __repr__(self) -> str:
        return f"SessionAuth({type(self._scheme).__name__}, credential=***)"

    @property
    def has_credential(self) -> bool:
        return self._held is not None

    @property
    def scheme(self) -> AuthScheme[C]:
        return self._scheme

    @property
    def credential(self) -> C | None:
        return self._held.credential if self._held is not None else None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # --- the loop the waiting primitives belong to ------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (the writes after the plan): nothing of the old one is in
            # flight any more; the credential itself carries over.
            self._loop = loop
            self._loop_epoch += 1
            self._in_flight = 0
            self._change = None
        return loop

    # --- leases ---------------------------------------------------------------------------

    async def acquire(self) -> Lease[C]:
        """A lease on a valid credential (logging in or renewing first when needed)."""
        loop = self._bind_loop()
        while True:
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            change = self._change
            if change is not None:
                await asyncio.shield(change.done)
                continue
            held = self._held
            if held is None:
                await self._run(loop, login=True, expected=None)
                continue
            if self._due(held) or (self._renewal_asked and self._in_flight == 0):
                await self._run(loop, login=False, expected=held.generation)
                continue
            self._in_flight += 1
            return Lease(held.credential, held.generation, held.from_login, self._loop_epoch)

    def release(self, lease: Lease[C]) -> None:
        if lease.loop_epoch != self._loop_epoch:
            return  # counted in a loop that is gone
        self._in_flight -= 1
        if self._in_flight <= 0:
            self._in_flight = 0
            if self._change is not None:
                self._change.drained.set()

    def attach(self, request: httpx.Request, lease: Lease[C]) -> None:
        self._scheme.attach(request, lease.credential)

    def is_refusal(self, response: httpx.Response) -> bool:
        return self._scheme.refused(response)

    def note_answer(self, response: httpx.Response) -> None:
        """Remember an answer's request for a renewal (honoured when the gate is idle)."""
        if self._scheme.asks_renewal(response):
            self._renewal_asked = True

    async def refused(self, lease: Lease[C], replays: int) -> bool:
        """The server refused a request sent under ``lease`` (already released) as
        unauthenticated. True: replay it (after a renewal or login when its credential is
        still the current one); False: give up (surface the refusal)."""
        loop = self._bind_loop()
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if replays >= self.max_replays:
            return False
        held = self._held
        if held is not None and held.generation != lease.generation:
            self.replays += 1
            return True  # renewed since it was sent: replay with the newer credential
        if lease.from_login and replays > 0:
            return False  # refused again right after a fresh login: not a session problem
        # A renewed credential refused in turn: log in (a refresh token may be dead too).
        login = self._scheme.refusal_needs_login or replays > 0
        log.debug("an auth refusal: %s, then replaying", "logging in" if login else "renewing")
        await self._run(
            loop,
            login=login,
            expected=lease.generation,
            after_refusal=True,
        )
        self.replays += 1
        return True

    # --- the change (login or renewal) ---------------------------------------------------

    def _due(self, held: _Held[C]) -> bool:
        now = self._clock()
        if held.expires_at is None or now < self._renew_not_before:
            return False
        return now >= held.expires_at - held.margin

    def _usable(self, held: _Held[C]) -> bool:
        return held.expires_at is None or self._clock() < held.expires_at

    async def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        login: bool,
        expected: int | None,
        after_refusal: bool = False,
    ) -> None:
        """Become the one change in flight, or wait for the one already running."""
        while self._change is not None:
            await asyncio.shield(self._change.done)
            held = self._held
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            if held is not None and held.generation != expected:
                return  # someone else's change already replaced that credential
        held = self._held
        if (held.generation if held is not None else None) != expected:
            return
        change = _Change(loop)
        self._change = change
        try:
            if held is not None and not after_refusal and not login:
                await self._drain(change, held)
            await self._replace(held, login=login)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                change.done.set_result(None)  # the waiters try again themselves
            else:
                change.done.set_exception(exc)
                change.done.exception()  # retrieved: the waiters re-raise it themselves
            raise
        else:
            change.done.set_result(None)
        finally:
            if self._change is change:
                self._change = None

    async def _drain(self, change: _Change, held: _Held[C]) -> None:
        """Wait for the leases on ``held`` to end, at most until it ends itself."""
        if self._in_flight == 0:
            return
        wait = None
        if held.expires_at is not None:
            wait = max(0.0, held.expires_at - self._clock())
        try:
            async with asyncio.timeout(wait):
                await change.drained.wait()
        except TimeoutError:
            log.debug("renewing with %d requests still in flight", self._in_flight)

    async def _replace(self, held: _Held[C] | None, *, login: bool) -> None:
        credential: C | None = None
        from_login = False
        if held is not None and not login:
            try:
                credential = await self._scheme.renew(held.credential)
            except ReconcilerError as exc:
                if not self._usable(held):
                    raise
                # The renewal endpoint failed (after the transport's retries) while the
                # session still works: keep it, and try again a little later, not per request.
                log.debug("the renewal failed, the session still works: %s", exc)
                self._renewal_asked = False
                self._renew_not_before = self._clock() + max(held.margin / 4, 0.5)
                return
            if credential is None:
                log.debug("the renewal was refused: logging in again")
            else:
                self.renewals += 1  # renewals that gave a credential (not the refused ones)
        if credential is None:
            self.logins += 1
            from_login = True
            try:
                credential = await self._scheme.login()
            except LoginRefused as exc:
                self._failure = exc
                self._forget_current()
                self._held = None
                raise
        self._generation += 1
        lifetime = credential.lifetime
        expires_at = None if lifetime is None else self._clock() + lifetime
        margin = 0.0 if lifetime is None else min(self._max_margin, lifetime * MARGIN_FRACTION)
        self._mask(credential)
        self._held = _Held(credential, self._generation, expires_at, margin, from_login)
        self._renewal_asked = False

    # --- secrets ---------------------------------------------------------------------------

    def _mask(self, credential: C) -> None:
        self._forget_current()
        values = [v for v in dict.fromkeys(credential.secrets()) if len(v) >= MIN_SECRET_LENGTH]
        for value in values:
            register_token(value)
        self._current_secrets = values

    def _forget_current(self) -> None:
        # The replaced values stay masked a while (registered once more, released later).
        for value in self._current_secrets:
            self._masked.append(value)
        self._current_secrets = []
        while len(self._masked) > _KEEP_MASKED:
            unregister_token(self._masked.popleft())

    # --- the end ---------------------------------------------------------------------------

    async def logout(self) -> None:
        """End the session (best effort, never logging in to do it), then forget it."""
        held = self._held
        if held is None:
            return
        loop = self._bind_loop()
        change = _Change(loop)
        while self._change is not None:
            await asyncio.shield(self._change.done)
        self._change = change
        try:
            await self._drain(change, held)
            try:
                await self._scheme.logout(held.credential)
            except ReconcilerError as exc:
                log.debug("the logout failed (the session will expire): %s", exc)
        finally:
            self._held = None
            change.done.set_result(None)
            if self._change is change:
                self._change = None

    def close(self) -> None:
        """Forget the credential and stop masking every value (once the client is closed)."""
        if self._closed:
            return
        self._closed = True
        self._held = None
        self._forget_current()
        while self._masked:
            unregister_token(self._masked.popleft())
        for value in self._fixed:
            unregister_token(value)


# --- one login per run ---------------------------------------------------------------------


class CarriedSessions:
    """Session engines kept between the event loops of one run (the plan, then the writes).

    Inside :func:`carried_sessions`, a client that closes before :meth:`last_phase` *parks*
    its engine here instead of logging out, and the next client of the same key (endpoint and
    user) takes it over, credential and all: one login per run. After :meth:`last_phase`,
    clients log out when they close, as outside the block. Engines still parked when the block
    ends (the run stopped before its writes) are logged out then, each through a client of
    its own in a short event loop (``late_logout``).
    """

    def __init__(self) -> None:
        self._parked: dict[str, tuple[SessionAuth[Any], Callable[[], Awaitable[None]]]] = {}
        self.final = False

    def last_phase(self) -> None:
        """From now on clients log out when they close (the writes are the last phase)."""
        self.final = True

    def take(self, key: str) -> SessionAuth[Any] | None:
        parked = self._parked.pop(key, None)
        return parked[0] if parked is not None else None

    def park(
        self, key: str, engine: SessionAuth[Any], late_logout: Callable[[], Awaitable[None]]
    ) -> None:
        old = self._parked.pop(key, None)
        if old is not None and old[0] is not engine:
            old[0].close()
        self._parked[key] = (engine, late_logout)

    def end(self) -> None:
        parked, self._parked = list(self._parked.values()), {}
        live = [logout for engine, logout in parked if engine.has_credential]

        async def logout_all() -> None:
            for logout in live:
                try:
                    await logout()
                except Exception as exc:  # best effort: the session expires anyway
                    log.debug("the logout at the end of the run failed: %s", exc)

        try:
            if live:
                asyncio.run(logout_all())
        finally:
            for engine, _ in parked:
                engine.close()


_carrier: CarriedSessions | None = None


@contextmanager
def carried_sessions() -> Iterator[CarriedSessions]:
    """One login per run for the clients opened inside (see :class:`CarriedSessions`).
    Called outside any event loop; a nested block joins the outer one."""
    global _carrier
    if _carrier is not None:
        yield _carrier
        return
    carrier = CarriedSessions()
    _carrier = carrier
    try:
        yield carrier
    finally:
        _carrier = None
        carrier.end()


def current_carrier() -> CarriedSessions | None:
    """The run's carrier when inside :func:`carried_sessions`."""
    return _carrier


# --- the simplest scheme: a static API key ---------------------------------------------------


@dataclass(frozen=True)
class StaticKey:
    """A key that is never obtained, renewed nor ended (the Mini App Center's token)."""

    key: Secret
    lifetime: float | None = None

    def secrets(self) -> list[str]:
        return []  # masked as the scheme's fixed secret (or by its owner), not per credential


class StaticKeyScheme:
    """``header: <key>`` on every request; no login request, nothing to renew, and a 401 is
    the caller's error (a key the server refuses stays refused: never replayed)."""

    refusal_needs_login = False

    def __init__(self, header: str, key: Secret, *, register: bool = True) -> None:
        self._header = header
        self._key = key
        self._register = register

    def __repr__(self) -> str:
        return f"StaticKeyScheme({self._header}: ***)"

    def fixed_secrets(self) -> list[str]:
        return [self._key.reveal()] if self._register else []

    async def login(self) -> StaticKey:
        return StaticKey(self._key)

    async def renew(self, current: StaticKey) -> StaticKey | None:
        return current

    async def logout(self, current: StaticKey) -> None:
        return None

    def attach(self, request: httpx.Request, credential: StaticKey) -> None:
        request.headers[self._header] = credential.key.reveal()

    def refused(self, response: httpx.Response) -> bool:
        return False

    def asks_renewal(self, response: httpx.Response) -> bool:
        return False
