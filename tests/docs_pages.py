"""The documentation's pages and their fenced blocks, as the docs tests read them.

A page is README.md or any ``docs/**/*.md`` except the decision records. A fenced block may be
preceded, on the line just before its fence, by an HTML comment that the rendered page hides:

- ``<!-- norun: REASON -->``: a shell block the tests do not run (it needs a server, a
  package install, a git history...); REASON says why, and what runs it instead;
- ``<!-- file: PATH -->``: the block is the content of PATH, written into the demo fleet's
  copy before the page's blocks run (a broken manifest an example validates, say).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXCLUDED = {DOCS / "decisions.md"}  # the decision records: an appendix, not a user page
RUN_FENCES = ("console", "bash", "sh")
_MARK = re.compile(r"^<!-- (norun|file): ?(.*?) ?-->$")


def pages() -> list[Path]:
    found = [p for p in sorted(DOCS.rglob("*.md")) if p not in EXCLUDED]
    return [REPO / "README.md", *found]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    fence: str  # the info string: console, bash, yaml, ...
    text: str
    norun: str | None = None
    file: str | None = None

    @property
    def id(self) -> str:
        return f"{rel(self.page)}:{self.line}"


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)

    @property
    def files(self) -> dict[str, str]:
        return {b.file: b.text for b in self.blocks if b.file is not None}

    def runnable(self) -> list[Block]:
        return [
            b for b in self.blocks
            if b.fence in RUN_FENCES and b.norun is None and b.file is None
        ]  # fmt: skip


def read_page(path: Path) -> Page:
    lines = path.read_text(encoding="utf-8").splitlines()
    page = Page(path)
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [x[len(indent) :] if x.startswith(indent) else x for x in lines[i + 1 : end]]
        mark = _MARK.match(lines[i - 1].strip()) if i else None
        norun = mark.group(2) if mark and mark.group(1) == "norun" else None
        file = mark.group(2) if mark and mark.group(1) == "file" else None
        page.blocks.append(
            Block(path, i + 1, fence, "\n".join(body) + "\n", norun=norun, file=file)
        )
        i = end + 1
    return page
