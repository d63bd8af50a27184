"""docs/reference/schemas-and-addresses.md: every console block runs as written, in-process,
on a fresh copy of the demo fleet (as tests/test_docs_runs.py runs every page)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.test_docs_runs import check_console

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "reference" / "schemas-and-addresses.md"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "RECONCILER_CONFIG",
                "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "schema", tmp_path / "schema")
    return tmp_path


def test_the_page_has_one_title_and_no_decision_numbers() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert len(re.findall(r"^# ", text, flags=re.M)) == 1
    assert re.search(r"\bD\d{1,3}\b|issue \d", text) is None


def test_every_console_block_runs_in_order(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"^```console\n(.*?)^```$", PAGE.read_text("utf-8"), flags=re.S | re.M)
    assert len(blocks) == 4
    assert sum(check_console(block, capsys) for block in blocks) == 8
    # What --write wrote is what the package ships.
    assert (fleet / "schema" / "akana-app.schema.json").read_text("utf-8") == (
        REPO / "schema" / "akana-app.schema.json"
    ).read_text("utf-8")
