"""Error mapping, redirects, id validation before any request, endpoint safety and config."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from reconciler.errors import ApiError, ApiErrorItem, ConfigError, InvalidIdError, TransportError
from reconciler.providers.miniappcenter.client import (
    Endpoint,
    LocationBody,
    MiniAppCenterClient,
    MiniAppCreate,
    MiniAppUpdate,
    RetryPolicy,
    VersionUpdate,
    check_endpoint_security,
    endpoint_from_env,
    token_from_env,
)
from reconciler.providers.miniappcenter.client.api import _seg

TOKEN = "errors-test-token-77de"
BASE = "https://mac.example.test/api"
ROOT = BASE + "/v1"
APP = "com.example.shop"


async def _no_sleep(delay: float) -> None:
    raise AssertionError(f"unexpected retry wait of {delay}s")


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=ROOT, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[MiniAppCenterClient]:
    async with MiniAppCenterClient(Endpoint(BASE), TOKEN, retry=RetryPolicy(sleep=_no_sleep)) as c:
        yield c


# --- error bodies ------------------------------------------------------------------------


async def test_documented_error_body_is_parsed(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    body = {
        "errors": [
            {"code": 12, "message": "name is required"},
            {"code": "13", "message": "type must be Native or WEB"},
            {"message": "no code"},
        ]
    }
    mock.post("/miniapps").mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(ApiError) as info:
        await client.create_miniapp(MiniAppCreate(id=APP))
    error = info.value
    assert (error.method, error.path, error.status) == ("POST", "/api/v1/miniapps", 400)
    assert error.errors == [
        ApiErrorItem(12, "name is required"),
        ApiErrorItem(13, "type must be Native or WEB"),
        ApiErrorItem(None, "no code"),
    ]
    assert str(error) == (
        "POST /api/v1/miniapps -> HTTP 400: name is required (code 12);"
        " type must be Native or WEB (code 13); no code"
    )


async def test_non_json_error_body_is_kept_as_text(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.get(f"/miniapps/{APP}/locations").mock(
        return_value=httpx.Response(400, text="<html><body>Bad Request</body></html>")
    )
    with pytest.raises(ApiError) as info:
        await client.list_locations(APP)
    assert info.value.errors == []
    assert info.value.text == "<html><body>Bad Request</body></html>"
    assert "Bad Request" in str(info.value)


@pytest.mark.parametrize(
    "body",
    ['{"message": "quota exceeded"}', '{"errors": "nope"}', '{"errors": []}', "[1, 2]", "null"],
)
async def test_differently_shaped_json_error_is_kept_as_text(
    mock: respx.MockRouter, client: MiniAppCenterClient, body: str
) -> None:
    mock.delete(f"/miniapps/{APP}").mock(return_value=httpx.Response(409, text=body))
    with pytest.raises(ApiError) as info:
        await client.delete_miniapp(APP)
    assert info.value.status == 409
    assert info.value.errors == []
    assert info.value.text == body


async def test_huge_error_body_is_truncated(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.delete(f"/miniapps/{APP}").mock(return_value=httpx.Response(400, text="x" * 100_000))
    with pytest.raises(ApiError) as info:
        await client.delete_miniapp(APP)
    assert 2000 <= len(info.value.text) < 2100
    assert len(str(info.value)) < 700


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_point_at_the_token_scope(
    mock: respx.MockRouter, client: MiniAppCenterClient, status: int
) -> None:
    mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(status, json={"errors": [{"code": 1, "message": "denied"}]})
    )
    with pytest.raises(ApiError) as info:
        await client.get_miniapp(APP)
    message = str(info.value)
    assert "MAC_API_TOKEN" in message
    assert "Member Organization User scope" in message
    assert TOKEN not in message


async def test_malformed_success_body_of_a_read_is_an_api_error(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.get(f"/miniapps/{APP}/versions/2").mock(
        return_value=httpx.Response(200, json={"data": {"code": "1.0"}})  # no id
    )
    with pytest.raises(ApiError, match="unexpected response body") as info:
        await client.get_version(APP, 2)
    assert info.value.status == 200


async def test_redirects_are_not_followed(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(302, headers={"Location": "https://evil.example.net/steal?x=1"})
    )
    elsewhere = mock.route(host="evil.example.net").mock(return_value=httpx.Response(200))
    with pytest.raises(ApiError) as info:
        await client.get_miniapp(APP)
    assert info.value.status == 302
    assert "redirect to https://evil.example.net/steal not followed" in info.value.text
    assert not elsewhere.called
    assert mock.calls.call_count == 1


# --- ids and filenames are checked before any request -------------------------------------

BAD_APP_IDS = [
    *["..", ".", "a/b", "x?y", "#", "", " ", "com.x y", "com.a/../b", "com..x", "%2e%2e"],
    *["com.x%2Fy", "com.x\n", "com.ex#frag", "com.x?q=1", "-x.y", "single"],
]
BAD_FIELDS = ["..", ".", "a/b", "x?y", "#", "", " ", "a b", "1abc", "a%2F"]
BAD_INTS: list[Any] = [0, -1, True, False, "1", 1.5, None]

Call = Callable[[MiniAppCenterClient], Awaitable[Any]]


def _app_id_calls(bad: Any) -> list[Call]:
    loc = LocationBody(name="a", geo_point="POINT(1 2)")
    return [
        lambda c: c.get_miniapp(bad),
        lambda c: c.create_miniapp(MiniAppCreate(id=bad)),
        lambda c: c.update_miniapp(bad, MiniAppUpdate(name="x")),
        lambda c: c.delete_miniapp(bad),
        lambda c: c.set_attribute(bad, "COUNTRY", "UY"),
        lambda c: c.delete_attribute(bad, "COUNTRY"),
        lambda c: c.list_locations(bad),
        lambda c: c.create_location(bad, loc),
        lambda c: c.update_location(bad, 1, loc),
        lambda c: c.delete_location(bad, 1),
        lambda c: c.get_version(bad, 1),
        lambda c: c.upload_version(bad, "v.mac", b"z"),
        lambda c: c.add_compatibility(bad, 1, 1),
        lambda c: c.send_to_review(bad, 1),
    ]


async def _assert_rejected_without_request(
    mock: respx.MockRouter, client: MiniAppCenterClient, call: Call
) -> None:
    mock.route().mock(return_value=httpx.Response(204))  # anything would "succeed"
    with pytest.raises(InvalidIdError):
        await call(client)
    assert mock.calls.call_count == 0
    assert client.stats.reads == client.stats.writes == 0


@pytest.mark.parametrize("bad", BAD_APP_IDS)
@pytest.mark.parametrize("index", range(len(_app_id_calls(""))))
async def test_bad_app_ids_never_reach_the_wire(
    mock: respx.MockRouter, client: MiniAppCenterClient, bad: str, index: int
) -> None:
    await _assert_rejected_without_request(mock, client, _app_id_calls(bad)[index])


@pytest.mark.parametrize("bad", BAD_FIELDS)
async def test_bad_attribute_fields_never_reach_the_wire(
    mock: respx.MockRouter, client: MiniAppCenterClient, bad: str
) -> None:
    await _assert_rejected_without_request(mock, client, lambda c: c.delete_attribute(APP, bad))
    await _assert_rejected_without_request(mock, client, lambda c: c.set_attribute(APP, bad, "v"))


@pytest.mark.parametrize("bad", BAD_INTS, ids=repr)
@pytest.mark.parametrize(
    "make",
    [
        lambda b: lambda c: c.update_location(APP, b, LocationBody(name="a", geo_point="P")),
        lambda b: lambda c: c.delete_location(APP, b),
        lambda b: lambda c: c.get_version(APP, b),
        lambda b: lambda c: c.update_version(APP, b, VersionUpdate()),
        lambda b: lambda c: c.add_compatibility(APP, b, 1),
        lambda b: lambda c: c.add_compatibility(APP, 1, b),
        lambda b: lambda c: c.delete_compatibility(APP, 1, b),
        lambda b: lambda c: c.ready(APP, b),
    ],
)
async def test_bad_integer_ids_never_reach_the_wire(
    mock: respx.MockRouter, client: MiniAppCenterClient, bad: Any, make: Callable[[Any], Call]
) -> None:
    await _assert_rejected_without_request(mock, client, make(bad))


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../x.mac", "a/b.mac", "a\\b.mac", "x\r\nEvil: 1", "é.mac", " a.mac"]
)
async def test_bad_upload_filenames_never_reach_the_wire(
    mock: respx.MockRouter, client: MiniAppCenterClient, bad: str
) -> None:
    await _assert_rejected_without_request(mock, client, lambda c: c.upload_miniapp(bad, b"z"))
    await _assert_rejected_without_request(mock, client, lambda c: c.upload_object(bad, b"z"))


async def test_valid_ids_are_percent_encoded_into_the_path(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    app = "com.A-b_c.d9"
    mock.route().mock(return_value=httpx.Response(204))
    await client.delete_attribute(app, "loyalty-tier_2")
    assert mock.calls.last.request.url.raw_path == (
        b"/api/v1/miniapps/com.A-b_c.d9/attributes/loyalty-tier_2"
    )


def test_segment_encoding_escapes_every_reserved_character() -> None:
    assert _seg("a/b?c#d e%") == "a%2Fb%3Fc%23d%20e%25"
    assert _seg("com.example.shop") == "com.example.shop"


# --- endpoint safety and configuration ----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/api",
        "http://10.0.0.1/api",
        "http://192.168.1.5:8080/api",
        "http://localhost.evil.com/api",
        "http://127.0.0.1.nip.io/api",
        "http://[::2]/api",
        "HTTP://mac.example.test/api",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="clear") as info:
        check_endpoint_security(url)
    assert "https://" in str(info.value)
    with pytest.raises(ConfigError):
        MiniAppCenterClient(Endpoint(url), TOKEN)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api",
        "http://127.5.6.7/api",
        "http://localhost/api",
        "http://LOCALHOST:9000/api",
        "http://[::1]:8000/api",
        "https://mac.example.test/api",
        "https://10.0.0.1:8443/api",
    ],
)
async def test_loopback_http_and_any_https_are_accepted(url: str) -> None:
    check_endpoint_security(url)
    async with MiniAppCenterClient(Endpoint(url), TOKEN) as c:
        assert c.endpoint.base_url == url


@pytest.mark.parametrize(
    "url",
    ["ftp://mac.example.test/api", "mac.example.test/api", "https:///api", "https://h/api?x=1",
     "https://h/api#frag", "https://h:99999/api"],
)  # fmt: skip
def test_malformed_endpoints_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        Endpoint(url)


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError, match="MAC_API_TOKEN") as info:
        Endpoint("https://user:s3cr3t-pw@mac.example.test/api")
    assert "s3cr3t-pw" not in str(info.value)


def test_endpoint_from_env() -> None:
    endpoint = endpoint_from_env({"MAC_BASE_URL": "https://mac.example.test/api/"})
    assert endpoint == Endpoint("https://mac.example.test/api", "v1")
    assert endpoint.root == "https://mac.example.test/api/v1"
    other = endpoint_from_env({"MAC_BASE_URL": "https://h.test/api", "MAC_API_VERSION": "v2"})
    assert other.root == "https://h.test/api/v2"


@pytest.mark.parametrize("env", [{}, {"MAC_BASE_URL": ""}, {"MAC_BASE_URL": "   "}])
def test_endpoint_from_env_missing_names_both_options(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        endpoint_from_env(env)
    assert "MAC_BASE_URL" in str(info.value)
    assert "--sandbox" in str(info.value)


def test_endpoint_from_env_refuses_insecure_and_bad_versions() -> None:
    with pytest.raises(ConfigError, match="clear"):
        endpoint_from_env({"MAC_BASE_URL": "http://mac.example.test/api"})
    with pytest.raises(ConfigError, match="API version"):
        endpoint_from_env({"MAC_BASE_URL": "https://h.test/api", "MAC_API_VERSION": "../v1"})


def test_token_from_env() -> None:
    assert token_from_env({"MAC_API_TOKEN": " abc-123 "}) == "abc-123"
    with pytest.raises(ConfigError, match="MAC_API_TOKEN"):
        token_from_env({})
    with pytest.raises(ConfigError, match="MAC_API_TOKEN") as info:
        token_from_env({"MAC_API_TOKEN": "abc 123"})
    assert "abc 123" not in str(info.value)


@pytest.mark.parametrize("token", ["", "two words", "tab\there", "line\nbreak", "ñandú"])
def test_client_refuses_unusable_tokens_without_echoing_them(token: str) -> None:
    with pytest.raises(ConfigError) as info:
        MiniAppCenterClient(Endpoint(BASE), token)
    if token:
        assert token not in str(info.value)


# --- TLS is verified (real TLS server on loopback, self-signed certificate) ---------------


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    served: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b'{"data":{}}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}/api", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_untrusted_certificate_is_refused_and_not_retried(
    self_signed_server: tuple[str, list[str]],
) -> None:
    url, served = self_signed_server
    async with MiniAppCenterClient(Endpoint(url), TOKEN, retry=RetryPolicy(sleep=_no_sleep)) as c:
        with pytest.raises(TransportError, match="TLS failure") as info:
            await asyncio.wait_for(c.get_miniapp(APP), timeout=10)
        assert c.stats.reads == 1
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert served == []  # no request was ever answered over the untrusted channel


# --- 404: "absent" only when the API itself says so ------------------------------------


async def test_documented_404_means_absent(
    mock: respx.MockRouter, client: MiniAppCenterClient
) -> None:
    body = {"errors": [{"code": 404, "message": "mini app not found"}]}
    mock.get(f"/miniapps/{APP}").mock(return_value=httpx.Response(404, json=body))
    mock.get(f"/miniapps/{APP}/versions/7").mock(return_value=httpx.Response(404, json=body))
    assert await client.get_miniapp(APP) is None
    assert await client.get_version(APP, 7) is None


@pytest.mark.parametrize("body", ["<html>Not Found</html>", "", '{"detail": "Not Found"}'])
async def test_foreign_404_is_a_wrong_endpoint_not_an_absent_app(
    mock: respx.MockRouter, client: MiniAppCenterClient, body: str
) -> None:
    # A mistyped MAC_BASE_URL must not turn a plan into "create the whole fleet".
    mock.get(f"/miniapps/{APP}").mock(return_value=httpx.Response(404, text=body))
    with pytest.raises(ApiError) as info:
        await client.get_miniapp(APP)
    assert info.value.status == 404
    assert "check MAC_BASE_URL" in str(info.value)
