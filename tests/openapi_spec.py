"""The OpenAPI description written from the docs (docs/openapi/miniappcenter.yaml), for tests.

Only what tests need: each operation's request body schema as a JSON Schema validator, and the
operation a concrete request addresses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi" / "miniappcenter.yaml"
SPEC_URI = "urn:miniappcenter:openapi"
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # as in the spec: /miniapps/{id}/locations/{location_id}
    operation_id: str
    body_types: tuple[str, ...]  # request media types; () = no body
    body_schema: dict[str, Any] | None  # the application/json schema, if any
    pattern: re.Pattern[str]

    def validator(self) -> Draft202012Validator:
        assert self.body_schema is not None, f"{self.operation_id} takes no JSON body"
        return _validator(self.operation_id)


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


def _pattern(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
    return re.compile(f"^{regex}$")


@cache
def operations() -> tuple[Operation, ...]:
    found: list[Operation] = []
    for template, item in spec()["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get(JSON, {}).get("schema")
            found.append(
                Operation(
                    method.upper(),
                    template,
                    op["operationId"],
                    tuple(content),
                    schema,
                    _pattern(template),
                )
            )
    # Literal segments before parameters: /miniapps/upload is not /miniapps/{id}.
    found.sort(key=lambda o: (o.template.count("{"), -len(o.template)))
    return tuple(found)


def operation(method: str, path: str) -> Operation | None:
    """The documented operation ``method path`` (path relative to ``/v1``), or None."""
    return next((o for o in operations() if o.method == method and o.pattern.match(path)), None)


def by_id(operation_id: str) -> Operation:
    return next(o for o in operations() if o.operation_id == operation_id)


@cache
def _validator(operation_id: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012)
    )
    schema = by_id(operation_id).body_schema
    assert schema is not None and set(schema) == {"$ref"}, "bodies name a component schema"
    # Every "#/components/..." reference then resolves inside the whole document.
    return Draft202012Validator({"$ref": SPEC_URI + schema["$ref"]}, registry=registry)


def response_validator(operation_id: str, status: int) -> Draft202012Validator:
    """The JSON schema of ``operation_id``'s answer with ``status`` (which must have one)."""
    op = by_id(operation_id)
    item = spec()["paths"][op.template][op.method.lower()]["responses"][str(status)]
    if "$ref" in item:  # a shared response, e.g. the error list
        item = spec()["components"]["responses"][item["$ref"].rsplit("/", 1)[1]]
    schema = item["content"][JSON]["schema"]
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012)
    )
    # Inline schemas may hold "#/components/..." references: resolve them in the document.
    return Draft202012Validator(
        {"$id": SPEC_URI + "/response", **_rebased(schema)}, registry=registry
    )


def _rebased(schema: Any) -> Any:
    """``schema`` with every local reference made absolute (it is moved out of the document)."""
    if isinstance(schema, dict):
        return {
            k: (
                SPEC_URI + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebased(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebased(v) for v in schema]
    return schema
