"""The secrets this process must never print, and the one place that masks them.

Kept free of HTTP so that every layer (manifests, the model, the CLI) can redact: the client
registers its token here while it is open (:mod:`reconciler.transport.redact`), and the
manifest loader registers ``MAC_API_TOKEN`` while it reads manifests, before any client
exists.
"""

from __future__ import annotations

import base64
import functools
import json
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import quote, quote_plus

MASK: Final = "***"
# A secret shorter than this is not searched for in messages: masking every "1" or "ab" in
# a message would garble it and protect nothing (such a token is guessable anyway).
MIN_SECRET_LENGTH: Final = 8
# A shorter run of base64 is too likely to occur by chance in other base64 text.
_MIN_BASE64_CORE: Final = 8
# Secrets no longer held (a closed client, a replaced token) stay masked for the rest of the
# process, the newest this many: an error raised while a client was open is often printed
# after it closed, and a server may echo a token it was sent long ago.
MAX_RETIRED: Final = 256


@functools.lru_cache(maxsize=1024)
def _variants(secret: str) -> tuple[str, ...]:
    """The secret as it can appear in a message, longest first (a variant may contain
    another): plain; inside a str or bytes repr (httpcore logs header tuples as bytes);
    JSON-escaped once and twice (an echoed JSON body inside a JSON error inside our JSON);
    URL-encoded (a form body, a query); and the part of its base64 that does not depend on
    what precedes it (``Basic base64(user:password)``, an encoded echo), at each of the three
    alignments. Masking the middle of a base64 run leaves at most two bytes of the secret,
    mixed with its neighbours, in the characters around it."""
    found = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}
    for ensure_ascii in (False, True):
        once = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        found |= {once, json.dumps(once, ensure_ascii=ensure_ascii)[1:-1]}
    found |= {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    raw = secret.encode("utf-8", "replace")
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        start = (offset * 4 + 2) // 3 + 1  # past the characters mixed with what precedes
        stop = len(encoded) - 4  # before those mixed with what follows (and the padding)
        if stop - start >= _MIN_BASE64_CORE:
            found.add(encoded[start:stop])
    return tuple(sorted((v for v in found if v), key=len, reverse=True))


class _Registry:
    """Live secrets (reference-counted: two clients, one token), and retired ones."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._retired: OrderedDict[str, None] = OrderedDict()

    def add(self, secret: str) -> None:
        self._counts[secret] += 1
        self._retired.pop(secret, None)

    def remove(self, secret: str) -> None:
        self._counts[secret] -= 1
        if self._counts[secret] <= 0:
            del self._counts[secret]
            if len(secret) >= MIN_SECRET_LENGTH:
                self._retired[secret] = None
                while len(self._retired) > MAX_RETIRED:
                    self._retired.popitem(last=False)

    def secrets(self) -> list[str]:
        return list(self._counts)

    def masked(self) -> list[str]:
        return [*self._counts, *self._retired]

    def forget_retired(self) -> None:
        self._retired.clear()


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
    """``text`` with every occurrence of a secret this process holds or held (or of
    ``secrets``), in any of its encodings (:func:`_variants`), replaced by ``***``.

    Call it on the whole text before cutting or escaping it: a cut or escaped secret no
    longer matches."""
    known = _registry.masked() if secrets is None else list(secrets)
    # Longest secret first: one may contain another.
    for secret in sorted(known, key=len, reverse=True):
        if not secret:
            continue
        for variant in _variants(secret):
            if variant in text:
                text = text.replace(variant, MASK)
    return text


def forget_retired() -> None:
    """Stop masking the secrets no longer held (tests: one test's old token must not mask
    another test's text; a process never needs this)."""
    _registry.forget_retired()


def any_masked() -> bool:
    """Whether :func:`redact` has anything to mask (a cheap test before a costly rewrite)."""
    return bool(_registry.masked())


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
