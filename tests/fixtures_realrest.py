"""A real Django REST framework server (tests/realrest/realshop): Django + DRF +
djangorestframework-simplejwt (rotation and blacklist) + djangorestframework-api-key, on
SQLite, served by uvicorn on loopback in a subprocess, started once per session as
tests/fixtures_postgres.py starts PostgreSQL. Missing packages FAIL, never skip (they are in
the ``dev`` extra that ``.ci/run`` installs).

``realshop`` is the session's server (5-minute access tokens, pages of 5); ``realshop_tenant``
gives each test a tenant of its own (its Api-Key), so tests never see each other's objects.
``start_realshop`` starts another one (e.g. with 2-second tokens) for one module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

HERE = Path(__file__).parent / "realrest"
REALSHOP_USER = "realshop-user"
REALSHOP_PASSWORD = "realshop-pw-correct-horse-battery"
TENANTS = 40
STARTUP_S = 60.0


@dataclass
class RealShop:
    base_url: str
    api_keys: dict[str, str]  # tenant name -> its Api-Key ("public" is the read-only one)
    access_seconds: float
    page_size: int
    _free: Iterator[str] = field(repr=False, default=iter(()))

    def next_tenant(self) -> str:
        """The Api-Key of a tenant no other test has used."""
        try:
            return self.api_keys[next(self._free)]
        except StopIteration:
            pytest.fail(f"more than {TENANTS} tenants used in one session: raise TENANTS")

    def http(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def access(self) -> str:
        with self.http() as client:
            answer = client.post(
                "/api/token/", json={"username": REALSHOP_USER, "password": REALSHOP_PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            return cast(str, answer.json()["access"])

    def env(self, api_key: str) -> dict[str, str]:
        """The variables a project file (tests' reconciler.yaml) names."""
        return {
            "TENANT_BASE_URL": self.base_url,
            "TENANT_USERNAME": REALSHOP_USER,
            "TENANT_PASSWORD": REALSHOP_PASSWORD,
            "TENANT_API_KEY": api_key,
        }


def _environment(
    db: Path, access_seconds: float, page_size: int, hooks: dict[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REALSHOP_"))}
    env.update(
        PYTHONPATH=str(HERE),
        DJANGO_SETTINGS_MODULE="realshop.settings",
        REALSHOP_DB=str(db),
        REALSHOP_USERNAME=REALSHOP_USER,
        REALSHOP_PASSWORD=REALSHOP_PASSWORD,
        REALSHOP_TENANTS=str(TENANTS),
        REALSHOP_ACCESS_SECONDS=str(access_seconds),
        REALSHOP_PAGE_SIZE=str(page_size),
        **hooks,
    )
    return env


def start_realshop(
    folder: Path,
    *,
    access_seconds: float = 300,
    page_size: int = 5,
    write_delay: float = 0,
    blacklist_after_write: bool = False,
) -> Iterator[RealShop]:
    """Bootstrap a database in ``folder``, serve it, yield the server, stop it. The hooks
    (tests/realrest/realshop/hooks.py) make token expiry and revocation happen mid-apply."""
    hooks = {"REALSHOP_WRITE_DELAY": str(write_delay)}
    if blacklist_after_write:
        hooks["REALSHOP_BLACKLIST_AFTER_WRITE"] = "1"
    env = _environment(folder / "realshop.sqlite3", access_seconds, page_size, hooks)
    boot = subprocess.run(
        [sys.executable, "-m", "realshop.bootstrap"],
        env=env, cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if boot.returncode != 0:
        pytest.fail(f"realshop bootstrap failed: {boot.stderr[-3000:]}", pytrace=False)
    keys = json.loads(boot.stdout)["api_keys"]
    # The listening socket is made here and handed over (--fd): no port to guess or race for.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    log = (folder / "uvicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "realshop.asgi:application", "--fd",
         str(sock.fileno()), "--no-access-log", "--lifespan", "off", "--log-level", "warning"],
        env=env, cwd=folder, pass_fds=(sock.fileno(),), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    sock.close()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if httpx.get(f"{base_url}/api/products/", timeout=5).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "uvicorn.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"realshop did not start: {tail}", pytrace=False)
            time.sleep(0.1)
        writable = sorted(name for name in keys if name != "public")
        yield RealShop(base_url, keys, access_seconds, page_size, iter(writable))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="session")
def realshop() -> Iterator[RealShop]:
    with tempfile.TemporaryDirectory(prefix="reconciler-realshop-") as folder:
        yield from start_realshop(Path(folder))


@pytest.fixture
def realshop_tenant(realshop: RealShop) -> str:
    """The Api-Key of a fresh tenant of the session's server."""
    return realshop.next_tenant()
