"""The Akana client against the Akana sandbox over real loopback HTTP: every operation, the
version rule, lost answers of creates resolved by listing, errors shown bounded."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.errors import AmbiguousWriteError, InvalidIdError
from reconciler.providers.akana.client import AkanaApiError, AkanaClient, WriteNotDoneError
from reconciler.providers.akana.config import AkanaConfig, akana_endpoint
from reconciler.providers.akana.sandbox import in_process_akana
from reconciler.providers.akana.wire import AppCreate, AppUpdate, VersionCreate, VersionUpdate
from reconciler.transport.redact import Secret
from tests.fixtures_akana import FED, Recorder, RunningAkana, akana_client

BUSINESS = "8c7d0ba1-b73f-41ee-9144-b5a90173382d.acmepaymentscorp"


def new_app(name: str = "Crosfhocal", **fields: Any) -> AppCreate:
    return AppCreate(
        name=name,
        summary="Crossword puzzle app",
        description="Crossword puzzle app for phones",
        version=VersionCreate(name="1.0", tags=["puzzle"], visibility="Public"),
        **fields,
    )


async def test_apps_and_versions_round_trip(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        app_id = await client.create_app(new_app())
        assert app_id.endswith(f".{FED}")
        [listed] = await client.list_apps()
        assert (listed.app_id, listed.name, listed.visibility) == (app_id, "Crosfhocal", "Public")
        detail = await client.get_app(app_id)
        assert detail is not None and detail.summary == "Crossword puzzle app"

        updated = await client.update_app(app_id, AppUpdate(name="Crosfhocal", description="d2"))
        assert updated.description == "d2"

        second = await client.add_version(app_id, VersionCreate(name="2.0", tags=["x"]))
        versions = await client.list_versions(app_id)
        assert [v.name for v in versions] == ["1.0", "2.0"]
        changed = await client.update_version(
            second, VersionUpdate(name="2.0", description="second", visibility="Private")
        )
        assert (changed.description, changed.visibility, changed.tags) == (
            "second", "Private", ["x"]
        )  # fmt: skip
        got = await client.get_version(second)
        assert got is not None and got.app_id == app_id

        # The version rule: add first, then delete the old one; the app stays.
        await client.delete_version(versions[0].version_id)
        assert [v.name for v in await client.list_versions(app_id)] == ["2.0"]
        await client.delete_app(app_id, comment="retired")
        assert await client.get_app(app_id) is None
        assert await client.get_version(second) is None
        assert await client.list_apps() == []


async def test_deleting_the_only_version_deletes_the_app(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        app_id = await client.create_app(new_app())
        [only] = await client.list_versions(app_id)
        await client.delete_version(only.version_id)
        assert await client.get_app(app_id) is None


async def test_business_scope(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        root = await client.create_app(new_app())
        scoped = await client.create_app(new_app(business_id=BUSINESS))
        assert [a.app_id for a in await client.list_apps()] == [root]
        assert [a.app_id for a in await client.list_apps(BUSINESS)] == [scoped]


async def test_every_json_call_sends_the_versioned_accept(akana: RunningAkana) -> None:
    recorder = Recorder()
    async with akana_client(akana, transport=recorder) as client:
        app_id = await client.create_app(new_app())
        await client.list_apps()
        await client.get_app(app_id)
        await client.update_app(app_id, AppUpdate(name="Crosfhocal"))
    api = [r for r in recorder.requests if not r.url.path.startswith("/api/login")]
    accepts = {(r.method, r.headers["accept"]) for r in api}
    assert accepts == {
        ("POST", "text/plain"),
        ("GET", "application/vnd.soa.v83+json"),
        ("PUT", "application/vnd.soa.v83+json"),
    }
    [create] = recorder.sent("POST", "/api/apps")
    assert create.headers["content-type"] == "application/json"


# --- errors ------------------------------------------------------------------------------


async def test_a_duplicate_name_is_a_clear_400(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        await client.create_app(new_app())
        with pytest.raises(AkanaApiError) as caught:
            await client.create_app(new_app())
    error = caught.value
    assert error.status == 400
    assert str(error) == ("POST /api/apps -> HTTP 400: an app named 'Crosfhocal' already exists")


async def test_not_found_names_the_possible_causes(akana: RunningAkana) -> None:
    async with akana_client(akana) as client:
        with pytest.raises(AkanaApiError) as caught:
            await client.delete_app(f"nope.{FED}")
    assert caught.value.status == 404
    assert "wrong Accept" in str(caught.value) and "AKANA_BASE_URL" in str(caught.value)


@pytest.mark.parametrize("bad", ["../apps", "a/b", "", "x" * 300, "a..b", "id?x=1"])
async def test_ids_are_checked_before_any_request(akana: RunningAkana, bad: str) -> None:
    recorder = Recorder()
    async with akana_client(akana, transport=recorder) as client:
        with pytest.raises(InvalidIdError):
            await client.get_app(bad)
        with pytest.raises(InvalidIdError):
            await client.delete_version(bad)
    assert recorder.requests == []  # not even a login


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_an_unknown_error_body_is_shown_bounded(status: int) -> None:
    huge = "E" * 100_000 + "\x1b[2J"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/login":
            return httpx.Response(
                200, headers={"Set-Cookie": f"AtmoAuthToken_{FED}=TokenID%3Dabcdef0123456789"}
            )
        return httpx.Response(status, text=huge)

    config = client_config_for("https://akana.example.com")
    async with AkanaClient(config, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(AkanaApiError) as caught:
            await client.list_apps()
    text = str(caught.value)
    assert f"HTTP {status}" in text
    assert len(text) < 800 and "\x1b" not in text


def client_config_for(base_url: str) -> AkanaConfig:
    return AkanaConfig(akana_endpoint(base_url), "a@b.example", Secret("password-1234"))


# --- lost answers ------------------------------------------------------------------------


async def test_a_lost_create_answer_is_resolved_by_listing(akana_factory: Any) -> None:
    # Every write is done and its answer replaced by a 502 (the sandbox's fault flag); the
    # login is spared so that the session can be opened.
    running = akana_factory(ambiguous_rate=1.0, faults_on_login=False)
    recorder = Recorder()
    async with akana_client(running, transport=recorder) as client:
        app_id = await client.create_app(new_app())
        version_id = await client.add_version(app_id, VersionCreate(name="2.0"))
    assert running.store.app_ids() == [app_id]
    assert len(recorder.sent("POST", "/api/apps")) == 1  # never sent twice
    assert len(recorder.sent("GET", "/api/apps")) == 1  # resolved by listing
    assert [v["id"] for v in running.store.versions(app_id)][1] == version_id


async def test_a_create_that_never_arrived_is_reported_not_done(akana: RunningAkana) -> None:
    def lose_creates(request: httpx.Request) -> Exception | None:
        if request.method == "POST" and request.url.path == "/api/apps":
            return httpx.ReadTimeout("injected: no answer", request=request)
        return None

    async with akana_client(akana, transport=Recorder(fail=lose_creates)) as client:
        with pytest.raises(WriteNotDoneError) as caught:
            await client.create_app(new_app())
    assert "no app named 'Crosfhocal' exists" in str(caught.value)
    assert "running again is safe" in str(caught.value)
    assert akana.store.app_ids() == []


async def test_a_create_whose_check_fails_stays_ambiguous(akana: RunningAkana) -> None:
    def lose_everything_after_login(request: httpx.Request) -> Exception | None:
        if request.url.path.startswith("/api/apps"):
            return httpx.ReadTimeout("injected: no answer", request=request)
        return None

    async with akana_client(akana, transport=Recorder(fail=lose_everything_after_login)) as c:
        with pytest.raises(AmbiguousWriteError) as caught:
            await c.create_app(new_app())
    assert "re-reading to check failed too" in str(caught.value)


async def test_the_in_process_sandbox_serves_the_client(tmp_path: Any) -> None:
    sandbox = in_process_akana(tmp_path / "akana.db")
    config = AkanaConfig(akana_endpoint(sandbox.base_url), sandbox.email, Secret(sandbox.password))
    try:
        async with AkanaClient(config, transport=sandbox.transport) as client:
            app_id = await client.create_app(new_app())
            await client.add_version(app_id, VersionCreate(name="2.0"))
            assert [a.app_id for a in await client.list_apps()] == [app_id]
        assert sandbox.app.state.store.count("logout") == 1
    finally:
        sandbox.close()


async def test_null_members_read_as_their_defaults_and_a_bad_answer_is_clear() -> None:
    answers = iter(
        [
            {"Application": [{"AppID": f"a.{FED}", "Name": "A", "Description": None}]},
            {"Application": [{"AppID": None, "Name": "A"}]},
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/login":
            return httpx.Response(
                200, headers={"Set-Cookie": f"AtmoAuthToken_{FED}=TokenID%3Dabcdef0123456789"}
            )
        if request.url.path == "/api/login/endsession":
            return httpx.Response(200)
        return httpx.Response(200, json=next(answers))

    config = client_config_for("https://akana.example.com")
    async with AkanaClient(config, transport=httpx.MockTransport(handler)) as client:
        [app] = await client.list_apps()
        assert app.description == ""
        with pytest.raises(AkanaApiError) as caught:
            await client.list_apps()
    assert "unexpected answer" in str(caught.value) and "AppList" in str(caught.value)


async def test_reads_ride_out_injected_faults_login_included(akana_factory: Any) -> None:
    # The sandbox's fault flags: 30% of requests (logins too) answered 503 or dropped.
    running = akana_factory(fail_rate=0.3, seed=3)
    async with akana_client(running) as client:
        for _ in range(10):
            assert await client.list_apps() == []
        assert client.stats.retries > 0  # faults were met, and ridden out
    assert running.store.count("login") >= 1
