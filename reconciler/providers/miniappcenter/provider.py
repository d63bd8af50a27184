"""The Mini App Center provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from reconciler.engine.provider import ContractExample, ProviderBase, SandboxServe
from reconciler.providers.miniappcenter.manifest import MANIFEST_KINDS
from reconciler.providers.miniappcenter.model import STATUSES
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

    direct = True  # its client runs on the shared transport's lanes: no proxy
    noun = "mini app"
    first_run_adopts = "Mini apps"
    # Review statuses `state set-status` records (the API cannot always tell them).
    statuses = STATUSES

    sandbox_api = "miniappcenter"
    sandbox_assumptions: Mapping[str, str] = MappingProxyType({
        "unique-version-codes": "a second version of the same code in a mini app is refused"
        " (400); dropped, it is created like any other, as the docs allow",
        "refuse-unknown-fields": "a JSON body's unknown fields are refused (400); dropped,"
        " they are ignored, as a lenient server may",
        "review-flow": "a review step from the wrong status is refused (400); dropped, any"
        " step sets its status from any status, as the docs allow",
    })

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
            unique_version_codes="unique-version-codes" not in options.drop_assumptions,
            refuse_unknown_fields="refuse-unknown-fields" not in options.drop_assumptions,
            review_flow="review-flow" not in options.drop_assumptions,
        )
        from reconciler.errors import UsageError
        from reconciler.providers.miniappcenter.sandbox.store import OldDatabaseError

        try:
            sandbox.serve(config, host=options.host, port=options.port)
        except OldDatabaseError as exc:  # raised before serving: nothing was printed
            raise UsageError(str(exc)) from None

    def manifest_json_schema_text(self) -> str:
        """The JSON Schema of its manifest document (`reconciler schema`)."""
        from reconciler.providers.miniappcenter.manifest import manifest_json_schema_text

        return manifest_json_schema_text()

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
