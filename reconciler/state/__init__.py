"""The state: what this tool last applied, per provider and endpoint.

- :mod:`reconciler.state.model`: the records and the state itself (shared vocabulary);
- :mod:`reconciler.state.store`: the :class:`StateStore` protocol and the choice of a store;
- :mod:`reconciler.state.file`: the JSON file with its journal and lock file;
- :mod:`reconciler.state.pg`: PostgreSQL (imported only for a ``postgresql://`` state).

The stores build on the model and never on each other (a layers contract in pyproject.toml
keeps it so). The names below are what the rest of the code imports from
``reconciler.state``.
"""

from reconciler.state.file import FileStateStore
from reconciler.state.model import (
    DEFAULT_STATE_DIR,
    EXISTS,
    MAC_PROVIDER,
    MAC_ROOT_KIND,
    MAX_JSON_DEPTH,
    MAX_KEY_CHARS,
    MAX_LOCK_BYTES,
    MAX_STATE_BYTES,
    READABLE_FORMATS,
    REVIEW_STATUSES,
    STATE_FORMAT_VERSION,
    UNKNOWN,
    VERSION_ID_MARK,
    AppRecord,
    JournalPath,
    LocationRecord,
    LockInfo,
    ObjectRef,
    ProviderState,
    State,
    VersionRecord,
    mac_records,
)
from reconciler.state.store import StateStore, default_state_path, open_state_store

__all__ = [
    "DEFAULT_STATE_DIR",
    "EXISTS",
    "MAC_PROVIDER",
    "MAC_ROOT_KIND",
    "MAX_JSON_DEPTH",
    "MAX_KEY_CHARS",
    "MAX_LOCK_BYTES",
    "MAX_STATE_BYTES",
    "READABLE_FORMATS",
    "REVIEW_STATUSES",
    "STATE_FORMAT_VERSION",
    "UNKNOWN",
    "VERSION_ID_MARK",
    "AppRecord",
    "FileStateStore",
    "JournalPath",
    "LocationRecord",
    "LockInfo",
    "ObjectRef",
    "ProviderState",
    "State",
    "StateStore",
    "VersionRecord",
    "default_state_path",
    "mac_records",
    "open_state_store",
]
