"""SQLite persistence for the Akana sandbox: apps, versions, sessions and call counters.

One connection, one lock, one transaction per public method (as the Mini App Center sandbox):
safe to share between the server's event loop and test threads.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.providers.akana.sandbox.errors import bad_request, not_found
from reconciler.sandbox_kit.sqlite import SqliteStore

APP_STATE_ACTIVE = "com.soa.app.state.active"
VERSION_STATE_ACTIVE = "com.soa.appversion.state.active"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    id TEXT PRIMARY KEY,
    business_id TEXT NOT NULL DEFAULT '',  -- '' = the root level
    name TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    picture_id TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL,
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
-- Not UNIQUE: the docs do not say the platform refuses a second app of a Name; whether the
-- sandbox does is its `unique_app_names` assumption, checked in the write's transaction.
CREATE INDEX IF NOT EXISTS apps_by_name ON apps (business_id, name);
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- listing order: the order they were added
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    visibility TEXT NOT NULL,
    website TEXT NOT NULL DEFAULT '',
    environment TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
-- Not UNIQUE either: a version name repeated in one app is refused only under the
-- sandbox's `unique_version_names` assumption, checked in the write's transaction.
CREATE INDEX IF NOT EXISTS versions_by_name ON versions (app_id, name);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    email TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    email: str
    expires_at: float


def new_id(fedmember: str) -> str:
    """An id shaped like the platform's: ``{uuid}.{fedmemberid}``."""
    return f"{uuid.uuid4()}.{fedmember}"


class OldDatabaseError(ValueError):
    """The database file cannot serve what the configuration asks (a user's error)."""


