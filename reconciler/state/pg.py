"""The state in PostgreSQL: one row per managed app, per-app leases, run history.

``--state postgresql://USER@HOST/DB?workspace=NAME`` (or ``RECONCILER_STATE``). A workspace is
what a state file is (one lineage and serial, one endpoint); one database holds many, e.g. one
per CI shard. Credentials come from the URL or libpq's environment (PGPASSWORD, PGPASSFILE,
PGHOST...); the password is never printed (:func:`redact`).

Tables (created and migrated by :func:`ensure_schema`, version in ``reconciler_schema``):

- ``reconciler_workspaces``: lineage, serial, endpoint, marks, other providers' sections whole.
- ``reconciler_resources``: one row per (workspace, provider, kind, natural key), the record as
  JSONB, plus the endpoint: ``UNIQUE (endpoint, provider, kind, key)`` is the claim: an app is
  managed by one workspace per endpoint, so two shards can never both manage it.
- ``reconciler_lock_holders``: no longer written (the session locks' holders, schema 1).
- ``reconciler_leases`` (schema 2): who holds which lease, with a token and an expiry.
- ``reconciler_history``: each apply (who, host, when, plan summary, result).

Each recorded write is its own transaction that also bumps the workspace serial (the
database does the journal's job: committed is durable). Writes are fenced by LEASES (rows,
so a server restart cannot drop them as it drops session locks): an apply leases each app it
may write and its workspace shared; a whole-state edit (prune, ``state rm``, migrate) leases
the workspace exclusively. The lease is renewed in the background and by each recorded
write, whose transaction commits only if this run's token still holds the app's lease; an
API write starts only while the lease is known to outlast it. A killed run's lease expires
(``RECONCILER_PG_LEASE_SECONDS``) and is then taken over, naming the holder. A run cut off
from the database retries while its lease lasts, then stops writing. Reads run in a
REPEATABLE READ READ ONLY transaction and take no lease: plan and drift never wait for an
apply.
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
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
    _printable,
    _user,
)

if TYPE_CHECKING:
    import psycopg

URL_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_WORKSPACE = "default"
WORKSPACE_PARAM = "workspace"
_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SCHEMA_VERSION = 2
_MIGRATION_LOCK = 0x5EC0_0C11  # serialises schema creation between first runs
_CONNECT_TIMEOUT_S = 10
_LEASE_LOCK = 0x5EC0_1EA5  # serialises attempts to take leases (a transaction-level lock)
LEASE_ENV = "RECONCILER_PG_LEASE_SECONDS"
DEFAULT_LEASE_S = 20.0
_POLL_S = 0.5  # how often a waiting run tries again
_EXPIRED = "its lease expired: it stopped renewing it (killed, or cut off from the database)"

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
    """
    -- Leases (replacing session advisory locks, which a server restart drops silently): a
    -- row per (name, holder token), kept across restarts, renewed while the run lives, and
    -- checked in the transaction of each recorded write.
    CREATE TABLE reconciler_leases (
        name text NOT NULL,
        token text NOT NULL,
        workspace text NOT NULL,
        mode text NOT NULL CHECK (mode IN ('shared', 'exclusive')),
        who text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        since timestamptz NOT NULL,
        operation text NOT NULL,
        expires timestamptz NOT NULL,
        PRIMARY KEY (name, token)
    );
    CREATE INDEX reconciler_leases_by_token ON reconciler_leases (token);
    CREATE INDEX reconciler_leases_by_workspace ON reconciler_leases (workspace);
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
        self._lease: _Lease | None = None
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

    def _connection(self, doing: str = "connect") -> psycopg.Connection[Any]:
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
                what = doing if doing == "connect" else f"{doing}: cannot connect"
                raise _StoreDown(str(self._error(what, exc))) from None
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

        conn = self._connection(doing)
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
        except psycopg.OperationalError as exc:
            # The server restarted or cannot be reached: the caller may try again.
            self.close()
            raise _StoreDown(str(self._error(doing, exc))) from None
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
        names = self._fence_names(app_id)
        doing = f"record a completed write of {app_id}"

        def attempt() -> None:
            try:
                with self._tx(doing) as cur:
                    self._fence(cur, names)
                    self._write_app(cur, app_id, payload)
            except _NoWorkspace:
                # The first write of a brand-new state whose caller did not call
                # ensure_base: create the workspace with the lineage the run loaded.
                if self._base is None:
                    raise StateError(f"internal error: {app_id} recorded before the load") from None
                lineage, endpoint = self._base
                self.ensure_base(State(lineage=lineage, endpoint=endpoint))
                with self._tx(doing) as cur:
                    self._fence(cur, names)
                    self._write_app(cur, app_id, payload)

        try:
            self._retrying(attempt)
        except _LeaseLost as exc:
            raise StateError(f"{exc}: the completed write of {app_id} was NOT recorded") from None
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
        def attempt() -> None:
            try:
                self._write_resource(provider, kind, key, record)
            except _NoWorkspace:
                if self._base is None:
                    raise StateError(f"internal error: {key} recorded before the load") from None
                lineage, endpoint = self._base
                self.ensure_base(State(lineage=lineage, endpoint=endpoint))
                self._write_resource(provider, kind, key, record)

        with self._write_lock:
            try:
                self._retrying(attempt)
            except _LeaseLost as exc:
                raise StateError(
                    f"{exc}: the completed write of {provider} {kind} {key!r} was NOT recorded"
                ) from None
        self.dirty = True

    def _write_resource(
        self, provider: str, kind: str, key: str, record: Mapping[str, Any] | None
    ) -> None:
        with self._tx(f"record a completed write of {provider} {kind} {key!r}") as cur:
            self._fence(cur, self._fence_names(None))
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
        rows: list[Any] = []

        def attempt() -> None:
            rows.clear()
            loaded = dict(self._loaded)
            try:
                write()
            except BaseException:
                self._loaded = loaded  # rolled back: the next attempt writes them again
                raise

        def write() -> None:
            with self._tx("save the state") as cur:
                self._fence(cur, self._fence_names(None))
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
                    "UPDATE reconciler_workspaces SET serial = nextval('reconciler_serial'),"
                    " marks = marks ||"
                    " jsonb_build_object(%s::text, greatest(coalesce((marks->>%s)::bigint, 0),"
                    " %s::bigint)) WHERE workspace = %s RETURNING serial",
                    (VERSION_ID_MARK, VERSION_ID_MARK, state.version_id_mark, self.workspace),
                )
                rows.append(cur.fetchone())

        try:
            self._retrying(attempt)
        except _LeaseLost as exc:
            raise StateError(f"{exc}: the state was NOT saved") from None
        row = rows[-1] if rows else None
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

    # --- leases ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, operation: str, *, apps: Collection[str] | None = None, timeout: float = 0.0
    ) -> Iterator[LockInfo]:
        """``apps``: lease those apps (and the workspace shared); None: the whole workspace.
        Waits up to ``timeout`` seconds in all (riding out a database restart), then fails
        naming the holder. The lease is renewed in the background and by every write."""
        token = str(uuid.uuid4())
        info = LockInfo(
            id=token,
            who=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            when=_now().isoformat(timespec="seconds"),
            operation=operation,
        )
        ttl = lease_seconds()
        names = sorted({app_lock_name(a) for a in apps}) if apps is not None else []
        deadline = time.monotonic() + timeout
        while True:
            sent = time.monotonic()
            try:
                holder, replaced = self._try_lease(info, names, shared=apps is not None, ttl=ttl)
            except _StoreDown:
                self.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
                continue
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise LockError(self._held_message(holder, timeout))
            time.sleep(min(_POLL_S, max(deadline - time.monotonic(), 0.01)))
        lease = _Lease(token, (self._workspace_name(), *names), ttl, sent + ttl)
        self._lease = lease
        if replaced:
            info = info.model_copy(update={"replaced": replaced, "replaced_why": _EXPIRED})
        self._locked = True
        self._locked_apps = frozenset(apps) if apps is not None else None
        renewer = _Renewer(self.conninfo, lease)
        renewer.start()
        try:
            yield info
        finally:
            renewer.stop()
            self._locked = False
            self._locked_apps = None
            self._lease = None
            with contextlib.suppress(Exception), self._tx("release the lease") as cur:
                cur.execute("DELETE FROM reconciler_leases WHERE token = %s", (token,))
            self.close()

    def _workspace_name(self) -> str:
        return f"workspace/{self.workspace}"

    def _try_lease(
        self, info: LockInfo, names: list[str], *, shared: bool, ttl: float
    ) -> tuple[_Holder | None, str | None]:
        """One attempt, one transaction: drop expired leases in the way, and take ours if
        nothing live is in the way. Returns (the live holder in the way, or None; the
        expired holder replaced, described)."""
        ws = self._workspace_name()
        with self._tx("take the lease") as cur:
            # Attempts one at a time (a transaction-level lock: a restart cannot leave it).
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LEASE_LOCK,))
            cur.execute(
                "DELETE FROM reconciler_leases WHERE expires < clock_timestamp() AND"
                " (name = ANY(%s) OR workspace = %s) RETURNING name, mode, who, host, pid,"
                " since, operation",
                ([ws, *names], self.workspace),
            )
            gone = [
                _Holder(row[2], row[3], row[4], row[5], row[6], name=row[0])
                for row in cur.fetchall()
                if not shared or row[0] in names or (row[0] == ws and row[1] == "exclusive")
            ]
            if shared:
                cur.execute(
                    "SELECT who, host, pid, since, operation, name FROM reconciler_leases WHERE"
                    " (name = %s AND mode = 'exclusive') OR name = ANY(%s) ORDER BY name"
                    " LIMIT 1",
                    (ws, names),
                )
            else:
                cur.execute(
                    "SELECT who, host, pid, since, operation, name FROM reconciler_leases WHERE"
                    " name = %s OR workspace = %s ORDER BY name DESC LIMIT 1",
                    (ws, self.workspace),
                )
            row = cur.fetchone()
            if row is not None:
                return _Holder(row[0], row[1], row[2], row[3], row[4], name=row[5]), None
            rows = [
                (n, info.id, self.workspace,
                 "shared" if shared and n == ws else "exclusive",
                 info.who, info.host, info.pid, info.when, info.operation, ttl)
                for n in (ws, *names)
            ]  # fmt: skip
            cur.executemany(
                "INSERT INTO reconciler_leases (name, token, workspace, mode, who, host, pid,"
                " since, operation, expires) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " clock_timestamp() + %s * interval '1 second')",
                rows,
            )
        return None, gone[0].describe() if gone else None

    def _held_message(self, holder: _Holder, timeout: float) -> str:
        what = (
            f"the workspace {self.workspace}"
            if holder.name.startswith("workspace/")
            else f"mini app {holder.name.rsplit('/', 1)[-1]}"
        )
        waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
        return (
            f"{what} is locked in the state {self.describe()}{waited}: held by"
            f" {holder.describe()}. The lease ends when that run ends, or expires"
            f" {lease_seconds():g}s after a killed run last renewed it (no `state unlock`"
            " needed); retry, or wait longer with --lock-timeout SECONDS"
        )

    def _fence(self, cur: psycopg.Cursor[Any], names: Sequence[str]) -> None:
        """In the write's own transaction: this run still holds its lease on ``names``
        (renewing it). Our rows still there means nobody took them over: an acquirer deletes
        an expired lease before taking its place, and waits on this row lock."""
        lease = self._lease
        if lease is None:
            return  # not under a lock (a tool's own use of the store)
        if lease.lost is not None:
            raise _LeaseLost(lease.lost)
        cur.execute(
            "UPDATE reconciler_leases SET expires = clock_timestamp() + %s * interval"
            " '1 second' WHERE token = %s AND name = ANY(%s)",
            (lease.ttl, lease.token, list(names)),
        )
        if cur.rowcount != len(names):
            lease.lost = self._lost_message(names)
            raise _LeaseLost(lease.lost)

    def _fence_names(self, app_id: str | None) -> tuple[str, ...]:
        lease = self._lease
        if lease is None:
            return ()
        if app_id is None or self._locked_apps is None:
            return lease.names  # a whole-state write: every lease this run holds
        return (self._workspace_name(), app_lock_name(app_id))

    def _lost_message(self, names: Sequence[str]) -> str:
        holder = None
        with contextlib.suppress(Exception), self._tx("read the lease", snapshot=True) as cur:
            cur.execute(
                "SELECT who, host, pid, since, operation, name FROM reconciler_leases WHERE"
                " name = ANY(%s) ORDER BY name DESC LIMIT 1",
                (list(names),),
            )
            row = cur.fetchone()
            if row is not None:
                holder = _Holder(row[0], row[1], row[2], row[3], row[4], name=row[5])
        now = f"; it is now held by {holder.describe()}" if holder else ""
        return (
            f"this run lost its lease in the state {self.describe()} (it expired while the"
            f" database could not be reached{now}); it stops writing"
        )

    async def before_write(self, app_id: str | None) -> None:
        """Called before each API write: the run holds its lease, renewed recently enough
        that it cannot expire during the write; else it confirms it with the database first
        (riding out a restart while the lease lasts) or refuses the write."""
        lease = self._lease
        if lease is None:
            return
        if lease.lost is not None:
            raise StateError(lease.lost)
        if time.monotonic() < lease.valid_until - lease.ttl / 2:
            return
        await asyncio.to_thread(self._reconfirm, app_id)

    def _reconfirm(self, app_id: str | None) -> None:
        with self._write_lock:
            lease = self._lease
            if lease is None or time.monotonic() < lease.valid_until - lease.ttl / 2:
                return
            names = self._fence_names(app_id)

            def confirm() -> None:
                sent = time.monotonic()
                with self._tx("confirm the lease") as cur:
                    self._fence(cur, names)
                lease.renewed(sent)

            try:
                self._retrying(confirm)
            except _LeaseLost as exc:
                raise StateError(str(exc)) from None

    def _retrying(self, attempt: Callable[[], None]) -> None:
        """``attempt`` again while the database cannot be reached (a restart), as long as the
        lease still lasts: past it, another run may hold the apps, and each write tries once
        (failing fast while the database is down, going on once it is back)."""
        delay, started = 0.2, time.monotonic()
        while True:
            try:
                attempt()
                return
            except _StoreDown:
                self.close()
                lease = self._lease
                # With a lease: while it lasts (past it, once: the database may be back).
                until = lease.valid_until if lease is not None else started + 2.0
                if time.monotonic() + delay > until:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def unlock(self, lock_id: str) -> LockInfo:
        raise StateError(
            f"the state {self.describe()} has no lock to remove: its leases are released by"
            " the run when it ends, and expire when a killed run stops renewing them"
            f" ({lease_seconds():g}s); released by PostgreSQL or expiry, never by hand"
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


def lease_seconds() -> float:
    """How long a lease outlives its holder's last renewal (``RECONCILER_PG_LEASE_SECONDS``):
    how long a killed run's apps stay locked, and how long a run rides out a database it
    cannot reach before it stops writing."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 3600.0:
        raise StateError(f"{LEASE_ENV}={raw[:20]!r} is not a number of seconds from 1 to 3600")
    return value


@dataclass
class _Lease:
    """The leases one run holds (one token), and until when (monotonic clock, measured from
    BEFORE the renewal was sent: on the safe side of the database's own expiry)."""

    token: str
    names: tuple[str, ...]
    ttl: float
    valid_until: float
    lost: str | None = None

    def renewed(self, sent: float) -> None:
        self.valid_until = max(self.valid_until, sent + self.ttl)


@dataclass(frozen=True)
class _Holder:
    who: str
    host: str
    pid: int
    since: dt.datetime | str
    operation: str
    name: str = ""

    def describe(self) -> str:
        since = self.since.isoformat(timespec="seconds") if isinstance(
            self.since, dt.datetime) else str(self.since)  # fmt: skip
        who, host, when, operation = (
            _printable(v, 80) for v in (self.who, self.host, since, self.operation)
        )
        return f"{who}@{host} (pid {self.pid}) since {when} for '{operation}'"


class _Renewer:
    """Renews a run's leases in the background on a connection of its own (a long write on
    the run's connection never delays it). It stops at the first renewal that finds a lease
    gone (taken over after it expired): the run's next write then refuses."""

    def __init__(self, conninfo: str, lease: _Lease) -> None:
        self._conninfo = conninfo
        self._lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_CONNECT_TIMEOUT_S)

    def _run(self) -> None:
        import psycopg

        lease = self._lease
        conn: psycopg.Connection[Any] | None = None
        wait = lease.ttl / 4
        try:
            while not self._stop.wait(wait):
                sent = time.monotonic()
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(
                            self._conninfo, autocommit=True,
                            connect_timeout=max(2, int(lease.ttl / 4)),
                            application_name="reconciler-lease",
                        )  # fmt: skip
                    cur = conn.execute(
                        "UPDATE reconciler_leases SET expires = clock_timestamp() + %s *"
                        " interval '1 second' WHERE token = %s",
                        (lease.ttl, lease.token),
                    )
                except psycopg.Error:
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn, wait = None, min(0.5, lease.ttl / 4)  # a restart: retry soon
                    continue
                if cur.rowcount != len(lease.names):
                    lease.lost = (
                        "this run lost its lease (it expired while the database could not be"
                        " reached, and another run took it over); it stops writing"
                    )
                    return
                lease.renewed(sent)
                wait = lease.ttl / 4
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()


class _StoreDown(StateError):
    """The database could not be reached (or restarted) during an operation: retryable."""


class _LeaseLost(Exception):
    """This run's lease is gone: another run may hold its apps now."""


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
