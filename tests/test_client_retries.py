"""Retries, Retry-After, deadline, the client-wide pause, and no blind retry of writes."""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpcore
import httpx
import pytest
import respx

from reconciler.errors import AmbiguousWriteError, ApiError, TransportError
from reconciler.providers.miniappcenter.client import (
    Endpoint,
    LocationBody,
    MiniAppCenterClient,
    MiniAppCreate,
    MiniAppUpdate,
    RetryPolicy,
    VersionCreate,
)

TOKEN = "retry-test-token-51ab"
BASE = "https://mac.example.test/api"
ROOT = BASE + "/v1"
APP = "com.example.shop"
LOC = LocationBody(name="a", geo_point="POINT(1 2)")


class FakeTime:
    """A monotonic clock that only moves when someone sleeps; sleeps return at once.

    Concurrent sleeps overlap like real ones: each ends at its own start + delay.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.gate: asyncio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        target = self.now + delay
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        self.now = max(self.now, target)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=ROOT, assert_all_called=False) as router:
        yield router


def _client(fake_time: FakeTime, **policy: Any) -> MiniAppCenterClient:
    retry = RetryPolicy(
        jitter=policy.pop("jitter", False), sleep=fake_time.sleep, clock=fake_time.clock, **policy
    )
    return MiniAppCenterClient(Endpoint(BASE), TOKEN, retry=retry)


@pytest.fixture
async def client(fake_time: FakeTime) -> AsyncIterator[MiniAppCenterClient]:
    async with _client(fake_time) as c:
        yield c


Call = Callable[[MiniAppCenterClient], Awaitable[Any]]

# (name, call, method, route path under ROOT, success response)
IDEMPOTENT: list[tuple[str, Call, str, str, httpx.Response]] = [
    ("get_miniapp", lambda c: c.get_miniapp(APP), "GET", f"/miniapps/{APP}",
     httpx.Response(200, json={"data": {"id": APP}})),
    ("list_locations", lambda c: c.list_locations(APP), "GET", f"/miniapps/{APP}/locations",
     httpx.Response(200, json={"data": []})),
    ("get_version", lambda c: c.get_version(APP, 4), "GET", f"/miniapps/{APP}/versions/4",
     httpx.Response(200, json={"data": {"id": 4, "code": "1"}})),
    ("update_miniapp", lambda c: c.update_miniapp(APP, MiniAppUpdate(name="n")), "PUT",
     f"/miniapps/{APP}", httpx.Response(204)),
    ("delete_miniapp", lambda c: c.delete_miniapp(APP), "DELETE", f"/miniapps/{APP}",
     httpx.Response(204)),
    ("set_attribute", lambda c: c.set_attribute(APP, "COUNTRY", "UY"), "POST",
     f"/miniapps/{APP}/attributes", httpx.Response(201)),
    ("delete_attribute", lambda c: c.delete_attribute(APP, "COUNTRY"), "DELETE",
     f"/miniapps/{APP}/attributes/COUNTRY", httpx.Response(204)),
    ("update_location", lambda c: c.update_location(APP, 3, LOC),
     "PUT", f"/miniapps/{APP}/locations/3", httpx.Response(204)),
    ("delete_location", lambda c: c.delete_location(APP, 3), "DELETE",
     f"/miniapps/{APP}/locations/3", httpx.Response(204)),
    ("add_compatibility", lambda c: c.add_compatibility(APP, 4, 2), "POST",
     f"/miniapps/{APP}/versions/4/compatibility", httpx.Response(204)),
    ("delete_compatibility", lambda c: c.delete_compatibility(APP, 4, 2), "POST",
     f"/miniapps/{APP}/versions/4/compatibility/delete", httpx.Response(204)),
]  # fmt: skip

NON_IDEMPOTENT: list[tuple[str, Call, str, str, httpx.Response]] = [
    ("create_miniapp", lambda c: c.create_miniapp(MiniAppCreate(id=APP, name="n")), "POST",
     "/miniapps", httpx.Response(201)),
    ("upload_miniapp", lambda c: c.upload_miniapp("a.mac", b"zip"), "POST",
     "/miniapps/upload", httpx.Response(201)),
    ("create_location", lambda c: c.create_location(APP, LOC),
     "POST", f"/miniapps/{APP}/locations", httpx.Response(201, json={"data": {"id": 9}})),
    ("create_version", lambda c: c.create_version(APP, VersionCreate(code="1.0")), "POST",
     f"/miniapps/{APP}/versions", httpx.Response(201, json={"data": {"id": 9, "code": "1.0"}})),
    ("upload_version", lambda c: c.upload_version(APP, "v.mac", b"zip"), "POST",
     f"/miniapps/{APP}/versions/upload", httpx.Response(201)),
    ("upload_object", lambda c: c.upload_object("i.png", b"png"), "POST", "/gxobject",
     httpx.Response(201, json={"object_id": "gxupload:" + "a" * 32})),
    *[
        (step, (lambda s: lambda c: getattr(c, s)(APP, 4))(step), "POST",
         f"/miniapps/{APP}/versions/4/{step}", httpx.Response(204))
        for step in ("send_to_review", "in_review", "rejected", "ready")
    ],
]  # fmt: skip

RETRY_STATUSES = [429, 502, 503, 504]
SENT_THEN_LOST: list[type[Exception]] = [
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
]
NOT_SENT: list[type[Exception]] = [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout]


def _ids(cases: list[tuple[str, Call, str, str, httpx.Response]]) -> list[str]:
    return [case[0] for case in cases]


def _fresh(response: httpx.Response) -> httpx.Response:
    # A Response is consumed once; give every route its own copy.
    return httpx.Response(response.status_code, content=response.content,
                          headers=response.headers)  # fmt: skip


# --- idempotent calls --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "call", "method", "path", "ok"), IDEMPOTENT, ids=_ids(IDEMPOTENT))
@pytest.mark.parametrize("status", RETRY_STATUSES)
async def test_idempotent_call_retries_status(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime,
    name: str, call: Call, method: str, path: str, ok: httpx.Response, status: int,
) -> None:  # fmt: skip
    route = mock.route(method=method, path=path).mock(
        side_effect=[httpx.Response(status), _fresh(ok)]
    )
    await call(client)
    assert route.call_count == 2
    assert fake_time.sleeps == [0.2]
    assert client.stats.retries == 1
    assert client.stats.by_method[method] == 2


@pytest.mark.parametrize(("name", "call", "method", "path", "ok"), IDEMPOTENT, ids=_ids(IDEMPOTENT))
@pytest.mark.parametrize("error", SENT_THEN_LOST + NOT_SENT, ids=lambda e: e.__name__)
async def test_idempotent_call_retries_network_failures(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime,
    name: str, call: Call, method: str, path: str, ok: httpx.Response, error: type[Exception],
) -> None:  # fmt: skip
    route = mock.route(method=method, path=path).mock(side_effect=[error("boom"), _fresh(ok)])
    await call(client)
    assert route.call_count == 2
    assert fake_time.sleeps == [0.2]


async def test_backoff_is_exponential_and_capped(
    mock: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = mock.get(f"/miniapps/{APP}").mock(
        side_effect=[httpx.Response(503)] * 4 + [httpx.Response(200, json={"data": {}})]
    )
    async with _client(fake_time, base_delay=1.0, max_delay=3.0, deadline=1000) as c:
        assert await c.get_miniapp(APP) is not None
    assert fake_time.sleeps == [1.0, 2.0, 3.0, 3.0]
    assert route.call_count == 5


async def test_jitter_stays_within_half_to_full_delay(
    mock: respx.MockRouter, fake_time: FakeTime
) -> None:
    mock.get(f"/miniapps/{APP}").mock(
        side_effect=[httpx.Response(502)] * 4 + [httpx.Response(200, json={"data": {}})]
    )
    async with _client(fake_time, jitter=True, base_delay=1.0, max_delay=100.0) as c:
        await c.get_miniapp(APP)
    assert len(fake_time.sleeps) == 4
    for delay, nominal in zip(fake_time.sleeps, [1.0, 2.0, 4.0, 8.0], strict=True):
        assert nominal / 2 <= delay <= nominal


async def test_status_retries_exhausted_raise_api_error(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime
) -> None:
    route = mock.put(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(503, json={"errors": [{"code": 1, "message": "busy"}]})
    )
    with pytest.raises(ApiError) as info:
        await client.update_miniapp(APP, MiniAppUpdate(name="x"))
    assert info.value.status == 503
    assert info.value.errors[0].message == "busy"
    assert route.call_count == 5
    assert len(fake_time.sleeps) == 4
    assert client.stats.retries == 4


async def test_network_retries_exhausted_raise_transport_error(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    route = mock.get(f"/miniapps/{APP}").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as info:
        await client.get_miniapp(APP)
    assert route.call_count == 5
    assert info.value.path == f"/api/v1/miniapps/{APP}"
    assert "refused" in str(info.value)
    assert "5 attempts" in str(info.value)


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("3600", 60.0), ("not-a-date", 0.2), ("-5", 0.2)],
)
async def test_retry_after_seconds_honoured_and_capped(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime,
    header: str, expected: float,
) -> None:  # fmt: skip
    mock.get(f"/miniapps/{APP}").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": header}),
            httpx.Response(200, json={"data": {}}),
        ]
    )
    await client.get_miniapp(APP)
    assert fake_time.sleeps == ([expected] if expected else [])


async def test_retry_after_http_date(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime
) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mock.get(f"/miniapps/{APP}").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": when}),
            httpx.Response(200, json={"data": {}}),
        ]
    )
    await client.get_miniapp(APP)
    assert len(fake_time.sleeps) == 1
    assert 28.0 <= fake_time.sleeps[0] <= 30.0


async def test_retry_after_http_date_far_away_is_capped(
    mock: respx.MockRouter, fake_time: FakeTime
) -> None:
    when = email.utils.formatdate(time.time() + 86400, usegmt=True)
    mock.get(f"/miniapps/{APP}").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": when}),
            httpx.Response(200, json={"data": {}}),
        ]
    )
    async with _client(fake_time, retry_after_cap=5.0) as c:
        await c.get_miniapp(APP)
    assert fake_time.sleeps == [5.0]


# --- deadline ----------------------------------------------------------------------------


async def test_deadline_stops_status_retries(mock: respx.MockRouter, fake_time: FakeTime) -> None:
    route = mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(503, headers={"Retry-After": "6"})
    )
    async with _client(fake_time, deadline=10.0) as c:
        with pytest.raises(ApiError) as info:
            await c.get_miniapp(APP)
    assert info.value.status == 503
    # 6s fits in 10s; a second 6s wait would end at 12s, so it gives up instead.
    assert fake_time.sleeps == [6.0]
    assert route.call_count == 2


async def test_deadline_stops_network_retries(mock: respx.MockRouter, fake_time: FakeTime) -> None:
    route = mock.get(f"/miniapps/{APP}").mock(side_effect=httpx.ConnectTimeout("slow"))
    async with _client(fake_time, base_delay=4.0, max_delay=100.0, deadline=10.0) as c:
        with pytest.raises(TransportError, match="deadline of 10s"):
            await c.get_miniapp(APP)
    assert fake_time.sleeps == [4.0]  # then 4 + 8 > 10
    assert route.call_count == 2


async def test_deadline_counts_time_slept_even_with_a_real_clock(mock: respx.MockRouter) -> None:
    slept: list[float] = []

    async def instant_sleep(delay: float) -> None:
        slept.append(delay)

    route = mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "40"})
    )
    policy = RetryPolicy(sleep=instant_sleep, deadline=100.0, max_attempts=50)
    async with MiniAppCenterClient(Endpoint(BASE), TOKEN, retry=policy) as c:
        with pytest.raises(ApiError):
            await c.get_miniapp(APP)
    assert sum(slept) <= 100.0
    assert route.call_count == 3  # waits of 40 + 40; a third would pass 100s
    assert len(slept) == 2
    assert all(39.0 < d <= 40.0 for d in slept)


# --- non-idempotent calls ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "call", "method", "path", "ok"), NON_IDEMPOTENT, ids=_ids(NON_IDEMPOTENT)
)
@pytest.mark.parametrize(
    "failure",
    [*SENT_THEN_LOST, 502, 503, 504],
    ids=lambda f: str(f) if isinstance(f, int) else f.__name__,
)
async def test_write_is_never_retried_blindly(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime,
    name: str, call: Call, method: str, path: str, ok: httpx.Response, failure: Any,
) -> None:  # fmt: skip
    outcome = httpx.Response(failure) if isinstance(failure, int) else failure("lost")
    route = mock.route(method=method, path=path).mock(side_effect=[outcome, _fresh(ok)])
    with pytest.raises(AmbiguousWriteError) as info:
        await call(client)
    assert route.call_count == 1
    assert fake_time.sleeps == []
    assert info.value.method == method
    assert info.value.path == "/api/v1" + path
    assert "may or may not have happened" in str(info.value)


@pytest.mark.parametrize(
    ("name", "call", "method", "path", "ok"), NON_IDEMPOTENT, ids=_ids(NON_IDEMPOTENT)
)
async def test_write_refused_with_429_is_retried(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime,
    name: str, call: Call, method: str, path: str, ok: httpx.Response,
) -> None:  # fmt: skip
    route = mock.route(method=method, path=path).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), _fresh(ok)]
    )
    await call(client)
    assert route.call_count == 2
    assert fake_time.sleeps == [2.0]


@pytest.mark.parametrize(
    ("name", "call", "method", "path", "ok"), NON_IDEMPOTENT, ids=_ids(NON_IDEMPOTENT)
)
@pytest.mark.parametrize("error", NOT_SENT, ids=lambda e: e.__name__)
async def test_write_that_never_left_is_retried(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime,
    name: str, call: Call, method: str, path: str, ok: httpx.Response, error: type[Exception],
) -> None:  # fmt: skip
    route = mock.route(method=method, path=path).mock(side_effect=[error("no route"), _fresh(ok)])
    await call(client)
    assert route.call_count == 2
    assert fake_time.sleeps == [0.2]


async def test_write_that_never_connects_ends_in_transport_error_not_ambiguous(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    route = mock.post("/miniapps").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as info:
        await client.create_miniapp(MiniAppCreate(id=APP))
    assert not isinstance(info.value, AmbiguousWriteError)
    assert route.call_count == 5


async def test_create_answered_500_is_ambiguous_and_not_retried(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime
) -> None:
    # A server fault may come after the commit: the caller must re-read, not assume failure.
    route = mock.post("/miniapps").mock(return_value=httpx.Response(500, text="oops"))
    with pytest.raises(AmbiguousWriteError, match="HTTP 500"):
        await client.create_miniapp(MiniAppCreate(id=APP))
    assert route.call_count == 1
    assert fake_time.sleeps == []


async def test_update_answered_500_is_an_api_error_not_retried(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime
) -> None:
    route = mock.put(f"/miniapps/{APP}").mock(return_value=httpx.Response(500, text="oops"))
    with pytest.raises(ApiError) as info:
        await client.update_miniapp(APP, MiniAppUpdate(name="x"))
    assert info.value.status == 500
    assert route.call_count == 1
    assert fake_time.sleeps == []


async def test_create_answered_201_with_garbage_is_ambiguous(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    # The version exists now, but its id is unknown: the caller must not assume "not created".
    mock.post(f"/miniapps/{APP}/versions").mock(return_value=httpx.Response(201, text="<html>"))
    with pytest.raises(AmbiguousWriteError, match="HTTP 201"):
        await client.create_version(APP, VersionCreate(code="1"))


# --- what is never retried ---------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422, 500, 501])
async def test_client_errors_are_not_retried(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime, status: int
) -> None:
    route = mock.put(f"/miniapps/{APP}").mock(return_value=httpx.Response(status))
    with pytest.raises(ApiError) as info:
        await client.update_miniapp(APP, MiniAppUpdate(name="x"))
    assert info.value.status == status
    assert route.call_count == 1
    assert fake_time.sleeps == []
    assert client.stats.retries == 0


async def test_tls_verification_failure_is_not_retried(fake_time: FakeTime) -> None:
    # The exception chain httpx really raises (see test_client_errors for a real TLS server);
    # respx would replace __cause__, so a MockTransport raises it here.
    attempts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        try:
            try:
                raise ssl.SSLCertVerificationError(1, "certificate verify failed")
            except ssl.SSLError as e:
                raise httpcore.ConnectError(str(e)) from e
        except httpcore.ConnectError as e:
            raise httpx.ConnectError(str(e), request=request) from e

    retry = RetryPolicy(jitter=False, sleep=fake_time.sleep, clock=fake_time.clock)
    async with MiniAppCenterClient(
        Endpoint(BASE), TOKEN, retry=retry, transport=httpx.MockTransport(handler)
    ) as c:
        with pytest.raises(TransportError, match="TLS failure"):
            await c.get_miniapp(APP)
    assert len(attempts) == 1
    assert fake_time.sleeps == []


async def test_delete_404_after_an_unanswered_attempt_counts_as_done(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    absent = {"errors": [{"code": 3001, "message": "mini app not found"}]}
    route = mock.delete(f"/miniapps/{APP}").mock(
        side_effect=[httpx.ReadTimeout("lost"), httpx.Response(404, json=absent)]
    )
    await client.delete_miniapp(APP)
    assert route.call_count == 2


async def test_delete_plain_404_after_an_unanswered_attempt_is_a_wrong_endpoint(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    # Only the API's own "not found" says the first attempt deleted it; a plain 404 is not
    # the API talking.
    mock.delete(f"/miniapps/{APP}").mock(
        side_effect=[httpx.ReadTimeout("lost"), httpx.Response(404, text="Not Found")]
    )
    with pytest.raises(ApiError, match="check MAC_BASE_URL"):
        await client.delete_miniapp(APP)


@pytest.mark.parametrize("status", [404, 405])
@pytest.mark.parametrize(
    ("name", "call", "method", "path", "_ok"),
    IDEMPOTENT + NON_IDEMPOTENT,
    ids=[c[0] for c in IDEMPOTENT + NON_IDEMPOTENT],
)
async def test_plain_404_or_405_on_any_call_names_mac_base_url(
    mock: respx.MockRouter,
    client: MiniAppCenterClient,
    name: str,
    call: Call,
    method: str,
    path: str,
    _ok: httpx.Response,
    status: int,
) -> None:
    # What a web server answers for a path that is not the API's: a wrong MAC_BASE_URL.
    route = mock.request(method, path).mock(
        return_value=httpx.Response(status, text="Not Found")
    )
    with pytest.raises(ApiError) as info:
        await call(client)
    assert info.value.status == status
    assert "check MAC_BASE_URL" in str(info.value)
    assert route.call_count == 1  # never retried


async def test_delete_404_on_first_attempt_is_an_error(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.delete(f"/miniapps/{APP}").mock(return_value=httpx.Response(404))
    with pytest.raises(ApiError) as info:
        await client.delete_miniapp(APP)
    assert info.value.status == 404


async def test_delete_404_after_a_refused_attempt_is_an_error(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    # A 429 means the server did nothing, so a following 404 is a real "absent".
    mock.delete(f"/miniapps/{APP}").mock(side_effect=[httpx.Response(429), httpx.Response(404)])
    with pytest.raises(ApiError) as info:
        await client.delete_miniapp(APP)
    assert info.value.status == 404


# --- the client-wide pause ---------------------------------------------------------------


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def test_a_429_pauses_every_request_of_the_client(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime
) -> None:
    route_a = mock.get("/miniapps/com.example.a").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"data": {"id": "com.example.a"}}),
        ]
    )
    route_b = mock.get("/miniapps/com.example.b").mock(
        return_value=httpx.Response(200, json={"data": {"id": "com.example.b"}})
    )
    route_c = mock.put("/miniapps/com.example.c").mock(return_value=httpx.Response(204))
    fake_time.gate = asyncio.Event()  # hold every sleeper until all are asleep

    task_a = asyncio.create_task(client.get_miniapp("com.example.a"))
    await _until(lambda: len(fake_time.sleeps) == 1)  # A got its 429 and waits
    assert route_a.call_count == 1
    task_b = asyncio.create_task(client.get_miniapp("com.example.b"))
    task_c = asyncio.create_task(client.update_miniapp("com.example.c", MiniAppUpdate(name="c")))
    await _until(lambda: len(fake_time.sleeps) == 3)
    # B and C never got a 429 themselves, yet both wait for A's pause before sending.
    assert route_b.call_count == 0
    assert route_c.call_count == 0
    assert fake_time.sleeps == [3.0, 3.0, 3.0]

    fake_time.gate.set()
    a, b, _ = await asyncio.gather(task_a, task_b, task_c)
    assert a is not None and b is not None
    assert (route_a.call_count, route_b.call_count, route_c.call_count) == (2, 1, 1)
    assert fake_time.now == 1003.0  # they waited together, not one after the other


async def test_pause_only_waits_for_what_is_left(
    mock: respx.MockRouter, client: MiniAppCenterClient, fake_time: FakeTime
) -> None:
    mock.get("/miniapps/com.example.a").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "10"}),
            httpx.Response(200, json={"data": {}}),
        ]
    )
    mock.get("/miniapps/com.example.b").mock(return_value=httpx.Response(200, json={"data": {}}))
    fake_time.gate = asyncio.Event()
    task_a = asyncio.create_task(client.get_miniapp("com.example.a"))
    await _until(lambda: len(fake_time.sleeps) == 1)
    fake_time.now += 4.0  # time passes while A waits
    task_b = asyncio.create_task(client.get_miniapp("com.example.b"))
    await _until(lambda: len(fake_time.sleeps) == 2)
    assert fake_time.sleeps == [10.0, 6.0]
    fake_time.gate.set()
    await asyncio.gather(task_a, task_b)


async def test_pause_does_not_spin_with_an_instant_sleep_and_real_clock(
    mock: respx.MockRouter,
) -> None:
    slept: list[float] = []

    async def instant_sleep(delay: float) -> None:
        slept.append(delay)

    mock.get(f"/miniapps/{APP}").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "30"}),
            httpx.Response(200, json={"data": {}}),
        ]
    )
    async with MiniAppCenterClient(
        Endpoint(BASE), TOKEN, retry=RetryPolicy(sleep=instant_sleep)
    ) as c:
        await asyncio.wait_for(c.get_miniapp(APP), timeout=5)
    assert len(slept) == 1
    assert 29.0 < slept[0] <= 30.0


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(deadline=-1)
