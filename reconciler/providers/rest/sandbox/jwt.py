"""HS256 JSON Web Tokens with the standard library only (PyJWT is not a dependency).

Enough for the sandbox to sign and verify its own tokens (RFC 7519 compact form, header
``{"alg": "HS256", "typ": "JWT"}``); any other algorithm is refused, never trusted from the
header (the "alg: none" attack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Final

_HEADER: Final = {"alg": "HS256", "typ": "JWT"}
MAX_TOKEN_CHARS: Final = 4096


class TokenInvalid(Exception):
    """The token is malformed, wrongly signed or expired (the message says which)."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenInvalid("Token is invalid") from exc


def _json(part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part))
    except (ValueError, RecursionError) as exc:
        raise TokenInvalid("Token is invalid") from exc
    if not isinstance(value, dict):
        raise TokenInvalid("Token is invalid")
    return value


def encode_hs256(payload: dict[str, Any], key: bytes) -> str:
    header = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
    body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{_b64encode(signature)}"


def decode_hs256(token: str, key: bytes, *, now: float) -> dict[str, Any]:
    """The verified payload of ``token``; :class:`TokenInvalid` when it is not valid at ``now``."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise TokenInvalid("Token is invalid")
    header_part, body_part, signature_part = token.split(".")
    if _json(header_part).get("alg") != "HS256":
        raise TokenInvalid("Token is invalid")
    expected = hmac.new(key, f"{header_part}.{body_part}".encode("ascii"), hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), _b64decode(signature_part)):
        raise TokenInvalid("Token is invalid")
    payload = _json(body_part)
    exp = payload.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenInvalid("Token has no exp claim")
    if exp <= now:
        raise TokenInvalid("Token is expired")
    return payload
