"""Where the Akana platform lives and who logs in, read from the environment.

``AKANA_BASE_URL`` is the platform's root as the docs write it (``https://{hostname}``): the
client adds ``/api/...`` itself. ``AKANA_EMAIL`` / ``AKANA_PASSWORD`` log in; the password is
held as a :class:`Secret` and only ever written into the login body.
``AKANA_BUSINESS_ID`` (optional) scopes listing and creating to one organization.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from reconciler.errors import ConfigError

# Its variables' names live with its vocabulary (light: the provider's description imports
# them without the transport); re-exported here for the code that reads them.
from reconciler.providers.akana.vocabulary import (
    BASE_URL_ENV,
    BUSINESS_ID_ENV,
    EMAIL_ENV,
    PASSWORD_ENV,
)

# The shared transport pieces (moving to a transport package).
from reconciler.transport.config import Endpoint, check_endpoint_security
from reconciler.transport.redact import Secret

__all__ = ["BASE_URL_ENV", "BUSINESS_ID_ENV", "EMAIL_ENV", "PASSWORD_ENV"]
API_PREFIX = "api"  # every documented path starts with /api


def akana_endpoint(base_url: str) -> Endpoint:
    """The endpoint whose ``root`` is ``{base_url}/api``; ConfigError for an unsafe or
    mis-shaped URL (never echoing it: it may carry credentials pasted by mistake)."""
    endpoint = Endpoint(base_url, API_PREFIX)
    path = httpx.URL(endpoint.base_url).path.rstrip("/")
    if path.endswith("/api"):
        raise ConfigError(
            f"{BASE_URL_ENV} ends in /api, which the client adds itself: give the platform's"
            " root, e.g. https://akana.example.com"
        )
    check_endpoint_security(endpoint.base_url)
    return endpoint


@dataclass(frozen=True)
class AkanaConfig:
    endpoint: Endpoint
    email: str
    password: Secret
    business_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"AkanaConfig(endpoint={self.endpoint.display!r}, email={self.email!r},"
            f" password='***', business_id={self.business_id!r})"
        )


def akana_config_from_env(env: Mapping[str, str]) -> AkanaConfig:
    """The Akana settings from ``env``; ConfigError naming what is missing."""
    base = env.get(BASE_URL_ENV, "").strip()
    if not base:
        raise ConfigError(
            f"no Akana platform configured: set {BASE_URL_ENV} (for example"
            " https://akana.example.com), or run `reconciler sandbox serve --api akana`"
        )
    email = env.get(EMAIL_ENV, "").strip()
    password = env.get(PASSWORD_ENV, "")
    missing = [name for name, value in ((EMAIL_ENV, email), (PASSWORD_ENV, password)) if not value]
    if missing:
        raise ConfigError(f"Akana login not configured: set {' and '.join(missing)}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in password):
        raise ConfigError(f"{PASSWORD_ENV} contains control characters; check for a paste accident")
    business_id = env.get(BUSINESS_ID_ENV, "").strip() or None
    return AkanaConfig(akana_endpoint(base), email, Secret(password), business_id)
