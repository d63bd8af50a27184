"""The REST provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.engine.provider import ContractExample, ProviderBase, SandboxServe
from reconciler.providers.rest.manifest import MANIFEST_KINDS
from reconciler.providers.rest.vocabulary import (
    LEVELS,
    OPERATIONS,
    PROVIDER,
    ROOT_KIND,
    address_key,
)

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
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
        # Imported here: a run that reads no saved plan never needs the check.
        from reconciler.providers.rest.plan_check import load_saved_plan

        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(address_key(model.endpoint, model.path, model.key))

    def credential_variables(self, env: Mapping[str, str], config: Path | None) -> frozenset[str]:
        """The password and Api-Key variables the project file names (none without one)."""
        from reconciler.providers.rest.config import credential_variables

        return credential_variables(env, config)

    def contract_example(self, origin: str) -> ContractExample:
        password, api_key = 'rest-Pa"ss\\w0rd/+&=contract-77ab', "rest-api-key-contract-0c4e9a"
        return ContractExample(
            env={
                "CONTRACT_USER": "ops",
                "CONTRACT_PASSWORD": password,
                "CONTRACT_API_KEY": api_key,
            },
            files={
                "reconciler.yaml": _PROJECT.replace("ORIGIN", origin),
                "manifests/tools.yaml": _EXAMPLE,
            },
            manifests=("manifests",),
            secrets=(password, api_key),
            args=("--config", "reconciler.yaml"),
        )

    @property
    def connector(self) -> RestConnector:
        """How the engine's service opens this provider (:mod:`.session`); imported on use so
        that loading the registry does not load the HTTP client."""
        from reconciler.providers.rest.session import REST_CONNECTOR

        return REST_CONNECTOR


REST = RestProvider()


_PROJECT = """\
endpoints:
  shop:
    base_url: ORIGIN
    auth:
      type: jwt
      token_path: /api/token/
      refresh_path: /api/token/refresh/
      username_env: CONTRACT_USER
      password_env: CONTRACT_PASSWORD
    api_key:
      header: Api-Key
      env: CONTRACT_API_KEY
"""

_EXAMPLE = """\
apiVersion: rest/v1
kind: RestObject
metadata:
  name: tools
spec:
  endpoint: shop
  path: /api/categories/
  key: slug
  body:
    slug: tools
    name: Tools
    description: contract-suite-category
"""
