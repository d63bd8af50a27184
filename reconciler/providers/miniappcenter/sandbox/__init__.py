"""A faithful local GeneXus Mini App Center (the "sandbox"), persisted in SQLite.

Self-contained on purpose: nothing here imports the rest of ``reconciler``, so the reconciler
is tested against an independent implementation of the API rather than against itself.
"""

from reconciler.providers.miniappcenter.sandbox.app import create_app
from reconciler.providers.miniappcenter.sandbox.config import SandboxConfig
from reconciler.providers.miniappcenter.sandbox.server import serve
from reconciler.providers.miniappcenter.sandbox.store import SandboxStore

__all__ = ["SandboxConfig", "SandboxStore", "create_app", "serve"]
