"""The sequential script the tool is compared with, process start included: reads the GET
paths listed in a file (one a line), one after another with a plain ``httpx.Client``
(keep-alive), each answer parsed as JSON. MAC_BASE_URL (…/api/v1 paths are appended to the
origin) and MAC_API_TOKEN come from the environment, as for the tool.

    python bench/sequential.py PATHS_FILE
"""

from __future__ import annotations

import os
import sys

import httpx


def main(paths_file: str) -> int:
    origin = httpx.URL(os.environ["MAC_BASE_URL"]).copy_with(path="/", query=None)
    headers = {"APIKey-Auth": os.environ["MAC_API_TOKEN"], "Accept": "application/json"}
    with open(paths_file, encoding="utf-8") as lines:
        paths = [line.strip() for line in lines if line.strip()]
    failed = 0
    with httpx.Client(base_url=str(origin), headers=headers, timeout=30) as client:
        for path in paths:
            response = client.get(path)
            if response.status_code != 200:
                failed += 1
            response.json()
    print(f"{len(paths)} reads, {failed} not 200")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
