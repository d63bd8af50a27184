"""Desired Akana apps + what the platform has + the state's Akana section -> engine changes
and problems. Pure: no client, no reads, no writes.

Ownership: only apps recorded in the section, or declared with ``adopt: true``, are changed
or deleted. Inside a managed app the manifest lists its versions: one not declared is deleted,
but only after every new version is added (an app always has a version; deleting the last
one deletes the app), and since a present app declares at least one version the last
remaining version is never deleted alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.address import Address
from reconciler.engine.normalization import agrees
from reconciler.engine.plan import (
    AppMeta,
    Change,
    FieldChange,
    PlanProblem,
    order_changes,
    unpruned_problem,
)
from reconciler.providers.akana.live import LiveAkana, LiveApp, LiveVersion
from reconciler.providers.akana.model import (
    APP_FIELDS,
    VERSION_FIELDS,
    VISIBILITIES,
    AkanaApp,
    AkanaVersion,
)
from reconciler.providers.akana.records import AkanaSection, AppRecord, VersionRecord
from reconciler.providers.akana.vocabulary import (
    LEVELS,
    ROOT_KIND,
    VERSION_KIND,
    app_address,
    version_address,
)
from reconciler.providers.akana.wire import AppCreate, AppUpdate, VersionCreate, VersionUpdate

UNMANAGED = (
    "exists on the server but is not managed: add adopt: true to its manifest to take it"
    " over, or `reconciler import` it"
)


@dataclass(frozen=True)
class Adoption:
    """An existing app a manifest takes over (``adopt: true``): apply records it in the state
    without any write (the engine's Fact)."""

    name: str
    server_id: str
    versions: Mapping[str, str]  # version name -> AppVersionID
    reads: int = 0

    @property
    def address(self) -> Address:
        return app_address(self.name)

    @property
    def app_id(self) -> str:  # the plan's grouping key: the app's name
        return self.name

    @property
    def adopts(self) -> bool:
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "app_id": self.name,
            "server_id": self.server_id,
            "versions": dict(sorted(self.versions.items())),
        }

    def describe(self) -> str:
        return f"adopt AppID {self.server_id} (exists on the server, unknown to the state)"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Adoption:
        return cls(str(data["app_id"]), str(data["server_id"]), dict(data.get("versions") or {}))


@dataclass(frozen=True)
class AkanaDiff:
    changes: tuple[Change, ...] = ()  # grouped by app (sorted by name), each app in order
    warnings: tuple[PlanProblem, ...] = ()
    errors: tuple[PlanProblem, ...] = ()
    learned: tuple[Adoption, ...] = ()
    apps: tuple[str, ...] = ()
    app_meta: Mapping[str, AppMeta] = field(default_factory=dict)


def field_changes(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    record: AppRecord | VersionRecord | None = None,
) -> tuple[FieldChange, ...]:
    """The fields ``after`` sets that ``before`` holds differently (flat records), by name.

    With the ``record`` of the last write, a field the platform stores in its own form
    (trimmed, case-folded) is unchanged while the manifest still says what was sent and the
    platform still holds what it answered then (the shared learned rule).
    """
    sent, answered = (record.fields, record.answered) if record is not None else (None, None)
    return tuple(
        FieldChange(key, before.get(key), value)
        for key, value in sorted(after.items())
        if key != "id" and not agrees(key, value, before.get(key), sent, answered)
    )


def diff(
    desired: Sequence[AkanaApp],
    live: LiveAkana,
    section: AkanaSection,
    *,
    prune: bool = False,
    in_scope: Callable[[str], bool] | None = None,
) -> AkanaDiff:
    """The plan's Akana part. ``in_scope`` narrows prune candidates to the selected apps."""
    out = _Builder()
    declared = {app.name for app in desired}
    for app in sorted(desired, key=lambda a: a.name):
        out.app(app, live, section.apps.get(app.name), in_doubt=app.name in section.in_doubt)
    unpruned: list[str] = []
    for name, record in sorted(section.apps.items()):
        if name in declared or (in_scope is not None and not in_scope(name)):
            continue
        found = live.by_id(record.id)
        if found is None:
            continue  # gone already: nothing to delete
        if not prune:
            unpruned.append(name)
            continue
        out.delete_app(name, found, record, reason="no manifest declares it (--prune)")
    kept = unpruned_problem("Akana app(s)", unpruned)
    if kept is not None:
        out.warnings.append(kept)
    return AkanaDiff(
        tuple(out.changes),
        tuple(out.warnings),
        tuple(out.errors),
        tuple(out.learned),
        tuple(sorted({*declared, *(c.app_id for c in out.changes)})),
        out.meta,
    )


