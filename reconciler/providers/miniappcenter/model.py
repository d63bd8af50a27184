"""The one shape of a mini app, used for both desired (manifests) and current (live) state.

Every value is normalised here, at construction, so that the diff never reports a change that
is only formatting (``native`` vs ``Native``, ``POINT( 1  2 )`` vs ``POINT(1 2)``, double spaces
in keywords). ``None`` on a field means "not managed": the manifest left it out, so it is never
sent and never diffed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from reconciler.providers.miniappcenter.ids import (
    app_id_problem,
    attribute_field_problem,
    location_name_problem,
    version_code_problem,
)
from reconciler.secrets import shown

API_VERSION = "miniappcenter/v1"
KIND = "MiniApp"

Status = Literal["pending", "waiting_for_review", "in_review", "rejected", "ready"]
STATUSES: tuple[str, ...] = ("pending", "waiting_for_review", "in_review", "rejected", "ready")
Ensure = Literal["present", "absent"]

# Fields of a mini app that the API reads and writes as plain values.
APP_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "superapp_id",
    "type",
    "keywords",
    "icon",
    "card",
    "banner",
    "organization_id",
)
# Written as upload object ids (gxupload:<hex>), read back as URLs: compared via the state.
APP_IMAGE_FIELDS: tuple[str, ...] = ("icon", "card", "banner")
VERSION_FIELDS: tuple[str, ...] = (
    "platform_id",
    "metadata",
    "integrated_security",
    "main_name",
    "main_type",
    "service_url",
)
VERSION_OBJECT_FIELDS: tuple[str, ...] = ("metadata",)

# Use fullmatch: "$" also matches before a trailing newline ("gxupload:...\n" is not an id).
GXUPLOAD_RE = re.compile(r"^gxupload:[0-9a-f]{32}$")
# A file apply uploads right before use (upload ids expire minutes after the upload). The
# loader resolves `file:PATH` against the manifest and pins the content: `#sha256=<hex>`.
FILE_SOURCE_RE = re.compile(r"^file:(?P<path>.+)#sha256=(?P<digest>[0-9a-f]{64})$")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_WKT_POINT_RE = re.compile(
    rf"^\s*(?:SRID=\d+\s*;\s*)?POINT\s*\(\s*({_NUMBER})\s+({_NUMBER})\s*\)\s*$", re.IGNORECASE
)


# --- normalisers (pure, idempotent: f(f(x)) == f(x)) ------------------------------------


def normalize_type(value: str) -> str:
    """``native``/``NATIVE`` -> ``Native``; ``web``/``WEB`` -> ``Web``."""
    canonical = {"native": "Native", "web": "Web"}.get(value.strip().lower())
    if canonical is None:
        raise ValueError(f"type must be Native or Web (any case), not {shown(value)}")
    return canonical


def normalize_main_type(value: str) -> str:
    canonical = {"panel": "Panel", "menu": "Menu"}.get(value.strip().lower())
    if canonical is None:
        raise ValueError(f"main_type must be Panel or Menu, not {shown(value)}")
    return canonical


def _format_coordinate(number: float) -> str:
    if number == 0:
        return "0"  # folds -0 into 0
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text


def normalize_geo_point(value: str) -> str:
    """WKT ``POINT(lon lat)`` in one spelling: no extra spaces, shortest exact float repr."""
    match = _WKT_POINT_RE.match(value)
    if not match:
        raise ValueError(f"geo_point must be WKT 'POINT(lon lat)', not {shown(value)}")
    lon, lat = float(match.group(1)), float(match.group(2))
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValueError(f"geo_point coordinates must be finite numbers: {shown(value)}")
    if not -180 <= lon <= 180:
        raise ValueError(f"geo_point longitude {lon} is outside [-180, 180]")
    if not -90 <= lat <= 90:
        raise ValueError(f"geo_point latitude {lat} is outside [-90, 90]")
    return f"POINT({_format_coordinate(lon)} {_format_coordinate(lat)})"


def normalize_keywords(value: str) -> str:
    """Keywords are one space-separated string: fold runs of white space."""
    return " ".join(value.split())


def check_object_value(value: str) -> str:
    """An image or version metadata: an upload id, or a file the loader resolved."""
    if GXUPLOAD_RE.fullmatch(value) or FILE_SOURCE_RE.fullmatch(value):
        return value
    raise ValueError(
        f"must be an upload object id (gxupload:<32 hex>) or file:PATH, not {shown(value)}"
    )


def object_key(value: str) -> str:
    """What the state remembers for an object value: the upload id, or the file's digest
    (an upload id made from a file is ephemeral; the content is what was applied)."""
    match = FILE_SOURCE_RE.fullmatch(value)
    return f"sha256:{match['digest']}" if match else value


def file_source(value: str) -> tuple[str, str] | None:
    """(path, sha256) of a file-sourced object value, else None."""
    match = FILE_SOURCE_RE.fullmatch(value)
    return (match["path"], match["digest"]) if match else None


def _check_app_id(value: str) -> str:
    problem = app_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_service_url(value: str) -> str:
    # fullmatch: with match, "$" also matches before a trailing newline.
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise ValueError(f"service_url must be an http(s) URL, not {shown(value)}")
    return value


AppId = Annotated[str, AfterValidator(_check_app_id)]


class Frozen(BaseModel):
    # strict: an unquoted `code: 1.10` must be an error, not a silent "1.1"
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Location(Frozen):
    name: str = Field(min_length=1)
    geo_point: str

    @field_validator("geo_point")
    @classmethod
    def _geo(cls, value: str) -> str:
        return normalize_geo_point(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The same rule `apply --plan` checks saved plans against.
        problem = location_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class Version(Frozen):
    code: str = Field(min_length=1)
    platform_id: str | None = None
    metadata: str | None = None
    integrated_security: bool | None = None
    main_name: str | None = None
    main_type: str | None = None
    service_url: str | None = None
    compatibility: tuple[int, ...] | None = None
    status: Status | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        # The same rule `apply --plan` checks saved plans against.
        problem = version_code_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("main_type")
    @classmethod
    def _main_type(cls, value: str | None) -> str | None:
        return None if value is None else normalize_main_type(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: str | None) -> str | None:
        return None if value is None else check_object_value(value)

    @field_validator("service_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_service_url(value)

    @field_validator("compatibility", mode="before")
    @classmethod
    def _compat_list(cls, value: Any) -> Any:
        # YAML gives a list; strict mode would refuse it for a tuple.
        return tuple(value) if isinstance(value, list) else value

    @field_validator("compatibility")
    @classmethod
    def _compatibility(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        for item in value:
            if item <= 0:
                raise ValueError(f"Super App version ids are positive integers, not {item}")
        # Counter, not list.count: a 100k-long list must not be quadratic.
        duplicates = sorted(v for v, n in Counter(value).items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate Super App version ids: {duplicates}")
        return tuple(sorted(value))


class MiniAppSpec(Frozen):
    ensure: Ensure = "present"
    name: str | None = None
    description: str | None = None
    superapp_id: AppId | None = None
    type: str | None = None
    keywords: str | None = None
    icon: str | None = None
    card: str | None = None
    banner: str | None = None
    organization_id: str | None = None
    attributes: dict[str, str] | None = None
    locations: tuple[Location, ...] | None = None
    versions: tuple[Version, ...] | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        return None if value is None else normalize_type(value)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: str | None) -> str | None:
        return None if value is None else normalize_keywords(value)

    @field_validator("icon", "card", "banner")
    @classmethod
    def _images(cls, value: str | None) -> str | None:
        return None if value is None else check_object_value(value)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for field_name in value:
            problem = attribute_field_problem(field_name)
            if problem:
                raise ValueError(f"attribute {shown(field_name)}: {problem}")
        return dict(sorted(value.items()))

    @field_validator("locations", "versions", mode="before")
    @classmethod
    def _as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("locations")
    @classmethod
    def _unique_locations(cls, value: tuple[Location, ...] | None) -> tuple[Location, ...] | None:
        if value is not None:
            _reject_duplicates([loc.name for loc in value], "location name")
        return value

    @field_validator("versions")
    @classmethod
    def _unique_versions(cls, value: tuple[Version, ...] | None) -> tuple[Version, ...] | None:
        if value is not None:
            _reject_duplicates([v.code for v in value], "version code")
        return value

    def app_fields(self) -> dict[str, str]:
        """The managed plain fields of the mini app (those the manifest sets)."""
        return {f: v for f in APP_FIELDS if (v := getattr(self, f)) is not None}


def _reject_duplicates(keys: list[str], what: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate {what} {shown(key)}")
        seen.add(key)


class MiniApp(Frozen):
    """A mini app, keyed by its client-chosen id."""

    id: AppId
    labels: dict[str, str] = Field(default_factory=dict)
    protect: bool = False
    spec: MiniAppSpec = Field(default_factory=MiniAppSpec)

    @property
    def absent(self) -> bool:
        return self.spec.ensure == "absent"

    def location(self, name: str) -> Location | None:
        return next((loc for loc in self.spec.locations or () if loc.name == name), None)

    def version(self, code: str) -> Version | None:
        return next((v for v in self.spec.versions or () if v.code == code), None)

    def referenced_files(self) -> Iterator[str]:
        """Paths of the app's ``file:`` objects (images, version metadata): a change to one
        touches the app (``plan --changed-since``)."""
        values = [getattr(self.spec, name) for name in APP_IMAGE_FIELDS]
        versions = self.spec.versions or ()
        values += [getattr(v, name) for v in versions for name in VERSION_OBJECT_FIELDS]
        for value in values:
            source = file_source(value) if isinstance(value, str) else None
            if source is not None:
                yield source[0]


def is_object_id(value: str) -> bool:
    return bool(GXUPLOAD_RE.fullmatch(value))


def version_fields(version: Version) -> dict[str, Any]:
    """The managed fields of a version (besides its code), as sent to the API."""
    return {f: v for f in VERSION_FIELDS if (v := getattr(version, f)) is not None}


@dataclass(frozen=True)
class ProbeMiss:
    probed: tuple[int, int]  # (first, last) version id read
    reads: int


@dataclass(frozen=True)
class ProbeHit(ProbeMiss):
    id: int
    exact: bool  # code and every sent field matched (not only the code)


class LiveApp(BaseModel):
    """A mini app as the API returned it, in the same shape as a desired one.

    ``app`` holds the live values normalised like a manifest's (image fields and version
    ``metadata`` hold the URLs the server answered). Server-assigned ids sit beside it, since
    desired and current are matched by natural key, never by server id. ``locations_read`` and
    ``versions_read`` say what was fetched: an unread part is not compared.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    app: MiniApp
    location_ids: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    version_ids: dict[str, int] = Field(default_factory=dict)
    locations_read: bool = False
    missing_versions: tuple[str, ...] = ()  # codes whose recorded id answered 404
    # Versions the state did not know, looked for by reading ids (reconciler/recover.py):
    # found (also in ``version_ids`` and ``app``), or not found in the ids read.
    recovered: dict[str, ProbeHit] = Field(default_factory=dict)
    not_found: dict[str, ProbeMiss] = Field(default_factory=dict)
