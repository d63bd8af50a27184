"""The providers this reconciler manages, in one place: the composition root the CLI hands to
the engine (the engine itself never imports a provider)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.engine.provider import Provider, root_kinds
from reconciler.manifest.loader import ManifestKinds
from reconciler.providers.miniappcenter.provider import MINIAPPCENTER

PROVIDERS: Mapping[str, Provider] = {MINIAPPCENTER.name: MINIAPPCENTER}
ROOT_KINDS: Mapping[str, str] = root_kinds(PROVIDERS)  # refuses two providers with one root
# Every (apiVersion, kind) a manifest may declare, with its provider's checker.
MANIFEST_KINDS: ManifestKinds = {
    kind: checker
    for provider in PROVIDERS.values()
    for kind, checker in provider.manifest_kinds.items()
}
