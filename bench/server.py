"""The sandbox as a REAL server in its own process (its own interpreter, GIL and event loop),
started with the CLI exactly as a user would: ``reconciler sandbox serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

TOKEN = "bench-token"


class ServerProcess:
    """A server in a child process, stopped (terminated, then killed) on exit."""

    process: subprocess.Popen[Any]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SandboxServer(ServerProcess):
    process: subprocess.Popen[str]
    base_url: str  # http://127.0.0.1:PORT/api
    db: Path
    token: str = TOKEN


def seconds_text(seconds: float | None) -> str:
    """A duration for the reports: ms under a second."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def start_sandbox(
    db: Path, *, latency_ms: float = 0, rate_limit: float | None = None, port: int = 0,
    extra: list[str] | None = None,
) -> SandboxServer:
    """Start ``reconciler sandbox serve --port PORT`` (0: any free one) and wait for its
    ``export`` line."""
    cmd = [
        sys.executable,
        "-m",
        "reconciler.cli.main",
        "sandbox",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db),
        "--token",
        TOKEN,
        "--latency-ms",
        str(latency_ms),
    ]
    if rate_limit is not None:
        cmd += ["--rate-limit", str(rate_limit)]
    cmd += extra or []  # e.g. --fail-rate R --seed N (bench/faults.py)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # uvicorn writes one access-log line per request to stdout: into a file, never a pipe
    # (a full pipe would block the server mid-benchmark).
    log_path = db.with_suffix(".log")
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    log.close()  # the child has its own descriptor
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        match = re.search(r"export MAC_BASE_URL=(\S+)", log_path.read_text(encoding="utf-8"))
        if match:
            # The socket is bound and listening before this line is printed.
            return SandboxServer(process, match.group(1), db)
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"the sandbox did not start: {' '.join(cmd)}")
