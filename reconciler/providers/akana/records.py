"""The Akana section of the state (``State.providers["akana"]``), typed.

``resources["akana_app"][NAME]`` = ``{"id": AppID, "protect", "labels", "fields": {last applied},
"versions": {VERSION_NAME: {"id": AppVersionID, "fields": {...}}}}``. Only the apps recorded
here (or declared with ``adopt: true``) are ever changed or deleted.

``resources["akana_create_in_doubt"][NAME] = {}``: a create this tool sent whose outcome it
could not learn (the answer and the re-read were both lost, or the run stopped in between).
The next plan looks that Name up: one app found is this tool's (recorded without a person),
none means the create was not done (D98).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import ReconcilerError
from reconciler.providers.akana.vocabulary import ROOT_KIND

IN_DOUBT_KIND = "akana_create_in_doubt"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class VersionRecord(_Record):
    id: str = Field(min_length=1)
    fields: dict[str, Any] = Field(default_factory=dict)
    # What the platform answered for ``fields`` after the last write (the learned
    # normalization rule, reconciler.engine.normalization); none: compared as sent.
    answered: dict[str, Any] = Field(default_factory=dict)


class AppRecord(_Record):
    id: str = Field(min_length=1)
    protect: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    answered: dict[str, Any] = Field(default_factory=dict)  # as VersionRecord.answered
    versions: dict[str, VersionRecord] = Field(default_factory=dict)


class AkanaSectionError(ReconcilerError):
    """The state's Akana section does not hold what this reconciler writes."""


class AkanaSection:
    """The records by app name; handlers mutate it, :meth:`to_resources` writes it back.

    Read with ``AkanaSection.from_resources(state.providers["akana"].resources)``, written with
    ``state.providers["akana"].resources = section.to_resources()`` (this package does not
    import ``reconciler.state``: it still imports the Mini App Center's ids, D71).
    """

    def __init__(
        self, apps: dict[str, AppRecord] | None = None, in_doubt: set[str] | None = None
    ) -> None:
        self.apps: dict[str, AppRecord] = apps if apps is not None else {}
        # Names of apps whose create was sent and whose outcome is unknown.
        self.in_doubt: set[str] = in_doubt if in_doubt is not None else set()

    @classmethod
    def from_resources(cls, resources: dict[str, dict[str, dict[str, Any]]]) -> AkanaSection:
        """From ``ProviderState.resources``; a damaged record is an error naming it."""
        apps: dict[str, AppRecord] = {}
        for name, data in (resources.get(ROOT_KIND) or {}).items():
            try:
                apps[name] = AppRecord.model_validate(data)
            except ValidationError as exc:
                raise AkanaSectionError(
                    f"the state's Akana record of app {name!r} is damaged"
                    f" ({exc.error_count()} problems); restore the state file from its backup"
                ) from None
        return cls(apps, {str(name) for name in resources.get(IN_DOUBT_KIND) or {}})

    def to_resources(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {
            ROOT_KIND: {
                name: record.model_dump(mode="json") for name, record in sorted(self.apps.items())
            }
        }
        if self.in_doubt:
            out[IN_DOUBT_KIND] = {name: {} for name in sorted(self.in_doubt)}
        return out

    def by_id(self) -> dict[str, str]:
        """AppID -> the name it is recorded under."""
        return {record.id: name for name, record in self.apps.items()}

