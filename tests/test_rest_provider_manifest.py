"""REST manifests: every issue at its file:line:col (all at once), JSON bodies read as
written (no 1.10 -> 1.1), the schema as shipped, the example catalogue, render round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.providers.rest.config import load_project_config
from reconciler.providers.rest.manifest import (
    endpoint_issues,
    load_rest_manifests,
    name_issues,
    render_manifest,
    rest_object_json_schema_text,
)
from reconciler.providers.rest.model import RestObject

REPO = Path(__file__).resolve().parent.parent

HEAD = """apiVersion: rest/v1
kind: RestObject
metadata:
  name: hammer
spec:
  endpoint: shop
  path: /api/products/
  key: sku
  body:
    sku: HAM-01
"""


def _errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    file = tmp_path / "m.yaml"
    file.write_text(text, "utf-8")
    with pytest.raises(ManifestError) as caught:
        load_rest_manifests([file], env or {})
    return [str(issue).removeprefix(f"{file}:") for issue in caught.value.issues]


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> RestObject:
    file = tmp_path / "m.yaml"
    file.write_text(text, "utf-8")
    [loaded] = load_rest_manifests([file], env or {})
    assert isinstance(loaded.app, RestObject)
    return loaded.app


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    price: 1.10\n", '11:12: spec.body.price: YAML reads 1.10 as the number 1.1'),
        ("    price: 12.50\n", "11:12: spec.body.price: YAML reads 12.50 as the number 12.5"),
        ("    count: 010\n", "11:12: spec.body.count: write a plain decimal integer, not 010"),
        ("    count: 0x1F\n", "11:12: spec.body.count: write a plain decimal integer"),
        ("    big: 9007199254740993\n", "11:10: spec.body.big: integers are at most 2^53"),
        ("    ok: yes\n", "11:9: spec.body.ok: write true or false, not yes"),
        ("    empty:\n", "11:11: spec.body.empty: the value is empty; write null"),
        ("    when: 2024-01-01\n", "11:11: spec.body.when: YAML reads 2024-01-01 as a date"),
        ("    x: .inf\n", "11:8: spec.body.x: .inf is not a JSON number"),
        ("    1: one\n", "11:5: spec.body.1: a field name must be a string"),
        ("    sku: again\n", "11:5: spec.body.sku: duplicate key 'sku'"),
        ("    <<: {a: 1}\n", "11:5: spec.body: merge keys (<<) are not supported"),
        ("    v: ${NOPE}\n", "11:8: spec.body.v: environment variable NOPE is not set"),
        # Numbers to YAML 1.2 tools and editors, strings to YAML 1.1 (PyYAML): never guessed.
        ("    n: 1e3\n", "11:8: spec.body.n: YAML 1.2 tools read 1e3 as a number, this reader"),
        ("    n: 2.5E4\n", "11:8: spec.body.n: YAML 1.2 tools read 2.5E4 as a number"),
        ("    n: 0o17\n", "11:8: spec.body.n: YAML 1.2 tools read 0o17 as a number"),
        ("    n: 1e400\n", "11:8: spec.body.n: YAML 1.2 tools read 1e400 as a number"),
    ],
)
def test_body_values_are_read_as_written(tmp_path: Path, extra: str, expected: str) -> None:
    [error] = _errors(tmp_path, HEAD + extra)
    assert error.startswith(expected), error


def test_a_quoted_number_like_string_stays_a_string(tmp_path: Path) -> None:
    body = _load(tmp_path, HEAD + '    code: "1e3"\n    mode: \'0o17\'\n    tag: e3\n').body
    assert (body["code"], body["mode"], body["tag"]) == ("1e3", "0o17", "e3")


def test_every_issue_is_reported_at_once_with_its_place(tmp_path: Path) -> None:
    text = """apiVersion: rest/v1
kind: RestObject
metadata:
  nme: x
  protect: true
spec:
  endpoint: Shop!
  path: api/products
  key: s k u
  ensure: absnt
  ignore: [created_at, created_at]
  bodyy: {}
