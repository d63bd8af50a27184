"""The only place that knows the Mini App Center's URLs, verbs, headers, status codes,
retries and redaction. Everything else talks to :class:`MiniAppCenterClient`."""

from reconciler.providers.miniappcenter.client.api import MiniAppCenterClient
from reconciler.providers.miniappcenter.client.wire import (
    AttributeData,
    LocationBody,
    LocationData,
    MiniAppCreate,
    MiniAppData,
    MiniAppUpdate,
    VersionCreate,
    VersionCreated,
    VersionData,
    VersionUpdate,
)
from reconciler.transport.config import (
    Endpoint,
    check_endpoint_security,
    endpoint_from_env,
    token_from_env,
)
from reconciler.transport.http import ClientStats, RetryPolicy
from reconciler.transport.redact import Secret

__all__ = [
    "AttributeData",
    "ClientStats",
    "Endpoint",
    "LocationBody",
    "LocationData",
    "MiniAppCenterClient",
    "MiniAppCreate",
    "MiniAppData",
    "MiniAppUpdate",
    "RetryPolicy",
    "Secret",
    "VersionCreate",
    "VersionCreated",
    "VersionData",
    "VersionUpdate",
    "check_endpoint_security",
    "endpoint_from_env",
    "token_from_env",
]
