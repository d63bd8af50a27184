"""httpx URLs for API paths without parsing the endpoint again for every request.

``httpx.URL(root + path)`` parses, validates, normalises and percent-encodes the whole URL:
~25 us, 6% of a read's CPU (bench/, D100). The endpoint's part never changes, and the
clients' paths are already checked and percent-encoded (ids pass allow-lists, then
``quote``). So a path made only of characters httpx would leave as they are, without dot
segments, is joined to the parsed root directly; any other path takes httpx's full parse.
``tests/test_client_h11lane.py`` pins that both give the same URL.
"""

from __future__ import annotations

import re
from typing import Final

import httpx

# Characters httpx keeps as-is in a path (unreserved, sub-delims, ':' and '@'), or a valid
# percent-escape; nothing that would start a query or a fragment.
_PLAIN_PATH: Final = re.compile(r"(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+")
_DOT_SEGMENT: Final = re.compile(r"/\.\.?(?:/|$)")


class UrlJoiner:
    """``root + path`` as an ``httpx.URL``, the short way when that is provably the same."""

    def __init__(self, root: str) -> None:
        self._root_text = root
        self._root = httpx.URL(root)
        reference = getattr(self._root, "_uri_reference", None)
        # httpx's parsed form (a NamedTuple with a ``path``) is private: if a future httpx
        # changes it, every path takes the public constructor.
        self._fast = (
            reference is not None
            and hasattr(reference, "_replace")
            and getattr(reference, "query", "") is None
            and getattr(reference, "fragment", "") is None
            and isinstance(getattr(reference, "path", None), str)
        )
        self._root_path = self._root.raw_path.decode("ascii").rstrip("/")

    def __call__(self, path: str) -> httpx.URL:
        if self._fast and _PLAIN_PATH.fullmatch(path) and not _DOT_SEGMENT.search(path):
            url = httpx.URL.__new__(httpx.URL)
            url._uri_reference = self._root._uri_reference._replace(path=self._root_path + path)
            return url
        return httpx.URL(self._root_text + path)
