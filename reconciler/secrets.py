"""The secrets this process must never print, and the one place that masks them.

Kept free of HTTP so that every layer (manifests, the model, the CLI) can redact: the client
registers its token here while it is open (:mod:`reconciler.transport.redact`), and the
manifest loader registers ``MAC_API_TOKEN`` while it reads manifests, before any client
exists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

MASK: Final = "***"
# A secret shorter than this is not searched for in messages: masking every "1" or "ab" in
# a message would garble it and protect nothing (such a token is guessable anyway).
MIN_SECRET_LENGTH: Final = 8


def _variants(secret: str) -> set[str]:
    # The secret as it can appear in a message: plain, inside a str repr, inside a bytes repr
    # (httpcore logs header tuples as bytes).
    return {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}


class _Registry:
    """Live secrets (reference-counted: two clients, one token)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, secret: str) -> None:
        self._counts[secret] += 1

    def remove(self, secret: str) -> None:
        self._counts[secret] -= 1
        if self._counts[secret] <= 0:
            del self._counts[secret]

    def secrets(self) -> list[str]:
        return list(self._counts)


_registry = _Registry()


def live_secrets() -> list[str]:
    return _registry.secrets()


def register_secret(secret: str) -> None:
    _registry.add(secret)


def unregister_secret(secret: str) -> None:
    _registry.remove(secret)


@contextmanager
def secrets_registered(*secrets: str) -> Iterator[None]:
    """Mask ``secrets`` (those long enough to search for) for the duration of the block."""
    kept = [secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH]
    for secret in kept:
        _registry.add(secret)
    try:
        yield
    finally:
        for secret in kept:
            _registry.remove(secret)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every occurrence of a live secret (or of ``secrets``) replaced by ``***``."""
    for secret in _registry.secrets() if secrets is None else secrets:
        if not secret:
            continue
        # Longest first: a variant may contain another one.
        for variant in sorted(_variants(secret), key=len, reverse=True):
            if variant in text:
                text = text.replace(variant, MASK)
    return text


MAX_SHOWN_CHARS: Final = 80


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` for a message: secrets masked first, then cut to about ``limit``
    characters with the full length named, so a 5 MB value costs one short line."""
    text = redact(value) if isinstance(value, str) else value
    try:
        rendered = repr(text)
    except ValueError:  # an int beyond Python's int-string limit
        return "(a number too large to show)"
    if len(rendered) <= limit:
        return rendered
    size = len(text) if isinstance(text, str) else len(rendered)
    return f"{rendered[: limit - 1]}…' ({size} characters)"


def clipped(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` as written (no quotes), secrets masked, cut like :func:`shown`."""
    text = redact(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


def bounded(text: str, limit: int) -> str:
    """``text`` masked and cut to ``limit`` characters: the last guard on any message."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
