"""The REST provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.engine.plan import Plan
from reconciler.engine.provider import ProviderBase, SandboxServe
from reconciler.providers.rest.manifest import MANIFEST_KINDS
from reconciler.providers.rest.plan_check import load_saved_plan
from reconciler.providers.rest.vocabulary import (
    LEVELS,
    OPERATIONS,
    PROVIDER,
    ROOT_KIND,
    address_key,
)

if TYPE_CHECKING:
    from reconciler.providers.rest.session import RestConnector


class RestProvider(ProviderBase):
    name = PROVIDER
    title = "REST objects"
    root_kind = ROOT_KIND
    manifest_kinds = MANIFEST_KINDS
    levels = LEVELS
    operations = OPERATIONS
    noun = "REST object"
    first_run_adopts = "REST objects"
    sandbox_api = "tenant"

    def serve_sandbox(self, options: SandboxServe) -> None:
        """The JWT + Api-Key tenant API; credentials from $TENANT_USERNAME,
        $TENANT_PASSWORD and $TENANT_API_KEY, else random."""
        from reconciler.errors import UsageError
        from reconciler.providers.rest.sandbox import serve_tenant, tenant_config_from_env

        base = options.db or options.default_db
        base.parent.mkdir(parents=True, exist_ok=True)
        # Its own default file: the two sandboxes' tables are not the same.
        db_path = options.db or base.with_name(base.stem + "-tenant" + base.suffix)
        try:
            config = tenant_config_from_env(
                db_path,
                latency_ms=options.latency_ms,
                fail_rate=options.fail_rate,
                ambiguous_rate=options.ambiguous_rate,
                seed=options.seed,
                rate_limit=options.rate_limit,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        serve_tenant(config, host=options.host, port=options.port)

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(address_key(model.endpoint, model.path, model.key))

    @property
    def connector(self) -> RestConnector:
        """How the engine's service opens this provider (:mod:`.session`); imported on use so
        that loading the registry does not load the HTTP client."""
        from reconciler.providers.rest.session import REST_CONNECTOR

        return REST_CONNECTOR


REST = RestProvider()
