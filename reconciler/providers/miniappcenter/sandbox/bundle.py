"""Reading ``.mac`` bundles: a ZIP with ``MANIFEST.MF`` naming a JSON file, plus its images.

Everything is read in memory and nothing is extracted to disk, so entry names such as
``../x`` are harmless. Sizes are checked against the ZIP directory before anything is
decompressed (zipfile never reads past an entry's declared size), which bounds zip bombs.
Parsing is separate from storing: the route validates a whole bundle first, then the store
writes it in one transaction, so a bad bundle leaves nothing behind.
"""

from __future__ import annotations

import io
import posixpath
import uuid
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from reconciler.providers.miniappcenter.sandbox import status as st
from reconciler.providers.miniappcenter.sandbox import validation as v
from reconciler.providers.miniappcenter.sandbox.errors import (
    ApiError,
    ErrorCode,
    Problem,
    bad_request,
)
from reconciler.providers.miniappcenter.sandbox.store import StoredObject

MANIFEST_NAME = "MANIFEST.MF"
BUNDLE_EXTENSION = ".mac"
MAX_ENTRIES = 1_000
MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024
IMAGE_FIELDS = ("icon", "card", "banner")

T = TypeVar("T")


@dataclass
class MiniAppBundle:
    values: dict[str, Any]
    attributes: list[tuple[str, str]] = field(default_factory=list)
    locations: list[dict[str, Any]] = field(default_factory=list)
    objects: list[StoredObject] = field(default_factory=list)


@dataclass
class VersionBundle:
    values: dict[str, Any]
    compatibilities: list[int] = field(default_factory=list)
    status: str = st.PENDING
    objects: list[StoredObject] = field(default_factory=list)


def check_upload_filename(filename: str | None) -> None:
    """The mandatory ``filename`` header must be present and name a ``.mac`` file."""
    if filename is None or not filename.strip():
        raise bad_request(
            ErrorCode.UPLOAD_FILENAME_MISSING,
            "the 'filename' header is required (e.g. MiniApp.mac)",
        )
    if not filename.strip().lower().endswith(BUNDLE_EXTENSION):
        raise bad_request(
            ErrorCode.UPLOAD_BAD_EXTENSION,
            f"the uploaded file must have the {BUNDLE_EXTENSION} extension, not {filename!r}",
        )


class _Bundle:
    """An opened bundle: its entries by name and the JSON document its manifest points at."""

    def __init__(self, data: bytes) -> None:
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise bad_request(
                ErrorCode.BUNDLE_NOT_ZIP, f"the bundle is not a valid ZIP file: {exc}"
            ) from exc
        if len(infos) > MAX_ENTRIES:
            raise bad_request(
                ErrorCode.BUNDLE_TOO_LARGE, f"the bundle has more than {MAX_ENTRIES} entries"
            )
        if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED_BYTES:
            raise bad_request(
                ErrorCode.BUNDLE_TOO_LARGE,
                f"the bundle expands to more than {MAX_UNCOMPRESSED_BYTES} bytes",
            )
        self.names = {i.filename for i in infos if not i.is_dir()}
        self.objects: list[StoredObject] = []

    def read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except (
            zipfile.BadZipFile,
            NotImplementedError,
            RuntimeError,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
        ) as exc:
            # CRC mismatch, unsupported compression, encryption, truncated data...
            raise bad_request(
                ErrorCode.BUNDLE_NOT_ZIP, f"cannot read {name!r} from the bundle: {exc}"
            ) from exc

    def info_document(self) -> tuple[str, dict[str, Any]]:
        if MANIFEST_NAME not in self.names:
            raise bad_request(
                ErrorCode.BUNDLE_MANIFEST_MISSING, f"the bundle has no {MANIFEST_NAME}"
            )
        try:
            text = self.read(MANIFEST_NAME).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise bad_request(
                ErrorCode.BUNDLE_MANIFEST_INVALID, f"{MANIFEST_NAME} is not UTF-8"
            ) from exc
        entries: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entries[key.strip().lower()] = value.strip()
        if entries.get("version") != "1":
            raise bad_request(
                ErrorCode.BUNDLE_MANIFEST_INVALID, f"{MANIFEST_NAME} must contain 'Version: 1'"
            )
        info = entries.get("info")
        if not info:
            raise bad_request(
                ErrorCode.BUNDLE_MANIFEST_INVALID,
                f"{MANIFEST_NAME} must name the info file ('info:<file.json>')",
            )
        if info not in self.names:
            raise bad_request(
                ErrorCode.BUNDLE_FILE_MISSING,
                f"{MANIFEST_NAME} names {info!r}, which is not in the bundle",
            )
        return info, v.parse_json_object(self.read(info), what=info)

    def file_reference(self, label: str, value: Any) -> Any:
        """A file name inside the bundle becomes a stored object id; a URL is kept as given."""
        if value == "":
            return None
        if not isinstance(value, str) or v.is_url(value):
            return value  # the validator reports a wrong type
        if value not in self.names:
            raise bad_request(
                ErrorCode.BUNDLE_FILE_MISSING,
                f"{label} names {value!r}, which is not a file in the bundle",
            )
        hex_id = uuid.uuid4().hex
        self.objects.append(StoredObject(hex_id, posixpath.basename(value), self.read(value)))
        return f"gxupload:{hex_id}"


