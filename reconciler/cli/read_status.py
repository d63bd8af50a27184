"""The status line of a plan's live reads on a terminal: the reads answered so far, per
provider, redrawn in place while planning and erased when it ends. Nothing is written when
stderr is not a terminal (a pipeline's log keeps only the report)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Redrawn at most this often: a large fleet answers thousands of reads a second.
REDRAW_SECONDS = 0.1
ERASE = "\r\x1b[K"  # back to the line's start, the line cleared


class ReadStatus:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._counts: dict[str, int] = {}
        self._drawn = False
        self._last = 0.0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def on_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):  # a closed or replaced stream
            return False

    def read(self, provider: str) -> None:
        self._counts[provider] = self._counts.get(provider, 0) + 1
        now = time.monotonic()
        if self._drawn and now - self._last < REDRAW_SECONDS:
            return
        if not self.on_terminal():
            return
        self._last = now
        counts = ", ".join(f"{name} {count}" for name, count in sorted(self._counts.items()))
        self.stream.write(f"{ERASE}Reading live state: {counts} request(s) answered")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the line (before another line is said, and when planning ends)."""
        if self._drawn:
            self.stream.write(ERASE)
            self.stream.flush()
            self._drawn = False

    def end(self) -> None:
        self.clear()
        self._counts.clear()
