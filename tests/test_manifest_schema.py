"""The JSON Schema: shipped copies cannot rot, it covers the model, it agrees with the loader."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.errors import ManifestError
from reconciler.providers.miniappcenter.manifest import load_manifests, manifest_json_schema
from reconciler.providers.miniappcenter.manifest.document import (
    REQUIRED_FOR_PRESENT,
    REQUIRED_VERSION,
)
from reconciler.providers.miniappcenter.model import Location, MiniApp, MiniAppSpec, Version

REPO = Path(__file__).resolve().parent.parent
EXPECTED = json.dumps(manifest_json_schema(), indent=2, sort_keys=False) + "\n"
REGENERATE = "regenerate: reconciler schema > schema/miniapp.schema.json (and reconciler/schema/)"


@pytest.mark.parametrize(
    "shipped",
    [
        REPO / "schema" / "miniapp.schema.json",
        REPO / "reconciler" / "schema" / "miniapp.schema.json",
    ],
)
def test_shipped_schema_files_are_current(shipped: Path) -> None:
    assert shipped.read_text("utf-8") == EXPECTED, REGENERATE


def test_schema_is_package_data() -> None:
    shipped = resources.files("reconciler") / "schema" / "miniapp.schema.json"
    assert shipped.read_text("utf-8") == EXPECTED


def test_schema_names_exactly_the_model_fields() -> None:
    schema = manifest_json_schema()
    defs = schema["$defs"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    metadata = set(schema["properties"]["metadata"]["properties"])
    assert metadata == set(MiniApp.model_fields) - {"spec"}
    assert set(defs["spec"]["properties"]) == set(MiniAppSpec.model_fields)
    assert set(defs["location"]["properties"]) == set(Location.model_fields)
    assert set(defs["version"]["properties"]) == set(Version.model_fields)
    assert defs["version"]["required"] == list(REQUIRED_VERSION)
    assert defs["spec"]["else"]["required"] == list(REQUIRED_FOR_PRESENT)
    for definition in (schema, schema["properties"]["metadata"], *defs.values()):
        assert definition["additionalProperties"] is False
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]


def test_schema_is_a_fresh_copy() -> None:
    manifest_json_schema()["properties"].clear()
    assert manifest_json_schema()["properties"]


# --- the schema agrees with the loader (needs the jsonschema package) ---------------------


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_demo_fleet_is_valid_under_the_schema(validator: Any) -> None:
    files = sorted((REPO / "manifests").rglob("*.yaml"))
    documents = [d for f in files for d in yaml.safe_load_all(f.read_text("utf-8")) if d]
    mini_apps = [d for d in documents if d["apiVersion"] == "miniappcenter/v1"]
    assert len(mini_apps) == 5
    for document in mini_apps:
        assert list(validator.iter_errors(document)) == [], document["metadata"]["id"]
    # The Akana part against the Akana schema the editors are pointed at.
    akana = pytest.importorskip("jsonschema").Draft202012Validator(
        json.loads((REPO / "schema" / "akana-app.schema.json").read_text("utf-8"))
    )
    akana_apps = [d for d in documents if d["apiVersion"] == "akana/v1"]
    assert len(akana_apps) == 2 and len(documents) == 7
    for document in akana_apps:
        assert list(akana.iter_errors(document)) == [], document["metadata"]["name"]


BASE = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.example.shop
spec:
  name: Shop
  superapp_id: com.example.superapp
  type: web
  versions:
    - code: "1.10"
      platform_id: iOS
      main_name: Start
      main_type: menu
      service_url: ${URL:-https://example.com/}
      status: ready
"""


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        pytest.param(BASE, True, id="valid"),
        pytest.param(
            "apiVersion: miniappcenter/v1\nkind: MiniApp\nmetadata: {id: a.b}\n"
            "spec: {ensure: absent}\n",
            True,
            id="absent-minimal",
        ),
        pytest.param(BASE.replace("name: Shop", "nmae: Shop"), False, id="unknown-key"),
        pytest.param(BASE.replace('"1.10"', "1.10"), False, id="unquoted-code"),
        pytest.param(BASE.replace("type: web", "type: hybrid"), False, id="bad-type"),
        pytest.param(BASE.replace("status: ready", "status: done"), False, id="bad-status"),
        pytest.param(BASE.replace("com.example.shop", "../x"), False, id="bad-id"),
        pytest.param(BASE.replace("      main_name: Start\n", ""), False, id="missing-main-name"),
        pytest.param(BASE.replace("  name: Shop\n", ""), False, id="missing-name"),
        pytest.param(
            BASE.replace("${URL:-https://example.com/}", "ftp://example.com/"), False, id="ftp"
        ),
        pytest.param(
            BASE + "  locations:\n    - {name: A, geo_point: POINT(1 2)}\n", True, id="wkt"
        ),
        pytest.param(BASE + "  locations:\n    - {name: A, geo_point: 1 2}\n", False, id="bad-wkt"),
        pytest.param(BASE + "  attributes: {COUNTRY: Uruguay}\n", True, id="attribute"),
        pytest.param(BASE + "  attributes: {COUNTRY: 1}\n", False, id="number-attribute"),
    ],
)
def test_schema_and_loader_agree(validator: Any, tmp_path: Path, text: str, valid: bool) -> None:
    schema_valid = not list(validator.iter_errors(yaml.safe_load(text)))
    file = tmp_path / "m.yaml"
    file.write_text(text, "utf-8")
    try:
        load_manifests([file], {})
        loader_valid = True
    except ManifestError:
        loader_valid = False
    assert (schema_valid, loader_valid) == (valid, valid)