"""
    assert _errors(tmp_path, text) == [
        "4:3: metadata.nme: unknown key 'nme'; did you mean 'name'?",
        "6:1: spec.body: required field is missing",
        "7:13: spec.endpoint: endpoint 'Shop!' is not an endpoint name (a name declared in the"
        " project file reconciler.yaml: lowercase letters, digits, - and _)",
        "8:9: spec.path: path 'api/products' must be a collection path: absolute, ending in /"
        " (letters, digits, - _ . ~; no query, no .. segments), e.g. /api/products/",
        "9:8: spec.key: key 's k u' must be a field name (letters, digits, _ and -), e.g. sku",
        "10:11: spec.ensure: must be one of present, absent, not 'absnt'; did you mean"
        " 'absent'?",
        "11:24: spec.ignore[1]: duplicate path 'created_at'",
        "12:3: spec.bodyy: unknown key 'bodyy'; did you mean 'body'?",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD.replace("    sku: HAM-01\n", "    name: x\n"),
            "10:5: spec.body.sku: the natural key",
        ),
        (HEAD.replace("HAM-01", "1.5"), "10:10: spec.body.sku: the natural key must be"),
        (HEAD.replace("HAM-01", "true"), "10:10: spec.body.sku: the natural key must be"),
        (HEAD + "  ignore: [sku]\n", "11:12: spec.ignore[0]: 'sku' is set in spec.body"),
        (HEAD + "  ensure: absent\n", ""),
        (HEAD.replace("  name: hammer\n", "  name: hammer\n  protect: true\n")
         + "  ensure: absent\n", "12:11: spec.ensure: ensure: absent deletes the object, but"),
        (HEAD.replace("kind: RestObject", "kind: RestThing"), "2:7: kind: unsupported kind"),
        (HEAD.replace("  endpoint: shop\n", "  endpiont: shop\n"),
         "6:3: spec.endpiont: unknown key 'endpiont'; did you mean 'endpoint'?"),
        (HEAD.replace("  endpoint: shop\n", "  labels: {}\n  endpoint: shop\n"),
         "6:3: spec.labels: unknown key 'labels'; it belongs under metadata"),
    ],
)
def test_spec_rules(tmp_path: Path, text: str, expected: str) -> None:
    if not expected:
        assert _load(tmp_path, text).absent
        return
    errors = _errors(tmp_path, text)
    assert any(error.startswith(expected) for error in errors), errors


def test_a_body_is_json_with_positions(tmp_path: Path) -> None:
    text = HEAD + (
        "    price: 12.5\n"
        "    stock: 7\n"
        "    active: false\n"
        "    note: null\n"
        '    code: "1.10"\n'
        "    tags: [a, 2, {deep: [true]}]\n"
        "    url: ${BASE:-http://x}/p\n"
        "    literal: $${NOT}\n"
    )
    obj = _load(tmp_path, text)
    assert obj.body == {
        "sku": "HAM-01",
        "price": 12.5,
        "stock": 7,
        "active": False,
        "note": None,
        "code": "1.10",
        "tags": ["a", 2, {"deep": [True]}],
        "url": "http://x/p",
        "literal": "${NOT}",
    }
    assert type(obj.body["stock"]) is int and type(obj.body["price"]) is float
    assert obj.key == "HAM-01" and obj.name == "hammer"
    price = obj.where("price")
    assert price is not None and (price.line, price.column) == (11, 12)
    assert str(obj.where()) == f"{tmp_path / 'm.yaml'}:1:1"


def test_the_name_defaults_to_the_key_and_integer_keys_work(tmp_path: Path) -> None:
    obj = _load(tmp_path, HEAD.replace("  name: hammer\n", "  labels: {a: b}\n").replace(
        "HAM-01", "42"))
    assert obj.name == "42" and obj.key == "42" and obj.body["sku"] == 42


def test_bodies_are_bounded(tmp_path: Path) -> None:
    deep = "    d: " + "[" * 17 + "]" * 17 + "\n"
    [error] = _errors(tmp_path, HEAD + deep)
    assert "a body is at most 16 levels deep" in error
    wide = "    w: [" + ", ".join("1" for _ in range(10_001)) + "]\n"
    [error] = _errors(tmp_path, HEAD + wide)
    assert "a body holds at most 10000 values" in error


def test_duplicates_by_endpoint_path_and_key(tmp_path: Path) -> None:
    text = HEAD + "---\n" + HEAD.replace("name: hammer", "name: other")
    [error] = _errors(tmp_path, text)
    assert error == (
        "15:9: metadata.name: REST object 'shop:/api/products/:HAM-01' is already defined at"
        f" {tmp_path / 'm.yaml'}:4"
    )
    # The same key in another collection is another object.
    other = HEAD + "---\n" + HEAD.replace("/api/products/", "/api/suppliers/")
    file = tmp_path / "ok.yaml"
    file.write_text(other, "utf-8")
    assert len(load_rest_manifests([file], {})) == 2


def test_names_are_unique_per_endpoint_and_path(tmp_path: Path) -> None:
    text = HEAD + "---\n" + HEAD.replace("HAM-01", "HAM-02")
    file = tmp_path / "m.yaml"
    file.write_text(text, "utf-8")
    objects = [loaded.app for loaded in load_rest_manifests([file], {})]
    [issue] = name_issues(objects)
    assert str(issue) == (
        f"{file}:12:1: metadata.name: name 'hammer' is already used for shop /api/products/"
        f" at {file}:1"
    )


def test_undeclared_endpoints_are_named(tmp_path: Path) -> None:
    obj = _load(tmp_path, HEAD.replace("endpoint: shop", "endpoint: crm"))
    [issue] = endpoint_issues([obj], {"shop": object()}, "reconciler.yaml")
    assert issue.path == "spec.endpoint"
    assert issue.message == "endpoint 'crm' is not declared in reconciler.yaml (declared: shop)"


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = (REPO / "schema" / "rest-object.schema.json").read_text("utf-8")
    assert shipped == rest_object_json_schema_text()
    schema = json.loads(shipped)
    assert set(schema["properties"]["spec"]["properties"]) == {
        "endpoint", "path", "key", "body", "ignore", "ensure"
    }
    assert set(schema["properties"]["metadata"]["properties"]) == {"name", "labels", "protect"}


def test_the_example_catalogue_validates() -> None:
    root = REPO / "examples" / "rest"
    config = load_project_config(root / "reconciler.yaml", {})
    loaded = load_rest_manifests([root / "manifests"], {}, roots=[root])
    objects = [item.app for item in loaded]
    assert [o.key for o in objects] == ["tools", "garden", "HAM-01", "RAKE-02", "SAW-00", "ACME"]
    assert not name_issues(objects)
    assert not endpoint_issues(objects, config.endpoints, config.file)
    for file in (root / "manifests").glob("*.yaml"):
        first = file.read_text("utf-8").splitlines()[0]
        target = first.removeprefix("# yaml-language-server: $schema=")
        assert (file.parent / target).resolve() == REPO / "schema" / "rest-object.schema.json"


def test_render_round_trips(tmp_path: Path) -> None:
    obj = RestObject(
        name="odd one",
        endpoint="shop",
        path="/api/products/",
        key_field="sku",
        body={
            "sku": "1.10",
            "price": 0.1,
            "n": -3,
            "yes": "yes",
            "none": None,
            "t": True,
            "s": "${HOME}",
            "nested": {"a": [1, "2", {"b": None}], "e": {}},
            "list": [],
            "quote": 'say "hi"\n',
        },
        ignore=("created_at",),
        protect=True,
        labels={"team": "x"},
    )
    file = tmp_path / "r.yaml"
    file.write_text(render_manifest(obj), "utf-8")
    [loaded] = load_rest_manifests([file], {"HOME": "/root"})
    back = loaded.app
    assert (back.name, back.endpoint, back.path, back.key_field) == (
        "odd one", "shop", "/api/products/", "sku"
    )
    assert back.body == obj.body and back.ignore == obj.ignore
    assert back.protect and back.labels == {"team": "x"}


# --- one checker base for every provider (issue #12) ---------------------------------------


def test_a_document_that_is_not_a_mapping_names_the_keys_it_needs(tmp_path: Path) -> None:
    """The same words as the other providers' checkers (REST's used to drop the key list)."""
    assert _errors(tmp_path, "- a\n- b\n") == [
        "1:1: a manifest document must be a mapping (apiVersion, kind, metadata, spec),"
        " not a list"
    ]


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("name: hammer", "name: ${WHO}", "4:9: metadata.name"),
        ("sku: HAM-01", "sku: HAM-01\n    note: ${WHO}", "11:11: spec.body.note"),
    ],
)
def test_a_surrogate_from_the_environment_is_refused(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    """os.environ decodes undecodable bytes to lone surrogates: refused, as for mini apps."""
    errors = _errors(tmp_path, HEAD.replace(old, new), {"WHO": "caf\udce9"})
    assert errors[0].startswith(f"{where}: contains U+DCE9, a lone surrogate"), errors


def test_the_header_is_read_as_written(tmp_path: Path) -> None:
    """The loader picks a document's checker by its header as written, so REST reads it so
    too (RestObjectChecker.substitute_headers): no ${VAR} there."""
    text = HEAD.replace("apiVersion: rest/v1", "apiVersion: ${API}")
    assert _errors(tmp_path, text, {"API": "rest/v1"}) == [
        "1:13: apiVersion: unsupported apiVersion '${API}'; supported: rest/v1"
    ]


@pytest.mark.parametrize("name", ["na\\u200bme", "na\\u202eme", "tab\\there", "nested.\\u2066x"])
def test_a_body_field_name_with_invisible_characters_is_refused(
    tmp_path: Path, name: str
) -> None:
    """A field name holding a zero-width or bidi character shows in a plan (a PR comment)
    as another field (``name``), while the server gets a different one: refused, at its
    line, at any depth."""
    top = _errors(tmp_path, HEAD + f'    "{name}": x\n')
    nested = _errors(tmp_path, HEAD + f'    meta: {{"{name}": x}}\n')
    for issues in (top, nested):
        assert len(issues) == 1 and issues[0].startswith("11:"), issues
        assert "invisible or control" in issues[0] and issues[0].isprintable()


_REF_CASES = [
    ("{$ref: {path: /api/suppliers/}}", "a reference names path and key"),
    ("{$ref: {path: api, key: A}}", "path 'api' must be a collection path"),
    ("{$ref: {path: /a/, key: A, color: red}}", "a reference names path and key (and optionally"
     " key_field, field), not 'color'"),
    ("{$ref: {path: /a/, key: A}, x: 1}", "a reference is {$ref: {path: /api/things/, key: KEY}}"
     " alone"),
    ("{$ref: {path: /a/, key: A, field: 'a b'}}", "field must be a field name"),
    ("{$ref: {path: /a/, key: A}}", "references /a/A, which no manifest declares"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), _REF_CASES)
def test_a_reference_is_checked_at_its_place(tmp_path: Path, value: str, expected: str) -> None:
    [error] = _errors(tmp_path, HEAD + f"    s: {value}\n")
    assert error.startswith(f"11:8: spec.body.s: {expected}"), error


def test_a_reference_to_an_object_outside_the_manifests_names_its_key_field(
    tmp_path: Path,
) -> None:
    obj = _load(tmp_path, HEAD + "    s: {$ref: {path: /a/, key: A, key_field: code}}\n")
    [(name, ref)] = obj.refs.items()
    assert (name, ref.path, ref.key, ref.key_field, ref.field) == ("s", "/a/", "A", "code", "id")
