"""A faithful local GeneXus Mini App Center (the "sandbox"), persisted in SQLite.

Self-contained on purpose: nothing here imports the rest of ``reconciler``, so the reconciler
is tested against an independent implementation of the API rather than against itself.
"""

from reconciler.sandbox.app import create_app
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.server import serve
from reconciler.sandbox.store import SandboxStore

__all__ = ["SandboxConfig", "SandboxStore", "create_app", "serve"]
