"""The Akana sandbox as a REAL server in its own process, with every request it receives
counted by method and route template (issue 12's fleet benchmark, ``bench/akana_fleet.py``).

The counting is done in the server, in front of everything else (the latency and fault
middleware included), so it sees exactly what arrived: the client's reads and writes, and
also what its session auth sends on its own (login, token renewals, logout), which the
client's ``ClientStats`` do not count. ``GET /__bench/requests`` answers the counts so far as
JSON (that request is not counted); the bench takes differences around each phase.

    python bench/akana_server.py --db D --latency-ms 25 --email E   (password on stdin)

prints ``BASE_URL=http://127.0.0.1:PORT`` once it listens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script by start_akana_sandbox
    sys.path.insert(0, str(ROOT))

from bench.server import ServerProcess  # noqa: E402

COUNTS_PATH: Final = "/__bench/requests"
EMAIL: Final = "bench@akana.example"
PASSWORD: Final = "bench-akana-password-1"  # a throwaway sandbox on loopback

# The sandbox's routes (reconciler/providers/akana/sandbox/app.py), most specific first.
_TEMPLATES: Final = (
    (re.compile(r"^/api/login$"), "/api/login"),
    (re.compile(r"^/api/login/renewToken$"), "/api/login/renewToken"),
    (re.compile(r"^/api/login/endsession$"), "/api/login/endsession"),
    (re.compile(r"^/api/login/logout$"), "/api/login/logout"),
    (re.compile(r"^/api/apps$"), "/api/apps"),
    (re.compile(r"^/api/apps/versions/[^/]+$"), "/api/apps/versions/{AppVersionID}"),
    (re.compile(r"^/api/apps/[^/]+/versions$"), "/api/apps/{AppID}/versions"),
    (re.compile(r"^/api/apps/[^/]+$"), "/api/apps/{AppID}"),
)


def route_template(path: str) -> str:
    for pattern, template in _TEMPLATES:
        if pattern.match(path):
            return template
    return "(other)"


class RequestCounter:
    """ASGI middleware: counts ``"METHOD /template"`` per request and ``"METHOD /template
    STATUS"`` per answer that is not 2xx (a 401 means a re-login, a 429 a retry)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == COUNTS_PATH:
            body = json.dumps({"requests": self.requests, "refused": self.refused}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        key = f"{scope['method']} {route_template(scope['path'])}"
        self.requests[key] += 1

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start" and not 200 <= message["status"] < 300:
                self.refused[f"{key} {message['status']}"] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


def serve(db: Path, latency_ms: float, email: str, password: str, session_seconds: float) -> None:
    from reconciler.providers.akana.sandbox import AkanaSandboxConfig, create_akana_app
    from reconciler.sandbox_kit.server import make_app_server

    config = AkanaSandboxConfig(
        db_path=db,
        users={email: password},
        latency_ms=latency_ms,
        session_seconds=session_seconds,
    )
    # No access log: one line per request written by the server would be server CPU that the
    # client's figures do not need (the counts above replace it).
    server, sock = make_app_server(
        RequestCounter(create_akana_app(config)), "127.0.0.1", 0, log_level="warning",
        access_log=False,
    )
    try:
        print(f"BASE_URL=http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()


@dataclass
class AkanaServer(ServerProcess):
    process: subprocess.Popen[bytes]
    base_url: str  # the platform root (the client adds /api)
    email: str = EMAIL
    password: str = PASSWORD

    def requests(self) -> tuple[Counter[str], Counter[str]]:
        """(requests by "METHOD /template", non-2xx answers by "METHOD /template STATUS")."""
        data = httpx.get(self.base_url + COUNTS_PATH, timeout=30).json()
        return Counter(data["requests"]), Counter(data["refused"])



def start_akana_sandbox(
    db: Path, *, latency_ms: float = 0, session_seconds: float = 1800.0
) -> AkanaServer:
    """Start this module as a server process and wait for its ``BASE_URL`` line."""
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--db", str(db),
        "--latency-ms", str(latency_ms), "--email", EMAIL,
        "--session-seconds", str(session_seconds),
    ]
    log_path = db.with_suffix(".log")
    # Output into a file, never a pipe (a full pipe would block the server mid-benchmark).
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert process.stdin is not None
    process.stdin.write(PASSWORD.encode() + b"\n")
    process.stdin.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        match = re.search(r"BASE_URL=(\S+)", log_path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return AkanaServer(process, match.group(1))
        time.sleep(0.02)
    process.kill()
    process.wait(10)
    raise RuntimeError(f"the Akana sandbox did not start; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--email", default=EMAIL)
    parser.add_argument("--session-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    password = sys.stdin.readline().strip()  # never on the command line (ps shows it)
    serve(args.db, args.latency_ms, args.email, password, args.session_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
