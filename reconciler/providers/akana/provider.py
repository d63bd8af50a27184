"""The Akana API Platform provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.engine.plan import Plan
from reconciler.engine.provider import ProviderBase
from reconciler.providers.akana.manifest import MANIFEST_KINDS
from reconciler.providers.akana.plan_check import load_saved_plan
from reconciler.providers.akana.vocabulary import LEVELS, OPERATIONS, PROVIDER, ROOT_KIND

if TYPE_CHECKING:
    from reconciler.providers.akana.session import AkanaConnector


class Akana(ProviderBase):
    name = PROVIDER
    title = "Akana API Platform"
    root_kind = ROOT_KIND
    manifest_kinds = MANIFEST_KINDS
    levels = LEVELS
    operations = OPERATIONS
    direct = True  # its client runs on the shared transport's lanes: no proxy
    noun = "Akana app"
    secret_variables = ("AKANA_PASSWORD",)
    first_run_caveat = "an Akana app only with adopt: true"

    @property
    def connector(self) -> AkanaConnector:
        """How the engine's service opens an Akana session (the client loads only then)."""
        from reconciler.providers.akana.session import AKANA_CONNECTOR

        return AKANA_CONNECTOR

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(model.name)


AKANA = Akana()
