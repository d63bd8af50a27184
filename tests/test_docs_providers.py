"""docs/explanations/providers.md: its console blocks run as the README's do (in-process, on
a fresh copy of the demo fleet), so what it shows of the one engine stays true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_readme_runs import check_console
from tests.test_readme_runs import fleet as fleet  # the demo fleet fixture

PAGE = Path(__file__).resolve().parent.parent / "docs" / "explanations" / "providers.md"


def blocks() -> list[str]:
    """The page's console blocks, but those marked ``<!-- norun: ... -->``."""
    text = PAGE.read_text("utf-8")
    found = re.finditer(r"(<!-- norun:[^>]*-->\n)?^```console\n(.*?)^```$", text, re.S | re.M)
    return [m.group(2) for m in found if m.group(1) is None]


def test_the_page_has_one_title_and_a_runnable_block() -> None:
    text = PAGE.read_text("utf-8")
    assert len(re.findall(r"^# ", text, re.M)) == 1
    assert blocks()


def test_its_console_blocks_run(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for block in blocks():
        assert check_console(block, capsys) >= 1
