"""A local Akana API Platform (apps and app versions, session login), persisted in SQLite.

Self-contained like the Mini App Center sandbox: nothing here imports the Akana client, so
the client is tested against an independent implementation of the API.
"""

from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.providers.akana.sandbox.config import AkanaSandboxConfig
from reconciler.providers.akana.sandbox.inprocess import InProcessAkana, in_process_akana
from reconciler.providers.akana.sandbox.server import (
    akana_base_url,
    make_akana_server,
    serve_akana,
)
from reconciler.providers.akana.sandbox.store import AkanaSandboxStore

__all__ = [
    "AkanaSandboxConfig",
    "AkanaSandboxStore",
    "InProcessAkana",
    "akana_base_url",
    "create_akana_app",
    "in_process_akana",
    "make_akana_server",
    "serve_akana",
]
