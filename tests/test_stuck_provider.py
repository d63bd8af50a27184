"""A mixed fleet (Mini App Center + Akana + REST) against three real servers on loopback, with
one provider's server down in turn (connection refused) or Akana answering 503: the other
providers are planned and applied, the stuck provider is named (text and JSON), and `apply`
exits 3. Once the server is back, ONE apply converges with no duplicates and a following plan
is clean. Fleet-wide guards (the delete budget) still refuse everything."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reconciler.cli.main import main
from reconciler.providers.akana.sandbox import AkanaSandboxConfig, akana_base_url, make_akana_server
from reconciler.providers.miniappcenter.sandbox import SandboxConfig
from reconciler.providers.miniappcenter.sandbox.server import base_url, make_server
from reconciler.providers.rest.sandbox import (
    TenantSandboxConfig,
    make_tenant_server,
    tenant_base_url,
)
from tests.fixtures_akana import EMAIL, PASSWORD
from tests.fixtures_sandbox import TEST_TOKEN, TIMEOUT_S
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER

REPO = Path(__file__).resolve().parent.parent
PROVIDERS = ("miniappcenter", "akana", "rest")
MUFFINS = "miniapp[com.genexus.verdant.coffeemuffins]"
GATEWAY = "akana_app[Payments Gateway]"
HAM = "rest_object[shop:/api/products/:HAM-01]"


@dataclass
class Server:
    """One sandbox server on a fixed loopback port: stopped and started again there (the same
    endpoint, the same database)."""

    name: str
    make: Callable[[int], tuple[uvicorn.Server, socket.socket]]
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    def start(self) -> None:
        server, sock = self.make(self.port)
        self.port = sock.getsockname()[1]
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"{self.name}-{self.port}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} sandbox did not start")
            time.sleep(0.002)
        self._server, self._thread, self._sock = server, thread, sock

    def stop(self) -> None:
        if self._server is None:
            return
        assert self._thread is not None and self._sock is not None
        self._server.should_exit = True
        self._thread.join(TIMEOUT_S)
        self._sock.close()
        self._server = None


@dataclass
class Fleet:
    root: Path
    servers: dict[str, Server]
    akana_config: AkanaSandboxConfig

    def restart_akana(self, **overrides: Any) -> None:
        """Akana again on its port, with these config overrides (e.g. fail_rate=1.0)."""
        server = self.servers["akana"]
        server.stop()
        config = replace(self.akana_config, **overrides)
        server.make = lambda port: make_akana_server(
            config, "127.0.0.1", port, log_level="warning", access_log=False
        )
        server.start()


@contextmanager
def _servers(tmp_path: Path) -> Iterator[tuple[dict[str, Server], AkanaSandboxConfig]]:
    mac = SandboxConfig(db_path=tmp_path / "mac.db", token=TEST_TOKEN)
    akana = AkanaSandboxConfig(db_path=tmp_path / "akana.db", users={EMAIL: PASSWORD})
    tenant = TenantSandboxConfig(
        db_path=tmp_path / "tenant.db",
        users={TENANT_USER: TENANT_PASSWORD},
        api_keys={TENANT_KEY: "tenant_one"},
    )
    quiet: dict[str, Any] = {"log_level": "warning", "access_log": False}
    servers = {
        "miniappcenter": Server("mac", lambda p: make_server(mac, "127.0.0.1", p, **quiet)),
        "akana": Server("akana", lambda p: make_akana_server(akana, "127.0.0.1", p, **quiet)),
        "rest": Server("tenant", lambda p: make_tenant_server(tenant, "127.0.0.1", p, **quiet)),
    }
    with ExitStack() as stack:
        for server in servers.values():
            server.start()
            stack.callback(server.stop)
        yield servers, akana


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("MAC_SANDBOX_DB", "RECONCILER_CONFIG", "HTTPS_PROXY", "https_proxy",
                "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    shutil.copytree(REPO / "manifests", work / "manifests")
    shutil.copytree(REPO / "examples" / "rest" / "manifests", work / "manifests" / "catalogue")
    shutil.copy(REPO / "examples" / "rest" / "reconciler.yaml", work / "reconciler.yaml")
    with _servers(tmp_path) as (servers, akana_config):
        monkeypatch.setenv("RECONCILER_STATE", str(work / "state.json"))
        monkeypatch.setenv("MAC_BASE_URL", base_url("127.0.0.1", servers["miniappcenter"].port))
        monkeypatch.setenv("MAC_API_TOKEN", TEST_TOKEN)
        monkeypatch.setenv("AKANA_BASE_URL", akana_base_url("127.0.0.1", servers["akana"].port))
        monkeypatch.setenv("AKANA_EMAIL", EMAIL)
        monkeypatch.setenv("AKANA_PASSWORD", PASSWORD)
        monkeypatch.setenv("TENANT_BASE_URL", tenant_base_url("127.0.0.1", servers["rest"].port))
        monkeypatch.setenv("TENANT_USERNAME", TENANT_USER)
        monkeypatch.setenv("TENANT_PASSWORD", TENANT_PASSWORD)
        monkeypatch.setenv("TENANT_API_KEY", TENANT_KEY)
        yield Fleet(work, servers, akana_config)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _addresses(state: dict[str, Any]) -> dict[str, int]:
    """How many records each provider holds in the state file (its JSON)."""
    counts = {"miniappcenter": len(state.get("apps", {}))}
    for name, section in state.get("providers", {}).items():
        counts[name] = sum(len(records) for records in section.get("resources", {}).values())
    return counts


def _stuck_then_converges(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], down: str, why: str
) -> None:
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve", "--format", "json")
    assert code == 3, err
    result = json.loads(out)
    stuck = result["apply"]["stuck_providers"]
    assert stuck == result["plan"]["stuck_providers"]
    assert [entry["provider"] for entry in stuck] == [down]
    assert re.search(why, stuck[0]["reason"], re.IGNORECASE), stuck
    assert len(stuck[0]["reason"]) <= 300
    # The other providers were applied; the stuck one wrote nothing and was not planned.
    applied = {r["provider"] for r in result["apply"]["results"] if r["outcome"] == "applied"}
    assert applied == set(PROVIDERS) - {down}
    # Said once in the text (stderr here: stdout holds the JSON), naming why; no secret.
    assert err.count(f"provider {down} was not planned") == 1, err
    assert f"Not applied: stuck provider(s) (their error above): {down}" in err
    for secret in (PASSWORD, TENANT_PASSWORD, TENANT_KEY, TEST_TOKEN):
        assert secret not in out and secret not in err
    state = json.loads((fleet.root / "state.json").read_text())
    counts = _addresses(state)
    assert counts.get(down, 0) == 0
    assert all(counts.get(name, 0) > 0 for name in PROVIDERS if name != down), counts

    # A plan with the provider still down: exit 1, the others' plans still shown.
    code, out, err = run(capsys, "plan", "manifests", "--no-color")
    assert code == 1
    assert f"provider {down} was not planned" in out + err
    code, out, _ = run(capsys, "plan", "manifests", "--format", "json")
    assert code == 1
    assert [e["provider"] for e in json.loads(out)["stuck_providers"]] == [down]

    code, out, err = run(capsys, "drift", "manifests", "--format", "json")
    assert code == 1 and f"provider {down} was not planned" in out + err
    assert [e["provider"] for e in json.loads(out)["stuck_providers"]] == [down]

    fleet.restart_akana() if down == "akana" else fleet.servers[down].start()
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert "stuck_providers" not in result["plan"] and "stuck_providers" not in result["apply"]
    assert {r["provider"] for r in result["apply"]["results"]} == {down}
    again = _addresses(json.loads((fleet.root / "state.json").read_text()))
    assert again == {**counts, down: again[down]} and again[down] > 0
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 0, out + err
    _no_duplicates(fleet)


def _no_duplicates(fleet: Fleet) -> None:
    """Every live object exists once: counted in the sandboxes' own databases."""
    queries = {
        "mac.db": [
            "SELECT app_id, name FROM locations GROUP BY app_id, name HAVING COUNT(*) > 1",
            "SELECT app_id, code, platform_id FROM versions"
            " GROUP BY app_id, code, platform_id HAVING COUNT(*) > 1",
        ],
        "akana.db": [
            "SELECT business_id, name FROM apps GROUP BY business_id, name HAVING COUNT(*) > 1",
            "SELECT app_id, name FROM versions GROUP BY app_id, name HAVING COUNT(*) > 1",
        ],
        "tenant.db": [
            "SELECT schema, collection, natural_key FROM objects"
            " GROUP BY schema, collection, natural_key HAVING COUNT(*) > 1",
        ],
    }
    for db, checks in queries.items():
        with closing(sqlite3.connect(fleet.root.parent / db)) as connection:
            for query in checks:
                assert connection.execute(query).fetchall() == [], (db, query)