class AkanaSandboxStore(SqliteStore):
    """``unique_app_names``: refuse a second app of the same Name at one level (400);
    ``unique_version_names``: refuse a second version of the same name in one app (400).
    Both are assumptions beyond the docs that a real platform may not make."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        unique_app_names: bool = True,
        unique_version_names: bool = True,
    ) -> None:
        super().__init__(db_path, _SCHEMA, rows=True, foreign_keys=True)
        self.unique_app_names = unique_app_names
        self.unique_version_names = unique_version_names
        for dropped, table, rule, what in (
            (not unique_app_names, "apps", "UNIQUE (business_id, name)", "app names"),
            (not unique_version_names, "versions", "UNIQUE (app_id, name)", "version names"),
        ):
            if dropped and self._rule_in_schema(table, rule):
                self.close()
                raise OldDatabaseError(
                    f"{db_path}: this sandbox database refuses duplicate {what} by its table"
                    " definition (made by an older sandbox); use a new database file"
                )

    def _rule_in_schema(self, table: str, rule: str) -> bool:
        """A database made before the assumption was switchable has the rule in its table."""
        with self._tx() as db:
            row = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        return row is not None and rule in str(row[0])

    def _refuse_duplicate_version(
        self, db: sqlite3.Connection, app_id: str, name: str, version_id: str
    ) -> None:
        if not self.unique_version_names:
            return
        taken = db.execute(
            "SELECT 1 FROM versions WHERE app_id = ? AND name = ? AND id != ?",
            (app_id, name, version_id),
        ).fetchone()
        if taken is not None:
            raise bad_request(f"the app already has a version named {name!r}")

    def _refuse_duplicate_name(
        self, db: sqlite3.Connection, business_id: str, name: str, app_id: str
    ) -> None:
        if not self.unique_app_names:
            return
        taken = db.execute(
            "SELECT 1 FROM apps WHERE business_id = ? AND name = ? AND id != ?",
            (business_id, name, app_id),
        ).fetchone()
        if taken is not None:
            raise bad_request(f"an app named {name!r} already exists")

    # --- counters (what tests assert: how many logins, renewals, logouts) ----------------

    def bump(self, name: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1)"
                " ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (name,),
            )

    def count(self, name: str) -> int:
        with self._tx() as db:
            row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row["value"]) if row else 0

    # --- sessions ----------------------------------------------------------------------

    def open_session(self, session: Session) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO sessions (token, csrf, email, expires_at) VALUES (?, ?, ?, ?)",
                (session.token, session.csrf, session.email, session.expires_at),
            )

    def session(self, token: str) -> Session | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM sessions WHERE token = ?", (token,)).fetchone()
        if row is None:
            return None
        return Session(row["token"], row["csrf"], row["email"], row["expires_at"])

    def replace_session(self, old_token: str, new: Session) -> None:
        """Renewal: the new token replaces the old one (which stops working)."""
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE token = ?", (old_token,))
            db.execute(
                "INSERT INTO sessions (token, csrf, email, expires_at) VALUES (?, ?, ?, ?)",
                (new.token, new.csrf, new.email, new.expires_at),
            )

    def end_session(self, token: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE token = ?", (token,))

    def expire_all_sessions(self) -> None:
        """Test helper: every open session is over (as after a server-side expiry)."""
        with self._tx() as db:
            db.execute("UPDATE sessions SET expires_at = 0")

    # --- apps ----------------------------------------------------------------------------

    def list_apps(self, business_id: str) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM apps WHERE business_id = ? ORDER BY created, rowid", (business_id,)
            ).fetchall()
        return [dict(row) for row in rows]

    def app(self, app_id: str) -> dict[str, Any]:
        with self._tx() as db:
            return self._app(db, app_id)

    @staticmethod
    def _app(db: sqlite3.Connection, app_id: str) -> dict[str, Any]:
        row = db.execute("SELECT * FROM apps WHERE id = ?", (app_id,)).fetchone()
        if row is None:
            raise not_found(f"app {app_id} not found")
        return dict(row)

    def create_app(self, app: dict[str, Any], version: dict[str, Any]) -> None:
        """The app and its first version, together or not at all."""
        with self._tx() as db:
            self._refuse_duplicate_name(db, app["business_id"], app["name"], app["id"])
            db.execute(
                "INSERT INTO apps (id, business_id, name, summary, description, picture_id,"
                " visibility, state, created, updated) VALUES (:id, :business_id, :name,"
                " :summary, :description, :picture_id, :visibility, :state, :created,"
                " :updated)",
                app,
            )
            self._insert_version(db, version)

    def update_app(self, app_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._tx() as db:
            current = self._app(db, app_id)
            merged = {**current, **changes}
            self._refuse_duplicate_name(db, merged["business_id"], merged["name"], app_id)
            db.execute(
                "UPDATE apps SET name = :name, summary = :summary, description ="
                " :description, picture_id = :picture_id, updated = :updated WHERE id = :id",
                merged,
            )
            return self._app(db, app_id)

    def delete_app(self, app_id: str) -> None:
        with self._tx() as db:
            self._app(db, app_id)
            db.execute("DELETE FROM apps WHERE id = ?", (app_id,))  # cascades to versions

    # --- versions ------------------------------------------------------------------------

    def versions(self, app_id: str) -> list[dict[str, Any]]:
        with self._tx() as db:
            self._app(db, app_id)
            rows = db.execute(
                "SELECT * FROM versions WHERE app_id = ? ORDER BY seq", (app_id,)
            ).fetchall()
        return [_version_row(row) for row in rows]

    def version(self, version_id: str) -> dict[str, Any]:
        with self._tx() as db:
            return self._version(db, version_id)

    @staticmethod
    def _version(db: sqlite3.Connection, version_id: str) -> dict[str, Any]:
        row = db.execute("SELECT * FROM versions WHERE id = ?", (version_id,)).fetchone()
        if row is None:
            raise not_found(f"app version {version_id} not found")
        return _version_row(row)

    def add_version(self, version: dict[str, Any]) -> None:
        with self._tx() as db:
            self._app(db, version["app_id"])
            self._insert_version(db, version)

    def _insert_version(self, db: sqlite3.Connection, version: dict[str, Any]) -> None:
        self._refuse_duplicate_version(db, version["app_id"], version["name"], version["id"])
        db.execute(
            "INSERT INTO versions (id, app_id, name, description, tags, visibility, website,"
            " environment, state, created, updated) VALUES (:id, :app_id, :name,"
            " :description, :tags, :visibility, :website, :environment, :state, :created,"
            " :updated)",
            {**version, "tags": json.dumps(version["tags"])},
        )

    def update_version(self, version_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._tx() as db:
            merged = {**self._version(db, version_id), **changes}
            self._refuse_duplicate_version(db, merged["app_id"], merged["name"], version_id)
            db.execute(
                "UPDATE versions SET name = :name, description = :description, tags = :tags,"
                " visibility = :visibility, website = :website, updated = :updated"
                " WHERE id = :id",
                {**merged, "tags": json.dumps(merged["tags"])},
            )
            return self._version(db, version_id)

    def delete_version(self, version_id: str) -> bool:
        """Delete a version; deleting an app's only version deletes the app (as documented).

        True when the app went with it.
        """
        with self._tx() as db:
            version = self._version(db, version_id)
            left = db.execute(
                "SELECT COUNT(*) FROM versions WHERE app_id = ?", (version["app_id"],)
            ).fetchone()[0]
            if left <= 1:
                db.execute("DELETE FROM apps WHERE id = ?", (version["app_id"],))
                return True
            db.execute("DELETE FROM versions WHERE id = ?", (version_id,))
            return False

    def app_ids(self) -> Sequence[str]:
        with self._tx() as db:
            return [row[0] for row in db.execute("SELECT id FROM apps ORDER BY rowid")]


def _version_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["tags"] = json.loads(data["tags"])
    return data
