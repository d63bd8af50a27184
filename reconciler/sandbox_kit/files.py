"""The one rule of an in-process sandbox's database file, for every provider.

A run that writes (``apply``, ``import``) keeps the file: its folder is made and the file is
created if it is missing. A read-only run (``plan``, ``drift``) creates nothing: an existing
file is read as it is, and a missing one is served by an empty in-memory database that ends
with the run. The run's endpoint (shown, and what the state is bound to) names the file
either way, so a plan and the apply after it speak of the same sandbox.
"""

from __future__ import annotations

from pathlib import Path

# What SQLite opens for an empty database that is never written to disk.
IN_MEMORY = Path(":memory:")


def sandbox_database(db: Path, *, keep: bool) -> Path:
    """What the sandbox opens for ``db``: ``db`` itself (its folder made when ``keep``), or
    an in-memory database when the run keeps nothing and ``db`` does not exist."""
    if keep:
        db.parent.mkdir(parents=True, exist_ok=True)
        return db
    return db if db.exists() else IN_MEMORY
