"""A real PostgreSQL server for the tests, started once per session in a temporary directory.

PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` system user
(``runuser``). It listens on a Unix socket in the temp dir only (no TCP port to collide with).
Missing binaries FAIL the session, never skip it: ``.ci/run`` installs them on a clean machine.
Each test gets its own database (``pg_url``), so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/14/bin", "/usr/local/pgsql/bin")  # fmt: skip
_counter = itertools.count()


def pg_bin() -> Path:
    for d in (os.environ.get("RECONCILER_TEST_PG_BIN", ""), *PG_BIN_DIRS):
        if d and (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (`apt-get install"
        " -y postgresql`, as .ci/run does) or set RECONCILER_TEST_PG_BIN",
        pytrace=False,
    )


@dataclass(frozen=True)
class PgServer:
    socket_dir: Path
    user: str
    # How to stop and start it again (restart): its binaries, data dir, options, OS user.
    bindir: Path | None = None
    data: Path | None = None
    options: str = ""
    run_as: str | None = None
    log: Path | None = field(default=None)

    def url(self, db: str = "postgres", workspace: str | None = None) -> str:
        ws = f"&workspace={workspace}" if workspace else ""
        return f"postgresql://{self.user}@/{db}?host={self.socket_dir}{ws}"

    def create_db(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (every session ends; ``immediate``: as a crash would)."""
        assert self.bindir is not None and self.data is not None
        self._pg_ctl("-D", str(self.data), "-m", mode, "-w", "stop")

    def start(self) -> None:
        """Start it again on the same data directory and socket (the same URL)."""
        assert self.bindir is not None and self.data is not None and self.log is not None
        self._pg_ctl("-D", str(self.data), "-l", str(self.log), "-w", "-o", self.options,
                     "start")  # fmt: skip

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)  # the outage a real restart (or failover) lasts
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        assert self.bindir is not None
        done = subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), *args], self.run_as),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log and self.log.exists() else ""
            pytest.fail(f"pg_ctl {args[-1]} failed: {done.stderr[-2000:]}\n{tail}",
                        pytrace=False)  # fmt: skip


def _as_server_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextlib.contextmanager
def _running_server() -> Iterator[PgServer]:
    bindir = pg_bin()
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    if run_as:
        shutil.chown(base, run_as)
    data, log = base / "data", base / "log"
    db_user = "postgres"
    done = subprocess.run(
        _as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", db_user,
                         "--no-sync"], run_as),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"initdb failed: {done.stderr[-2000:]}", pytrace=False)
    # fsync off: a test server's durability is not under test (speed on a shared machine)
    options = f"-k {base} -c listen_addresses='' -c fsync=off -c max_connections=200"
    server = PgServer(socket_dir=base, user=db_user, bindir=bindir, data=data, options=options,
                      run_as=run_as, log=log)  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m",
                                        "immediate", "-w", "stop"], run_as),
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with _running_server() as server:
        yield server


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A server of the test's own, for a test that stops or restarts it (never the shared
    one: other tests' sessions would see the restart)."""
    with _running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh database's URL (workspace default)."""
    return pg_server.url(pg_server.create_db())
