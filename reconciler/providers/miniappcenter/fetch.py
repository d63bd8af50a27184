"""Read the live state a plan needs, concurrently, each resource once.

Only what the manifests reference is read: ``GET /miniapps/{id}``, its locations when the
manifest manages them, and each version whose id the state knows. Requests share one bounded
semaphore (``--parallelism``) over the client's single connection pool.

A read that still fails after the client's retries (5xx, 429, a broken connection) makes only
its own app unread (``LiveState.unread``): the plan names it as stuck and apply does the
rest. Any other failure (a refused token, a wrong endpoint), or every app failing, fails the
run: that is a read the whole fleet depends on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from reconciler.address import Address
from reconciler.errors import ApiError, ReconcilerError, TransportError
from reconciler.providers.miniappcenter.addresses import (
    app_address,
    locations_address,
    version_address,
)
from reconciler.providers.miniappcenter.client import MiniAppCenterClient
from reconciler.providers.miniappcenter.model import (
    APP_FIELDS,
    LiveApp,
    Location,
    MiniApp,
    MiniAppSpec,
    Version,
    normalize_geo_point,
    normalize_keywords,
    normalize_main_type,
    normalize_type,
)
from reconciler.state import State

T = TypeVar("T")


@dataclass(frozen=True)
class FetchRequest:
    """What to read for one app."""

    app_id: str
    locations: bool = False
    versions: dict[str, int] = field(default_factory=dict)  # code -> known server id


@dataclass
class LiveState:
    apps: dict[str, LiveApp | None]
    fingerprints: dict[Address, str]
    # Apps a read of which failed after the retries (app id -> why): stuck for this run.
    unread: dict[str, str] = field(default_factory=dict)


def transient(error: BaseException) -> bool:
    """A read failure that says nothing about the fleet: it stops only the app it was for.

    The server's own trouble (5xx, 429 once the retries ran out) or a connection that broke
    or timed out. A 4xx (a refused token, a wrong path) would fail every app the same way."""
    if isinstance(error, ApiError):
        return error.status >= 500 or error.status == 429
    return isinstance(error, TransportError)


def unread_reason(app_id: str, error: ReconcilerError) -> str:
    return (
        f"{app_id} could not be read ({error}); nothing of it was changed, the next run reads"
        " it again"
    )


def requests_for(
    desired: Sequence[MiniApp], state: State, extra_app_ids: Iterable[str] = (),
    *, all_locations: bool = False,
) -> list[FetchRequest]:
    """The reads a plan needs: nothing more (each resource once)."""
    requests: list[FetchRequest] = []
    seen: set[str] = set()
    for app in desired:
        seen.add(app.id)
        if app.absent:
            requests.append(FetchRequest(app.id))
            continue
        record = state.app(app.id)
        versions: dict[str, int] = {}
        if record is not None and app.spec.versions is not None:
            for version in app.spec.versions:
                known = record.versions.get(version.code)
                if known is not None and known.id is not None:
                    versions[version.code] = known.id
        wants_locations = all_locations or app.spec.locations is not None
        requests.append(FetchRequest(app.id, locations=wants_locations, versions=versions))
    for app_id in extra_app_ids:
        if app_id not in seen:
            seen.add(app_id)
            requests.append(FetchRequest(app_id, locations=all_locations))
    return requests


async def fetch_live(
    client: MiniAppCenterClient,
    requests: Sequence[FetchRequest],
    *,
    parallelism: int = 16,
    on_app_done: Callable[[str], None] | None = None,
    isolate: bool = False,
) -> LiveState:
    """``isolate``: a transient failure makes only its app unread (the plan's reads);
    otherwise any failure fails the call (import, and apply's re-read of one app)."""
    semaphore = asyncio.Semaphore(max(1, parallelism))
    apps: dict[str, LiveApp | None] = {}
    fingerprints: dict[Address, str] = {}
    failed: dict[str, ReconcilerError] = {}

    async def bounded(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    async def one(request: FetchRequest) -> None:
        try:
            await read_one(request)
        except ReconcilerError as error:
            if not isolate or not transient(error):
                raise
            failed[request.app_id] = error
            if on_app_done:
                on_app_done(request.app_id)

    async def read_one(request: FetchRequest) -> None:
        app_id = request.app_id
        data = await bounded(lambda: client.get_miniapp(app_id))
        if data is None:
            fingerprints[app_address(app_id)] = fingerprint(data)
            apps[app_id] = None
            if on_app_done:
                on_app_done(app_id)
            return
        reads: list[Awaitable[Any]] = []
        if request.locations:
            reads.append(bounded(lambda: client.list_locations(app_id)))
        for version_id in request.versions.values():
            reads.append(bounded(_version_reader(client, app_id, version_id)))
        # Every read runs to its end (none is left running unawaited); the first failure counts.
        outcomes = await asyncio.gather(*reads, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        results: list[Any] = list(outcomes)
        # Recorded only once every read of the app succeeded: an unread app has none.
        fingerprints[app_address(app_id)] = fingerprint(data)
        locations = results.pop(0) if request.locations else None
        if locations is not None:
            fingerprints[locations_address(app_id)] = fingerprint(locations)
        versions: dict[str, Any] = {}
        for code, result in zip(request.versions, results, strict=True):
            versions[code] = result
            fingerprints[version_address(app_id, code)] = fingerprint(result)
        apps[app_id] = live_app(app_id, data, locations, versions)
        if on_app_done:
            on_app_done(app_id)

    try:
        async with asyncio.TaskGroup() as group:
            for request in requests:
                group.create_task(one(request))
    except* ReconcilerError as failures:
        raise failures.exceptions[0] from None
    if failed and not apps:
        raise next(iter(failed.values()))  # nothing could be read: the endpoint is failing
    return LiveState(
        apps=apps,
        fingerprints=fingerprints,
        unread={app_id: unread_reason(app_id, error) for app_id, error in failed.items()},
    )


def _version_reader(
    client: MiniAppCenterClient, app_id: str, version_id: int
) -> Callable[[], Awaitable[Any]]:
    return lambda: client.get_version(app_id, version_id)


# What ``json.dumps(..., sort_keys=True, separators=(",", ":"), default=str)`` uses, built
# once: dumps builds a new encoder per call when given options (~3 us of a ~15 us digest, once
# per resource read; the digests are unchanged).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(data: Any) -> str:
    """A stable digest of what the API answered (a saved plan refuses a changed object)."""
    text = _CANONICAL.encode(_dump(data))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dump(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_dump(item) for item in data]
    return data


# --- wire -> model, leniently: the server may say things our manifests would refuse ------


def _lenient(normalise: Callable[[str], str], value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return normalise(value)
    except ValueError:
        return value  # keep what the server said; the diff then shows it as it is


def live_app(
    app_id: str, data: Any, locations: list[Any] | None, versions: dict[str, Any]
) -> LiveApp:
    values: dict[str, Any] = {name: getattr(data, name, None) for name in APP_FIELDS}
    values["type"] = _lenient(normalize_type, values["type"])
    values["keywords"] = _lenient(normalize_keywords, values["keywords"])
    attributes = {item.field: item.value for item in (data.additional_attributes or [])}
    location_models: list[Location] = []
    location_ids: dict[str, tuple[int, ...]] = {}
    for loc in sorted(locations or [], key=lambda item: item.id):
        if loc.name in location_ids:
            location_ids[loc.name] = (*location_ids[loc.name], loc.id)
            continue
        location_ids[loc.name] = (loc.id,)
        location_models.append(
            Location.model_construct(
                name=loc.name, geo_point=_lenient(normalize_geo_point, loc.geo_point)
            )
        )
    version_models: list[Version] = []
    version_ids: dict[str, int] = {}
    missing: list[str] = []
    for code, version in versions.items():
        if version is None or (version.code and version.code != code):
            # 404, or the recorded id now answers another code: the version we knew is gone
            missing.append(code)
            continue
        version_ids[code] = version.id
        version_models.append(live_version(code, version))
    spec = MiniAppSpec.model_construct(
        ensure="present",
        **values,
        attributes=dict(sorted(attributes.items())),
        locations=tuple(location_models) if locations is not None else None,
        versions=tuple(version_models),
    )
    app = MiniApp.model_construct(id=app_id, labels={}, protect=False, spec=spec)
    return LiveApp(
        app=app,
        location_ids=location_ids,
        version_ids=version_ids,
        locations_read=locations is not None,
        missing_versions=tuple(missing),
    )


def live_version(code: str, version: Any) -> Version:
    """A version as the API answered it, normalised like a manifest's."""
    return Version.model_construct(
        code=code,
        platform_id=version.platform_id,
        metadata=version.metadata,
        integrated_security=version.integrated_security,
        main_name=version.main_name,
        main_type=_lenient(normalize_main_type, version.main_type),
        service_url=version.service_url,
        compatibility=None,
        status=None,
    )
