"""The Akana API Platform provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.engine.provider import ContractExample, ProviderBase
from reconciler.providers.akana.manifest import MANIFEST_KINDS
from reconciler.providers.akana.vocabulary import (
    BASE_URL_ENV,
    EMAIL_ENV,
    LEVELS,
    OPERATIONS,
    PASSWORD_ENV,
    PROVIDER,
    ROOT_KIND,
)

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
    from reconciler.providers.akana.session import AkanaConnector


class Akana(ProviderBase):
    name = PROVIDER
    title = "Akana API Platform"
    root_kind = ROOT_KIND
    manifest_kinds = MANIFEST_KINDS
    levels = LEVELS
    operations = OPERATIONS
    credentials = frozenset({PASSWORD_ENV})

    def contract_example(self, origin: str) -> ContractExample:
        password = 'akana-Pa"ss\\w0rd/+&=contract-51d2'
        return ContractExample(
            env={BASE_URL_ENV: origin, EMAIL_ENV: "ops@example.com", PASSWORD_ENV: password},
            files={"manifests/gateway.yaml": _EXAMPLE},
            manifests=("manifests",),
            secrets=(password,),
        )

    @property
    def connector(self) -> AkanaConnector:
        """How the engine's service opens an Akana session (the client loads only then)."""
        from reconciler.providers.akana.session import AKANA_CONNECTOR

        return AKANA_CONNECTOR

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        # Imported here: a run that reads no saved plan never needs the check.
        from reconciler.providers.akana.plan_check import load_saved_plan

        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(model.name)


AKANA = Akana()


_EXAMPLE = """\
apiVersion: akana/v1
kind: App
metadata:
  name: contract-gateway
spec:
  summary: The contract suite's app
  versions:
    - name: "1.0"
      visibility: Private
"""
