"""A local tenant API (the "tenant sandbox"): simplejwt tokens, Api-Key tenants with a
read-only public schema, DRF collections and pagination, persisted in SQLite.

Like the Mini App Center sandbox it imports nothing of the reconciler's client, so the
client is tested against an independent implementation (it shares only the fault and
listening helpers of :mod:`reconciler.sandbox_kit`).
"""

from reconciler.providers.rest.sandbox.app import create_tenant_app
from reconciler.providers.rest.sandbox.config import TenantSandboxConfig
from reconciler.providers.rest.sandbox.server import (
    make_tenant_server,
    serve_tenant,
    tenant_base_url,
    tenant_config_from_env,
)
from reconciler.providers.rest.sandbox.store import TenantStore

__all__ = [
    "TenantSandboxConfig",
    "TenantStore",
    "create_tenant_app",
    "make_tenant_server",
    "serve_tenant",
    "tenant_base_url",
    "tenant_config_from_env",
]
