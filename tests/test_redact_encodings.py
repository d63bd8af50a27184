"""The shared redaction: a secret is masked in every encoding it can come back in, before any
cut, and after the client that held it closed."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import httpx
import pytest

from reconciler.secrets import MASK, redact, register_secret, unregister_secret
from reconciler.transport.http import MAX_ERROR_TEXT, api_error

SECRET = 'pa"ss\\w0rd/+&=é-contract-31'


@pytest.fixture
def held() -> object:
    register_secret(SECRET)
    yield SECRET
    unregister_secret(SECRET)


@pytest.mark.parametrize(
    "shown",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(SECRET)[1:-1])[1:-1],
        quote(SECRET, safe=""),
        quote_plus(SECRET),
    ],
    ids=["raw", "json", "json-unicode", "json-twice", "url", "url-plus"],
)
def test_every_encoding_is_masked(held: str, shown: str) -> None:
    text = f"before {shown} after"
    assert redact(text) == f"before {MASK} after"


@pytest.mark.parametrize("user", ["u", "us", "ops"])  # each of the three base64 alignments
def test_a_basic_header_keeps_no_piece_of_the_password(held: str, user: str) -> None:
    header = "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()
    masked = redact(header)
    assert MASK in masked
    # What is left of the base64 run: at most the characters mixed with the neighbours.
    left = masked.removeprefix("Basic ").replace(MASK, "")
    assert len(left) <= len(base64.b64encode(f"{user}:".encode())) + 6


def test_a_secret_stays_masked_after_it_is_let_go() -> None:
    register_secret(SECRET)
    unregister_secret(SECRET)
    assert redact(f"late error: {SECRET}") == f"late error: {MASK}"


def test_an_error_body_is_masked_before_it_is_cut(held: str) -> None:
    # The secret straddles the cut: cut first, its prefix would no longer match and show.
    body = "x" * (MAX_ERROR_TEXT - 10) + SECRET + "y" * 100
    request = httpx.Request("GET", "http://127.0.0.1/api/v1/x")
    error = api_error("GET", "/x", httpx.Response(500, text=body, request=request))
    assert SECRET[:8] not in error.text
    assert MASK in error.text
