"""No duplicate Akana version after lost creates, on a platform that allows repeated names.

The Akana sandbox refuses a second version of the same name in one app; the docs say no such
thing, so that refusal is a sandbox assumption (docs/reference/sandbox-conformance.md),
dropped here with ``unique_version_names=False`` (`sandbox serve --drop-assumption
unique-version-names`). Version creates are done by the server and their answers lost; real
`reconciler apply` processes then run unattended until one succeeds. No version may exist
twice in an app.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.providers.akana.sandbox import AkanaSandboxConfig, akana_base_url
from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.providers.akana.sandbox.errors import AkanaError
from reconciler.providers.akana.sandbox.store import AkanaSandboxStore, OldDatabaseError
from reconciler.sandbox_kit.server import make_app_server
from tests.fixtures_sandbox import TIMEOUT_S, _stopping

EMAIL = "ops@acmepaymentscorp.example"
PASSWORD = "dup-versions-Passw0rd-for-tests"
APPS = 3
LOST_CREATES = 2
VERSIONS_PATH = re.compile(r"^/api/apps/[^/]+/versions$")


class LoseVersionCreates:
    """The first ``lose`` version creates are done, then answered 502 (the answer is lost)."""

    def __init__(self, app: ASGIApp, lose: int) -> None:
        self.app = app
        self.lose = lose
        self.lost = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and VERSIONS_PATH.match(scope["path"]) and self.lose > 0):  # fmt: skip
            self.lose -= 1
            self.lost += 1

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, receive, discard)
            await JSONResponse({"message": "bad gateway"}, status_code=502)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@contextmanager
def serve(db: Path) -> Iterator[tuple[str, LoseVersionCreates]]:
    config = AkanaSandboxConfig(
        db_path=db, users={EMAIL: PASSWORD}, unique_version_names=False, faults_on_login=False
    )
    faults = LoseVersionCreates(create_akana_app(config), LOST_CREATES)
    server, sock = make_app_server(faults, "127.0.0.1", 0, log_level="warning",
                                   access_log=False)  # fmt: skip
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "no Akana sandbox"
            time.sleep(0.002)
        yield akana_base_url("127.0.0.1", port), faults
    finally:
        server.should_exit = True
        _stopping.append(thread)


def _fleet(folder: Path) -> Path:
    folder.mkdir()
    documents = [
        "apiVersion: akana/v1\nkind: App\nmetadata:\n"
        f"  name: Ver {n}\nspec:\n  summary: number {n}\n  versions:\n"
        '    - name: "1.0"\n    - name: "2.0"\n    - name: "3.0"\n'
        for n in range(APPS)
    ]
    (folder / "apps.yaml").write_text("---\n".join(documents))
    return folder


def _versions(db: Path) -> dict[tuple[str, str], int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT apps.name, versions.name, COUNT(*) FROM versions"
            " JOIN apps ON apps.id = versions.app_id GROUP BY apps.name, versions.name"
        ).fetchall()
    return {(str(app), str(version)): int(count) for app, version, count in rows}


def test_lost_version_creates_leave_no_duplicate_where_repeated_names_are_allowed(
    tmp_path: Path,
) -> None:
    fleet = _fleet(tmp_path / "fleet")
    db = tmp_path / "akana.db"
    with serve(db) as (base_url, faults):
        env: dict[str, Any] = {
            k: v for k, v in os.environ.items() if not k.startswith(("MAC_", "AKANA_"))
        }
        env.update(AKANA_BASE_URL=base_url, AKANA_EMAIL=EMAIL, AKANA_PASSWORD=PASSWORD,
                   RECONCILER_STATE=str(tmp_path / "state.json"), NO_COLOR="1")  # fmt: skip
        codes: list[int] = []
        outputs: list[str] = []
        for _ in range(3):  # unattended: the pipeline simply runs apply again
            run = subprocess.run(
                [sys.executable, "-m", "reconciler.cli.main", "apply", str(fleet),
                 "--auto-approve", "--parallelism", "1"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            codes.append(run.returncode)
            outputs.append(run.stdout + run.stderr)
            if run.returncode == 0:
                break
        assert faults.lost == LOST_CREATES  # the faults did happen
        expected = {(f"Ver {n}", v): 1 for n in range(APPS) for v in ("1.0", "2.0", "3.0")}
        assert _versions(db) == expected, outputs
        assert codes == [0], outputs  # a lost answer is resolved by the name, in the same run
        again = subprocess.run(
            [sys.executable, "-m", "reconciler.cli.main", "plan", str(fleet),
             "--detailed-exitcode"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert PASSWORD not in "".join(outputs)


def test_repeated_version_names_are_served_when_the_assumption_is_dropped(
    tmp_path: Path,
) -> None:
    def app(app_id: str) -> dict[str, Any]:
        return {"id": app_id, "business_id": "", "name": app_id, "summary": "",
                "description": "", "picture_id": "", "visibility": "Public",
                "state": "active", "created": "t", "updated": "t"}  # fmt: skip

    def version(version_id: str, app_id: str) -> dict[str, Any]:
        return {"id": version_id, "app_id": app_id, "name": "1.0", "description": "",
                "tags": [], "visibility": "Public", "website": "", "environment": "",
                "state": "active", "created": "t", "updated": "t"}  # fmt: skip

    unique = AkanaSandboxStore(tmp_path / "u.db")
    allowing = AkanaSandboxStore(tmp_path / "d.db", unique_version_names=False)
    try:
        for store in (unique, allowing):
            store.create_app(app("a"), version("v1", "a"))
        with pytest.raises(AkanaError, match=r"already has a version named '1\.0'"):
            unique.add_version(version("v2", "a"))
        allowing.add_version(version("v2", "a"))
        assert [v["id"] for v in allowing.versions("a")] == ["v1", "v2"]
    finally:
        unique.close()
        allowing.close()
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # the table as sandboxes made it before
        conn.execute("CREATE TABLE versions (seq INTEGER PRIMARY KEY, id TEXT, app_id TEXT,"
                     " name TEXT, UNIQUE (app_id, name))")  # fmt: skip
    conn.close()
    with pytest.raises(OldDatabaseError, match="duplicate version names"):
        AkanaSandboxStore(old, unique_version_names=False)
