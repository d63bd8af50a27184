"""The state in PostgreSQL: one row per managed app, per-app locks, run history.

``--state postgresql://USER@HOST/DB?workspace=NAME`` (or ``RECONCILER_STATE``). A workspace is
what a state file is (one lineage and serial, one endpoint); one database holds many, e.g. one
per CI shard. Credentials come from the URL or libpq's environment (PGPASSWORD, PGPASSFILE,
PGHOST...); the password is never printed (:func:`redact`).

Tables (created and migrated by :func:`ensure_schema`, version in ``reconciler_schema``):

- ``reconciler_workspaces``: lineage, serial, endpoint, marks, other providers' sections whole.
- ``reconciler_resources``: one row per (workspace, provider, kind, natural key), the record as
  JSONB, plus the endpoint: ``UNIQUE (endpoint, provider, kind, key)`` is the claim: an app is
  managed by one workspace per endpoint, so two shards can never both manage it.
- ``reconciler_lock_holders``: who holds which lock (written by the holder, for the message
  of the one that waits).
- ``reconciler_history``: each apply (who, host, when, plan summary, result).

Each recorded write is its own transaction that also bumps the workspace serial (the
database does the journal's job: committed is durable). Locks are session-level advisory locks
(D61): an apply holds its workspace in shared mode and each app it may write exclusively; a
whole-state edit (prune, ``state rm``, migrate) holds the workspace exclusively. They end with
the session, so a killed apply never leaves one behind. Reads run in a REPEATABLE READ READ
ONLY transaction and take no lock: plan and drift never wait for an apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from reconciler.errors import LockError, StateError
from reconciler.state.model import (
    MAC_PROVIDER,
    MAC_ROOT_KIND,
    VERSION_ID_MARK,
    AppRecord,
    LockInfo,
    State,
    _user,
)

if TYPE_CHECKING:
    import psycopg

URL_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_WORKSPACE = "default"
WORKSPACE_PARAM = "workspace"
_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SCHEMA_VERSION = 1
_MIGRATION_LOCK = 0x5EC0_0C11  # serialises schema creation between first runs
_CONNECT_TIMEOUT_S = 10

# Each migration takes the schema from version i to i + 1 (index i). Never edit a released
# one: append the next.
MIGRATIONS: tuple[str, ...] = (
    """
    -- Serials come from one sequence: a write stamps its row, so concurrent writers of one
    -- workspace never queue on its row; the workspace's serial is the highest stamp.
    CREATE SEQUENCE reconciler_serial;
    CREATE TABLE reconciler_workspaces (
        workspace text PRIMARY KEY,
        lineage text NOT NULL,
        serial bigint NOT NULL DEFAULT 0,
        endpoint text,
        marks jsonb NOT NULL DEFAULT '{}'::jsonb,
        providers jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE TABLE reconciler_resources (
        workspace text NOT NULL REFERENCES reconciler_workspaces ON DELETE CASCADE,
        endpoint text NOT NULL,
        provider text NOT NULL,
        kind text NOT NULL,
        key text NOT NULL,
        record jsonb NOT NULL,
        serial bigint NOT NULL,
        PRIMARY KEY (workspace, provider, kind, key),
        CONSTRAINT reconciler_resources_claim UNIQUE (endpoint, provider, kind, key)
    );
    CREATE TABLE reconciler_lock_holders (
        lock_key bigint PRIMARY KEY,
        workspace text NOT NULL,
        resource text NOT NULL,
        who text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        since timestamptz NOT NULL,
        operation text NOT NULL,
        backend_pid integer NOT NULL
    );
    CREATE TABLE reconciler_history (
        id bigserial PRIMARY KEY,
        workspace text NOT NULL,
        operation text NOT NULL,
        who text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        started timestamptz NOT NULL,
        finished timestamptz,
        summary jsonb,
        result text
    );
    CREATE INDEX reconciler_history_by_workspace ON reconciler_history (workspace, id);
    """,
)


def is_database_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password (in the user part or a ``password=`` parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = [
        (k, "***" if k.lower() == "password" else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/"), ""))


def split_url(url: str) -> tuple[str, str]:
    """(the URL libpq gets, the workspace): ``workspace=`` is ours, libpq would refuse it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == WORKSPACE_PARAM]
    workspace = names[-1] if names else os.environ.get("RECONCILER_WORKSPACE", DEFAULT_WORKSPACE)
    if not _WORKSPACE_RE.match(workspace):
        raise StateError(
            f"workspace {workspace[:40]!r} in {redact(url)} is not a valid name (letters,"
            " digits, '.', '_' and '-', up to 100)"
        )
    rest = [(k, v) for k, v in query if k != WORKSPACE_PARAM]
    return urlunsplit(parts._replace(query=urlencode(rest, safe="/"))), workspace


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for a name (stable across processes and hosts)."""
    digest = hashlib.blake2b(f"reconciler:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def app_lock_name(app_id: str) -> str:
    # Not per workspace: two workspaces racing to claim one app serialise on it (D62).
    return f"{MAC_PROVIDER}/{MAC_ROOT_KIND}/{app_id}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PgStateStore:
    """A :class:`~reconciler.state.store.StateStore` in PostgreSQL (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo, self.workspace = split_url(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._loaded: dict[str, str] = {}  # app id -> record JSON as last read or written
        self._loaded_providers: str | None = None
        self._locked_apps: frozenset[str] | None = None  # None: whole workspace (or unlocked)
        self._locked = False
        self._run_id: int | None = None
        self._base: tuple[str, str] | None = None  # (lineage, endpoint) the run loaded
        # Writes come from the event loop's worker threads: one transaction at a time on the
        # one connection (psycopg would interleave two threads' statements in one).
        self._write_lock = threading.Lock()
        self.dirty = False

    def describe(self) -> str:
        return f"{redact(self.url)} (workspace {self.workspace})"

    # --- connection and schema -------------------------------------------------------------

    def _error(self, doing: str, exc: Exception) -> StateError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = urlsplit(self.url).password
        if password:
            text = text.replace(password, "***")
        return StateError(f"PostgreSQL state {self.describe()}: cannot {doing}: {text[:300]}")

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                import psycopg
            except ImportError:
                raise StateError(
                    "a postgresql:// state needs the PostgreSQL driver: pip install"
                    " 'miniapp-reconciler[postgres]' (psycopg 3)"
                ) from None
            try:
                self._conn = psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=_CONNECT_TIMEOUT_S,
                    application_name="reconciler",
                )
            except psycopg.Error as exc:
                raise self._error("connect", exc) from None
            try:
                ensure_schema(self._conn)
            except psycopg.Error as exc:
                self.close()
                raise self._error("create or migrate its tables", exc) from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def _tx(
        self, doing: str, *, snapshot: bool = False, single: bool = False
    ) -> Iterator[psycopg.Cursor[Any]]:
        """A transaction; ``single``: the block runs ONE statement, its own transaction in
        autocommit mode (one round trip instead of three: a recorded write is on the
        apply's path)."""
        import psycopg

        conn = self._connection()
        try:
            with conn.cursor() as cur:
                if single:
                    yield cur
                    return
                if snapshot:
                    # One consistent view, no lock: never waits on an apply.
                    cur.execute("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                else:
                    cur.execute("BEGIN")
                try:
                    yield cur
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
        except psycopg.Error as exc:
            raise self._error(doing, exc) from None

    # --- reading ---------------------------------------------------------------------------

    def exists(self) -> bool:
        with self._tx("read the state", snapshot=True) as cur:
            cur.execute(
                "SELECT 1 FROM reconciler_workspaces WHERE workspace = %s", (self.workspace,)
            )
            return cur.fetchone() is not None

    def _read(self) -> State:
        with self._tx("read the state", snapshot=True) as cur:
            cur.execute(
                "SELECT lineage, greatest(serial, (SELECT max(serial) FROM reconciler_resources r"
                " WHERE r.workspace = w.workspace)), endpoint, marks, providers FROM"
                " reconciler_workspaces w WHERE workspace = %s",
                (self.workspace,),
            )
            row = cur.fetchone()
            cur.execute(
                "SELECT key, record FROM reconciler_resources WHERE workspace = %s AND"
                " provider = %s AND kind = %s ORDER BY key",
                (self.workspace, MAC_PROVIDER, MAC_ROOT_KIND),
            )
            records = {key: record for key, record in cur.fetchall()}
        if row is None:
            state = State()
            others: dict[str, Any] = {}
        else:
            lineage, serial, endpoint, marks, others = row
            data = {
                "format_version": 2,
                "lineage": lineage,
                "serial": serial,
                "providers": {
                    MAC_PROVIDER: {
                        "endpoint": endpoint,
                        "marks": marks,
                        "resources": {MAC_ROOT_KIND: records},
                    },
                    **others,
                },
            }
            try:
                state = State.from_file(data)
            except (ValidationError, ValueError) as exc:
                raise StateError(
                    f"PostgreSQL state {self.describe()} holds an invalid record: {exc}"[:400]
                ) from None
        self._loaded = {k: _dumps(v.model_dump(mode="json")) for k, v in state.apps.items()}
        self._loaded_providers = _dumps(others)
        return state

    def read(self) -> State:
        return self._read()

    def load(self, endpoint: str) -> State:
        state = self._read()
        if state.endpoint is None:
            state.endpoint = endpoint
        elif state.endpoint != endpoint:
            raise StateError(
                f"the state {self.describe()} was made for endpoint {state.endpoint[:200]},"
                f" not {endpoint}; use one workspace per endpoint (?workspace=NAME)"
            )
        if self._locked and self._locked_apps is not None:
            self.refuse_claimed(endpoint, self._locked_apps)
        self._base = (state.lineage, endpoint)
        return state

    def refuse_claimed(self, endpoint: str, apps: Collection[str]) -> None:
        """Refuse ``apps`` (this run may write them) that another workspace manages at this
        endpoint. Under their locks a claimer racing us has either committed its row or not
        begun; under a whole-workspace lock (a prune) the claim's UNIQUE constraint is the
        backstop at the first record."""
        wanted = set(apps)
        with self._tx("read the claims", snapshot=True) as cur:
            cur.execute(
                "SELECT key, workspace FROM reconciler_resources WHERE endpoint = %s AND"
                " provider = %s AND kind = %s AND workspace <> %s ORDER BY key",
                (endpoint, MAC_PROVIDER, MAC_ROOT_KIND, self.workspace),
            )
            claimed = [
                (key, owner)
                for key, owner in cur.fetchall()
                if key in wanted
            ]
        if claimed:
            shown = ", ".join(f"{key} (workspace {owner})" for key, owner in claimed[:10])
            more = f" and {len(claimed) - 10} more" if len(claimed) > 10 else ""
            raise StateError(
                f"refusing to apply: {len(claimed)} mini app(s) this run would manage are"
                f" already managed by another state at {endpoint}: {shown}{more}. This state is"
                f" workspace {self.workspace} in the same database. Two states managing one app"
                " duplicate its locations and versions: take the app out of one shard's"
                " manifests, or forget it there with `reconciler state rm APP --state ...`."
                " Nothing was written"
            )

    # --- writing ---------------------------------------------------------------------------

    def ensure_base(self, state: State) -> None:
        """Create the workspace row (with this state's lineage) before the first write."""
        with self._tx("create the workspace") as cur:
            cur.execute(
                "INSERT INTO reconciler_workspaces (workspace, lineage, serial, endpoint)"
                " VALUES (%s, %s, 0, %s) ON CONFLICT (workspace) DO NOTHING",
                (self.workspace, state.lineage, state.endpoint),
            )
            cur.execute(
                "SELECT lineage FROM reconciler_workspaces WHERE workspace = %s",
                (self.workspace,),
            )
            row = cur.fetchone()
        if row is not None:
            state.lineage = row[0]  # another run of this workspace created it first

    async def record(
        self, app_id: str, record: AppRecord | None, paths: Sequence[tuple[str, ...]] = ()
    ) -> None:
        """One app's new record in its own transaction, durable once this returns. The row is
        the whole app (``paths``, which resources changed, serve the file journal only); the
        round trip runs off the event loop, one at a time on this store's connection."""
        await asyncio.to_thread(self._record_now, app_id, record)

    def _record_now(self, app_id: str, record: AppRecord | None) -> None:
        with self._write_lock:
            self._record_locked(app_id, record)

    def _record_locked(self, app_id: str, record: AppRecord | None) -> None:
        if self._locked_apps is not None and app_id not in self._locked_apps:
            # A bug guard: a write outside the locks taken could lose another run's update.
            raise StateError(f"internal error: {app_id} was recorded without its lock")
        payload = record.model_dump(mode="json") if record is not None else None
        try:
            with self._tx(f"record a completed write of {app_id}", single=True) as cur:
                self._write_app(cur, app_id, payload)
        except _NoWorkspace:
            # The first write of a brand-new state whose caller did not call ensure_base:
            # create the workspace with the lineage the run loaded, then write.
            if self._base is None:
                raise StateError(f"internal error: {app_id} recorded before the load") from None
            lineage, endpoint = self._base
            self.ensure_base(State(lineage=lineage, endpoint=endpoint))
            with self._tx(f"record a completed write of {app_id}", single=True) as cur:
                self._write_app(cur, app_id, payload)
        self.dirty = True

    async def record_resource(
        self, provider: str, kind: str, key: str, record: Mapping[str, Any] | None
    ) -> None:
        """Another provider's completed write in its own transaction, durable once this
        returns. Those sections live whole in the workspace row (``providers``): the row is
        locked, the record set or removed, and written back."""
        await asyncio.to_thread(self._record_resource_now, provider, kind, key, record)

    def _record_resource_now(
        self, provider: str, kind: str, key: str, record: Mapping[str, Any] | None
    ) -> None:
        with self._write_lock:
            try:
                self._write_resource(provider, kind, key, record)
            except _NoWorkspace:
                if self._base is None:
                    raise StateError(f"internal error: {key} recorded before the load") from None
                lineage, endpoint = self._base
                self.ensure_base(State(lineage=lineage, endpoint=endpoint))
                self._write_resource(provider, kind, key, record)
        self.dirty = True

    def _write_resource(
        self, provider: str, kind: str, key: str, record: Mapping[str, Any] | None
    ) -> None:
        with self._tx(f"record a completed write of {provider} {kind} {key!r}") as cur:
            cur.execute(
                "SELECT providers FROM reconciler_workspaces WHERE workspace = %s FOR UPDATE",
                (self.workspace,),
            )
            row = cur.fetchone()
            if row is None:
                raise _NoWorkspace
            sections: dict[str, Any] = dict(row[0] or {})
            section = dict(sections.get(provider) or {})
            resources = dict(section.get("resources") or {})
            records = dict(resources.get(kind) or {})
            if record is None:
                records.pop(key, None)
            else:
                records[key] = dict(record)
            resources[kind] = records
            section["resources"] = resources
            sections[provider] = section
            cur.execute(
                "UPDATE reconciler_workspaces SET providers = %s,"
                " serial = nextval('reconciler_serial') WHERE workspace = %s",
                (_json(sections), self.workspace),
            )

    def _write_app(
        self, cur: psycopg.Cursor[Any], app_id: str, payload: Any, *, stamp: bool = True
    ) -> None:
        """Upsert (or delete) one app's row; ``stamp``: with a new serial (a write), else 0
        (an import, whose serial is the workspace's)."""
        import psycopg

        if payload is None:
            # One statement (see _tx single). A deleted row can carry no stamp: the
            # workspace carries it.
            cur.execute(
                "WITH gone AS (DELETE FROM reconciler_resources WHERE workspace = %s AND"
                " provider = %s AND kind = %s AND key = %s) UPDATE reconciler_workspaces SET"
                " serial = nextval('reconciler_serial') WHERE workspace = %s",
                (self.workspace, MAC_PROVIDER, MAC_ROOT_KIND, app_id, self.workspace),
            )
            self._loaded.pop(app_id, None)
            return
        serial = "nextval('reconciler_serial')" if stamp else "0"
        try:
            cur.execute(
                "INSERT INTO reconciler_resources (workspace, endpoint, provider, kind, key,"
                f" record, serial) SELECT %s, coalesce(endpoint, ''), %s, %s, %s, %s, {serial}"
                " FROM reconciler_workspaces WHERE workspace = %s"
                " ON CONFLICT (workspace, provider, kind, key) DO UPDATE SET"
                " record = EXCLUDED.record, serial = EXCLUDED.serial",
                (self.workspace, MAC_PROVIDER, MAC_ROOT_KIND, app_id, _json(payload),
                 self.workspace),
            )  # fmt: skip
        except psycopg.errors.UniqueViolation:
            raise StateError(
                f"{app_id} is managed by another workspace at the same endpoint; this state"
                f" ({self.describe()}) cannot record it"
            ) from None
        if cur.rowcount == 0:
            raise _NoWorkspace
        self._loaded[app_id] = _dumps(payload)

    def save(self, state: State) -> None:
        """Write what changed since the read (never other runs' apps: no lost update), the
        marks (their maximum), and bump the serial once."""
        others = {name: s.model_dump(mode="json") for name, s in state.providers.items()}
        with self._tx("save the state") as cur:
            cur.execute(
                "INSERT INTO reconciler_workspaces (workspace, lineage, serial, endpoint)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (workspace) DO UPDATE SET"
                " endpoint = coalesce(reconciler_workspaces.endpoint, EXCLUDED.endpoint)",
                (self.workspace, state.lineage, state.serial, state.endpoint),
            )
            for app_id in sorted(set(self._loaded) - set(state.apps)):
                self._write_app(cur, app_id, None)
            for app_id, record in sorted(state.apps.items()):
                payload = record.model_dump(mode="json")
                if self._loaded.get(app_id) != _dumps(payload):
                    self._write_app(cur, app_id, payload)
            if _dumps(others) != self._loaded_providers:
                cur.execute(
                    "UPDATE reconciler_workspaces SET providers = %s WHERE workspace = %s",
                    (_json(others), self.workspace),
                )
            cur.execute(
                "UPDATE reconciler_workspaces SET serial = nextval('reconciler_serial'), marks ="
                " marks ||"
                " jsonb_build_object(%s::text, greatest(coalesce((marks->>%s)::bigint, 0),"
                " %s::bigint)) WHERE workspace = %s RETURNING serial",
                (VERSION_ID_MARK, VERSION_ID_MARK, state.version_id_mark, self.workspace),
            )
            row = cur.fetchone()
        self._loaded_providers = _dumps(others)
        state.serial = int(row[0]) if row else state.serial + 1
        state.read_format = 2
        self.dirty = False

    def import_state(self, state: State) -> None:
        """Write a whole state into an empty workspace, lineage and serial as they are."""
        if state.endpoint is None and state.apps:
            raise StateError("the state to import has apps but no endpoint")
        with self._tx("import the state") as cur:
            cur.execute(
                "SELECT 1 FROM reconciler_workspaces WHERE workspace = %s FOR UPDATE",
                (self.workspace,),
            )
            if cur.fetchone() is not None:
                raise StateError(
                    f"the workspace {self.workspace} already exists in {redact(self.url)};"
                    " migrate into a new workspace (?workspace=NAME)"
                )
            cur.execute(
                "INSERT INTO reconciler_workspaces (workspace, lineage, serial, endpoint, marks,"
                " providers) VALUES (%s, %s, %s, %s, %s, %s)",
                (self.workspace, state.lineage, state.serial, state.endpoint,
                 _json({VERSION_ID_MARK: state.version_id_mark}),
                 _json({n: s.model_dump(mode="json") for n, s in state.providers.items()})),
            )  # fmt: skip
            for app_id, record in sorted(state.apps.items()):
                self._write_app(cur, app_id, record.model_dump(mode="json"), stamp=False)
            # The next write's stamp must be above the imported serial (a saved plan made
            # against it must go stale at the first write).
            cur.execute(
                "SELECT setval('reconciler_serial', greatest((SELECT last_value FROM"
                " reconciler_serial), %s::bigint))",
                (max(state.serial, 1),),
            )

    # --- locks -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, operation: str, *, apps: Collection[str] | None = None, timeout: float = 0.0
    ) -> Iterator[LockInfo]:
        """``apps``: lock those apps (and the workspace shared); None: the whole workspace.
        Waits up to ``timeout`` seconds in all, then fails naming the holder."""
        info = LockInfo(
            id=str(uuid.uuid4()),
            who=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            when=_now().isoformat(timespec="seconds"),
            operation=operation,
        )
        conn = self._connection()
        names = sorted(app_lock_name(a) for a in apps) if apps is not None else []
        deadline = time.monotonic() + timeout
        try:
            # Sorted order: two runs wanting overlapping sets cannot deadlock.
            self._acquire(f"workspace/{self.workspace}", deadline, timeout, shared=apps is not None)
            if timeout <= 0:
                self._try_all(names)  # no waiting: one round trip for all
            for name in names if timeout > 0 else ():
                self._acquire(name, deadline, timeout, shared=False)
            self._write_holders(info, names)
        except BaseException:
            self._release_all()
            raise
        self._locked = True
        self._locked_apps = frozenset(apps) if apps is not None else None
        try:
            yield info
        finally:
            self._locked = False
            self._locked_apps = None
            if not conn.closed:
                self._release_all()
            self.close()

    def _acquire(self, name: str, deadline: float, timeout: float, *, shared: bool) -> None:
        import psycopg

        key = lock_key(name)
        kind = "_shared" if shared else ""
        conn = self._connection()
        try:
            left = deadline - time.monotonic()
            if timeout <= 0 or left <= 0:
                row = conn.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", (key,)).fetchone()
                if row is not None and row[0]:
                    return
            else:
                conn.execute(f"SET lock_timeout = '{max(int(left * 1000), 1)}ms'")
                try:
                    conn.execute(f"SELECT pg_advisory_lock{kind}(%s)", (key,))
                    return
                except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                    pass
                finally:
                    conn.execute("SET lock_timeout = 0")
        except psycopg.Error as exc:
            raise self._error("take a lock", exc) from None
        raise LockError(self._held_message(name, key, timeout))

    def _try_all(self, names: list[str]) -> None:
        """Try every lock at once (never waits, so the order cannot deadlock); name the
        first one held elsewhere."""
        import psycopg

        keys = [lock_key(n) for n in names]
        try:
            rows = self._connection().execute(
                "SELECT k, pg_try_advisory_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,)
            ).fetchall()
        except psycopg.Error as exc:
            raise self._error("take a lock", exc) from None
        got = {key for key, ok in rows if ok}
        for name, key in zip(names, keys, strict=True):
            if key not in got:
                raise LockError(self._held_message(name, key, 0))

    def _held_message(self, name: str, key: int, timeout: float) -> str:
        holder = self._holder(key)
        what = (
            f"the workspace {self.workspace}"
            if name.startswith("workspace/")
            else f"mini app {name.rsplit('/', 1)[-1]}"
        )
        waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
        by = (
            f"held by {holder.who}@{holder.host} (pid {holder.pid}) since {holder.when} for"
            f" '{holder.operation}'"
            if holder
            else "held by another session"
        )
        return (
            f"{what} is locked in the state {self.describe()}{waited}: {by}. The database"
            " releases it when that run ends or its connection drops (no `state unlock`"
            " needed); retry, or wait longer with --lock-timeout SECONDS"
        )

    def _holder(self, key: int) -> LockInfo | None:
        """Who holds ``key``: the holder record written by a session that holds it now."""
        with contextlib.suppress(Exception):
            row = self._connection().execute(
                "SELECT h.who, h.host, h.pid, h.since, h.operation FROM reconciler_lock_holders h"
                " JOIN pg_locks l ON l.pid = h.backend_pid AND l.locktype = 'advisory' AND"
                " l.granted AND l.classid = ((%s::bigint >> 32) & 4294967295)::oid AND"
                " l.objid = (%s::bigint & 4294967295)::oid AND l.objsubid = 1"
                " WHERE h.lock_key = %s",
                (key, key, key),
            ).fetchone()
            if row is not None:
                who, host, pid, since, operation = row
                return LockInfo(
                    id="-", who=who, host=host, pid=pid,
                    when=since.isoformat(timespec="seconds"), operation=operation,
                )  # fmt: skip
        return None

    def _write_holders(self, info: LockInfo, names: list[str]) -> None:
        all_names = [f"workspace/{self.workspace}", *names]
        rows = [
            (lock_key(n), self.workspace, n, info.who, info.host, info.pid, info.when,
             info.operation)
            for n in all_names
        ]  # fmt: skip
        with self._tx("record the lock holder") as cur:
            cur.executemany(
                "INSERT INTO reconciler_lock_holders (lock_key, workspace, resource, who, host,"
                " pid, since, operation, backend_pid) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                " pg_backend_pid()) ON CONFLICT (lock_key) DO UPDATE SET workspace ="
                " EXCLUDED.workspace, resource = EXCLUDED.resource, who = EXCLUDED.who, host ="
                " EXCLUDED.host, pid = EXCLUDED.pid, since = EXCLUDED.since, operation ="
                " EXCLUDED.operation, backend_pid = EXCLUDED.backend_pid",
                rows,
            )

    def _release_all(self) -> None:
        with contextlib.suppress(Exception):
            conn = self._connection()
            conn.execute(
                "DELETE FROM reconciler_lock_holders WHERE backend_pid = pg_backend_pid()"
            )
            conn.execute("SELECT pg_advisory_unlock_all()")

    def unlock(self, lock_id: str) -> LockInfo:
        raise StateError(
            f"the state {self.describe()} has no lock to remove: its locks are held by database"
            " sessions and released by PostgreSQL when the run ends or dies"
        )

    # --- history ---------------------------------------------------------------------------

    def begin_run(self, info: LockInfo) -> None:
        with self._tx("record the run") as cur:
            cur.execute(
                "INSERT INTO reconciler_history (workspace, operation, who, host, pid, started)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (self.workspace, info.operation, info.who, info.host, info.pid, info.when),
            )
            row = cur.fetchone()
        self._run_id = int(row[0]) if row else None

    def finish_run(self, summary: dict[str, Any], result: str) -> None:
        if self._run_id is None:
            return
        with self._tx("record the run's result") as cur:
            cur.execute(
                "UPDATE reconciler_history SET finished = now(), summary = %s, result = %s"
                " WHERE id = %s",
                (_json(summary), result, self._run_id),
            )

    def history(self, limit: int) -> list[dict[str, Any]]:
        with self._tx("read the history", snapshot=True) as cur:
            cur.execute(
                "SELECT id, operation, who, host, pid, started, finished, summary, result FROM"
                " reconciler_history WHERE workspace = %s ORDER BY id DESC LIMIT %s",
                (self.workspace, limit),
            )
            rows = cur.fetchall()
        keys = ("id", "operation", "who", "host", "pid", "started", "finished", "summary",
                "result")  # fmt: skip
        out = []
        for row in reversed(rows):
            entry = dict(zip(keys, row, strict=True))
            for when in ("started", "finished"):
                if entry[when] is not None:
                    entry[when] = entry[when].isoformat(timespec="seconds")
            out.append(entry)
        return out


class _NoWorkspace(Exception):
    """A row written for a workspace that has no row yet (see PgStateStore.record)."""


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create or migrate the tables; refuse a schema newer than this reconciler knows."""
    row = conn.execute("SELECT to_regclass('reconciler_schema') IS NOT NULL").fetchone()
    if row is not None and row[0]:
        found = conn.execute("SELECT max(version) FROM reconciler_schema").fetchone()
        if found is not None and found[0] == SCHEMA_VERSION:
            return  # the common case: no lock, no DDL
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS reconciler_schema (version integer NOT NULL)")
        found = conn.execute("SELECT max(version) FROM reconciler_schema").fetchone()
        version = int(found[0]) if found and found[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database has schema version {version}; this reconciler knows up"
                f" to {SCHEMA_VERSION}. Use a newer reconciler"
            )
        for number in range(version, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[number])
            conn.execute("INSERT INTO reconciler_schema (version) VALUES (%s)", (number + 1,))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _json(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)
