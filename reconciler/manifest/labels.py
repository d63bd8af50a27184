"""Labels: the keys every provider's manifests may use in ``metadata.labels``."""

from __future__ import annotations

import re

LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./-]*$"
_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)


def label_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a label name (``--select`` must be able to name it), or None."""
    if _LABEL_KEY_RE.fullmatch(key):
        return None
    return (
        "label names start with a letter or digit and contain only letters, digits,"
        " '_', '.', '/' or '-'"
    )
