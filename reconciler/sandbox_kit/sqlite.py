"""One SQLite database behind a sandbox: one connection shared by the server's threads, and
explicit write transactions (``BEGIN IMMEDIATE``) under one lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqliteStore:
    def __init__(
        self, path: str | Path, schema: str, *, rows: bool = False, foreign_keys: bool = False
    ) -> None:
        self._lock = threading.Lock()
        # isolation_level=None: transactions are explicit, in _tx.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # WAL with synchronous=NORMAL, as the Mini App Center sandbox: a commit survives the
        # server process crashing, only an OS crash can lose the last ones (fine for a
        # sandbox), and no commit waits for an fsync. With the default rollback journal every
        # write synced the disk on the server's one thread: ~10 ms each, so a fleet's apply
        # queued behind it (bench/akana_fleet.py).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        if rows:
            self._db.row_factory = sqlite3.Row
        if foreign_keys:
            self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(schema)  # commits on its own: outside any transaction

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
