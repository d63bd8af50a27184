"""Import: one live object, found by its natural key -> a manifest that declares it as it is
and the state record that adopts it. The body holds every field the server answered except
``id`` and the fields it computes (``ignore``, listed in the manifest too)."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.errors import ReconcilerError
from reconciler.providers.rest.client import RestClient
from reconciler.providers.rest.manifest.render import render_manifest
from reconciler.providers.rest.model import RestObject, key_text
from reconciler.providers.rest.records import RestRecord

# Fields DRF models commonly compute; present in an answer, they are left out of the body.
DEFAULT_COMPUTED: tuple[str, ...] = ("created_at", "updated_at")


async def import_object(
    client: RestClient,
    endpoint: str,
    path: str,
    key_field: str,
    key: str,
    *,
    computed: Sequence[str] = DEFAULT_COMPUTED,
    schema: str | None = None,
) -> tuple[str, RestRecord]:
    """(manifest text, record) of the object whose ``key_field`` is ``key``;
    ReconcilerError when there is none (or its id is not usable)."""
    found = await client.find(path, key_field, key)
    if found is None:
        raise ReconcilerError(f"{endpoint} {path}: no object has {key_field}={key[:80]!r}")
    server_id = found.get("id")
    if isinstance(server_id, bool) or not isinstance(server_id, int | str):
        raise ReconcilerError(f"{endpoint} {path}: the object has no usable id")
    skipped = {"id", *computed}
    body = {name: value for name, value in found.items() if name not in skipped}
    ignore = tuple(name for name in computed if name in found)
    obj = RestObject(
        name=key, endpoint=endpoint, path=path, key_field=key_field, body=body, ignore=ignore
    )
    assert key_text(body.get(key_field)) == key
    record = RestRecord(
        id=server_id,
        endpoint=endpoint,
        path=path,
        key_field=key_field,
        key=key,
        fields=dict(body),
        answered=dict(body),
    )
    return render_manifest(obj, schema=schema), record
