"""Akana manifests: every issue with its file:line:column, all at once; the JSON Schema
shipped is the generated one and agrees with the loader on the demo and on bad documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reconciler.errors import ManifestError
from reconciler.manifest.loader import load_manifests
from reconciler.providers.akana.manifest import MANIFEST_KINDS, akana_app_json_schema
from reconciler.providers.akana.manifest.schema import akana_app_json_schema_text
from reconciler.providers.akana.model import AkanaApp
from reconciler.providers.akana.render import render_manifest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "manifests" / "akana" / "payments.yaml"

GOOD = """\
apiVersion: akana/v1
kind: App
metadata:
  name: Shop
spec:
  summary: s
  versions:
    - name: "1.0"
"""


def load(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[AkanaApp]:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    return [item.app for item in load_manifests([path], env or {}, kinds=MANIFEST_KINDS)]


def issues(text: str, tmp_path: Path) -> list[tuple[int, int, str, str]]:
    with pytest.raises(ManifestError) as caught:
        load(text, tmp_path)
    return [(i.line, i.column, i.path, i.message) for i in caught.value.issues]


def test_the_demo_manifest_loads() -> None:
    apps = [item.app for item in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    assert [a.name for a in apps] == ["Payments Gateway", "Payments Reports"]
    assert [v.name for v in apps[0].versions] == ["1.0", "2.0"]
    assert apps[0].protect and apps[0].versions[0].initial_environment == "Sandbox"


BAD = [
    # (what, replace this, with this, line, column, path, message fragment)
    ("unknown key", "  summary: s", "  sumary: s", 6, 3, "spec.sumary", "did you mean 'summary'"),
    ("key one level off", "  summary: s", "  adopt: true", 6, 3, "spec.adopt",
     "it belongs under metadata"),
    ("a number as a version name", '- name: "1.0"', "- name: 1.10", 8, 13,
     "spec.versions[0].name", 'YAML reads 1.10 as the number 1.1; quote it: "1.10"'),
    ("no versions", '  versions:\n    - name: "1.0"\n', "", 5, 1, "spec.versions",
     "at least one version"),
    ("empty versions", '  versions:\n    - name: "1.0"\n', "  versions: []\n", 7, 13,
     "spec.versions", "at least one version"),
    ("a duplicate version", '    - name: "1.0"\n', '    - name: "1.0"\n    - name: "1.0"\n', 9, 13,
     "spec.versions[1].name", "duplicate version name '1.0' (first at line 8)"),
    ("bad visibility", '    - name: "1.0"\n', '    - name: "1.0"\n      visibility: public\n',
     9, 19, "spec.versions[0].visibility", "did you mean 'Public'"),
    ("bad ensure", "  summary: s", "  ensure: gone", 6, 11, "spec.ensure",
     "must be one of present, absent"),
    ("yes as a boolean", "  name: Shop", "  name: Shop\n  adopt: yes", 5, 10, "metadata.adopt",
     "write true or false"),
    ("no name", "  name: Shop\n", "  labels: {a: b}\n", 3, 1, "metadata.name",
     "required field is missing"),
    ("tags not a list", '    - name: "1.0"\n', '    - name: "1.0"\n      tags: a\n', 9, 13,
     "spec.versions[0].tags", "must be a list of strings"),
    ("protect with ensure absent", "metadata:\n  name: Shop\nspec:\n",
     "metadata:\n  name: Shop\n  protect: true\nspec:\n  ensure: absent\n", 7, 11,
     "spec.ensure", "protect is true"),
    ("wrong kind", "kind: App", "kind: MiniApp", 2, 7, "kind", "supported: App"),
    ("an unquoted date", "  summary: s", "  summary: 2024-01-01", 6, 12, "spec.summary",
     "as a date"),
    # The model's own rules, reported where the document holds the field (AkanaApp is flat).
    ("a long summary", "  summary: s", "  summary: " + "x" * 4001, 6, 12, "spec.summary",
     "at most 4000 characters"),
    ("a long name", "  name: Shop", "  name: " + "S" * 201, 4, 9, "metadata.name",
     "at most 200 characters"),
]


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "path", "fragment"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_manifests_are_reported_where_they_are(
    tmp_path: Path, old: str, new: str, line: int, column: int, path: str, fragment: str
) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    found = issues(text, tmp_path)
    assert any(
        (i_line, i_column, i_path) == (line, column, path) and fragment in message
        for i_line, i_column, i_path, message in found
    ), found


def test_every_issue_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("  summary: s", "  sumary: s\n  picture_id: 3").replace(
        '- name: "1.0"', "- name: 1.10\n      colour: red"
    )
    found = issues(text, tmp_path)
    assert [(line, path) for line, _, path, _ in found] == [
        (6, "spec.sumary"),
        (7, "spec.picture_id"),
        (9, "spec.versions[0].name"),
        (10, "spec.versions[0].colour"),
    ]


def test_a_name_declared_twice_is_refused(tmp_path: Path) -> None:
    found = issues(GOOD + "---\n" + GOOD, tmp_path)
    assert [(line, path) for line, _, path, _ in found] == [(13, "metadata.name")]
    assert "Akana app name 'Shop' is already defined" in found[0][3]


def test_absent_needs_no_version_and_variables_are_substituted(tmp_path: Path) -> None:
    text = GOOD.replace("  summary: s", "  ensure: absent\n  summary: ${WHO:-x}").replace(
        '  versions:\n    - name: "1.0"\n', ""
    )
    [app] = load(text, tmp_path, {"WHO": "team"})
    assert (app.ensure, app.summary, app.versions) == ("absent", "team", ())


def test_render_gives_back_what_it_was_given(tmp_path: Path) -> None:
    apps = [item.app for item in load_manifests([DEMO], {}, kinds=MANIFEST_KINDS)]
    tricky = apps[1].model_copy(update={"summary": "costs $${PRICE} or ${X}", "name": "yes"})
    for app in (*apps, tricky):
        assert load(render_manifest(app), tmp_path) == [app]


# --- the JSON Schema -----------------------------------------------------------------------


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = (REPO / "schema" / "akana-app.schema.json").read_text("utf-8")
    assert shipped == akana_app_json_schema_text(), (
        "regenerate: python -c 'from reconciler.providers.akana.manifest.schema import *;"
        " print(akana_app_json_schema_text(), end=\"\")' > schema/akana-app.schema.json"
    )
    assert json.loads(shipped) == akana_app_json_schema()


def test_the_schema_accepts_the_demo_and_refuses_what_the_loader_refuses() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(akana_app_json_schema())
    validator = jsonschema.Draft202012Validator(akana_app_json_schema())
    documents = list(yaml.safe_load_all(DEMO.read_text()))
    assert len(documents) == 2
    for document in documents:
        assert list(validator.iter_errors(document)) == []
    bad = yaml.safe_load(GOOD.replace("  summary: s", "  sumary: s"))
    assert list(validator.iter_errors(bad))
    bad = yaml.safe_load(GOOD.replace('- name: "1.0"', '- name: "1.0"\n      visibility: All'))
    assert list(validator.iter_errors(bad))


# --- one checker base for every provider (issue #12) ---------------------------------------


def test_a_file_that_is_not_a_manifest_is_named_without_its_content(tmp_path: Path) -> None:
    """A .env picked up as *.yaml: its keys are its content, so none is echoed."""
    found = issues("DB_PASSWORD: hunter2\nAPI_TOKEN: s3cret\n", tmp_path)
    assert found == [
        (1, 1, "", "not a manifest: a document starts with apiVersion: akana/v1 and kind: App")
    ]


def test_a_surrogate_from_the_environment_is_refused(tmp_path: Path) -> None:
    """os.environ decodes undecodable bytes to lone surrogates: refused, as for mini apps."""
    text = GOOD.replace("  summary: s", "  summary: ${WHO}")
    with pytest.raises(ManifestError) as caught:
        load(text, tmp_path, {"WHO": "caf\udce9"})
    [issue] = caught.value.issues
    assert (issue.line, issue.path) == (6, "spec.summary")
    assert issue.message.startswith("contains U+DCE9, a lone surrogate")


def test_a_refused_version_is_not_also_reported_as_no_version(tmp_path: Path) -> None:
    """The model's whole-app rule (at least one version) stays silent when the walk already
    refused the versions (DocumentCheckerBase.skip_document_errors_after_issues)."""
    found = issues(GOOD.replace('- name: "1.0"', "- oops"), tmp_path)
    assert found == [(8, 7, "spec.versions[0]", "must be a mapping, not the value 'oops'")]
