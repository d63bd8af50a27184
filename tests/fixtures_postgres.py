"""A real PostgreSQL server for the tests, started once per session in a temporary directory.

PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` system user
(``runuser``). It listens on a Unix socket in the temp dir only (no TCP port to collide with).
Missing binaries FAIL the session, never skip it: ``.ci/run`` installs them on a clean machine.
Each test gets its own database (``pg_url``), so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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

    def url(self, db: str = "postgres", workspace: str | None = None) -> str:
        ws = f"&workspace={workspace}" if workspace else ""
        return f"postgresql://{self.user}@/{db}?host={self.socket_dir}{ws}"

    def create_db(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _as_server_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = pg_bin()
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    if run_as:
        shutil.chown(base, run_as)
    data, log = base / "data", base / "log"
    db_user = "postgres"

    def run(*cmd: str) -> None:
        done = subprocess.run(_as_server_user(list(cmd), run_as), capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{cmd[0]} failed: {done.stderr[-2000:]}\n{tail}", pytrace=False)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", db_user, "--no-sync")
    # fsync off: a test server's durability is not under test (speed on a shared machine)
    options = f"-k {base} -c listen_addresses='' -c fsync=off -c max_connections=200"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start")
    try:
        yield PgServer(socket_dir=base, user=db_user)
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m",
                                        "immediate", "-w", "stop"], run_as),
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh database's URL (workspace default)."""
    return pg_server.url(pg_server.create_db())
