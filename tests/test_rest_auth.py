"""The JWT + Api-Key auth flow against the tenant sandbox over real HTTP: proactive refresh,
single flight under concurrency, 401 replay, re-login after a refused refresh, no storm
during a long run, and no secret in a DEBUG log."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable

import pytest

from reconciler.errors import ConfigError
from reconciler.providers.rest.auth import JwtApiKeyScheme, token_claims
from reconciler.providers.rest.client import ReadOnlyError, RestClient, RestValidationError
from reconciler.providers.rest.config import JwtAuth
from reconciler.providers.rest.sandbox.jwt import encode_hs256
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, RunningTenant, credentials


class FakeClock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_first_request_logs_in_once_and_sends_both_headers(tenant: RunningTenant) -> None:
    async with RestClient(tenant.endpoint(), credentials()) as client:
        await asyncio.gather(*(client.list_objects("/api/categories/") for _ in range(8)))
        assert (client.auth.logins, client.auth.renewals) == (1, 0)
    assert tenant.api.logins == 1


async def test_sixteen_parallel_requests_on_a_due_token_cause_one_refresh(
    tenant: RunningTenant,
) -> None:
    clock = FakeClock()
    async with RestClient(tenant.endpoint(), credentials(), clock=clock) as client:
        await client.list_objects("/api/categories/")
        clock.offset = 10.0  # every request now finds the access token expired
        await asyncio.gather(*(client.list_objects("/api/categories/") for _ in range(16)))
        assert client.auth.renewals == 1
        assert client.auth.logins == 1
    assert tenant.api.refreshes == 1


async def test_sixteen_parallel_401s_cause_one_refresh_and_are_replayed(
    tenant: RunningTenant,
) -> None:
    # The client's clock runs behind: it believes the token valid, the server refuses it.
    clock = FakeClock()
    clock.offset = -1000.0
    async with RestClient(tenant.endpoint(), credentials(), clock=clock) as client:
        await client.list_objects("/api/categories/")
        await asyncio.sleep(2.1)  # the sandbox's access tokens live 2 s
        results = await asyncio.gather(
            *(client.list_objects("/api/categories/") for _ in range(16))
        )
        assert all(len(r) == 1 for r in results)
        assert client.auth.renewals == 1
    assert tenant.api.refreshes == 1
    assert tenant.api.logins == 1


async def test_a_refused_refresh_token_means_logging_in_again(tenant: RunningTenant) -> None:
    clock = FakeClock()
    async with RestClient(tenant.endpoint(), credentials(), clock=clock) as client:
        await client.list_objects("/api/categories/")
        # Blacklist the client's refresh token server-side (as a rotation elsewhere would).
        credential = client.auth.credential
        assert credential is not None and credential.refresh is not None
        refresh = credential.refresh
        tenant.api.store.blacklist(str(token_claims(refresh.reveal())["jti"]))
        clock.offset = 10.0
        assert len(await client.list_objects("/api/categories/")) == 1
        assert client.auth.logins == 2
        assert client.auth.renewals == 0
    assert tenant.api.logins == 2


async def test_an_expired_refresh_token_means_logging_in_again(
    tenant_factory: Callable[..., RunningTenant],
) -> None:
    # Whole-second times: a 3-second refresh token lives 2 to 3 s.
    tenant = tenant_factory(access_seconds=2.0, refresh_seconds=3.0)
    async with RestClient(tenant.endpoint(), credentials()) as client:
        await client.list_objects("/api/categories/")
        await asyncio.sleep(3.1)  # both tokens are now expired
        await client.list_objects("/api/categories/")
        assert client.auth.logins == 2
    assert tenant.api.logins == 2 and tenant.api.refreshes == 0


async def test_a_wrong_password_is_a_clear_configuration_error(tenant: RunningTenant) -> None:
    async with RestClient(tenant.endpoint(), credentials(password="wrong-password-1")) as client:
        with pytest.raises(
            ConfigError, match=r"login was refused; check \$T_USER and \$T_PASSWORD"
        ):
            await client.list_objects("/api/categories/")


async def test_no_refresh_storm_during_a_100_object_run_with_2_second_tokens(
    tenant_factory: Callable[..., RunningTenant],
) -> None:
    tenant = tenant_factory(latency_ms=40)  # ~100 x 40 ms: the run spans several lifetimes
    started = time.monotonic()
    async with RestClient(tenant.endpoint(), credentials()) as client:
        for n in range(100):
            body = {"sku": f"SKU-{n:03}", "name": f"Item {n}", "price": n}
            await client.create("/api/products/", "sku", body)
        listed = await client.list_objects("/api/products/")
        duration = time.monotonic() - started
        refreshes, logins = client.auth.renewals, client.auth.logins
    assert len(listed) == 100
    assert logins == 1
    # A "2-second" token has 1 to 2 s left when issued (whole-second exp, as simplejwt's); it
    # is renewed in the last quarter of that, less the skew margin: never more than about one
    # refresh per 0.6 s, and never a storm.
    assert 1 <= refreshes <= math.ceil(duration / 0.6) + 1, (refreshes, duration)
    assert tenant.api.refreshes == refreshes


async def test_no_secret_reaches_a_debug_log_or_an_error(
    tenant: RunningTenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    messages: list[str] = []
    async with RestClient(tenant.endpoint(), credentials(), clock=clock) as client:
        await client.create("/api/products/", "sku", {"sku": "A", "name": "a", "price": 1})
        clock.offset = 10.0  # force a refresh during the session
        await client.list_objects("/api/products/")
        with pytest.raises(RestValidationError) as invalid:
            await client.create("/api/products/", "sku", {"sku": "B", "price": "x"})
        messages.append(str(invalid.value))
    async with RestClient(tenant.endpoint(api_key=False), credentials(None)) as public:
        with pytest.raises(ReadOnlyError) as refused:
            await public.create("/api/products/", "sku", {"sku": "C", "name": "c", "price": 1})
        messages.append(str(refused.value))
    async with RestClient(tenant.endpoint(), credentials(password="wrong-password-2")) as bad:
        with pytest.raises(ConfigError) as login:
            await bad.list_objects("/api/products/")
        messages.append(str(login.value))
    assert tenant.api.refreshes >= 1
    secrets = [TENANT_PASSWORD, "wrong-password-2", TENANT_KEY, *tenant.api.issued]
    assert len(secrets) >= 6
    text = caplog.text + "\n".join(messages)
    assert "POST /api/token/refresh/" in caplog.text or "token/refresh" in caplog.text
    for secret in secrets:
        assert secret not in text
        assert secret[-16:] not in text


async def test_a_token_answer_that_is_not_json_says_so(tenant: RunningTenant) -> None:
    """A web server that is not the API (a wrong base_url) answers the token POST with a 200
    HTML page: the error says what was wrong with the answer and where to look, not the
    status twice ("HTTP 200: HTTP 200")."""
    import httpx

    from reconciler.errors import TransportError

    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<html><body>Welcome to nginx!</body></html>")

    async with RestClient(
        tenant.endpoint(), credentials(), transport=httpx.MockTransport(page)
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.list_objects("/api/categories/")
    message = str(caught.value)
    assert "HTTP 200: HTTP 200" not in message
    assert "not a JSON object" in message and "base_url" in message


async def test_a_dripping_token_endpoint_is_cut_by_the_request_deadline(
    tenant: RunningTenant,
) -> None:
    # A token answer dripped a byte at a time never trips httpx's per-read timeouts; the
    # per-request deadline applies to token calls as to every other request.
    from reconciler.errors import TransportError
    from reconciler.transport.config import ClientLimits
    from tests.hostile_server import hostile_server

    async with hostile_server("slow_body", max_seconds=8) as server:
        endpoint = tenant.endpoint()
        endpoint = dataclasses.replace(endpoint, base_url=server.base_url[:-4])
        async with RestClient(
            endpoint, credentials(), limits=ClientLimits(request_deadline=0.5)
        ) as client:
            with pytest.raises(TransportError) as caught:
                await client.list_objects("/api/categories/")
    assert "deadline" in str(caught.value)
    assert server.requests == 3  # each token attempt cut, none left to the server's limit


def test_the_sandbox_issues_whole_second_times_as_simplejwt_does(tenant: RunningTenant) -> None:
    with tenant.http() as http:
        pair = http.post("/api/token/", json={"username": "alice", "password": TENANT_PASSWORD})
    assert pair.status_code == 200, pair.text
    for token in pair.json().values():
        claims = token_claims(token)
        assert type(claims["exp"]) is int and type(claims["iat"]) is int, claims


def _scheme(clock: Callable[[], float]) -> JwtApiKeyScheme:
    jwt = JwtAuth("/api/token/", "/api/token/refresh/", "T_USER", "T_PASSWORD")
    return JwtApiKeyScheme(base_url="https://api.example", jwt=jwt,
                           credentials=credentials(), api_key_header="Api-Key",
                           clock=clock)  # fmt: skip


@pytest.mark.parametrize(
    ("now", "most", "least"),
    [
        (1000.9, 1.1, 0.8),  # issued late in its second: 1.1 s left, not 2
        (1000.0, 2.0, 1.5),  # issued at the start of its second: the whole 2 s
        (990.0, 2.0, 1.5),  # this clock 10 s behind the server's: never more than exp - iat
        (1010.0, 2.0, 1.5),  # 10 s ahead: exp already past here, so exp - iat (the 401 is
        # the safety net), not 0: a clock ahead must not make every new token due
    ],
)  # fmt: skip
def test_the_lifetime_ends_at_the_tokens_own_exp_less_a_margin(
    now: float, most: float, least: float
) -> None:
    access = encode_hs256({"exp": 1002, "iat": 1000, "token_type": "access"}, b"k" * 32)
    credential = _scheme(lambda: now)._credential({"access": access, "refresh": "r" * 40},
                                                  previous=None)  # fmt: skip
    assert credential.lifetime is not None
    assert least <= credential.lifetime <= most - 0.1, credential.lifetime


async def test_a_run_on_whole_second_tokens_never_sends_an_expired_one(
    tenant_factory: Callable[..., RunningTenant],
) -> None:
    tenant = tenant_factory(latency_ms=25)  # 80 sequential writes: several 2-second tokens
    async with RestClient(tenant.endpoint(), credentials()) as client:
        for n in range(80):
            await client.create("/api/categories/", "slug",
                                {"slug": f"c-{n:03}", "name": f"Category {n}"})  # fmt: skip
        replays, renewals = client.auth.replays, client.auth.renewals
    assert renewals >= 1
    assert replays == 0  # no request met "token_not_valid": each was renewed before its exp
