"""Defaults that `--help` shows, in a module that imports nothing: the CLI imports it at
start-up, before any command runs (D45). The modules that use them re-export them."""

from __future__ import annotations

# Version ids read, at most, by one probe in one run (`--probe-window N`): see recover.py.
DEFAULT_PROBE_WINDOW = 256

# The embedded sandbox's SQLite file (`--sandbox-db`), relative to the working directory.
DEFAULT_SANDBOX_DB = ".reconciler/sandbox.db"

# The Mini App Center provider's name (`import --provider`'s default).
MAC_PROVIDER = "miniappcenter"

# The variable `--sandbox-db` (and `sandbox serve --db`) falls back to.
SANDBOX_DB_ENV = "MAC_SANDBOX_DB"
