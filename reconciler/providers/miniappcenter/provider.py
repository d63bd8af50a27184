"""The Mini App Center provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.engine.plan import Plan
from reconciler.engine.provider import ContractExample, ProviderBase
from reconciler.providers.miniappcenter.manifest import MANIFEST_KINDS
from reconciler.providers.miniappcenter.plan_check import load_saved_plan
from reconciler.providers.miniappcenter.vocabulary import LEVELS, OPERATIONS, PROVIDER, ROOT_KIND


class MiniAppCenter(ProviderBase):
    name = PROVIDER
    title = "Mini App Center"
    root_kind = ROOT_KIND
    manifest_kinds = MANIFEST_KINDS
    levels = LEVELS
    operations = OPERATIONS
    credentials = frozenset({"MAC_API_TOKEN"})

    def contract_example(self, origin: str) -> ContractExample:
        token = 'mac-Tok"en\\/+&=contract-9f31c7'
        return ContractExample(
            env={"MAC_BASE_URL": f"{origin}/api", "MAC_API_TOKEN": token},
            files={"manifests/shop.yaml": _EXAMPLE},
            manifests=("manifests",),
            secrets=(token,),
        )

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(model.id)


MINIAPPCENTER = MiniAppCenter()


_EXAMPLE = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.example.contract.shop
spec:
  name: Contract Shop
  superapp_id: com.example.superapp
  type: Web
  versions:
    - code: "1.0.0"
      platform_id: Android
      main_name: HomePanel
      main_type: Panel
      service_url: https://shop.example.com/
"""
