"""The Akana provider's plan vocabulary: its kinds, their order, its writes, its addresses."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.address import Address

# Its environment variables: named here, where the provider's description can import them
# without the HTTP client (``validate`` never loads the transport).
BASE_URL_ENV = "AKANA_BASE_URL"
EMAIL_ENV = "AKANA_EMAIL"
PASSWORD_ENV = "AKANA_PASSWORD"
BUSINESS_ID_ENV = "AKANA_BUSINESS_ID"

PROVIDER = "akana"  # the provider's name in plans and state
ROOT_KIND = "akana_app"  # an Akana app, keyed by its Name
VERSION_KIND = "version"  # an app version, keyed by its Name inside the app
ROOT_KINDS: Mapping[str, str] = {ROOT_KIND: PROVIDER}

# Creates and updates by ascending level, deletes by descending level (engine order_changes).
LEVELS: Mapping[str, int] = {ROOT_KIND: 0, VERSION_KIND: 1}

# The closed vocabulary of writes, exactly the keys of ``apply.DISPATCH`` (with no step).
OPERATIONS: frozenset[tuple[str, str, str | None]] = frozenset(
    {
        (ROOT_KIND, "create", None),
        (ROOT_KIND, "update", None),
        (ROOT_KIND, "delete", None),
        (VERSION_KIND, "create", None),
        (VERSION_KIND, "update", None),
        (VERSION_KIND, "delete", None),
    }
)


def app_address(name: str) -> Address:
    return Address(PROVIDER, ROOT_KIND, name)


def version_address(app_name: str, version_name: str) -> Address:
    return app_address(app_name).child(VERSION_KIND, version_name)
