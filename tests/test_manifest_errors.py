"""Every manifest rule, each pinned to the exact ``file:line:col: path: message`` it reports."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.providers.miniappcenter.manifest import load_manifests

# Line numbers below refer to this document (line 1 = apiVersion).
BASE = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.example.shop
spec:
  name: Shop
  superapp_id: com.example.superapp
  type: Native
"""
# Appended to BASE: starts at line 9.
VERSION = """\
  versions:
    - code: "1.0"
      platform_id: iOS
      main_name: Start
      main_type: Panel
"""
LOCATION = """\
  locations:
    - name: Central
      geo_point: POINT(-56.16 -34.92)
"""


def issues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, **env: str) -> list[str]:
    """The issues of one file ``m.yaml`` (relative, so the messages are stable)."""
    monkeypatch.chdir(tmp_path)
    Path("m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifests(["m.yaml"], env)
    return [str(issue) for issue in caught.value.issues]


CASES = [
    pytest.param(
        BASE + "  descriptoin: A shop\n",
        "m.yaml:9:3: spec.descriptoin: unknown key 'descriptoin'; did you mean 'description'?",
        id="unknown-key-suggestion",
    ),
    pytest.param(
        BASE + "  Keywords: a b\n",
        "m.yaml:9:3: spec.Keywords: unknown key 'Keywords'; did you mean 'keywords'?",
        id="unknown-key-case",
    ),
    pytest.param(
        BASE + "  labels: {team: cafe}\n",
        "m.yaml:9:3: spec.labels: unknown key 'labels'; it belongs under metadata",
        id="key-in-wrong-section",
    ),
    pytest.param(
        BASE + "  colour: green\n",
        "m.yaml:9:3: spec.colour: unknown key 'colour'; expected one of ensure, name,"
        " description, superapp_id, organization_id, type, keywords, icon, card, banner,"
        " attributes, locations, versions",
        id="unknown-key-no-suggestion",
    ),
    pytest.param(
        BASE + VERSION.replace('code: "1.0"', "code: 1.10"),
        "m.yaml:10:13: spec.versions[0].code: must be a string, but YAML reads 1.10 as the"
        ' number 1.1; quote it: "1.10"',
        id="unquoted-float-code",
    ),
    pytest.param(
        BASE + VERSION.replace('code: "1.0"', "code: 2"),
        "m.yaml:10:13: spec.versions[0].code: must be a string, but YAML reads 2 as the"
        ' number 2; quote it: "2"',
        id="unquoted-int-code",
    ),
    pytest.param(
        BASE + VERSION.replace("platform_id: iOS", "platform_id: NO"),
        "m.yaml:11:20: spec.versions[0].platform_id: must be a string, but YAML reads NO as"
        ' the boolean false; quote it: "NO"',
        id="yaml11-boolean-NO",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: yes"),
        "m.yaml:6:9: spec.name: must be a string, but YAML reads yes as the boolean true;"
        ' quote it: "yes"',
        id="yaml11-boolean-yes",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: 2024-01-31"),
        "m.yaml:6:9: spec.name: must be a string, but YAML reads 2024-01-31 as a date;"
        ' quote it: "2024-01-31"',
        id="date-in-string-field",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name:"),
        'm.yaml:6:8: spec.name: must be a string, but the value is empty (null); write ""'
        " for an empty string, or remove the key to leave the field unmanaged",
        id="null-string",
    ),
    pytest.param(
        BASE + "  attributes:\n    COUNTRY: Uruguay\n    STORES: 12\n",
        "m.yaml:11:13: spec.attributes.STORES: must be a string, but YAML reads 12 as the"
        ' number 12; quote it: "12"',
        id="number-attribute-value",
    ),
    pytest.param(
        BASE + "  attributes:\n    bad name: x\n",
        "m.yaml:10:5: spec.attributes.bad name: invalid name 'bad name': must start with a"
        " letter or '_' and contain only letters, digits, '_' or '-'",
        id="bad-attribute-name",
    ),
    pytest.param(
        BASE.replace("type: Native", "type: Hybrid"),
        "m.yaml:8:9: spec.type: type must be Native or Web (any case), not 'Hybrid'",
        id="bad-type",
    ),
    pytest.param(
        BASE + VERSION.replace("main_type: Panel", "main_type: Window"),
        "m.yaml:13:18: spec.versions[0].main_type: main_type must be Panel or Menu, not 'Window'",
        id="bad-main-type",
    ),
    pytest.param(
        BASE + VERSION + "      status: in-review\n",
        "m.yaml:14:15: spec.versions[0].status: must be one of pending, waiting_for_review,"
        " in_review, rejected, ready, not 'in-review'; did you mean 'in_review'?",
        id="bad-status",
    ),
    pytest.param(
        BASE + "  ensure: gone\n",
        "m.yaml:9:11: spec.ensure: must be one of present, absent, not 'gone'",
        id="bad-ensure",
    ),
    pytest.param(
        BASE + LOCATION.replace("POINT(-56.16 -34.92)", "-56.16,-34.92"),
        "m.yaml:11:18: spec.locations[0].geo_point: geo_point must be WKT 'POINT(lon lat)',"
        " not '-56.16,-34.92'",
        id="bad-wkt",
    ),
    pytest.param(
        BASE + LOCATION.replace("POINT(-56.16 -34.92)", "POINT(-56.16 -94.5)"),
        "m.yaml:11:18: spec.locations[0].geo_point: geo_point latitude -94.5 is outside [-90, 90]",
        id="latitude-out-of-range",
    ),
    pytest.param(
        BASE + LOCATION.replace("POINT(-56.16 -34.92)", "POINT(181 0)"),
        "m.yaml:11:18: spec.locations[0].geo_point: geo_point longitude 181.0 is outside"
        " [-180, 180]",
        id="longitude-out-of-range",
    ),
    pytest.param(
        BASE + VERSION + "      service_url: ftp://example.com/app\n",
        "m.yaml:14:20: spec.versions[0].service_url: service_url must be an http(s) URL,"
        " not 'ftp://example.com/app'",
        id="bad-service-url",
    ),
    pytest.param(
        BASE + VERSION + "      compatibility: [1, 2, 1]\n",
        "m.yaml:14:29: spec.versions[0].compatibility[2]: duplicate Super App version id 1",
        id="duplicate-compatibility",
    ),
    pytest.param(
        BASE + VERSION + "      compatibility: [0]\n",
        "m.yaml:14:23: spec.versions[0].compatibility[0]: Super App version ids are positive"
        " integers, not 0",
        id="non-positive-compatibility",
    ),
    pytest.param(
        BASE + VERSION + "      compatibility: [010]\n",
        "m.yaml:14:23: spec.versions[0].compatibility[0]: write a plain decimal integer, not 010",
        id="octal-compatibility",
    ),
    pytest.param(
        BASE + VERSION + '      compatibility: ["1"]\n',
        'm.yaml:14:23: spec.versions[0].compatibility[0]: must be an integer, not the string "1"',
        id="string-compatibility",
    ),
    pytest.param(
        BASE + VERSION + "      integrated_security: yes\n",
        "m.yaml:14:28: spec.versions[0].integrated_security: write true or false, not yes",
        id="yaml11-bool-in-bool-field",
    ),
    pytest.param(
        BASE.replace("id: com.example.shop", "id: ../x"),
        "m.yaml:4:7: metadata.id: invalid id '../x': must be a reverse-DNS id such as"
        " com.example.shop: dot-separated labels of letters, digits, '_' or '-', each starting"
        " with a letter or digit",
        id="path-traversal-id",
    ),
    pytest.param(
        BASE.replace("superapp_id: com.example.superapp", "superapp_id: superapp"),
        "m.yaml:7:16: spec.superapp_id: invalid id 'superapp': must be a reverse-DNS id such as"
        " com.example.shop: dot-separated labels of letters, digits, '_' or '-', each starting"
        " with a letter or digit",
        id="bad-superapp-id",
    ),
    pytest.param(
        BASE.replace("  type: Native\n", "  type: Native\n  name: Other\n"),
        "m.yaml:9:3: spec.name: duplicate key 'name': already defined at line 6; YAML would"
        " silently keep only the last one",
        id="duplicate-key",
    ),
    pytest.param(
        BASE + LOCATION + "    - name: Central\n      geo_point: POINT(1 2)\n",
        "m.yaml:12:13: spec.locations[1].name: duplicate location name 'Central'"
        " (first at line 10)",
        id="duplicate-location-name",
    ),
    pytest.param(
        BASE + VERSION + VERSION.removeprefix("  versions:\n"),
        "m.yaml:14:13: spec.versions[1].code: duplicate version code '1.0' (first at line 10)",
        id="duplicate-version-code",
    ),
    pytest.param(
        BASE.replace("apiVersion: miniappcenter/v1\n", ""),
        "m.yaml:1:1: apiVersion: required field is missing; write apiVersion: miniappcenter/v1",
        id="missing-apiVersion",
    ),
    pytest.param(
        BASE.replace("kind: MiniApp\n", ""),
        "m.yaml:1:1: kind: required field is missing; write kind: MiniApp",
        id="missing-kind",
    ),
    pytest.param(
        BASE.replace("miniappcenter/v1", "miniappcenter/v2"),
        "m.yaml:1:13: apiVersion: unsupported apiVersion 'miniappcenter/v2';"
        " supported: miniappcenter/v1",
        id="unknown-apiVersion",
    ),
    pytest.param(
        BASE.replace("kind: MiniApp", "kind: Deployment"),
        "m.yaml:2:7: kind: unsupported kind 'Deployment'; supported: MiniApp",
        id="unknown-kind",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: Shop ${SHOP_SUFFIX}"),
        "m.yaml:6:9: spec.name: environment variable SHOP_SUFFIX is not set (referenced as"
        " ${SHOP_SUFFIX}); set it, or give a default: ${SHOP_SUFFIX:-default}",
        id="unset-variable",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: ${1X}"),
        "m.yaml:6:9: spec.name: invalid variable reference '${1X}': use ${NAME} or"
        " ${NAME:-default}",
        id="bad-variable-reference",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: ${SHOP"),
        "m.yaml:6:9: spec.name: unterminated ${ in value; write $${ for a literal ${",
        id="unterminated-variable",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: [Shop"),
        "m.yaml:7:14: YAML syntax error: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence at line 6)",
        id="yaml-syntax-error",
    ),
    pytest.param(
        BASE.replace("  name: Shop", "\tname: Shop"),
        "m.yaml:6:1: YAML syntax error: found character '\\t' that cannot start any token;"
        " indent with spaces: YAML does not allow tabs there",
        id="tab-indentation",
    ),
    pytest.param(
        "- apiVersion: miniappcenter/v1\n- kind: MiniApp\n",
        "m.yaml:1:1: a manifest document must be a mapping (apiVersion, kind, metadata, spec),"
        " not a list",
        id="list-document",
    ),
    pytest.param(
        "just some text\n",
        # The text is not echoed: a non-manifest file (a .env) must not leak into a log.
        "m.yaml:1:1: a manifest document must be a mapping (apiVersion, kind, metadata, spec),"
        " not a single value",
        id="scalar-document",
    ),
    pytest.param(
        "apiVersion: miniappcenter/v1\nkind: MiniApp\nmetadata:\n  id: com.example.shop\n",
        "m.yaml:1:1: spec: required field is missing",
        id="missing-spec",
    ),
    pytest.param(
        "apiVersion: miniappcenter/v1\nkind: MiniApp\nmetadata:\n  labels: {}\n"
        "spec:\n  ensure: absent\n",
        "m.yaml:3:1: metadata.id: required field is missing: the mini app id (reverse-DNS)",
        id="missing-id",
    ),
    pytest.param(
        BASE.replace("metadata:\n  id: com.example.shop\n", "metadata: com.example.shop\n"),
        "m.yaml:3:11: metadata: must be a mapping, not the value 'com.example.shop'",
        id="metadata-not-a-mapping",
    ),
    pytest.param(
        BASE + "  locations:\n    name: Central\n",
        "m.yaml:10:5: spec.locations: must be a list, not a mapping",
        id="locations-not-a-list",
    ),
    pytest.param(
        BASE + "  locations:\n    - Central\n",
        "m.yaml:10:7: spec.locations[0]: must be a mapping, not the value 'Central'",
        id="location-not-a-mapping",
    ),
    pytest.param(
        BASE + "  locations:\n    - name: Central\n",
        "m.yaml:10:7: spec.locations[0].geo_point: required field is missing",
        id="missing-geo-point",
    ),
    pytest.param(
        BASE.replace("  id: com.example.shop\n", "  id: com.example.shop\n  protect: 1\n"),
        "m.yaml:5:12: metadata.protect: must be true or false, not the value '1'",
        id="protect-not-bool",
    ),
    pytest.param(
        BASE.replace("  id: com.example.shop\n", "  id: com.example.shop\n  labels: {env: off}\n"),
        "m.yaml:5:17: metadata.labels.env: must be a string, but YAML reads off as the boolean"
        ' false; quote it: "off"',
        id="label-value-boolean",
    ),
    pytest.param(
        BASE.replace("  id: com.example.shop\n", "  id: com.example.shop\n  labels: {a b: x}\n"),
        "m.yaml:5:12: metadata.labels.a b: invalid name 'a b': label names start with a letter"
        " or digit and contain only letters, digits, '_', '.', '/' or '-'",
        id="bad-label-name",
    ),
    pytest.param(
        BASE.replace("  id: com.example.shop\n", "  id: com.example.shop\n  protect: true\n")
        + "  ensure: absent\n",
        "m.yaml:10:11: spec.ensure: ensure: absent deletes the mini app, but metadata.protect"
        " is true; set protect: false to allow the delete",
        id="absent-but-protected",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: !!python/object/apply:os.system [echo hi]"),
        "m.yaml:6:9: unsupported YAML tag '!!python/object/apply:os.system' on a list;"
        " remove it",
        id="python-tag-not-constructed",
    ),
    pytest.param(
        BASE.replace("name: Shop", "name: !!python/name:os.system ''"),
        "m.yaml:6:9: unsupported YAML tag '!!python/name:os.system'; remove it and write a"
        " plain value",
        id="python-tag-scalar",
    ),
    pytest.param(
        BASE + "  <<: {description: merged}\n",
        "m.yaml:9:3: spec: merge keys (<<) are not supported; write the fields out",
        id="merge-key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_one_rule_one_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    assert issues(tmp_path, monkeypatch, text) == [expected]


def test_present_needs_name_superapp_id_and_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "apiVersion: miniappcenter/v1\nkind: MiniApp\nmetadata:\n  id: com.example.shop\n"
    text += "spec:\n  description: no name\n"
    assert issues(tmp_path, monkeypatch, text) == [
        f"m.yaml:5:1: spec.{field}: required field is missing (the API needs it to create"
        " the mini app; use ensure: absent to delete one)"
        for field in ("name", "superapp_id", "type")
    ]


def test_required_version_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + "  versions:\n    - status: ready\n"
    assert issues(tmp_path, monkeypatch, text) == [
        f"m.yaml:10:7: spec.versions[0].{field}: required field is missing"
        for field in ("code", "platform_id", "main_name", "main_type")
    ]


def test_several_errors_in_one_file_are_all_reported_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = textwrap.dedent(
        """\
        apiVersion: miniappcenter/v1
        kind: MiniApp
        metadata:
          id: com.example.shop
          protect: maybe
        spec:
          nmae: Shop
          superapp_id: com.example.superapp
          type: Webb
          versions:
            - code: 1.10
              platform_id: iOS
              main_name: Start
              main_type: Panel
              service_url: not a url
        ---
        apiVersion: miniappcenter/v1
        kind: MiniApp
        metadata:
          id: com.example.other
        spec:
          ensure: absent
          locations:
            - name: X
              geo_point: POINT(0 100)
        """
    )
    assert issues(tmp_path, monkeypatch, text) == [
        'm.yaml:5:12: metadata.protect: must be true or false, not the string "maybe"',
        "m.yaml:6:1: spec.name: required field is missing (the API needs it to create the mini"
        " app; use ensure: absent to delete one)",
        "m.yaml:7:3: spec.nmae: unknown key 'nmae'; did you mean 'name'?",
        "m.yaml:9:9: spec.type: type must be Native or Web (any case), not 'Webb'",
        "m.yaml:11:13: spec.versions[0].code: must be a string, but YAML reads 1.10 as the"
        ' number 1.1; quote it: "1.10"',
        "m.yaml:15:20: spec.versions[0].service_url: service_url must be an http(s) URL,"
        " not 'not a url'",
        "m.yaml:25:18: spec.locations[0].geo_point: geo_point latitude 100.0 is outside [-90, 90]",
    ]


def test_duplicate_app_id_across_files_names_the_first_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a").mkdir()
    Path("a/first.yaml").write_text("# first\n" + BASE, encoding="utf-8")
    Path("b.yaml").write_text(BASE.replace("name: Shop", "name: Copy"), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifests(["a", "b.yaml"], {})
    assert [str(issue) for issue in caught.value.issues] == [
        "b.yaml:4:7: metadata.id: mini app id 'com.example.shop' is already defined at"
        " a/first.yaml:5"
    ]


def test_duplicate_app_id_in_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert issues(tmp_path, monkeypatch, BASE + "---\n" + BASE) == [
        "m.yaml:13:7: metadata.id: mini app id 'com.example.shop' is already defined at m.yaml:4"
    ]


def test_missing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("ok.yaml").write_text(BASE, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifests(["ok.yaml", "nope.yaml", "gone/"], {})
    assert [str(issue) for issue in caught.value.issues] == [
        "nope.yaml:1:1: no such file or folder",
        "gone/:1:1: no such file or folder",
    ]


def test_empty_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("empty").mkdir()
    Path("empty/notes.txt").write_text("not a manifest", encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifests(["empty"], {})
    assert [str(i) for i in caught.value.issues] == [
        "empty:1:1: no manifests found in empty: the folder holds no *.yaml or *.yml files"
    ]


def test_non_utf8_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.yaml").write_bytes(BASE.replace("Shop", "Caf\xe9").encode("latin-1"))
    with pytest.raises(ManifestError) as caught:
        load_manifests(["m.yaml"], {})
    assert [str(i) for i in caught.value.issues] == [
        "m.yaml:6:12: not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


def test_control_character(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert issues(tmp_path, monkeypatch, BASE.replace("Shop", "Sh\x07op")) == [
        "m.yaml:6:11: YAML does not allow the control character U+0007"
    ]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.yaml").write_text(BASE, encoding="utf-8")

    real_open = os.open

    def refuse(path: object, flags: int, *args: object) -> int:
        # chmod 000 does not stop root, so refuse here
        if str(path).endswith("m.yaml"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ManifestError) as caught:
        load_manifests(["m.yaml"], {})
    assert [str(i) for i in caught.value.issues] == [
        "m.yaml:1:1: cannot read the manifest: Permission denied"
    ]


def test_syntax_error_in_a_later_document_keeps_earlier_ones_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = BASE.replace("type: Native", "type: Nat") + "---\nkey: [unclosed\n"
    assert issues(tmp_path, monkeypatch, text) == [
        "m.yaml:8:9: spec.type: type must be Native or Web (any case), not 'Nat'",
        "m.yaml:11:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence at line 10)",
    ]


def test_deeply_nested_yaml_is_an_issue_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    depth = 50_000
    assert issues(tmp_path, monkeypatch, "a: " + "[" * depth + "]" * depth + "\n") == [
        "m.yaml:1:53: YAML is nested too deeply: collections inside collections more than 50"
        " levels deep (a manifest needs 5)"
    ]


def test_error_message_lists_every_issue() -> None:
    from reconciler.errors import ManifestIssue

    error = ManifestError(
        [ManifestIssue("a.yaml", 1, 2, "spec.name", "x"), ManifestIssue("b.yaml", 3, 4, "", "y")]
    )
    assert str(error) == "2 manifest errors\n  a.yaml:1:2: spec.name: x\n  b.yaml:3:4: y"
