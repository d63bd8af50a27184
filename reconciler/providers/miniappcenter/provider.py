"""The Mini App Center provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.engine.provider import ContractExample, ProviderBase
from reconciler.providers.miniappcenter.manifest import MANIFEST_KINDS
from reconciler.providers.miniappcenter.vocabulary import LEVELS, OPERATIONS, PROVIDER, ROOT_KIND

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan


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
        # Imported here: the saved-plan check pulls in the differ, which validate never needs.
        from reconciler.providers.miniappcenter.plan_check import load_saved_plan

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
