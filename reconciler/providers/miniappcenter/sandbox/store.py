"""SQLite persistence for the sandbox: one connection, one lock, one transaction per call.

Every public method is one transaction, so a request's database work is atomic (a bundle
creates its app, attributes, locations and objects together or not at all). The lock makes the
single connection safe to share between the server's event loop and test threads; calls are
short, so holding it never stalls the server noticeably.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.providers.miniappcenter.sandbox import status as st
from reconciler.providers.miniappcenter.sandbox.errors import (
    ApiError,
    ErrorCode,
    bad_request,
    not_found,
)
from reconciler.providers.miniappcenter.sandbox.validation import (
    LOCATION_COLUMNS,
    MINIAPP_COLUMNS,
    VERSION_COLUMNS,
)

# What a mini app created without organization_id belongs to: the sandbox has one organization.
DEFAULT_ORGANIZATION_ID = "5a9d6c1e-0000-4000-8000-00000000cafe"

SCHEMA_VERSION = 1
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS miniapps (
    id TEXT PRIMARY KEY,
    organization_id TEXT,
    name TEXT NOT NULL,
    description TEXT,
    superapp_id TEXT NOT NULL,
    type TEXT NOT NULL,
    keywords TEXT,
    icon TEXT,
    card TEXT,
    banner TEXT
);
CREATE TABLE IF NOT EXISTS attributes (
    app_id TEXT NOT NULL REFERENCES miniapps(id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app_id, field)
);
-- AUTOINCREMENT: ids are never reused, even after a delete, like a real database sequence.
CREATE TABLE IF NOT EXISTS locations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL REFERENCES miniapps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    geo_point TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS locations_by_app ON locations(app_id);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL REFERENCES miniapps(id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    metadata TEXT,
    integrated_security INTEGER NOT NULL DEFAULT 0,
    main_name TEXT NOT NULL,
    main_type TEXT NOT NULL,
    service_url TEXT,
    status TEXT NOT NULL DEFAULT '{st.PENDING}'
        CHECK (status IN ({", ".join(f"'{s}'" for s in st.STATUSES)}))
);
-- Not UNIQUE: the docs do not say a second version of a code is refused; whether the
-- sandbox refuses it is its `unique_version_codes` assumption, checked in the write.
CREATE INDEX IF NOT EXISTS versions_by_code ON versions(app_id, code);
CREATE TABLE IF NOT EXISTS compatibilities (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    superapp_version INTEGER NOT NULL,
    PRIMARY KEY (version_id, superapp_version)
);
-- Uploaded files (gxobject and files inside bundles); they outlive the apps that use them.
CREATE TABLE IF NOT EXISTS objects (
    hex TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    data BLOB NOT NULL
);
PRAGMA user_version = {SCHEMA_VERSION};
"""


_ADD_COMPATIBILITY = (
    "INSERT OR IGNORE INTO compatibilities (version_id, superapp_version) VALUES (?, ?)"
)


@dataclass(frozen=True)
class StoredObject:
    hex: str
    filename: str
    data: bytes


class OldDatabaseError(ValueError):
    """The database file cannot serve what the configuration asks (a user's error)."""


