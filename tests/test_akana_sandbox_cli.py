"""`reconciler sandbox serve --api akana` and the Akana settings from the environment."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import reconciler.providers.akana.sandbox as akana_sandbox
from reconciler.cli.main import main
from reconciler.errors import ConfigError
from reconciler.providers.akana.config import akana_config_from_env

EXPORT_URL = re.compile(r"^export AKANA_BASE_URL=(http://127\.0\.0\.1:(\d+))$")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_serve(config: Any, email: str, host: str = "", port: int = 0) -> None:
        calls.append({"config": config, "email": email, "host": host, "port": port})

    monkeypatch.setattr(akana_sandbox, "serve_akana", fake_serve)
    for name in ("AKANA_EMAIL", "AKANA_PASSWORD", "AKANA_SANDBOX_DB"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_akana_defaults(
    captured: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sandbox", "serve", "--api", "akana", "--session-seconds", "90"]) == 0
    [call] = captured
    config = call["config"]
    assert Path(config.db_path) == Path(".reconciler") / "akana-sandbox.db"
    assert call["email"] == "admin@sandbox.local"
    assert len(config.users[call["email"]]) >= 20  # made up
    assert config.session_seconds == 90
    assert config.users[call["email"]] not in repr(config)


def test_akana_users_from_the_environment(
    captured: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AKANA_EMAIL", "me@x.example")
    monkeypatch.setenv("AKANA_PASSWORD", "env-password-1")
    assert main(["sandbox", "serve", "--api", "akana", "--db", str(tmp_path / "a.db")]) == 0
    assert captured[0]["config"].users == {"me@x.example": "env-password-1"}


@pytest.mark.parametrize("argv", [["--api", "other"], ["--api", "akana", "--token", "t"]])
def test_bad_api_options_are_usage_errors(
    captured: list[dict[str, Any]], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "serve", *argv]) == 64
    assert captured == []
    assert "Error:" in capsys.readouterr().err


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_serve_akana_subprocess(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKANA_")}
    env["AKANA_PASSWORD"] = "cli-akana-password-7"
    argv = [sys.executable, "-m", "reconciler.cli.main", "sandbox", "serve", "--api", "akana",
            "--port", "0", "--db", str(tmp_path / "a.db")]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    out: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True)
    reader.start()
    try:
        lines = [out.get(timeout=20).rstrip("\n") for _ in range(3)]
        match = EXPORT_URL.match(lines[0])
        assert match, lines
        assert lines[1:] == [
            "export AKANA_EMAIL=admin@sandbox.local",
            "export AKANA_PASSWORD=cli-akana-password-7",
        ]
        with httpx.Client(base_url=match.group(1), timeout=10) as client:
            login = client.post(
                "/api/login",
                json={"email": "admin@sandbox.local", "password": "cli-akana-password-7"},
            )
            assert login.status_code == 200
            listing = client.get("/api/apps", headers={"Accept": "application/vnd.soa.v83+json"})
            assert listing.json() == {"Application": []}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
        reader.join(5)


def test_akana_settings_from_the_environment() -> None:
    config = akana_config_from_env(
        {
            "AKANA_BASE_URL": "https://akana.example.com/",
            "AKANA_EMAIL": "me@x.example",
            "AKANA_PASSWORD": "pw with spaces ok",
            "AKANA_BUSINESS_ID": "b1.acme",
        }
    )
    assert config.endpoint.root == "https://akana.example.com/api"
    assert (config.email, config.business_id) == ("me@x.example", "b1.acme")
    assert config.password.reveal() == "pw with spaces ok"
    assert "pw with spaces" not in repr(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set AKANA_BASE_URL"),
        ({"AKANA_BASE_URL": "https://h.example"}, "set AKANA_EMAIL and AKANA_PASSWORD"),
        ({"AKANA_BASE_URL": "https://h.example/api", "AKANA_EMAIL": "e", "AKANA_PASSWORD": "p"},
         "adds itself"),
        ({"AKANA_BASE_URL": "http://h.example", "AKANA_EMAIL": "e", "AKANA_PASSWORD": "p"},
         "plain http://"),
        ({"AKANA_BASE_URL": "https://u:secretpw@h.example", "AKANA_EMAIL": "e",
          "AKANA_PASSWORD": "p"}, "credentials"),
    ],
)  # fmt: skip
def test_bad_akana_settings_are_clear(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        akana_config_from_env(env)
    assert message in str(caught.value)
    assert "secretpw" not in str(caught.value)


def test_drop_assumption_unique_app_names(
    captured: list[dict[str, Any]], tmp_path: Path
) -> None:
    argv = ["sandbox", "serve", "--api", "akana", "--db", str(tmp_path / "a.db")]
    assert main(argv) == 0
    assert main([*argv, "--drop-assumption", "unique-app-names"]) == 0
    assert [call["config"].unique_app_names for call in captured] == [True, False]


@pytest.mark.parametrize("api", ["akana", "tenant"])
def test_an_unknown_assumption_is_a_usage_error(
    captured: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], api: str
) -> None:
    assert main(["sandbox", "serve", "--api", api, "--drop-assumption", "no-such"]) == 64
    assert captured == []
    err = capsys.readouterr().err
    assert err.startswith("Error: the") and "'no-such'" in err and len(err.splitlines()) == 1


def test_duplicate_app_names_are_served_when_the_assumption_is_dropped(tmp_path: Path) -> None:
    from reconciler.providers.akana.sandbox.errors import AkanaError

    unique = akana_sandbox.AkanaSandboxStore(tmp_path / "u.db")
    allowing = akana_sandbox.AkanaSandboxStore(tmp_path / "d.db", unique_app_names=False)
    try:
        for store in (unique, allowing):
            for n in (1, 2):
                app = {"id": f"a{n}.fed", "business_id": "", "name": "Same", "summary": "",
                       "description": "", "picture_id": "", "visibility": "Public",
                       "state": "s", "created": "t", "updated": "t"}  # fmt: skip
                version = {"id": f"v{n}.fed", "app_id": f"a{n}.fed", "name": "1.0",
                           "description": "", "tags": [], "visibility": "Public",
                           "website": "", "environment": "", "state": "s", "created": "t",
                           "updated": "t"}  # fmt: skip
                if store is unique and n == 2:
                    with pytest.raises(AkanaError, match="already exists"):
                        store.create_app(app, version)
                else:
                    store.create_app(app, version)
        assert [a["name"] for a in allowing.list_apps("")] == ["Same", "Same"]
        assert [a["name"] for a in unique.list_apps("")] == ["Same"]
    finally:
        unique.close()
        allowing.close()


def test_an_old_database_cannot_drop_unique_app_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the table as sandboxes made it before
        conn.execute("CREATE TABLE apps (id TEXT PRIMARY KEY, business_id TEXT NOT NULL DEFAULT"
                     " '', name TEXT NOT NULL, UNIQUE (business_id, name))")  # fmt: skip
    conn.close()
    monkeypatch.delenv("AKANA_SANDBOX_DB", raising=False)
    argv = ["sandbox", "serve", "--api", "akana", "--port", "0", "--db", str(db),
            "--drop-assumption", "unique-app-names"]  # fmt: skip
    assert main(argv) == 64
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "use a new database file" in captured.err
