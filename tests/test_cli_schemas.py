"""`reconciler schema [KIND] [--write DIR]`: every registered kind's JSON Schema ships in the
package, prints by provider or kind, and is written where a user's editor can use it."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from reconciler.cli.main import main

REPO = Path(__file__).resolve().parent.parent
FILES = {"miniappcenter": "miniapp.schema.json", "akana": "akana-app.schema.json",
         "rest": "rest-object.schema.json"}  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_providers_schema_ships_in_the_package() -> None:
    from reconciler.providers.registry import DESCRIPTORS

    builtin = [d for d in DESCRIPTORS if d.package == "miniapp-reconciler"]
    assert {d.name for d in builtin} == set(FILES)
    for descriptor in builtin:
        name = f"{descriptor.root_kind.replace('_', '-')}.schema.json"
        shipped = resources.files("reconciler") / "schema" / name
        assert shipped.is_file(), name
        # the repository's copy is checked against its generator by each provider's tests
        assert shipped.read_text("utf-8") == (REPO / "schema" / name).read_text("utf-8"), name


@pytest.mark.parametrize(
    ("kind", "provider"),
    [("akana", "akana"), ("akana_app", "akana"), ("App", "akana"), ("rest", "rest"),
     ("rest_object", "rest"), ("miniapp", "miniappcenter"), ("MiniApp", "miniappcenter")],
)  # fmt: skip
def test_schema_prints_by_provider_or_kind(
    capsys: pytest.CaptureFixture[str], kind: str, provider: str
) -> None:
    code, out, err = run(capsys, "schema", kind)
    assert (code, err) == (0, "")
    assert out == (REPO / "schema" / FILES[provider]).read_text("utf-8")


def test_an_unknown_kind_is_a_usage_error_naming_the_known(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "schema", "nope")
    assert code == 64 and out == ""
    assert "no schema for 'nope'; known: miniapp (miniappcenter), akana_app (akana)" in err


def test_write_puts_every_schema_where_the_manifests_can_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "schema", "--write", str(tmp_path / "schema"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "schema").iterdir()) == sorted(FILES.values())
    # The demo fleet's documents are valid against what was written.
    for folder, provider in (("akana", "akana"), ("cafe", "miniappcenter")):
        schema = json.loads((tmp_path / "schema" / FILES[provider]).read_text("utf-8"))
        for manifest in (REPO / "manifests" / folder).glob("*.yaml"):
            for document in yaml.safe_load_all(manifest.read_text("utf-8")):
                jsonschema.validate(document, schema)
    code, _, _ = run(capsys, "schema", "akana", "--write", str(tmp_path / "one"))
    assert code == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["akana-app.schema.json"]


def test_write_into_a_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("")
    code, _, err = run(capsys, "schema", "--write", str(tmp_path / "taken"))
    assert code == 1
    assert err.startswith("Error: cannot write the schemas into") and "Traceback" not in err