class SandboxStore:
    """The sandbox database. Raises :class:`ApiError` for unknown or conflicting resources."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        unique_version_codes: bool = True,
        refuse_unknown_fields: bool = True,
        review_flow: bool = True,
    ) -> None:
        """Assumptions beyond the docs that a real server may not make:
        ``unique_version_codes``: refuse a second version of the same code in an app (400);
        ``refuse_unknown_fields``: refuse a JSON body's unknown fields (400), else ignore them
        and list their names in ``ignored_fields`` (what a test checks stays empty);
        ``review_flow``: refuse a review step from the wrong status (400), else a step sets
        its status from any status."""
        self.unique_version_codes = unique_version_codes
        self.refuse_unknown_fields = refuse_unknown_fields
        self.review_flow = review_flow
        self.ignored_fields: list[str] = []
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: transactions are explicit (BEGIN ... COMMIT) in _tx.
        self._conn = sqlite3.connect(
            self.db_path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash can lose the last
        # commits, which is fine for a sandbox and avoids an fsync per request.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._conn.executescript(_SCHEMA)
            table = self._conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'versions'"
            ).fetchone()
        if not unique_version_codes and "UNIQUE (app_id, code)" in str(table[0]):
            self.close()
            raise OldDatabaseError(
                f"{db_path}: this sandbox database refuses duplicate version codes by its"
                " table definition (made by an older sandbox); use a new database file"
            )

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SandboxStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE takes the write lock up front, so a read-then-write (duplicate checks,
            # next free version code) cannot race another process on the same file.
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- helpers (called inside a transaction) -----------------------------------------------

    @staticmethod
    def _require_app(conn: sqlite3.Connection, app_id: str) -> None:
        if conn.execute("SELECT 1 FROM miniapps WHERE id = ?", (app_id,)).fetchone() is None:
            raise not_found(ErrorCode.APP_NOT_FOUND, f"mini app {app_id!r} not found")

    def _require_version(
        self, conn: sqlite3.Connection, app_id: str, version_id: int
    ) -> sqlite3.Row:
        self._require_app(conn, app_id)
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM versions WHERE id = ? AND app_id = ?", (version_id, app_id)
        ).fetchone()
        if row is None:
            raise not_found(
                ErrorCode.VERSION_NOT_FOUND,
                f"version {version_id} of mini app {app_id!r} not found",
            )
        return row

    @staticmethod
    def _update(
        conn: sqlite3.Connection,
        table: str,
        allowed: Sequence[str],
        values: Mapping[str, Any],
        where: str,
        params: Sequence[Any],
    ) -> None:
        # Column names come from the validation tables, never from the request.
        columns = [c for c in values if c in allowed]
        if len(columns) != len(values):
            raise ValueError(
                f"unexpected columns for {table}: {sorted(set(values) - set(allowed))}"
            )
        if not columns:
            return
        assignments = ", ".join(f"{c} = ?" for c in columns)
        conn.execute(
            f"UPDATE {table} SET {assignments} WHERE {where}",
            [values[c] for c in columns] + list(params),
        )

    @staticmethod
    def _put_objects(conn: sqlite3.Connection, objects: Sequence[StoredObject]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO objects (hex, filename, data) VALUES (?, ?, ?)",
            [(o.hex, o.filename, o.data) for o in objects],
        )

    # --- mini apps ---------------------------------------------------------------------------

    def create_miniapp(
        self,
        values: Mapping[str, Any],
        *,
        attributes: Sequence[tuple[str, str]] = (),
        locations: Sequence[Mapping[str, Any]] = (),
        objects: Sequence[StoredObject] = (),
    ) -> None:
        row = {c: values.get(c) for c in MINIAPP_COLUMNS}
        row["organization_id"] = row["organization_id"] or DEFAULT_ORGANIZATION_ID
        app_id = str(row["id"])
        with self._tx() as conn:
            exists = conn.execute("SELECT 1 FROM miniapps WHERE id = ?", (row["id"],)).fetchone()
            if exists is not None:
                raise bad_request(
                    ErrorCode.DUPLICATE_APP_ID, f"mini app {row['id']!r} already exists"
                )
            self._put_objects(conn, objects)
            conn.execute(
                f"INSERT INTO miniapps ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            for field, value in attributes:
                self._set_attribute(conn, app_id, field, value)
            for location in locations:
                self._insert_location(conn, app_id, location)

    def get_miniapp(self, app_id: str) -> dict[str, Any]:
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT * FROM miniapps WHERE id = ?", (app_id,)).fetchone()
            if row is None:
                raise not_found(ErrorCode.APP_NOT_FOUND, f"mini app {app_id!r} not found")
            attributes = conn.execute(
                "SELECT field, value FROM attributes WHERE app_id = ? ORDER BY rowid", (app_id,)
            ).fetchall()
        app = dict(row)
        app["additional_attributes"] = [
            {"field": a["field"], "value": a["value"]} for a in attributes
        ]
        return app

    def update_miniapp(self, app_id: str, values: Mapping[str, Any]) -> None:
        with self._tx() as conn:
            self._require_app(conn, app_id)
            self._update(conn, "miniapps", MINIAPP_COLUMNS, values, "id = ?", [app_id])

    def delete_miniapp(self, app_id: str) -> None:
        with self._tx() as conn:
            self._require_app(conn, app_id)
            # ON DELETE CASCADE removes attributes, locations, versions and compatibilities.
            conn.execute("DELETE FROM miniapps WHERE id = ?", (app_id,))

    # --- attributes --------------------------------------------------------------------------

    @staticmethod
    def _set_attribute(conn: sqlite3.Connection, app_id: str, field: str, value: str) -> None:
        conn.execute(
            "INSERT INTO attributes (app_id, field, value) VALUES (?, ?, ?)"
            " ON CONFLICT (app_id, field) DO UPDATE SET value = excluded.value",
            (app_id, field, value),
        )

    def set_attribute(self, app_id: str, field: str, value: str) -> None:
        with self._tx() as conn:
            self._require_app(conn, app_id)
            self._set_attribute(conn, app_id, field, value)

    def delete_attribute(self, app_id: str, field: str) -> None:
        with self._tx() as conn:
            self._require_app(conn, app_id)
            deleted = conn.execute(
                "DELETE FROM attributes WHERE app_id = ? AND field = ?", (app_id, field)
            ).rowcount
            if deleted == 0:
                raise not_found(
                    ErrorCode.ATTRIBUTE_NOT_FOUND,
                    f"attribute {field!r} is not set on mini app {app_id!r}",
                )

    # --- locations ---------------------------------------------------------------------------

    @staticmethod
    def _insert_location(conn: sqlite3.Connection, app_id: str, values: Mapping[str, Any]) -> int:
        cursor = conn.execute(
            "INSERT INTO locations (app_id, name, geo_point) VALUES (?, ?, ?)",
            (app_id, values["name"], values["geo_point"]),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def list_locations(self, app_id: str) -> list[dict[str, Any]]:
        with self._tx(write=False) as conn:
            self._require_app(conn, app_id)
            rows = conn.execute(
                "SELECT id, name, geo_point FROM locations WHERE app_id = ? ORDER BY id", (app_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def create_location(self, app_id: str, values: Mapping[str, Any]) -> int:
        with self._tx() as conn:
            self._require_app(conn, app_id)
            return self._insert_location(conn, app_id, values)

    def _require_location(self, conn: sqlite3.Connection, app_id: str, location_id: int) -> None:
        self._require_app(conn, app_id)
        row = conn.execute(
            "SELECT 1 FROM locations WHERE id = ? AND app_id = ?", (location_id, app_id)
        ).fetchone()
        if row is None:
            raise not_found(
                ErrorCode.LOCATION_NOT_FOUND,
                f"location {location_id} of mini app {app_id!r} not found",
            )

    def update_location(self, app_id: str, location_id: int, values: Mapping[str, Any]) -> None:
        with self._tx() as conn:
            self._require_location(conn, app_id, location_id)
            self._update(conn, "locations", LOCATION_COLUMNS, values, "id = ?", [location_id])

    def delete_location(self, app_id: str, location_id: int) -> None:
        with self._tx() as conn:
            self._require_location(conn, app_id, location_id)
            conn.execute("DELETE FROM locations WHERE id = ?", (location_id,))

    # --- versions ----------------------------------------------------------------------------

    def create_version(
        self,
        app_id: str,
        values: Mapping[str, Any],
        *,
        compatibilities: Sequence[int] = (),
        status: str = st.PENDING,
        objects: Sequence[StoredObject] = (),
    ) -> tuple[int, str]:
        """Insert a version; returns (id, code), assigning the next free numeric code if none."""
        if status not in st.STATUSES:
            raise ValueError(f"unknown status {status!r}")
        row = {c: values.get(c) for c in VERSION_COLUMNS}
        row["integrated_security"] = bool(row["integrated_security"])
        with self._tx() as conn:
            self._require_app(conn, app_id)
            codes = {
                r["code"]
                for r in conn.execute("SELECT code FROM versions WHERE app_id = ?", (app_id,))
            }
            if row["code"] is None:
                n = 1
                while str(n) in codes:
                    n += 1
                row["code"] = str(n)
            elif row["code"] in codes and self.unique_version_codes:
                raise bad_request(
                    ErrorCode.DUPLICATE_VERSION_CODE,
                    f"mini app {app_id!r} already has a version with code {row['code']!r}",
                )
            self._put_objects(conn, objects)
            columns = ["app_id", *row, "status"]
            cursor = conn.execute(
                f"INSERT INTO versions ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})",
                [app_id, *row.values(), status],
            )
            version_id = cursor.lastrowid
            assert version_id is not None
            conn.executemany(
                _ADD_COMPATIBILITY,
                [(version_id, v) for v in compatibilities],
            )
        return version_id, str(row["code"])

    def get_version(self, app_id: str, version_id: int) -> dict[str, Any]:
        with self._tx(write=False) as conn:
            row = self._require_version(conn, app_id, version_id)
        version = {c: row[c] for c in ("id", *VERSION_COLUMNS)}
        version["integrated_security"] = bool(version["integrated_security"])
        return version

    def update_version(self, app_id: str, version_id: int, values: Mapping[str, Any]) -> None:
        with self._tx() as conn:
            self._require_version(conn, app_id, version_id)
            self._update(conn, "versions", VERSION_COLUMNS, values, "id = ?", [version_id])

    def step_version(self, app_id: str, version_id: int, step: str) -> str:
        """Apply a review step; returns the new status, or 400 naming status and step."""
        with self._tx() as conn:
            current = str(self._require_version(conn, app_id, version_id)["status"])
            new = st.next_status(current, step) if self.review_flow else st.STEP_TARGETS[step]
            if new is None:
                allowed = ", ".join(st.allowed_steps(current)) or "none"
                raise ApiError.one(
                    400,
                    ErrorCode.INVALID_STATUS_STEP,
                    f"cannot apply step {step!r} to version {version_id}: its status is"
                    f" {current!r} (allowed steps: {allowed})",
                )
            conn.execute("UPDATE versions SET status = ? WHERE id = ?", (new, version_id))
        return new

    def add_compatibility(self, app_id: str, version_id: int, superapp_version: int) -> None:
        with self._tx() as conn:
            self._require_version(conn, app_id, version_id)
            conn.execute(
                _ADD_COMPATIBILITY,
                (version_id, superapp_version),
            )

    def remove_compatibility(self, app_id: str, version_id: int, superapp_version: int) -> None:
        with self._tx() as conn:
            self._require_version(conn, app_id, version_id)
            conn.execute(
                "DELETE FROM compatibilities WHERE version_id = ? AND superapp_version = ?",
                (version_id, superapp_version),
            )

    # --- uploaded objects --------------------------------------------------------------------

    def put_object(self, obj: StoredObject) -> None:
        with self._tx() as conn:
            self._put_objects(conn, [obj])

    def get_object(self, hex_id: str) -> StoredObject | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT hex, filename, data FROM objects WHERE hex = ?", (hex_id,)
            ).fetchone()
        if row is None:
            return None
        return StoredObject(row["hex"], row["filename"], bytes(row["data"]))

    # --- inspection (what the API cannot show; for tests) ------------------------------------

    def version_status(self, app_id: str, version_id: int) -> str:
        with self._tx(write=False) as conn:
            return str(self._require_version(conn, app_id, version_id)["status"])

    def compatibilities(self, app_id: str, version_id: int) -> set[int]:
        with self._tx(write=False) as conn:
            self._require_version(conn, app_id, version_id)
            rows = conn.execute(
                "SELECT superapp_version FROM compatibilities WHERE version_id = ?", (version_id,)
            ).fetchall()
        return {int(r[0]) for r in rows}

    def version_id(self, app_id: str, code: str) -> int:
        """The id of an app's version by code (an uploaded bundle's answer has no body)."""
        with self._tx(write=False) as conn:
            self._require_app(conn, app_id)
            row = conn.execute(
                # The newest of that code (the one just uploaded, where codes may repeat).
                "SELECT id FROM versions WHERE app_id = ? AND code = ? ORDER BY id DESC",
                (app_id, code),
            ).fetchone()
        if row is None:
            raise not_found(ErrorCode.VERSION_NOT_FOUND, f"no version {code!r} in {app_id!r}")
        return int(row[0])

    def count_apps(self) -> int:
        with self._tx(write=False) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM miniapps").fetchone()[0])

    def count_objects(self) -> int:
        with self._tx(write=False) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0])

    def count_versions(self, app_id: str) -> int:
        with self._tx(write=False) as conn:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM versions WHERE app_id = ?", (app_id,)
                ).fetchone()[0]
            )

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, in a stable order: "nothing changed" is one comparison."""
        tables = ("miniapps", "attributes", "locations", "versions", "compatibilities", "objects")
        with self._tx(write=False) as conn:
            return {
                # Table names come from the tuple above, never from a request.
                table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
                for table in tables
            }
