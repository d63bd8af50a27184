"""Keeping the API token out of every repr, exception and log record.

Facts this relies on (checked against httpx 0.28 / httpcore 1.0):

* httpx masks only ``Authorization`` in ``repr(headers)``; ``APIKey-Auth`` prints in clear.
  So the token is held in a :class:`Secret` (repr ``'***'``) and only written into the
  request headers by :class:`ApiKeyAuth`, an httpx auth flow that runs at send time. No
  long-lived object (client, default headers, endpoint) carries it as a plain string.
* httpcore's DEBUG log prints request objects as ``<Request [b'GET']>`` (no headers) but
  prints every *response* header. A server or proxy that echoes the key back (some do, in
  error bodies or debug headers) would put it into the log. :class:`RedactingFilter` is
  therefore installed on the ``httpx`` logger and on each ``httpcore.*`` logger (filters on
  a parent logger do not apply to records of its children) and rewrites any record that
  contains a live token.
* Error bodies can echo the token too, so :func:`redact` is applied to every message the
  client puts into an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from typing import Final

import httpx

from reconciler.secrets import MASK, any_masked, register_secret, unregister_secret
from reconciler.secrets import redact as _redact

# Every logger httpx/httpcore write to (httpcore names one per module; see their sources).
LOGGER_NAMES: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class Secret:
    """A string that does not show itself: ``repr``/``str``/``format`` give ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def redact(text: str, tokens: Iterable[str] | None = None) -> str:
    """``text`` with every occurrence of a live token (or of ``tokens``) replaced by ``***``."""
    return _redact(text, tokens)


class RedactingFilter(logging.Filter):
    """Rewrites (never drops) a log record whose message contains a live token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not any_masked():  # nothing held nor held before: nothing to rewrite
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            original = str(record.exc_info[1])
            exc_text = redact(original)
            if exc_text != original:
                # The traceback would print the exception text: drop it, keep a clean line.
                record.exc_info = None
                record.msg = f"{cleaned} [exception redacted: {exc_text}]"
                record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER: Final = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the redacting filter to the httpx/httpcore loggers (idempotent)."""
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def register_token(token: str) -> None:
    install_log_redaction()
    register_secret(token)


def unregister_token(token: str) -> None:
    unregister_secret(token)


class ApiKeyAuth(httpx.Auth):
    """Adds ``APIKey-Auth`` to each request at send time, and nowhere else."""

    HEADER: Final = "APIKey-Auth"

    def __init__(self, secret: Secret) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.HEADER] = self._secret.reveal()
        yield request

    def __repr__(self) -> str:
        return f"ApiKeyAuth({MASK})"
