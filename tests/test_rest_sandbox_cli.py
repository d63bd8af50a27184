"""`reconciler sandbox serve --api tenant`: its config from the options and environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import reconciler.providers.rest.sandbox
from reconciler.cli.main import main
from reconciler.providers.rest.sandbox import TenantSandboxConfig


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_serve(config: TenantSandboxConfig, host: str = "", port: int = 0) -> None:
        calls.append({"config": config, "host": host, "port": port})

    monkeypatch.setattr(reconciler.providers.rest.sandbox, "serve_tenant", fake_serve)
    for name in ("TENANT_USERNAME", "TENANT_PASSWORD", "TENANT_API_KEY", "MAC_SANDBOX_DB",
                 "TENANT_SANDBOX_ACCESS_SECONDS", "TENANT_SANDBOX_REFRESH_SECONDS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return calls


def test_tenant_defaults_and_environment(
    captured: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["sandbox", "serve", "--api", "tenant", "--fail-rate", "0.1"]) == 0
    [call] = captured
    config = call["config"]
    assert Path(config.db_path) == Path(".reconciler") / "sandbox-tenant.db"
    assert config.access_seconds == 300 and config.refresh_seconds == 86_400
    assert config.fail_rate == 0.1
    (password,) = config.users.values()
    assert len(password) >= 20  # random when unset
    captured.clear()
    monkeypatch.setenv("TENANT_USERNAME", "bob")
    monkeypatch.setenv("TENANT_PASSWORD", "pw-from-env-123")
    monkeypatch.setenv("TENANT_API_KEY", "key-from-env-123")
    monkeypatch.setenv("TENANT_SANDBOX_ACCESS_SECONDS", "2")
    assert main(["sandbox", "serve", "--api", "tenant", "--port", "0"]) == 0
    config = captured[0]["config"]
    assert dict(config.users) == {"bob": "pw-from-env-123"}
    assert dict(config.api_keys) == {"key-from-env-123": "tenant"}
    assert config.access_seconds == 2
    assert "pw-from-env" not in repr(config) and "key-from-env" not in repr(config)


def test_bad_api_and_bad_lifetime_are_usage_errors(
    captured: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    assert main(["sandbox", "serve", "--api", "akana-typo"]) == 64
    assert "unknown --api" in capsys.readouterr().err
    monkeypatch.setenv("TENANT_SANDBOX_ACCESS_SECONDS", "soon")
    assert main(["sandbox", "serve", "--api", "tenant"]) == 64
    assert "TENANT_SANDBOX_ACCESS_SECONDS" in capsys.readouterr().err
    assert captured == []
