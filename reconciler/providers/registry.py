"""The providers this reconciler manages, in one place: the composition root the CLI hands to
the engine (the engine itself never imports a provider)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.engine.provider import Provider, root_kinds
from reconciler.engine.session import Connector
from reconciler.manifest.loader import ManifestKinds
from reconciler.providers.akana.provider import AKANA
from reconciler.providers.akana.session import AKANA_CONNECTOR
from reconciler.providers.miniappcenter.provider import MINIAPPCENTER
from reconciler.providers.miniappcenter.session import MINIAPPCENTER_CONNECTOR
from reconciler.providers.rest.provider import REST
from reconciler.providers.rest.session import REST_CONNECTOR

PROVIDERS: Mapping[str, Provider] = {
    provider.name: provider for provider in (MINIAPPCENTER, AKANA, REST)
}
ROOT_KINDS: Mapping[str, str] = root_kinds(PROVIDERS)  # refuses two providers with one root
# Every (apiVersion, kind) a manifest may declare, with its provider's checker.
MANIFEST_KINDS: ManifestKinds = {
    kind: checker
    for provider in PROVIDERS.values()
    for kind, checker in provider.manifest_kinds.items()
}
# How each provider opens its session. The Mini App Center's is a state-root connector
# (engine.session.StateRootConnector): its records live at the state's root.
CONNECTORS: Mapping[str, Connector] = {
    connector.name: connector
    for connector in (MINIAPPCENTER_CONNECTOR, AKANA_CONNECTOR, REST_CONNECTOR)
}
