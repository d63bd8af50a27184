"""Every surface speaks for every provider: what an unconfigured provider needs, the titles
of text and Markdown reports, one JSON vocabulary, help's exit codes and examples, REST
endpoint names checked by `validate`, and a plan that cannot be saved refused before any
read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "RECONCILER_CONFIG",
                "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    (tmp_path / ".git").mkdir()
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_unconfigured_provider_names_its_variables(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "plan", "manifests/akana")
    assert code == 1
    assert err.splitlines()[-1] == (
        "Error: the manifests or the state need the akana provider, but no akana endpoint is"
        " configured: set AKANA_BASE_URL, AKANA_EMAIL and AKANA_PASSWORD, or pass --sandbox"
    )
    assert "AKANA_BUSINESS_ID" not in err  # optional: not something to set