def _collect(problems: list[Problem], check: Callable[[], T]) -> T | None:
    """Run one validation, keeping its problems, so one answer can list them all."""
    try:
        return check()
    except ApiError as exc:
        problems.extend(exc.problems)
        return None


def _items(problems: list[Problem], doc: Mapping[str, Any], name: str) -> list[tuple[str, Any]]:
    items = doc.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append((ErrorCode.FIELD_TYPE, f"{name} must be a list"))
        return []
    labelled: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        label = f"{name}[{index}]"
        if isinstance(item, dict):
            labelled.append((label + ".", item))
        else:
            problems.append((ErrorCode.FIELD_TYPE, f"{label} must be an object"))
    return labelled


def parse_miniapp_bundle(data: bytes) -> MiniAppBundle:
    bundle = _Bundle(data)
    info, doc = bundle.info_document()
    problems: list[Problem] = []
    resolved = dict(doc)
    for name in IMAGE_FIELDS:
        if name in doc:
            resolved[name] = _collect(problems, partial(bundle.file_reference, name, doc[name]))
    values = _collect(problems, partial(v.miniapp_create, resolved, allow_urls=True, strict=False))
    attributes: list[tuple[str, str]] = []
    for prefix, item in _items(problems, doc, "additional_attributes"):
        pair = _collect(problems, partial(v.attribute, item, prefix=prefix, strict=False))
        if pair is not None:
            attributes.append(pair)
    locations: list[dict[str, Any]] = []
    for prefix, item in _items(problems, doc, "locations"):
        location = _collect(problems, partial(v.location_create, item, prefix=prefix, strict=False))
        if location is not None:
            locations.append(location)
    if problems or values is None:
        raise ApiError(400, [(code, f"{info}: {message}") for code, message in problems])
    return MiniAppBundle(values, attributes, locations, bundle.objects)


def _bundle_status(problems: list[Problem], value: Any) -> str:
    # The bundle docs: empty status = Pending, "R" = Waiting for review.
    if value is None or value == "":
        return st.PENDING
    if isinstance(value, str) and value.strip().upper() == "R":
        return st.WAITING_FOR_REVIEW
    problems.append(
        (
            ErrorCode.BUNDLE_INVALID_STATUS,
            f"status must be empty (pending) or 'R' (waiting for review), not {value!r}",
        )
    )
    return st.PENDING


def parse_version_bundle(data: bytes) -> VersionBundle:
    bundle = _Bundle(data)
    info, doc = bundle.info_document()
    problems: list[Problem] = []
    resolved = dict(doc)
    if "metadata" in doc:
        resolved["metadata"] = _collect(
            problems, partial(bundle.file_reference, "metadata", doc["metadata"])
        )
    values = _collect(problems, partial(v.version_create, resolved, allow_urls=True, strict=False))
    compatibilities: list[int] = []
    for prefix, item in _items(problems, doc, "compatibilities"):
        version = _collect(
            problems, partial(v.superapp_version, item, name="version", prefix=prefix, strict=False)
        )
        if version is not None:
            compatibilities.append(version)
    status = _bundle_status(problems, doc.get("status"))
    if problems or values is None:
        raise ApiError(400, [(code, f"{info}: {message}") for code, message in problems])
    return VersionBundle(values, compatibilities, status, bundle.objects)
