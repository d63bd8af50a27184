"""The Mini App Center's normalization beyond its hand-written normalizers is learned.

The hand-written ones cover what the docs say (``type`` and ``main_type`` without case,
keywords, WKT points, images by content). A server that normalizes anything else (here:
whitespace collapsed in a description, a service URL lower-cased) made a perpetual diff;
now the apply says once which fields it normalized and the next plan is empty, while a
change made outside is still a change.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.fixtures_sandbox import RunningSandbox

MANIFEST = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.test.normal.shop
spec:
  name: Shop
  superapp_id: com.test.super
  type: native
  description: "Best   coffee"
  versions:
    - code: "1.0"
      platform_id: iOS
      main_name: Home
      main_type: panel
      service_url: https://Shop.Example.com/Home
"""


def _normalizing(server: RunningSandbox) -> None:
    """Make the running server store its own form of two fields (it runs in this process)."""
    store = server.store

    def app_values(values: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(values)
        if isinstance(out.get("description"), str):
            out["description"] = re.sub(r"\s+", " ", out["description"])
        return out

    def version_values(values: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(values)
        if isinstance(out.get("service_url"), str):
            out["service_url"] = out["service_url"].lower()
        return out

    create_app, update_app = store.create_miniapp, store.update_miniapp
    create_version, update_version = store.create_version, store.update_version

    def create_miniapp(values: Mapping[str, Any], **kw: Any) -> Any:
        return create_app(app_values(values), **kw)

    def update_miniapp(app_id: str, values: Mapping[str, Any]) -> None:
        update_app(app_id, app_values(values))

    def new_version(app_id: str, values: Mapping[str, Any], **kw: Any) -> Any:
        return create_version(app_id, version_values(values), **kw)

    def put_version(app_id: str, version_id: int, values: Mapping[str, Any]) -> None:
        update_version(app_id, version_id, version_values(values))

    store.create_miniapp = create_miniapp  # type: ignore[method-assign]
    store.update_miniapp = update_miniapp  # type: ignore[method-assign]
    store.create_version = new_version  # type: ignore[method-assign]
    store.update_version = put_version  # type: ignore[method-assign]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_server_normalization_is_learned_said_once_and_converges(
    tmp_path: Path, sandbox_server_factory: Callable[..., RunningSandbox]
) -> None:
    server = sandbox_server_factory()
    _normalizing(server)
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "shop.yaml").write_text(MANIFEST)
    env = dict(os.environ)
    env.update(MAC_BASE_URL=server.base_url, MAC_API_TOKEN=server.token, NO_COLOR="1",
               RECONCILER_STATE=str(tmp_path / "state.json"))  # fmt: skip
    first = _run(env, "apply", str(folder), "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    said = 'the server normalized description: "Best   coffee" -> "Best coffee"'
    assert (first.stdout + first.stderr).count(said) == 1
    # The version was created with it: its create learned the form (said on updates).
    plan = _run(env, "plan", str(folder), "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr  # no perpetual diff

    # A manifest change is sent, and the server's new form learned, said once again.
    (folder / "shop.yaml").write_text(MANIFEST.replace("Best   coffee", "Good   tea")
                                      .replace("/Home", "/Start"))  # fmt: skip
    second = _run(env, "apply", str(folder), "--auto-approve")
    assert second.returncode == 0, second.stdout + second.stderr
    assert 'description: "Good   tea" -> "Good tea"' in second.stdout + second.stderr
    assert ('service_url: "https://Shop.Example.com/Start" -> "https://shop.example.com/start"'
            in second.stdout + second.stderr)  # fmt: skip
    assert _run(env, "plan", str(folder), "--detailed-exitcode").returncode == 0

    # Changed outside: still a change, and put back.
    server.store.update_miniapp("com.test.normal.shop", {"description": "edited"})
    outside = _run(env, "plan", str(folder), "--detailed-exitcode")
    assert outside.returncode == 2, outside.stdout + outside.stderr
    assert "description" in outside.stdout