class _Builder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.warnings: list[PlanProblem] = []
        self.errors: list[PlanProblem] = []
        self.learned: list[Adoption] = []
        self.meta: dict[str, AppMeta] = {}

    def app(
        self, app: AkanaApp, live: LiveAkana, record: AppRecord | None, *, in_doubt: bool = False
    ) -> None:
        """``in_doubt``: this tool sent a create of this Name and never learned its outcome,
        so an app of that Name is its own (adopted without ``adopt: true``, D98)."""
        address = app_address(app.name)
        if app.ensure == "present":
            self.meta[app.name] = AppMeta(app.protect, dict(app.labels))
        current = live.by_id(record.id) if record is not None else None
        if current is None:
            named = live.named(app.name)
            if len(named) > 1:
                ids = ", ".join(a.id for a in named)
                self.errors.append(PlanProblem(
                    f"{len(named)} apps named {app.name!r} exist on the server ({ids}); the"
                    " reconciler cannot tell which is meant: delete or rename the others",
                    app.name, address, "app"))
                return
            if named and not (app.adopt or in_doubt):
                self.errors.append(PlanProblem(UNMANAGED, app.name, address, "app"))
                return
            if named:
                current = named[0]
                self.learned.append(Adoption(
                    app.name, current.id, {v.name: v.id for v in current.versions or ()}))
        if app.ensure == "absent":
            if current is not None:
                self.delete_app(app.name, current, record, reason="ensure: absent", app=app)
            return
        if current is None:
            missing = record is not None
            self._create(app, "missing on the server (deleted outside)" if missing else None)
            return
        self._update(app, current, record if record is not None and record.id == current.id
                     else None)

    def delete_app(
        self,
        name: str,
        current: LiveApp,
        record: AppRecord | None,
        *,
        reason: str,
        app: AkanaApp | None = None,
    ) -> None:
        address = app_address(name)
        change = Change(
            address=address,
            kind=ROOT_KIND,
            action="delete",
            app_id=name,
            before=_app_before(current),
            after=None,
            reason=reason,
        )
        self.changes.append(change)
        if (app is not None and app.protect) or (record is not None and record.protect):
            self.errors.append(PlanProblem(
                "refusing to delete a protected Akana app (protect: true). To delete it, first"
                " apply its manifest with `protect: false`, then delete it.", name, address))

    def _create(self, app: AkanaApp, reason: str | None) -> None:
        address = app_address(app.name)
        first, *others = app.versions
        payload = AppCreate(
            name=app.name,
            summary=app.summary,
            description=app.description,
            picture_id=app.picture_id,
            business_id=app.business_id,
            version=_version_create(first),
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
        after = {"name": app.name, **app.fields(), "version": {"name": first.name,
                                                             **first.fields()}}
        if app.business_id is not None:
            after["business_id"] = app.business_id
        changes = [Change(address=address, kind=ROOT_KIND, action="create", app_id=app.name,
                          before=None, after=after, payload=payload, reason=reason)]
        changes += [self._version_create(app.name, v, (address,)) for v in others]
        self.changes.extend(order_changes(changes, LEVELS))

    def _update(self, app: AkanaApp, current: LiveApp, record: AppRecord | None) -> None:
        address = app_address(app.name)
        changes: list[Change] = []
        wanted = {"name": app.name, **app.fields()}
        before = _app_before(current)
        fields = field_changes(before, wanted, record)
        if fields:
            # PUT carries every field: an unmanaged one keeps what the server has.
            body = {k: app.fields().get(k, current.fields.get(k)) for k in APP_FIELDS}
            payload = AppUpdate(name=app.name, **body).model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
            changes.append(Change(address=address, kind=ROOT_KIND, action="update",
                                  app_id=app.name, before=before,
                                  after={**before, **wanted}, payload=payload, fields=fields))
        declared = {v.name for v in app.versions}
        creates: list[Change] = []
        for version in app.versions:
            found = current.version(version.name)
            if found is None:
                creates.append(self._version_create(app.name, version, ()))
            else:
                written = record.versions.get(version.name) if record is not None else None
                if written is not None and written.id != found.id:
                    written = None  # another version of that name: nothing learned about it
                changes.extend(self._version_update(app.name, version, found, written))
        # Deletes wait for every add: the app never runs out of versions.
        added = tuple(c.address for c in creates)
        deletes = [
            Change(address=version_address(app.name, v.name), kind=VERSION_KIND,
                   action="delete", app_id=app.name, key=v.name, before=_version_before(v),
                   after=None, depends_on=added, reason="no longer declared")
            for v in sorted(current.versions or (), key=lambda v: v.name)
            if v.name not in declared
        ]
        self.changes.extend(order_changes([*changes, *creates, *deletes], LEVELS))

    @staticmethod
    def _version_create(
        app_name: str, version: AkanaVersion, depends_on: tuple[Address, ...]
    ) -> Change:
        return Change(
            address=version_address(app_name, version.name),
            kind=VERSION_KIND,
            action="create",
            app_id=app_name,
            key=version.name,
            before=None,
            after={"name": version.name, **version.fields()},
            payload=_version_create(version).model_dump(
                mode="json", by_alias=True, exclude_none=True
            ),
            depends_on=depends_on,
        )

    @staticmethod
    def _version_update(
        app_name: str, version: AkanaVersion, found: LiveVersion, record: VersionRecord | None
    ) -> list[Change]:
        before = _version_before(found)
        wanted = version.fields()
        fields = field_changes(before, wanted, record)
        if not fields:
            return []
        body = {k: wanted.get(k, found.fields.get(k)) for k in VERSION_FIELDS}
        if body["visibility"] not in VISIBILITIES:
            body["visibility"] = None  # a value the body cannot carry: not sent, kept as it is
        payload = VersionUpdate(name=version.name, **body).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        return [Change(address=version_address(app_name, version.name), kind=VERSION_KIND,
                       action="update", app_id=app_name, key=version.name, before=before,
                       after={**before, **wanted}, payload=payload, fields=fields)]


def _version_create(version: AkanaVersion) -> VersionCreate:
    return VersionCreate(
        name=version.name,
        description=version.description,
        tags=list(version.tags) if version.tags is not None else None,
        visibility=version.visibility,
        website_address=version.website_address,
        initial_environment=version.initial_environment,
    )


def _app_before(current: LiveApp) -> dict[str, Any]:
    return {"id": current.id, "name": current.name, **current.fields}


def _version_before(current: LiveVersion) -> dict[str, Any]:
    return {"id": current.id, "name": current.name, **current.fields}
