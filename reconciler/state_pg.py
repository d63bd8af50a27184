"""The PostgreSQL state store's former module path, kept for the code and scripts that import
it: the store itself is :mod:`reconciler.state.pg`."""

from reconciler.state.pg import (
    DEFAULT_WORKSPACE,
    MIGRATIONS,
    SCHEMA_VERSION,
    URL_SCHEMES,
    PgStateStore,
    redact,
    split_url,
)

__all__ = [
    "DEFAULT_WORKSPACE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "URL_SCHEMES",
    "PgStateStore",
    "redact",
    "split_url",
]
