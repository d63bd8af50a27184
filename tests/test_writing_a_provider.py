"""docs/how-to/writing-a-provider.md shows the example plugin's own code: every code block
that names a file of tests/plugins/ is checked to be in that file, as written, so the page cannot
drift from the plugin the tests run (tests/test_plugin_kvstore.py)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "how-to" / "writing-a-provider.md"
BLOCK_RE = re.compile(r"```(?:python|toml)\n# (tests/plugins/\S+)\n(.*?)```", re.DOTALL)


def test_every_example_block_is_the_plugins_own_code() -> None:
    blocks = BLOCK_RE.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    for path, code in blocks:
        source = (REPO / path).read_text(encoding="utf-8")
        assert code in source, f"the block naming {path} is not in that file"


def test_the_readme_links_the_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/how-to/writing-a-provider.md)" in readme
