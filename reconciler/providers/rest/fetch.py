"""Reading live state: one listing per (endpoint, collection path) a plan needs, all at once.

A collection that cannot be read (listing refused, unsafe pagination, no client for its
endpoint) is named in :attr:`LiveRest.unreadable`; the diff then refuses only the objects of
that collection, and the others are planned."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from reconciler.engine.session import ProviderUnreadable
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.providers.rest.client import JsonObject, RestClient
from reconciler.providers.rest.diff import Collection, LiveRest, collections_needed
from reconciler.providers.rest.model import RestObject
from reconciler.providers.rest.records import Section


async def read_live(
    clients_by_endpoint: Mapping[str, RestClient],
    desired: Sequence[RestObject],
    section: Section,
) -> LiveRest:
    """List each collection the manifests declare or the state records, concurrently (the
    client's connection pool and retry policy bound the load). A refused login
    (ConfigError) is raised as it is."""
    needed = collections_needed(desired, section)
    objects: dict[Collection, list[JsonObject]] = {}
    unreadable: dict[Collection, str] = {}
    failed: dict[Collection, ReconcilerError] = {}

    async def one(collection: Collection) -> None:
        endpoint, path = collection
        client = clients_by_endpoint.get(endpoint)
        if client is None:
            unreadable[collection] = f"no client for endpoint {endpoint!r} (is it declared?)"
            return
        try:
            objects[collection] = await client.list_objects(path)
        except ConfigError:
            raise  # a refused login is the endpoint's, not one collection's: said once
        except ReconcilerError as exc:
            unreadable[collection] = f"listing failed: {exc}"
            failed[collection] = exc

    await asyncio.gather(*(one(collection) for collection in needed))
    if needed and failed and len(failed) == len(needed):
        # Nothing could be read (the endpoint down, no token): the provider is stuck for
        # this run, named once, rather than one error per object.
        first = min(failed, key=lambda collection: collection)
        raise ProviderUnreadable(f"{first[0]} {first[1]}: listing failed: {failed[first]}")
    return LiveRest(objects=objects, unreadable=unreadable, reads=len(needed))
