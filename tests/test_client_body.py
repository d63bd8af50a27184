"""The bounded body reader: codings, caps counted after decompression, corrupt streams."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import ApiError
from reconciler.providers.miniappcenter.client import Endpoint, MiniAppCenterClient, RetryPolicy
from reconciler.transport.body import BodyError, read_body
from reconciler.transport.config import ClientLimits

BASE = "https://mac.example.test/api"
APP = "com.example.shop"


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.served = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.served += 1
            yield chunk


def streamed(data: bytes, coding: str | None = None, size: int = 1000) -> httpx.Response:
    headers = {"content-encoding": coding} if coding else {}
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return httpx.Response(200, headers=headers, stream=Chunks(chunks))


def deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


ENCODERS = {
    None: lambda d: d,
    "identity": lambda d: d,
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # the RFC's zlib-wrapped deflate
}


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=5000) | st.integers(0, 200_000).map(bytes),
    coding=st.sampled_from(sorted(ENCODERS, key=str)),
    limit=st.integers(1, 100_000),
    size=st.integers(1, 4096),
)
async def test_any_body_is_read_exactly_up_to_the_limit(
    data: bytes, coding: str | None, limit: int, size: int
) -> None:
    body = await read_body(streamed(ENCODERS[coding](data), coding, size), limit)
    assert body.content == data[:limit]
    assert body.truncated == (len(data) > limit)


async def test_raw_deflate_is_accepted_too() -> None:
    body = await read_body(streamed(deflate_raw(b"x" * 5000), "deflate"), 10_000)
    assert body.content == b"x" * 5000 and not body.truncated


async def test_a_bomb_stops_reading_at_the_cap() -> None:
    bomb = gzip.compress(bytes(50 * 1024 * 1024))  # ~50 KB that inflate to 50 MiB
    response = streamed(bomb, "gzip", size=1024)
    body = await read_body(response, 1024 * 1024)
    assert body.truncated and len(body.content) == 1024 * 1024
    stream = response.stream
    assert isinstance(stream, Chunks) and stream.served < len(bomb) // 1024  # stopped early


@pytest.mark.parametrize(
    ("data", "coding", "words"),
    [
        (b"not gzip at all", "gzip", "corrupt"),
        (gzip.compress(b"abc")[:-12] + b"\x00" * 12, "gzip", "corrupt"),
        (b"xyz", "br", "unsupported Content-Encoding 'br'"),
        (b"xyz", "gzip, gzip", "more than one coding"),
        (b"xyz", "compress", "unsupported"),
    ],
)
async def test_undecodable_bodies_are_body_errors(data: bytes, coding: str, words: str) -> None:
    with pytest.raises(BodyError, match=words):
        await read_body(streamed(data, coding), 1000)


# --- through the client ------------------------------------------------------------------


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE + "/v1", assert_all_called=False) as router:
        yield router


async def _no_sleep(_delay: float) -> None:
    return None


def client(**limits: float) -> MiniAppCenterClient:
    return MiniAppCenterClient(
        Endpoint(BASE),
        "body-test-token-3c1d",
        retry=RetryPolicy(sleep=_no_sleep),
        limits=ClientLimits(**limits),  # type: ignore[arg-type]
    )


async def test_the_client_asks_only_for_codings_it_can_bound(mock: respx.MockRouter) -> None:
    route = mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(200, json={"data": {"id": APP, "name": "Shop"}})
    )
    async with client() as c:
        await c.get_miniapp(APP)
    assert route.calls.last.request.headers["accept-encoding"] == "gzip, deflate"


async def test_a_gzip_answer_is_decoded_once(mock: respx.MockRouter) -> None:
    packed = gzip.compress(b'{"data": {"id": "com.example.shop", "name": "Zip"}}')
    mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(200, headers={"content-encoding": "gzip"},
                                    stream=Chunks([packed]))
    )  # fmt: skip
    async with client() as c:
        app = await c.get_miniapp(APP)
    assert app is not None and app.name == "Zip"


async def test_error_text_loses_terminal_control_characters(mock: respx.MockRouter) -> None:
    mock.get(f"/miniapps/{APP}").mock(
        return_value=httpx.Response(418, text="\x1b]0;pwned\x07\x1b[2Jgone\x00 \x9b31m")
    )
    async with client() as c:
        with pytest.raises(ApiError) as caught:
            await c.get_miniapp(APP)
    message = str(caught.value)
    assert "gone" in message
    assert not any(ch in message for ch in "\x1b\x07\x00\x9b")


async def test_error_items_lose_control_characters_too(mock: respx.MockRouter) -> None:
    body = {"errors": [{"code": 1, "message": "bad\x1b[31m red\r"}]}
    mock.get(f"/miniapps/{APP}").mock(return_value=httpx.Response(400, json=body))
    async with client() as c:
        with pytest.raises(ApiError) as caught:
            await c.get_miniapp(APP)
    assert caught.value.errors[0].message == "bad?[31m red?"
