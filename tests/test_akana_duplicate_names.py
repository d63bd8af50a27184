"""The tool keeps Akana apps unique by itself, on a platform that allows duplicate app names.

The Akana sandbox refuses a second app of the same Name; the docs say no such thing, so that
refusal is a sandbox assumption (docs/reference/sandbox-conformance.md), dropped here with
``unique_app_names=False`` (`sandbox serve --drop-assumption unique-app-names`). Creates are
done by the server and their answers lost (and in one mode the re-read that would resolve
them too); real `reconciler apply` processes then run unattended until one succeeds. No app
may exist twice, and no person may be needed.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.providers.akana.sandbox import AkanaSandboxConfig, akana_base_url
from reconciler.providers.akana.sandbox.app import create_akana_app
from reconciler.sandbox_kit.server import make_app_server
from tests.fixtures_sandbox import TIMEOUT_S, _stopping

EMAIL = "ops@acmepaymentscorp.example"
PASSWORD = "dup-names-Passw0rd-for-tests"
APPS = 4
LOST_CREATES = 2
RETRIES = 5  # the client's attempts at a read (RetryPolicy.max_attempts)


class LoseCreates:
    """The first ``lose`` app creates are done, then answered 502 (the answer is lost); with
    ``lose_recheck`` the listings that follow each one fail too (503, every retry)."""

    def __init__(self, app: ASGIApp, lose: int, lose_recheck: bool) -> None:
        self.app = app
        self.lose = lose
        self.lose_recheck = lose_recheck
        self.failing_listings = 0
        self.lost = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/apps":
            if scope["method"] == "POST" and self.lose > 0:
                self.lose -= 1
                self.lost += 1

                async def discard(message: Message) -> None:
                    return None

                await self.app(scope, receive, discard)
                self.failing_listings = RETRIES if self.lose_recheck else 0
                await JSONResponse({"message": "bad gateway"}, status_code=502)(
                    scope, receive, send
                )
                return
            if scope["method"] == "GET" and self.failing_listings > 0:
                self.failing_listings -= 1
                await JSONResponse({"message": "unavailable"}, status_code=503)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


@dataclass
class Served:
    base_url: str
    db: Path
    faults: LoseCreates


@contextmanager
def serve(db: Path, *, lose_recheck: bool) -> Iterator[Served]:
    config = AkanaSandboxConfig(
        db_path=db, users={EMAIL: PASSWORD}, unique_app_names=False, faults_on_login=False
    )
    faults = LoseCreates(create_akana_app(config), LOST_CREATES, lose_recheck)
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
        yield Served(akana_base_url("127.0.0.1", port), db, faults)
    finally:
        server.should_exit = True
        _stopping.append(thread)


def _fleet(folder: Path) -> Path:
    folder.mkdir()
    documents = [
        "apiVersion: akana/v1\nkind: App\nmetadata:\n"
        f"  name: Dup {n}\nspec:\n  summary: number {n}\n  versions:\n"
        '    - name: "1.0"\n    - name: "2.0"\n'
        for n in range(APPS)
    ]
    (folder / "apps.yaml").write_text("---\n".join(documents))
    return folder


def _reconciler(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _apps_by_name(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, COUNT(*) FROM apps GROUP BY name").fetchall()
    return {str(name): int(count) for name, count in rows}


@pytest.mark.parametrize("lose_recheck", [False, True], ids=["answer-lost", "recheck-lost-too"])
def test_lost_creates_leave_no_duplicate_app_where_duplicates_are_allowed(
    tmp_path: Path, lose_recheck: bool
) -> None:
    fleet = _fleet(tmp_path / "fleet")
    with serve(tmp_path / "akana.db", lose_recheck=lose_recheck) as served:
        env: dict[str, Any] = {
            k: v for k, v in os.environ.items() if not k.startswith(("MAC_", "AKANA_"))
        }
        env.update(AKANA_BASE_URL=served.base_url, AKANA_EMAIL=EMAIL, AKANA_PASSWORD=PASSWORD,
                   RECONCILER_STATE=str(tmp_path / "state.json"), NO_COLOR="1")  # fmt: skip
        codes: list[int] = []
        outputs: list[str] = []
        for _ in range(4):  # unattended: the pipeline simply runs apply again
            run = _reconciler(env, "apply", str(fleet), "--auto-approve", "--parallelism", "1")
            codes.append(run.returncode)
            outputs.append(run.stdout + run.stderr)
            if run.returncode == 0:
                break
        assert served.faults.lost == LOST_CREATES  # the faults did happen
        assert _apps_by_name(served.db) == {f"Dup {n}": 1 for n in range(APPS)}, outputs
        assert codes[-1] == 0, outputs
        # Losing the re-read too fails that run; the next one adopts the app by its Name.
        assert len(codes) == (2 if lose_recheck else 1), (codes, outputs)
        again = _reconciler(env, "plan", str(fleet), "--detailed-exitcode")
        assert again.returncode == 0, again.stdout + again.stderr
        assert PASSWORD not in "".join(outputs)
