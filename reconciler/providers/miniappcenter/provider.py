"""The Mini App Center provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.engine.plan import Plan
from reconciler.engine.provider import ProviderBase, SandboxServe
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

    sandbox_api = "miniappcenter"

    def serve_sandbox(self, options: SandboxServe) -> None:
        import os
        import secrets

        # Looked up on use: tests replace the package's serve.
        from reconciler.providers.miniappcenter import sandbox

        db_path = options.db or options.default_db
        db_path.parent.mkdir(parents=True, exist_ok=True)
        config = sandbox.SandboxConfig(
            db_path=db_path,
            token=options.token or os.environ.get("MAC_API_TOKEN") or secrets.token_urlsafe(24),
            latency_ms=options.latency_ms,
            fail_rate=options.fail_rate,
            ambiguous_rate=options.ambiguous_rate,
            seed=options.seed,
            rate_limit=options.rate_limit,
        )
        sandbox.serve(config, host=options.host, port=options.port)

    def manifest_json_schema_text(self) -> str:
        """The JSON Schema of its manifest document (`reconciler schema`)."""
        from reconciler.providers.miniappcenter.manifest import manifest_json_schema_text

        return manifest_json_schema_text()

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(model.id)


MINIAPPCENTER = MiniAppCenter()
