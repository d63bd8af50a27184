"""The providers this reconciler manages, in one place: the composition root the CLI hands to
the engine (the engine itself never imports a provider)."""

from __future__ import annotations

from reconciler.manifest.loader import ManifestKinds
from reconciler.providers.miniappcenter.manifest import MANIFEST_KINDS as MINIAPPCENTER_KINDS

# Every (apiVersion, kind) a manifest may declare, with its provider's checker.
MANIFEST_KINDS: ManifestKinds = {**MINIAPPCENTER_KINDS}
