"""The REST provider as the engine sees it (the engine's Provider protocol)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
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
    from reconciler.errors import ManifestIssue
    from reconciler.manifest.loader import LoadedApp
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
    sandbox_assumptions: Mapping[str, str] = MappingProxyType({
        "fixed-point-decimals": "a decimal field answers a fixed-point string (12.5 ->"
        " \"12.50\"), as Django REST framework does; dropped, the number as sent",
    })

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
                fixed_point_decimals="fixed-point-decimals" not in options.drop_assumptions,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        serve_tenant(config, host=options.host, port=options.port)

    def project_issues(
        self, items: Sequence[LoadedApp[Any]], config: Path | None, env: Mapping[str, str]
    ) -> list[ManifestIssue]:
        """`validate`: each object whose ``endpoint`` the project file does not declare (the
        file's own problems are reported by the run that reads it)."""
        from reconciler.errors import ConfigError, ManifestIssue
        from reconciler.providers.rest.config import DEFAULT_PROJECT_FILE, load_project_config

        path = config if config is not None else Path(DEFAULT_PROJECT_FILE)
        declared: list[str] | None = None
        if path.is_file():
            try:
                declared = sorted(load_project_config(path, env).endpoints)
            except ConfigError:
                return []
        issues: list[ManifestIssue] = []
        for item in items:
            name = str(item.app.endpoint)
            if declared is not None and name in declared:
                continue
            where = (
                f"is not declared in {path} (declared: {', '.join(declared) or 'none'})"
                if declared is not None
                else f"is not declared: there is no project file {path} (or pass --config)"
            )
            line, column = _endpoint_place(item)
            message = f"endpoint {name[:64]!r} {where}"
            issues.append(ManifestIssue(item.file, line, column, "spec.endpoint", message))
        return issues

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


def _endpoint_place(item: LoadedApp[Any]) -> tuple[int, int]:
    """(line, column) of the document's ``endpoint:`` key; the document's start when it is
    not found (a flow mapping, say)."""
    import re

    try:
        lines = Path(item.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return item.line, 1
    for number in range(max(item.line - 1, 0), min(len(lines), item.line + 500)):
        if (found := re.match(r"^(\s+)endpoint\s*:", lines[number])) is not None:
            return number + 1, len(found.group(1)) + 1
        if number >= item.line and lines[number].startswith("---"):
            break
    return item.line, 1
