"""Where the API lives: the endpoint, read from the environment and checked for safety.

The token is not part of the endpoint and never enters a URL: it travels only in the
``APIKey-Auth`` header (see :mod:`reconciler.transport.redact`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.errors import ConfigError

BASE_URL_ENV = "MAC_BASE_URL"
API_VERSION_ENV = "MAC_API_VERSION"
TOKEN_ENV = "MAC_API_TOKEN"
DEFAULT_API_VERSION = "v1"

_API_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
# Visible ASCII only: a token must fit in a header value as-is, and a token with spaces,
# quotes or control characters is almost certainly a copy-paste accident.
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")


def _split(url: str, what: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of an endpoint URL, or ConfigError.

    Messages never echo the URL itself: it may carry credentials pasted by mistake.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"{what} is not a valid URL ({e})") from e
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"{what} must start with https:// (got scheme {scheme or 'none'!r})")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigError(
            f"{what} must not contain credentials; put the API token in {TOKEN_ENV} instead"
        )
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"{what} has no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what} must not contain a query string or a fragment")
    return scheme, host, port, parts.path


def is_loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_endpoint_security(url: str) -> None:
    """Refuse an endpoint that would send the token in clear.

    ``https://`` is always accepted (TLS is always verified by the client). ``http://`` is
    accepted only for loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``), which is where
    the local sandbox runs.
    """
    scheme, host, _port, _path = _split(url, "the API endpoint")
    if scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"refusing plain http:// endpoint on host {host!r}: the API token would travel in"
            " clear text over the network. Use https:// (plain http:// is only accepted for"
            " loopback hosts such as localhost, 127.0.0.1 or ::1, where the local sandbox runs)"
        )


@dataclass(frozen=True)
class Endpoint:
    """The API base URL as the docs give it (``https://host/api``) and the API version.

    Holds no secret: ``repr`` and :attr:`display` are safe to print.
    """

    base_url: str
    api_version: str = DEFAULT_API_VERSION

    def __post_init__(self) -> None:
        base = self.base_url.strip().rstrip("/")
        _split(base, "the API base URL")
        if not _API_VERSION_RE.fullmatch(self.api_version):
            raise ConfigError(
                f"invalid API version {self.api_version!r}: expected something like 'v1'"
            )
        object.__setattr__(self, "base_url", base)

    @property
    def display(self) -> str:
        """``scheme://host[:port]/path``: what commands print as "using endpoint ..."."""
        scheme, host, port, path = _split(self.base_url, "the API base URL")
        shown_host = f"[{host}]" if ":" in host else host
        netloc = f"{shown_host}:{port}" if port is not None else shown_host
        return f"{scheme}://{netloc}{path}"

    @property
    def root(self) -> str:
        """Every API path is appended to this: ``base_url/api_version``."""
        return f"{self.base_url}/{self.api_version}"


def endpoint_from_env(env: Mapping[str, str]) -> Endpoint:
    """The endpoint from ``MAC_BASE_URL`` (and ``MAC_API_VERSION``, default ``v1``)."""
    base = env.get(BASE_URL_ENV, "").strip()
    if not base:
        raise ConfigError(
            f"no Mini App Center endpoint configured: set {BASE_URL_ENV} (for example"
            " https://sandbox.miniappcenter.com/api) or pass --sandbox to use the embedded"
            " local sandbox"
        )
    version = env.get(API_VERSION_ENV, "").strip() or DEFAULT_API_VERSION
    endpoint = Endpoint(base, version)
    check_endpoint_security(endpoint.base_url)
    return endpoint


def check_token(token: str) -> str:
    """A usable token, or ConfigError. The message never contains the token."""
    if not isinstance(token, str) or not token:
        raise ConfigError(f"the API token is empty: set {TOKEN_ENV}")
    if not _TOKEN_RE.fullmatch(token):
        raise ConfigError(
            f"the API token in {TOKEN_ENV} contains spaces, control or non-ASCII characters;"
            " check for a copy-paste accident"
        )
    return token


def token_from_env(env: Mapping[str, str]) -> str:
    """``MAC_API_TOKEN``, or ConfigError naming it (never echoing its value)."""
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"no API token configured: set {TOKEN_ENV} to a Mini App Center API token"
            " (or pass --sandbox to use the embedded local sandbox)"
        )
    return check_token(token)


# --- limits against hostile or broken servers ---------------------------------------------

# Every provider's limits, so the names are the engine's; the older MAC_* names (from when the
# reconciler managed the Mini App Center only) are still read when the new ones are unset.
REQUEST_DEADLINE_ENV = "RECONCILER_REQUEST_DEADLINE"
MAX_RESPONSE_BYTES_ENV = "RECONCILER_MAX_RESPONSE_BYTES"
LEGACY_LIMIT_ENVS = {
    REQUEST_DEADLINE_ENV: "MAC_REQUEST_DEADLINE",
    MAX_RESPONSE_BYTES_ENV: "MAC_MAX_RESPONSE_BYTES",
}
DEFAULT_REQUEST_DEADLINE = 120.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ClientLimits:
    """What one HTTP request may cost, whatever the server does.

    ``request_deadline``: wall-clock seconds from sending a request to the last byte of its
    answer (httpx's timeouts are per read, so a server dripping a byte a second never trips
    them). ``max_response_bytes``: the largest answer kept, counted after decompression.
    """

    request_deadline: float = DEFAULT_REQUEST_DEADLINE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if not (self.request_deadline > 0 and self.request_deadline != float("inf")):
            raise ConfigError(f"{REQUEST_DEADLINE_ENV} must be a positive number of seconds")
        if self.max_response_bytes < 1:
            raise ConfigError(f"{MAX_RESPONSE_BYTES_ENV} must be a positive number of bytes")


def _limit_setting(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """(the variable read, its text): the engine's name, else its older MAC_* name."""
    for variable in (name, LEGACY_LIMIT_ENVS[name]):
        text = env.get(variable, "").strip()
        if text:
            return variable, text
    return name, ""


def limits_from_env(env: Mapping[str, str]) -> ClientLimits:
    """``RECONCILER_REQUEST_DEADLINE`` (seconds) and ``RECONCILER_MAX_RESPONSE_BYTES`` (bytes)
    (or their older ``MAC_*`` names), else the defaults; ConfigError naming the variable when
    one is not a positive number."""
    deadline = DEFAULT_REQUEST_DEADLINE
    size = DEFAULT_MAX_RESPONSE_BYTES
    variable, text = _limit_setting(env, REQUEST_DEADLINE_ENV)
    if text:
        try:
            deadline = float(text)
        except ValueError:
            deadline = -1.0
        if not (0 < deadline < float("inf")):
            raise ConfigError(
                f"{variable} must be a positive number of seconds (default"
                f" {DEFAULT_REQUEST_DEADLINE:g})"
            )
    variable, text = _limit_setting(env, MAX_RESPONSE_BYTES_ENV)
    if text:
        if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
            raise ConfigError(
                f"{variable} must be a positive whole number of bytes (default"
                f" {DEFAULT_MAX_RESPONSE_BYTES})"
            )
        size = int(text)
    return ClientLimits(request_deadline=deadline, max_response_bytes=size)
