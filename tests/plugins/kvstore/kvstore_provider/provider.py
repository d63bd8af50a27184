"""The kvstore provider as the engine sees it (:class:`reconciler.engine.provider.Provider`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from kvstore_provider.manifest import MANIFEST_KINDS
from reconciler.engine.plan import Plan
from reconciler.engine.provider import ContractExample, ProviderBase

PROVIDER = "kvstore"
ROOT_KIND = "kv_entry"
ROOT_KINDS = {ROOT_KIND: PROVIDER}
# Its closed vocabulary of writes: (kind, action, step), each one handler in session.py.
OPERATIONS = frozenset({(ROOT_KIND, action, None) for action in ("create", "update", "delete")})


class KvStore(ProviderBase):
    name = PROVIDER
    title = "Key/value store"
    root_kind = ROOT_KIND
    manifest_kinds = MANIFEST_KINDS
    levels: Mapping[str, int] = MappingProxyType({ROOT_KIND: 0})
    operations = OPERATIONS
    credentials = frozenset({"KVSTORE_API_KEY"})  # as its descriptor declares

    def contract_example(self, origin: str) -> ContractExample:
        """What the engine's provider contract suite runs against its hostile servers."""
        key = 'kv-Ke"y\\/+&=contract-70b1e2'
        return ContractExample(
            env={"KVSTORE_URL": origin, "KVSTORE_API_KEY": key},
            files={"manifests/greeting.yaml": _EXAMPLE},
            manifests=("manifests",),
            secrets=(key,),
        )

    def load_saved_plan(self, data: Mapping[str, Any], source: str) -> Plan:
        from kvstore_provider.plan_check import load_saved_plan

        return load_saved_plan(data, source)

    def resource_key(self, model: Any) -> str:
        return str(model.name)


KVSTORE = KvStore()

_EXAMPLE = """\
apiVersion: kvstore/v1
kind: Entry
metadata:
  name: greeting
spec:
  value: hello
"""
