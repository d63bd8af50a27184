"""The desired Akana app (``akana/v1`` ``App``), as the manifest declares it.

A field left out of ``spec`` is not managed: never sent, never compared. ``business_id`` and a
version's ``initial_environment`` are create-only (the update bodies have no such field).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

API_VERSION: Final = "akana/v1"
KIND: Final = "App"
ENSURE_VALUES: tuple[str, ...] = ("present", "absent")
VISIBILITIES: tuple[str, ...] = ("Public", "Limited", "Private")
MAX_NAME = 200
MAX_TEXT = 4000

# The app's fields the reconciler compares and updates (name is the key), in manifest order.
APP_FIELDS: tuple[str, ...] = ("summary", "description", "picture_id")
APP_CREATE_ONLY: tuple[str, ...] = ("business_id",)
VERSION_FIELDS: tuple[str, ...] = ("description", "tags", "visibility", "website_address")
VERSION_CREATE_ONLY: tuple[str, ...] = ("initial_environment",)

Name = Field(min_length=1, max_length=MAX_NAME)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AkanaVersion(_Frozen):
    name: str = Name
    description: str | None = Field(None, max_length=MAX_TEXT)
    tags: tuple[str, ...] | None = None
    visibility: Literal["Public", "Limited", "Private"] | None = None
    website_address: str | None = Field(None, max_length=MAX_TEXT)
    initial_environment: str | None = Field(None, max_length=MAX_NAME)

    def fields(self) -> dict[str, Any]:
        """The managed (compared) fields the manifest sets."""
        out: dict[str, Any] = {}
        for key in VERSION_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "tags" else value
        return out


class AkanaApp(_Frozen):
    name: str = Name
    labels: dict[str, str] = Field(default_factory=dict)
    protect: bool = False
    adopt: bool = False
    ensure: Literal["present", "absent"] = "present"
    summary: str | None = Field(None, max_length=MAX_TEXT)
    description: str | None = Field(None, max_length=MAX_TEXT)
    picture_id: str | None = Field(None, max_length=MAX_NAME)
    business_id: str | None = Field(None, max_length=MAX_NAME)
    versions: tuple[AkanaVersion, ...] = ()

    @property
    def id(self) -> str:  # the natural key, as every provider's desired resource names it
        return self.name

    @model_validator(mode="after")
    def _versions_rule(self) -> AkanaApp:
        if self.ensure == "present" and not self.versions:
            raise ValueError(
                "an Akana app always has at least one version: declare one under spec.versions"
            )
        names = [v.name for v in self.versions]
        if len(set(names)) != len(names):
            raise ValueError("version names must be unique within an app")
        return self

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in APP_FIELDS if getattr(self, k) is not None}
