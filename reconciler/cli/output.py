"""The last guard on what the CLI prints: every secret this process holds or held is masked
in every line written to stdout and stderr, whoever wrote it (an error message, a plan's JSON,
a progress line, a library's warning).

Messages are masked where they are made, before they are cut or escaped (a cut or escaped
secret no longer matches, see :func:`reconciler.secrets.redact`); this guard catches what a
layer forgot. It knows the JSON-escaped forms too, so a secret inside ``--format json``
output is masked here as well.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from reconciler.secrets import any_masked, redact


class RedactingStream:
    """``stream`` whose text writes are masked (bytes and every other attribute pass)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:
        if isinstance(text, str) and any_masked():
            text = redact(text)
        return int(self._stream.write(text))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def redacted_output() -> Iterator[None]:
    """Mask secrets in everything written to ``sys.stdout``/``sys.stderr`` in the block."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(out)
    sys.stderr = RedactingStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
