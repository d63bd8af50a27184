"""What the state remembers of each REST object this tool manages: its section of the state
file (``providers.rest``), typed.

``resources["rest_object"][ENDPOINT:PATH:KEY] = RestRecord`` as JSON. Ownership (D81): only
recorded objects are updated by a re-plan that finds them changed, or deleted by ``--prune``;
an object the manifests declare is adopted when found live by its natural key.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from reconciler.engine.normalization import agrees
from reconciler.engine.normalization import changed_outside as outside
from reconciler.errors import StateError
from reconciler.providers.rest.vocabulary import PROVIDER, ROOT_KIND, address_key


class Section(Protocol):
    """The state's section of this provider: ``reconciler.state.ProviderState`` (typed as a
    protocol because ``reconciler.state`` still imports the Mini App Center's ids, and a
    provider never depends on another; see the import contracts)."""

    resources: dict[str, dict[str, dict[str, Any]]]

ServerId = StrictInt | Annotated[StrictStr, Field(min_length=1, max_length=64)]


class RestRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ServerId
    endpoint: StrictStr
    path: StrictStr
    key_field: StrictStr
    key: StrictStr
    fields: dict[str, Any] = Field(default_factory=dict)  # last applied managed fields
    # What the server answered for those fields after that write (or held when adopted or
    # imported): a server may normalize what it is sent (a DecimalField answers 12.5 as
    # "12.50"), and a field is unchanged while the manifest still says what was sent and the
    # server still holds what it answered. A field not here (a record made before this was
    # kept) is compared as sent.
    answered: dict[str, Any] = Field(default_factory=dict)
    protect: StrictBool = False
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)

    @property
    def address_key(self) -> str:
        return address_key(self.endpoint, self.path, self.key)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def unchanged(record: RestRecord | None, name: str, desired: Any, live: Any) -> bool:
    """``desired`` and ``live`` agree for field ``name`` (the shared learned rule)."""
    sent, answered = (record.fields, record.answered) if record is not None else (None, None)
    return agrees(name, desired, live, sent, answered)


def changed_outside(record: RestRecord | None, name: str, desired: Any, live: Any) -> bool:
    """Someone else changed field ``name`` since this tool's last write (the shared rule)."""
    sent, answered = (record.fields, record.answered) if record is not None else (None, None)
    return outside(name, desired, live, sent, answered)


def read_records(section: Section) -> dict[str, RestRecord]:
    """Every record of the section, validated; StateError naming the first bad one."""
    out: dict[str, RestRecord] = {}
    for key, data in sorted(section.resources.get(ROOT_KIND, {}).items()):
        try:
            record = RestRecord.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise StateError(
                f"state: providers.{PROVIDER}.resources.{ROOT_KIND}: a record is invalid"
                f" ({where}: {first['msg']})"
            ) from None
        if record.address_key != key:
            raise StateError(
                f"state: providers.{PROVIDER}.resources.{ROOT_KIND}: a record is filed under"
                " a key that is not its endpoint:path:key"
            )
        out[key] = record
    return out


def put_record(section: Section, record: RestRecord) -> None:
    section.resources.setdefault(ROOT_KIND, {})[record.address_key] = record.as_json()


def drop_record(section: Section, key: str) -> None:
    records = section.resources.get(ROOT_KIND, {})
    records.pop(key, None)
