"""The example collections of the tenant sandbox and their Django REST framework validation.

Messages and shapes are DRF's defaults: a 400 body lists only the invalid fields, each with a
list of messages (``{"sku": ["This field is required."]}``); unknown fields are ignored; a
``PATCH`` validates only the fields it sends. Server-computed fields (``id``, ``created_at``,
``updated_at``) are read-only: sent values are ignored, as DRF does. Ids are integers from a
sequence, except in ``coupons``, whose model has a UUID primary key (DRF answers it as a
string): the provider must handle both (docs/decisions.md D95).

As a real Django REST framework server does (tests/realrest, compared by
tests/test_realrest_contract.py): a price or a percent is a ``DecimalField`` (a number or a
numeric string in, its fixed-point string out: ``12.5`` is answered ``"12.50"``); a product's
``supplier`` is a ``PrimaryKeyRelatedField`` (a supplier's id, which must exist in the tenant).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

READ_ONLY: Final = frozenset({"id", "created_at", "updated_at"})
REQUIRED: Final = "This field is required."
_SLUG_RE = re.compile(r"[-a-zA-Z0-9_]+")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "str", "number", "decimal", "bool", "slug", "email", "pk"
    required: bool = False
    max_length: int | None = None
    default: Any = None
    nullable: bool = False
    blank: bool = False
    digits: int = 10  # a decimal's max_digits and decimal_places
    places: int = 2
    target: str = ""  # a pk's collection


@dataclass(frozen=True)
class Collection:
    name: str  # the URL segment: /api/<name>/
    verbose: str  # DRF's unique message: "<verbose> with this <key> already exists."
    natural_key: str
    fields: tuple[Field, ...]
    id_kind: str = "int"  # "int" (a sequence) or "uuid" (a UUIDField primary key)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


COLLECTIONS: Final[Mapping[str, Collection]] = {
    c.name: c
    for c in (
        Collection(
            "products",
            "product",
            "sku",
            (
                Field("sku", "str", required=True, max_length=32),
                Field("name", "str", required=True, max_length=200),
                Field("price", "decimal", required=True),
                Field("category", "slug", max_length=50, nullable=True),
                Field("supplier", "pk", nullable=True, target="suppliers"),
                Field("active", "bool", default=True),
                Field("description", "str", default="", blank=True, max_length=2000),
            ),
        ),
        Collection(
            "categories",
            "category",
            "slug",
            (
                Field("slug", "slug", required=True, max_length=50),
                Field("name", "str", required=True, max_length=100),
                Field("description", "str", default="", blank=True, max_length=2000),
            ),
        ),
        Collection(
            "suppliers",
            "supplier",
            "code",
            (
                Field("code", "str", required=True, max_length=20),
                Field("name", "str", required=True, max_length=200),
                Field("email", "email", default="", blank=True, max_length=254),
            ),
        ),
        Collection(
            "coupons",
            "coupon",
            "code",
            (
                Field("code", "str", required=True, max_length=32),
                Field("percent", "decimal", required=True, digits=5),
                Field("active", "bool", default=True),
            ),
            id_kind="uuid",
        ),
    )
}


Exists = Callable[[str, int], bool]  # (collection, id): is there such an object?


def _decimal(spec: Field, value: Any) -> tuple[Any, str | None]:
    """DRF's DecimalField: the fixed-point string, or its message."""
    invalid = "A valid number is required."
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, invalid
    text = str(value).strip()
    if len(text) > 1000:
        return None, "String value too large."
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None, invalid
    if not number.is_finite():
        return None, invalid
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    total = max(len(digits), places) if exponent < 0 else len(digits) + exponent
    whole = total - places
    if total > spec.digits:
        return None, f"Ensure that there are no more than {spec.digits} digits in total."
    if places > spec.places:
        return None, f"Ensure that there are no more than {spec.places} decimal places."
    if whole > spec.digits - spec.places:
        limit = spec.digits - spec.places
        return None, f"Ensure that there are no more than {limit} digits before the decimal point."
    return f"{number:.{spec.places}f}", None


def _pk(spec: Field, value: Any, exists: Exists) -> tuple[Any, str | None]:
    """DRF's PrimaryKeyRelatedField over an integer primary key."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None, f"Incorrect type. Expected pk value, received {type(value).__name__}."
    if isinstance(value, str) and not (value.isascii() and value.strip().isdigit()):
        return None, "Incorrect type. Expected pk value, received str."
    number = int(value)
    if len(str(number)) > 18 or not exists(spec.target, number):
        return None, f'Invalid pk "{value}" - object does not exist.'
    return number, None


def _check_value(spec: Field, value: Any, exists: Exists) -> tuple[Any, str | None]:
    """(the value as stored, None) or (None, DRF's message)."""
    if value is None:
        return (None, None) if spec.nullable else (None, "This field may not be null.")
    if spec.kind == "decimal":
        return _decimal(spec, value)
    if spec.kind == "pk":
        return _pk(spec, value, exists)
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value, None
        return None, "Must be a valid boolean."
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "A valid number is required."
        if not math.isfinite(value):
            return None, "A valid number is required."
        return value, None
    if not isinstance(value, str):
        return None, "Not a valid string."
    if not value.strip() and not spec.blank:
        return None, "This field may not be blank."
    if spec.max_length is not None and len(value) > spec.max_length:
        return None, f"Ensure this field has no more than {spec.max_length} characters."
    if spec.kind == "slug" and not _SLUG_RE.fullmatch(value):
        return None, (
            "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."
        )
    if spec.kind == "email" and value and not _EMAIL_RE.fullmatch(value):
        return None, "Enter a valid email address."
    return value, None


def validate(
    collection: Collection,
    data: Any,
    *,
    partial: bool,
    exists: Exists = lambda _c, _i: False,
    fixed_point: bool = True,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the validated fields, the errors by field). ``partial``: a PATCH; ``exists``: whether
    an object a ``pk`` field names is there (in the request's tenant); ``fixed_point``
    False: a decimal is kept as a JSON number (a server that does not normalize it)."""
    if not isinstance(data, dict):
        kind = type(data).__name__
        return {}, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for spec in collection.fields:
        if spec.name not in data:
            if spec.required and not partial:
                errors[spec.name] = [REQUIRED]
            continue
        value, message = _check_value(spec, data[spec.name], exists)
        if not fixed_point and spec.kind == "decimal" and isinstance(value, str):
            value = float(value)
        if message is not None:
            errors[spec.name] = [message]
        else:
            values[spec.name] = value
    return values, errors


def defaults(collection: Collection) -> dict[str, Any]:
    return {f.name: f.default for f in collection.fields if not f.required}
