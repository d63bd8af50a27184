"""Reading an answer's body without trusting the server about its size.

httpx reads a whole body into memory and inflates ``Content-Encoding: gzip`` in one go per
network chunk (a 64 KiB chunk of a gzip bomb is ~64 MB inflated). Here the raw bytes are
streamed and inflated with ``max_length``, so that at most ``limit + 1`` decoded bytes are
ever kept (the final copy into ``bytes`` doubles that briefly), and reading stops as soon as
the limit is passed: the rest is never read (the connection is closed, not drained).

Only the codings this client asks for (``Accept-Encoding: gzip, deflate``) are accepted, one
at a time; anything else is refused rather than guessed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

import httpx

ACCEPT_ENCODING: Final = "gzip, deflate"
_PASSTHROUGH: Final = frozenset({"", "identity"})
_STEP: Final = 64 * 1024  # decoded bytes produced per inflate call


class BodyError(Exception):
    """The body cannot be decoded, or uses a coding we did not ask for."""


@dataclass
class Body:
    content: bytes
    truncated: bool  # more decoded bytes were on offer than the limit


class _Inflater:
    """One zlib stream, inflated at most ``max_length`` bytes per call."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._started = False
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise BodyError(f"unsupported Content-Encoding {coding[:40]!r}")

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def unconsumed_tail(self) -> bytes:
        return self._zlib.unconsumed_tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            piece = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if self._coding == "deflate" and not self._started:
                # "deflate" is zlib-wrapped by the RFC; some servers send it raw.
                self._started = True
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decompress(data, max_length)
            raise BodyError(f"the {self._coding} body is corrupt ({exc})") from None
        self._started = True
        return piece


async def read_body(response: httpx.Response, limit: int) -> Body:
    """At most ``limit`` decoded bytes of ``response`` (a streamed response)."""
    if response.is_stream_consumed:  # answered already read and decoded (ASGI fakes, mocks)
        content = response.content
        return Body(content[:limit], truncated=len(content) > limit)
    coding = response.headers.get("content-encoding", "").strip().lower()
    codings = [c.strip() for c in coding.split(",") if c.strip() not in _PASSTHROUGH]
    if len(codings) > 1:
        raise BodyError(f"unsupported Content-Encoding {coding[:40]!r} (more than one coding)")
    inflater = _Inflater(codings[0]) if codings else None
    kept = bytearray()
    async for raw in response.aiter_raw():
        if inflater is None:
            kept += raw[: limit + 1 - len(kept)]
        else:
            _inflate_into(inflater, raw, kept, limit)
        if len(kept) > limit:
            del kept[limit:]  # in place: a slice would copy up to the whole cap again
            return Body(bytes(kept), truncated=True)
        if inflater is not None and inflater.eof:
            break  # bytes after the end of the compressed stream are ignored, as httpx does
    return Body(bytes(kept), truncated=False)


def _inflate_into(inflater: _Inflater, raw: bytes, kept: bytearray, limit: int) -> None:
    """Inflate ``raw`` into ``kept``, stopping once it holds more than ``limit`` bytes."""
    data = raw
    while data and not inflater.eof and len(kept) <= limit:
        kept += inflater.decompress(data, min(limit + 1 - len(kept), _STEP))
        data = inflater.unconsumed_tail
