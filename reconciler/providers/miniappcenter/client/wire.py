"""Request and response bodies exactly as the Mini App Center sends and expects them.

Responses are read leniently (``extra="allow"``: an unknown field is kept, never an error;
numbers are accepted where strings are documented and numeric strings where ints are).
Requests are strict (``extra="forbid"``, so a typo in a caller fails loudly) and are
serialised with ``exclude_none``: a field left at ``None`` is not managed and is not sent.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

# --- responses -------------------------------------------------------------------------


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, frozen=True)


class AttributeData(_Response):
    field: str
    value: str


class MiniAppData(_Response):
    id: str | None = None
    organization_id: str | None = None
    name: str | None = None
    description: str | None = None
    superapp_id: str | None = None
    type: str | None = None
    keywords: str | None = None
    icon: str | None = None
    card: str | None = None
    banner: str | None = None
    additional_attributes: list[AttributeData] = []

    @field_validator("additional_attributes", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class LocationData(_Response):
    id: int
    name: str
    geo_point: str


class VersionData(_Response):
    id: int
    code: str
    platform_id: str | None = None
    metadata: str | None = None
    integrated_security: bool | None = None
    main_name: str | None = None
    main_type: str | None = None
    service_url: str | None = None


class VersionCreated(_Response):
    id: int
    code: str = ""  # filled from the request when the server leaves it out


class CreatedId(_Response):
    id: int


class UploadedObject(_Response):
    object_id: str


# --- requests --------------------------------------------------------------------------


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        """UTF-8 JSON of the fields that are set (``None`` = not managed = not sent)."""
        data = self.model_dump(mode="json", exclude_none=True)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class MiniAppUpdate(RequestBody):
    organization_id: str | None = None  # only honoured with a Site Admin token
    name: str | None = None
    description: str | None = None
    superapp_id: str | None = None
    type: str | None = None
    keywords: str | None = None
    icon: str | None = None  # upload object id (gxupload:<hex>)
    card: str | None = None
    banner: str | None = None


class MiniAppCreate(MiniAppUpdate):
    id: str  # chosen by the client (reverse-DNS)


class AttributeBody(RequestBody):
    field: str
    value: str


class LocationBody(RequestBody):
    name: str
    geo_point: str  # WKT, e.g. POINT(-56.1637 -34.9247)


class VersionUpdate(RequestBody):
    platform_id: str | None = None
    metadata: str | None = None  # upload object id (gxupload:<hex>)
    integrated_security: bool | None = None
    main_name: str | None = None
    main_type: str | None = None  # Panel | Menu
    service_url: str | None = None


class VersionCreate(VersionUpdate):
    code: str


class CompatibilityBody(RequestBody):
    superapp_version: int
