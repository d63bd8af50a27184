"""The kvstore's own sandbox: a small Starlette app with API-key auth, its entries kept in a
JSON file (so that separate runs of ``--sandbox`` see one store).

    GET    /entries             -> {"entries": [{"key", "value"}, ...]}
    GET    /entries/{key}       -> {"key", "value"} | 404
    PUT    /entries/{key}       {"value"} -> 201 created | 200 replaced
    DELETE /entries/{key}       -> 204 | 404

Every request needs ``X-Api-Key``; a wrong or missing key is 401.
"""

from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY_HEADER = "X-Api-Key"
MAX_BODY = 64 * 1024


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()}

    def write(self, entries: dict[str, str]) -> None:
        temp = self.path.with_name(self.path.name + ".tmp")
        temp.write_text(json.dumps(entries, sort_keys=True), encoding="utf-8")
        os.replace(temp, self.path)


def make_app(store_path: Path, api_key: str) -> Starlette:
    store = Store(store_path)

    def authorised(request: Request) -> bool:
        given = request.headers.get(API_KEY_HEADER, "")
        return hmac.compare_digest(given.encode(), api_key.encode())

    def denied() -> Response:
        return JSONResponse({"error": "missing or wrong API key"}, status_code=401)

    async def list_entries(request: Request) -> Response:
        if not authorised(request):
            return denied()
        entries = store.read()
        return JSONResponse(
            {"entries": [{"key": k, "value": v} for k, v in sorted(entries.items())]}
        )

    async def one_entry(request: Request) -> Response:
        if not authorised(request):
            return denied()
        key = request.path_params["key"]
        entries = store.read()
        if request.method == "GET":
            if key not in entries:
                return JSONResponse({"error": "no such entry"}, status_code=404)
            return JSONResponse({"key": key, "value": entries[key]})
        if request.method == "DELETE":
            if entries.pop(key, None) is None:
                return JSONResponse({"error": "no such entry"}, status_code=404)
            store.write(entries)
            return Response(status_code=204)
        body = await request.body()
        try:
            value = json.loads(body)["value"] if len(body) <= MAX_BODY else None
        except (ValueError, KeyError, TypeError):
            value = None
        if not isinstance(value, str):
            return JSONResponse({"error": 'the body is {"value": text}'}, status_code=400)
        created = key not in entries
        entries[key] = value
        store.write(entries)
        return JSONResponse({"key": key, "value": value}, status_code=201 if created else 200)

    return Starlette(
        routes=[
            Route("/entries", list_entries, methods=["GET"]),
            Route("/entries/{key}", one_entry, methods=["GET", "PUT", "DELETE"]),
        ]
    )


def main() -> None:  # pragma: no cover - `python -m kvstore_provider.sandbox DB KEY [PORT]`
    import sys

    import uvicorn

    path, key = Path(sys.argv[1]), sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 8765
    uvicorn.run(make_app(path, key), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
