"""The Mini App Center provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.engine.plan import Plan
from reconciler.engine.provider import ProviderBase
from reconciler.providers.miniappcenter.manifest import MANIFEST_KINDS
from reconciler.providers.miniappcenter.model import STATUSES
from reconciler.providers.miniappcenter.plan_check import load_saved_plan
from reconciler.providers.miniappcenter.vocabulary import LEVELS, OPERATIONS, PROVIDER, ROOT_KIND


class MiniAppCenter(ProviderBase):
    name = PROVIDER
    title = "Mini App Center"
    root_kind = ROOT_KIND
    manifest_kinds = MANIFEST_KINDS
    levels = LEVELS
    operations = OPERATIONS
    direct = True  # its client runs on the shared transport's lanes: no proxy
    noun = "mini app"
    secret_variables = ("MAC_API_TOKEN",)
    first_run_adopts = "Mini apps"
    # Review statuses `state set-status` records (the API cannot always tell them).
    statuses = STATUSES

    def manifest_json_schema_text(self) -> str:
        """The JSON Schema of its manifest document (`reconciler schema`)."""
        from reconciler.providers.miniappcenter.manifest import manifest_json_schema_text

        return manifest_json_schema_text()

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(model.id)


MINIAPPCENTER = MiniAppCenter()
