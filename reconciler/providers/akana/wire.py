"""The Akana apps API's JSON, as pydantic models (PascalCase on the wire, snake_case here).

Answers are read leniently (unknown fields ignored: the platform adds fields across versions);
request bodies are strict (a field this client does not know is a bug here, not input).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Visibility = Literal["Public", "Limited", "Private"]


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # A null member reads as its default (the platform's null/absent habits are not
        # documented); a required member that is null is still an error.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")


class AppSummary(_Answer):
    """One entry of ``GET /api/apps`` (``{"Application": [...]}``)."""

    app_id: str = Field(alias="AppID")
    name: str = Field(alias="Name")
    description: str = Field("", alias="Description")
    created: str | None = Field(None, alias="Created")
    updated: str | None = Field(None, alias="Updated")
    state: str | None = Field(None, alias="State")
    visibility: str | None = Field(None, alias="Visibility")
    avatar_url: str | None = Field(None, alias="AvatarURL")


class AppDetail(AppSummary):
    """``GET /api/apps/{AppID}``: the summary plus what the create body set."""

    summary: str = Field("", alias="Summary")
    picture_id: str = Field("", alias="PictureID")
    business_id: str = Field("", alias="BusinessID")


class AppList(_Answer):
    applications: list[AppSummary] = Field(default_factory=list, alias="Application")


class AppVersion(_Answer):
    version_id: str = Field(alias="AppVersionID")
    app_id: str | None = Field(None, alias="AppID")
    name: str = Field(alias="Name")
    description: str = Field("", alias="Description")
    tags: list[str] = Field(default_factory=list, alias="Tag")
    visibility: str | None = Field(None, alias="Visibility")
    website_address: str = Field("", alias="WebsiteAddress")
    environment: str | None = Field(None, alias="Environment")
    state: str | None = Field(None, alias="State")
    created: str | None = Field(None, alias="Created")
    updated: str | None = Field(None, alias="Updated")


class VersionList(_Answer):
    versions: list[AppVersion] = Field(default_factory=list, alias="ApplicationVersion")


class VersionCreate(_Body):
    """``ApplicationVersion`` of a create, and the body of ``POST .../versions``."""

    name: str = Field(alias="Name", min_length=1)
    description: str | None = Field(None, alias="Description")
    tags: list[str] | None = Field(None, alias="Tag")
    visibility: Visibility | None = Field(None, alias="Visibility")
    website_address: str | None = Field(None, alias="WebsiteAddress")
    initial_environment: str | None = Field(None, alias="InitialEnvironment")


class VersionUpdate(_Body):
    name: str = Field(alias="Name", min_length=1)
    description: str | None = Field(None, alias="Description")
    tags: list[str] | None = Field(None, alias="Tag")
    visibility: Visibility | None = Field(None, alias="Visibility")
    website_address: str | None = Field(None, alias="WebsiteAddress")


class AppCreate(_Body):
    name: str = Field(alias="Name", min_length=1)
    summary: str | None = Field(None, alias="Summary")
    description: str | None = Field(None, alias="Description")
    picture_id: str | None = Field(None, alias="PictureID")
    business_id: str | None = Field(None, alias="BusinessID")
    version: VersionCreate = Field(alias="ApplicationVersion")


class AppUpdate(_Body):
    name: str = Field(alias="Name", min_length=1)
    summary: str | None = Field(None, alias="Summary")
    description: str | None = Field(None, alias="Description")
    picture_id: str | None = Field(None, alias="PictureID")
