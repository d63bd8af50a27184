"""A wrong ``MAC_BASE_URL`` against a real sandbox server over loopback: plan, apply and drift
stop with an error naming MAC_BASE_URL, never a plan that creates the whole fleet.

The sandbox answers paths that are not the API's like a plain web server would (404 without
the API's error body), so these tests see what a mistyped URL sees in production.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.fixtures_sandbox import RunningSandbox

REPO = Path(__file__).resolve().parent.parent
# Only the Mini App Center part of the demo fleet (manifests/akana/ is left out): these tests
# are about MAC_BASE_URL, and copying the folders keeps the command lines as a user of a
# Mini App Center fleet types them (no --provider). With the Akana apps and no AKANA_BASE_URL
# every run would stop at "no akana endpoint is configured" before the URL is ever tried.
MAC_FLEET = [REPO / "manifests" / "cafe", REPO / "manifests" / "payments"]


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_server: RunningSandbox) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_SANDBOX_DB", "MAC_API_VERSION", "AKANA_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAC_API_TOKEN", sandbox_server.token)
    monkeypatch.setenv("RECONCILER_STATE", str(tmp_path / "state.json"))
    monkeypatch.setenv("NO_COLOR", "1")
    for folder in MAC_FLEET:
        shutil.copytree(folder, tmp_path / "manifests" / folder.name)
    return tmp_path / "manifests"


def _wrong_urls(server: RunningSandbox) -> dict[str, str]:
    root = server.base_url.removesuffix("/api")
    return {
        "without /api": root,
        "with /api/v1": server.base_url + "/v1",
        "wrong host path": root + "/mac/api",
    }


WRONG = ["without /api", "with /api/v1", "wrong host path"]
# The likeliest fix, told from the shape of the URL.
HINTS = {
    "without /api": "the docs' $BASE_URL ends in /api",
    "with /api/v1": "MAC_BASE_URL ends in /v1, which the client adds itself; drop it",
    "wrong host path": "check MAC_BASE_URL (http://127.0.0.1:",
}
COMMANDS = [
    ["plan", "--detailed-exitcode"],
    ["plan", "--format", "json"],
    ["apply", "--auto-approve"],
    ["apply", "--auto-approve", "--format", "json"],
    ["drift"],
    ["drift", "--format", "json"],
]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("which", WRONG)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_wrong_base_url_is_an_error_naming_it(
    fleet: Path,
    sandbox_server: RunningSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    command: list[str],
) -> None:
    monkeypatch.setenv("MAC_BASE_URL", _wrong_urls(sandbox_server)[which])
    code, out, err = _run(capsys, command[0], str(fleet), *command[1:])
    assert code == 1, (out, err)
    assert "MAC_BASE_URL" in err
    assert HINTS[which] in err
    assert len(err.splitlines()) <= 3  # the endpoint line and one error line (+ summary)
    assert "to create" not in out and "Apply complete" not in out
    if "json" in command:
        assert "MAC_BASE_URL" in json.dumps(json.loads(out))
    # Nothing was written to the API (objects included) nor recorded in the state.
    assert sandbox_server.store.count_apps() == 0
    assert sandbox_server.store.count_objects() == 0
    state = fleet.parent / "state.json"
    assert not state.exists() or json.loads(state.read_text()).get("apps", {}) == {}

def test_right_base_url_plans_the_fleet(
    fleet: Path,
    sandbox_server: RunningSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The control: the same fleet against the right URL is a plan of creates.
    monkeypatch.setenv("MAC_BASE_URL", sandbox_server.base_url)
    code, out, err = _run(capsys, "plan", str(fleet), "--detailed-exitcode")
    assert code == 2, err
    assert "to create" in out
