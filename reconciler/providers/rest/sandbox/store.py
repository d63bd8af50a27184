"""SQLite persistence for the tenant sandbox: schemas (tenants), objects, token blacklist.

One connection and one lock, one transaction per call (as the Mini App Center sandbox).
Each tenant schema starts as a copy of ``public`` the first time its Api-Key is used, as the
tenant API's docs describe ("a complete copy of the public DB"). Ids come from a sequence per
schema and collection and are never reused, like a database sequence; a ``uuid`` collection's
ids are random UUIDs (text in the same column: SQLite keeps a value's own type).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.providers.rest.sandbox.collections import COLLECTIONS, Collection
from reconciler.sandbox_kit.sqlite import SqliteStore

PUBLIC = "public"
ObjectId = int | str

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schemas (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS sequences (
    schema TEXT NOT NULL, collection TEXT NOT NULL, last_id INTEGER NOT NULL,
    PRIMARY KEY (schema, collection)
);
CREATE TABLE IF NOT EXISTS objects (
    schema TEXT NOT NULL,
    collection TEXT NOT NULL,
    id INTEGER NOT NULL,
    natural_key TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (schema, collection, id),
    UNIQUE (schema, collection, natural_key)
);
CREATE TABLE IF NOT EXISTS blacklist (jti TEXT PRIMARY KEY);
"""

# What every schema starts with (the public data each tenant receives a copy of).
_SEED: tuple[tuple[str, dict[str, Any]], ...] = (
    ("categories", {"slug": "general", "name": "General", "description": ""}),
)


class Conflict(Exception):
    """The natural key is taken in this schema."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class TenantStore(SqliteStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM schemas WHERE name = ?", (PUBLIC,)).fetchone() is None:
                db.execute("INSERT INTO schemas VALUES (?)", (PUBLIC,))
                for collection, data in _SEED:
                    self._insert(db, PUBLIC, COLLECTIONS[collection], data)

    # --- schemas -----------------------------------------------------------------------

    def ensure_schema(self, name: str) -> None:
        """Create tenant ``name`` as a copy of public, once."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM schemas WHERE name = ?", (name,)).fetchone():
                return
            db.execute("INSERT INTO schemas VALUES (?)", (name,))
            db.execute(
                "INSERT INTO objects SELECT ?, collection, id, natural_key, data, created_at,"
                " updated_at FROM objects WHERE schema = ?",
                (name, PUBLIC),
            )
            db.execute(
                "INSERT INTO sequences SELECT ?, collection, last_id FROM sequences"
                " WHERE schema = ?",
                (name, PUBLIC),
            )

    # --- objects -----------------------------------------------------------------------

    @staticmethod
    def _row(row: tuple[Any, ...]) -> dict[str, Any]:
        object_id, data, created_at, updated_at = row
        return {
            "id": object_id,
            **json.loads(data),
            "created_at": created_at,
            "updated_at": updated_at,
        }

    def count(self, schema: str, collection: Collection) -> int:
        with self._tx() as db:
            row = db.execute(
                "SELECT count(*) FROM objects WHERE schema = ? AND collection = ?",
                (schema, collection.name),
            ).fetchone()
        return int(row[0])

    def page(
        self, schema: str, collection: Collection, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, data, created_at, updated_at FROM objects"
                " WHERE schema = ? AND collection = ? ORDER BY id LIMIT ? OFFSET ?",
                (schema, collection.name, limit, offset),
            ).fetchall()
        return [self._row(row) for row in rows]

    def get(
        self, schema: str, collection: Collection, object_id: ObjectId
    ) -> dict[str, Any] | None:
        with self._tx() as db:
            row = db.execute(
                "SELECT id, data, created_at, updated_at FROM objects"
                " WHERE schema = ? AND collection = ? AND id = ?",
                (schema, collection.name, object_id),
            ).fetchone()
        return None if row is None else self._row(row)

    def _insert(
        self, db: sqlite3.Connection, schema: str, collection: Collection, data: dict[str, Any]
    ) -> ObjectId:
        object_id: ObjectId
        if collection.id_kind == "uuid":
            object_id = str(uuid.uuid4())
        else:
            row = db.execute(
                "SELECT last_id FROM sequences WHERE schema = ? AND collection = ?",
                (schema, collection.name),
            ).fetchone()
            object_id = (row[0] if row else 0) + 1
            db.execute(
                "INSERT OR REPLACE INTO sequences VALUES (?, ?, ?)",
                (schema, collection.name, object_id),
            )
        now = _now()
        try:
            db.execute(
                "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    schema,
                    collection.name,
                    object_id,
                    data[collection.natural_key],
                    json.dumps(data),
                    now,
                    now,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(collection.natural_key) from exc
        return object_id

    def create(self, schema: str, collection: Collection, data: dict[str, Any]) -> ObjectId:
        with self._tx() as db:
            return self._insert(db, schema, collection, data)

    def replace(
        self, schema: str, collection: Collection, object_id: ObjectId, data: dict[str, Any]
    ) -> bool:
        """Store ``data`` as the object's fields; False when there is no such object."""
        with self._tx() as db:
            try:
                cursor = db.execute(
                    "UPDATE objects SET data = ?, natural_key = ?, updated_at = ?"
                    " WHERE schema = ? AND collection = ? AND id = ?",
                    (
                        json.dumps(data),
                        data[collection.natural_key],
                        _now(),
                        schema,
                        collection.name,
                        object_id,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(collection.natural_key) from exc
            return cursor.rowcount > 0

    def delete(self, schema: str, collection: Collection, object_id: ObjectId) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM objects WHERE schema = ? AND collection = ? AND id = ?",
                (schema, collection.name, object_id),
            )
            return cursor.rowcount > 0

    # --- tokens ------------------------------------------------------------------------

    def blacklist(self, jti: str) -> bool:
        """Blacklist ``jti``; False when it already was (a refresh token used twice)."""
        with self._tx() as db:
            cursor = db.execute("INSERT OR IGNORE INTO blacklist VALUES (?)", (jti,))
            return cursor.rowcount > 0

    def is_blacklisted(self, jti: str) -> bool:
        with self._tx() as db:
            return (
                db.execute("SELECT 1 FROM blacklist WHERE jti = ?", (jti,)).fetchone() is not None
            )
