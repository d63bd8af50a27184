"""The Akana API Platform provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from reconciler.engine.provider import ContractExample, ProviderBase, SandboxServe
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


# `sandbox serve --api akana`'s defaults (shown in its --help).
DEFAULT_SANDBOX_DB = ".reconciler/akana-sandbox.db"
DEFAULT_SANDBOX_EMAIL = "admin@sandbox.local"


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

    direct = True  # its client runs on the shared transport's lanes: no proxy
    noun = "Akana app"
    first_run_caveat = "an Akana app only with adopt: true"
    sandbox_api = "akana"
    sandbox_assumptions: Mapping[str, str] = MappingProxyType({
        "unique-app-names": "a second app of the same Name is refused (400); dropped, it is"
        " created like any other, as the docs allow",
        "unique-version-names": "a second version of the same name in one app is refused"
        " (400); dropped, it is added like any other, as the docs allow",
    })

    def serve_sandbox(self, options: SandboxServe) -> None:
        """One user, from $AKANA_EMAIL / $AKANA_PASSWORD or made up here."""
        import os
        import secrets
        from pathlib import Path

        from reconciler.errors import UsageError
        from reconciler.providers.akana import sandbox

        if options.token is not None:
            raise UsageError(
                "--token is for the Mini App Center sandbox; the Akana sandbox logs in"
                " with $AKANA_EMAIL / $AKANA_PASSWORD (made up and printed when unset)."
            )
        db_path = options.db or Path(os.environ.get("AKANA_SANDBOX_DB") or DEFAULT_SANDBOX_DB)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        email = os.environ.get("AKANA_EMAIL") or DEFAULT_SANDBOX_EMAIL
        password = os.environ.get("AKANA_PASSWORD") or secrets.token_urlsafe(18)
        config = sandbox.AkanaSandboxConfig(
            db_path=db_path,
            users={email: password},
            session_seconds=options.session_seconds,
            latency_ms=options.latency_ms,
            fail_rate=options.fail_rate,
            ambiguous_rate=options.ambiguous_rate,
            seed=options.seed,
            rate_limit=options.rate_limit,
            unique_app_names="unique-app-names" not in options.drop_assumptions,
            unique_version_names="unique-version-names" not in options.drop_assumptions,
        )
        from reconciler.providers.akana.sandbox.store import OldDatabaseError

        try:
            sandbox.serve_akana(config, email, host=options.host, port=options.port)
        except OldDatabaseError as exc:  # raised before serving: nothing was printed
            raise UsageError(str(exc)) from None

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
