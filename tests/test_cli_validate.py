"""`reconciler validate` and `reconciler schema` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.providers.miniappcenter.manifest import manifest_json_schema

REPO = Path(__file__).resolve().parent.parent
FLEET = REPO / "manifests"

GOOD = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.example.shop
  labels: {team: cafe}
spec:
  name: Shop
  superapp_id: com.example.superapp
  type: Native
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_bad_fleet() -> None:
    Path("fleet").mkdir()
    Path("fleet/a.yaml").write_text(GOOD.replace("type: Native", "type: Hybrid"), "utf-8")
    Path("fleet/b.yaml").write_text(
        GOOD.replace("com.example.shop", "com.example.b").replace("name: Shop", "nme: Shop"),
        "utf-8",
    )
    Path("fleet/ok.yaml").write_text(GOOD.replace("com.example.shop", "com.example.ok"), "utf-8")


BAD_LINES = [
    "fleet/a.yaml:9:9: spec.type: type must be Native or Web (any case), not 'Hybrid'",
    "fleet/b.yaml:6:1: spec.name: required field is missing (the API needs it to create the"
    " mini app; use ensure: absent to delete one)",
    "fleet/b.yaml:7:3: spec.nme: unknown key 'nme'; did you mean 'name'?",
]


def test_valid_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "validate", str(FLEET)) == (
        0, "OK: 5 mini apps, 2 Akana apps in 5 files\n", ""
    )


def test_valid_single_file(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("one.yaml").write_text(GOOD, "utf-8")
    assert run(capsys, "validate", "one.yaml") == (0, "OK: 1 mini app in 1 file\n", "")


def test_select_and_target_narrow_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(FLEET), "--select", "team=cafe")
    assert (code, out) == (0, "OK: 3 mini apps in 5 files\n")
    code, out, _ = run(
        capsys, "validate", str(FLEET), "--select", "team=cafe", "--select", "env=staging"
    )
    assert (code, out) == (0, "OK: 1 mini app in 5 files\n")
    code, out, _ = run(capsys, "validate", str(FLEET), "--target", "com.genexus.verdant.splitbill")
    assert (code, out) == (0, "OK: 1 mini app in 5 files\n")


def test_invalid_prints_each_issue_on_stdout_and_the_count_on_stderr(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bad_fleet()
    code, out, err = run(capsys, "validate", "fleet")
    assert code == 1
    assert out.splitlines() == BAD_LINES
    assert err == "3 errors in 2 files\n"


def test_one_error(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("one.yaml").write_text(GOOD.replace("Native", "Nativ"), "utf-8")
    code, out, err = run(capsys, "validate", "one.yaml", "missing.yaml")
    assert code == 1
    assert out.splitlines() == [
        "missing.yaml:1:1: no such file or folder",
        "one.yaml:9:9: spec.type: type must be Native or Web (any case), not 'Nativ'",
    ]
    assert err == "2 errors in 2 files\n"


def test_json_when_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(FLEET), "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "valid": True, "apps": 7, "errors": [], "by_provider": {"miniappcenter": 5, "akana": 2}
    }


def test_json_when_invalid(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_bad_fleet()
    code, out, err = run(capsys, "validate", "fleet", "--format", "json")
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert report["valid"] is False
    assert report["apps"] == 0
    assert report["errors"][0] == {
        "file": "fleet/a.yaml",
        "line": 9,
        "column": 9,
        "path": "spec.type",
        "message": "type must be Native or Web (any case), not 'Hybrid'",
    }
    assert [
        f"{e['file']}:{e['line']}:{e['column']}: {e['path']}: {e['message']}"
        for e in report["errors"]
    ] == BAD_LINES


def test_environment_is_read(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("env.yaml").write_text(GOOD.replace("name: Shop", "name: ${SHOP_NAME}"), "utf-8")
    monkeypatch.delenv("SHOP_NAME", raising=False)
    code, out, _ = run(capsys, "validate", "env.yaml")
    assert code == 1
    assert out.startswith("env.yaml:7:9: spec.name: environment variable SHOP_NAME is not set")
    monkeypatch.setenv("SHOP_NAME", "Shop")
    assert run(capsys, "validate", "env.yaml")[:2] == (0, "OK: 1 mini app in 1 file\n")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["validate"], id="no-paths"),
        pytest.param(["validate", "x.yaml", "--format", "xml"], id="bad-format"),
        pytest.param(["validate", "x.yaml", "--select", "team"], id="bad-selector"),
    ],
)
def test_usage_errors_exit_64(
    here: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    Path("x.yaml").write_text(GOOD, "utf-8")
    code, out, err = run(capsys, *args)
    assert code == 64
    assert out == ""
    assert err


def test_bad_selector_message(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("x.yaml").write_text(GOOD, "utf-8")
    assert run(capsys, "validate", "x.yaml", "--select", "team") == (
        64,
        "",
        "Error: invalid selector 'team': expected KEY=VALUE, e.g. team=cafe\n",
    )


def test_schema_command_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "schema")
    assert (code, err) == (0, "")
    assert json.loads(out) == manifest_json_schema()
    assert out == (REPO / "schema" / "miniapp.schema.json").read_text("utf-8")


def test_command_module_keeps_yaml_and_pydantic_out_of_startup() -> None:
    probe = (
        "import sys, reconciler.cli.validate_cmd;"
        "print(sorted(m for m in ('yaml', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"