@pytest.mark.parametrize("down", PROVIDERS)
def test_a_provider_whose_server_is_down_is_stuck_and_the_others_apply(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], down: str
) -> None:
    fleet.servers[down].stop()
    _stuck_then_converges(fleet, capsys, down, "refused|connection attempts failed|connect")


def test_akana_answering_503_is_a_stuck_provider(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.restart_akana(fail_rate=1.0)
    # Injected 503s: half of them answered, half cut after the status line (the login, on
    # the shared transport, says "no complete answer" for a cut one).
    _stuck_then_converges(fleet, capsys, "akana", "503|no valid HTTP answer|no complete answer")


def test_the_delete_budget_still_refuses_everything_when_a_provider_is_stuck(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 0, err
    # Remove the REST objects and the mini apps from the manifests: deletes under --prune.
    shutil.rmtree(fleet.root / "manifests" / "catalogue")
    shutil.rmtree(fleet.root / "manifests" / "payments")
    fleet.servers["akana"].stop()
    before = (fleet.root / "state.json").read_text()
    code, out, err = run(
        capsys, "apply", "manifests", "--auto-approve", "--prune", "--max-deletes", "1",
        "--format", "json",
    )
    assert code == 1, err
    assert "--max-deletes" in out + err
    assert [e["provider"] for e in json.loads(out)["plan"]["stuck_providers"]] == ["akana"]
    assert (fleet.root / "state.json").read_text() == before  # nothing was written
