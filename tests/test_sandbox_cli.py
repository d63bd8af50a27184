"""`reconciler sandbox serve`: help, refusal of non-loopback hosts, defaults, and a real run."""

from __future__ import annotations

import os
import queue
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import reconciler.providers.miniappcenter.sandbox
from reconciler.cli.main import main
from reconciler.cli.sandbox_cmd import is_loopback
from reconciler.providers.miniappcenter.sandbox import SandboxConfig, SandboxStore
from tests.fixtures_sandbox import http_client

EXPORT_URL = re.compile(r"^export MAC_BASE_URL=(http://127\.0\.0\.1:(\d+)/api)$")


def test_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ["--host", "--port", "--db", "--token", "--latency-ms", "--fail-rate",
                   "--ambiguous-rate", "--seed", "--rate-limit", "--allow-remote"]:  # fmt: skip
        assert option in out


def test_sandbox_help_lists_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--help"]) == 0
    assert "serve" in capsys.readouterr().out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_host_is_refused(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sub" / "sandbox.db"
    assert main(["sandbox", "serve", "--host", host, "--db", str(db)]) == 64
    err = capsys.readouterr().err
    assert "non-loopback" in err and "--allow-remote" in err and "token" in err
    assert not db.parent.exists()  # refused before doing anything


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("0.0.0.0", False), ("10.0.0.1", False), ("::", False),
     ("localhost.evil.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.fixture
def captured_serve(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the real server: record what the command would serve."""
    calls: list[dict[str, Any]] = []

    def fake_serve(config: SandboxConfig, host: str = "", port: int = 0) -> None:
        calls.append({"config": config, "host": host, "port": port})

    monkeypatch.setattr(reconciler.providers.miniappcenter.sandbox, "serve", fake_serve)
    monkeypatch.delenv("MAC_API_TOKEN", raising=False)
    monkeypatch.delenv("MAC_SANDBOX_DB", raising=False)
    return calls


def test_defaults_and_options(
    captured_serve: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sandbox", "serve"]) == 0
    [call] = captured_serve
    assert (call["host"], call["port"]) == ("127.0.0.1", 8080)
    config = call["config"]
    assert Path(config.db_path) == Path(".reconciler") / "sandbox.db"
    assert (tmp_path / ".reconciler").is_dir()  # parent created
    assert len(config.token) >= 32  # generated: secrets.token_urlsafe(24)
    assert (config.latency_ms, config.fail_rate, config.ambiguous_rate) == (0, 0, 0)
    assert (config.seed, config.rate_limit) == (None, None)

    captured_serve.clear()
    db = tmp_path / "deep" / "x.db"
    argv = ["sandbox", "serve", "--host", "localhost", "--port", "9999", "--db", str(db),
            "--token", "tok", "--latency-ms", "5", "--fail-rate", "0.1",
            "--ambiguous-rate", "0.2", "--seed", "7", "--rate-limit", "50"]  # fmt: skip
    assert main(argv) == 0
    [call] = captured_serve
    config = call["config"]
    assert (call["host"], call["port"], Path(config.db_path)) == ("localhost", 9999, db)
    assert db.parent.is_dir()
    assert (config.token, config.latency_ms, config.fail_rate) == ("tok", 5, 0.1)
    assert (config.ambiguous_rate, config.seed, config.rate_limit) == (0.2, 7, 50)


def test_environment_defaults(
    captured_serve: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAC_API_TOKEN", "from-env")
    monkeypatch.setenv("MAC_SANDBOX_DB", str(tmp_path / "env" / "s.db"))
    assert main(["sandbox", "serve"]) == 0
    config = captured_serve[0]["config"]
    assert config.token == "from-env"
    assert Path(config.db_path) == tmp_path / "env" / "s.db"
    assert "from-env" not in repr(config)  # the config's repr hides the token


@pytest.mark.parametrize(
    "argv",
    [["--fail-rate", "1.5"], ["--ambiguous-rate", "-0.1"], ["--latency-ms", "-1"],
     ["--rate-limit", "0"], ["--port", "70000"]],
)  # fmt: skip
def test_out_of_range_options_are_usage_errors(
    captured_serve: list[dict[str, Any]], argv: list[str]
) -> None:
    assert main(["sandbox", "serve", *argv]) == 64
    assert captured_serve == []


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_serve_subprocess(tmp_path: Path) -> None:
    db = tmp_path / "state" / "sandbox.db"
    token = "cli-test-token-9f3a"
    env = {k: v for k, v in os.environ.items() if k not in ("MAC_API_TOKEN", "MAC_SANDBOX_DB")}
    argv = [sys.executable, "-m", "reconciler.cli.main", "sandbox", "serve",
            "--port", "0", "--db", str(db), "--token", token]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        first = out.get(timeout=20).rstrip("\n")
        second = out.get(timeout=5).rstrip("\n")
        match = EXPORT_URL.match(first)
        assert match, first
        assert second == f"export MAC_API_TOKEN={token}"
        base_url = match.group(1)
        assert int(match.group(2)) > 0  # --port 0 printed as the real port

        # Connections made before uvicorn's loop runs wait in the listen backlog.
        with http_client(base_url + "/v1", headers={"APIKey-Auth": token}) as client:
            created = client.post(
                "/miniapps",
                json={"id": "com.cli.app", "name": "N", "superapp_id": "com.s", "type": "Web"},
            )
            assert created.status_code == 201
            assert client.get("/miniapps/com.cli.app").json()["data"]["type"] == "Web"
        with http_client(base_url + "/v1") as anonymous:
            assert anonymous.get("/miniapps/com.cli.app").status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
    for reader in readers:
        reader.join(5)
    # stdout is the two export lines only (`eval "$(reconciler sandbox serve ...)"`-safe);
    # the access log goes to stderr.
    assert list(out.queue) == []
    assert any('"POST /api/v1/miniapps HTTP/1.1" 201' in line for line in err.queue)
    logged = "".join(list(out.queue) + list(err.queue))
    assert token not in logged  # printed once, in the export line, and never logged
    with SandboxStore(db) as store:  # the data is on disk
        assert store.count_apps() == 1


def test_a_busy_port_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["sandbox", "serve", "--port", str(port), "--db", str(tmp_path / "s.db")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""  # no export lines for a server that is not running
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in line
    assert "Internal error" not in captured.err and "Traceback" not in captured.err


def test_an_unknown_host_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sandbox", "serve", "--host", "no-such-host.invalid", "--allow-remote",
            "--db", str(tmp_path / "s.db")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: cannot listen on no-such-host.invalid:8080: ")
    assert "Internal error" not in err


def test_drop_assumption_unique_version_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import reconciler.providers.miniappcenter.sandbox as mac_sandbox

    configs: list[Any] = []
    monkeypatch.setattr(mac_sandbox, "serve", lambda config, **_: configs.append(config))
    argv = ["sandbox", "serve", "--db", str(tmp_path / "s.db"), "--token", "t0ken-for-tests"]
    assert main(argv) == 0
    assert main([*argv, "--drop-assumption", "unique-version-codes"]) == 0
    assert [c.unique_version_codes for c in configs] == [True, False]


def test_duplicate_version_codes_are_served_when_the_assumption_is_dropped(
    tmp_path: Path,
) -> None:
    from reconciler.providers.miniappcenter.sandbox.errors import ApiError
    from reconciler.providers.miniappcenter.sandbox.store import OldDatabaseError, SandboxStore

    version = {"code": "1.0", "platform_id": "iOS", "main_name": "m", "main_type": "Panel"}
    app = {"id": "com.a.b", "name": "A", "superapp_id": "com.s", "type": "Native"}
    with SandboxStore(tmp_path / "u.db") as unique, SandboxStore(
        tmp_path / "d.db", unique_version_codes=False
    ) as allowing:
        for store in (unique, allowing):
            store.create_miniapp(app)
            store.create_version("com.a.b", version)
        with pytest.raises(ApiError, match="already has a version"):
            unique.create_version("com.a.b", version)
        second, _ = allowing.create_version("com.a.b", version)
        assert allowing.version_id("com.a.b", "1.0") == second  # the newest of that code
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # the table as sandboxes made it before
        conn.execute("CREATE TABLE versions (id INTEGER PRIMARY KEY, app_id TEXT, code TEXT,"
                     " UNIQUE (app_id, code))")  # fmt: skip
    conn.close()
    with pytest.raises(OldDatabaseError, match="use a new database file"):
        SandboxStore(old, unique_version_codes=False)
