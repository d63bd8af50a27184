"""Every surface speaks for every provider: what an unconfigured provider needs, the titles
of text and Markdown reports, one JSON vocabulary, help's exit codes and examples, REST
endpoint names checked by `validate`, and a plan that cannot be saved refused before any
read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "RECONCILER_CONFIG",
                "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    (tmp_path / ".git").mkdir()
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_unconfigured_provider_names_its_variables(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "plan", "manifests/akana")
    assert code == 1
    assert err.splitlines()[-1] == (
        "Error: the manifests or the state need the akana provider, but no akana endpoint is"
        " configured: set AKANA_BASE_URL, AKANA_EMAIL and AKANA_PASSWORD, or pass --sandbox"
    )
    assert "AKANA_BUSINESS_ID" not in err  # optional: not something to set


def test_apply_json_says_kind_as_the_plan_does(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "apply", "manifests/akana", "--sandbox", "--auto-approve",
                         "--format", "json")  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    planned = {c["address"]: c["kind"] for c in document["plan"]["changes"]}
    results = document["apply"]["results"]
    assert results and all("resource" not in r for r in results)
    assert {r["address"]: r["kind"] for r in results} == planned


def test_drift_markdown_is_not_titled_for_one_provider(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "apply", "manifests/akana", "--sandbox", "--auto-approve")[0] == 0
    code, out, err = run(capsys, "drift", "manifests/akana", "--sandbox", "--format", "markdown")
    assert code == 0, err
    assert out.splitlines()[1] == "### Drift"
    assert "Mini App Center" not in out


def test_the_actions_drift_annotation_names_no_provider() -> None:
    script = (REPO / "action" / "run.sh").read_text(encoding="utf-8")
    assert "title=Drift::the live resources differ from the manifests" in script
    assert "live Mini App Center differs" not in script


def test_a_plan_that_cannot_be_saved_is_refused_before_any_read(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Endpoints nobody listens on: a read would fail on the connection, not with this.
    unreachable = {
        "MAC_BASE_URL": "http://127.0.0.1:9/api",
        "MAC_API_TOKEN": "token-for-the-test",
        "AKANA_BASE_URL": "http://127.0.0.1:9",
        "AKANA_EMAIL": "a@b.c",
        "AKANA_PASSWORD": "password-for-the-test",
    }
    for name, value in unreachable.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RECONCILER_REQUEST_DEADLINE", "5")
    code, out, err = run(capsys, "plan", "manifests", "--out", "plan.json")
    assert code == 64, err
    assert err.splitlines()[-1] == (
        "Error: this plan spans 2 providers (akana, miniappcenter); a saved plan covers one"
        " provider: add --provider NAME and save one plan per provider"
    )
    assert "127.0.0.1:9" not in err.replace("Endpoint: http://127.0.0.1:9/api", "")
    assert not (fleet / "plan.json").exists() and out == ""


@pytest.fixture
def rest_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_CONFIG", raising=False)
    shutil.copytree(REPO / "examples" / "rest", tmp_path / "rest")
    monkeypatch.chdir(tmp_path / "rest")
    return tmp_path / "rest"


def test_validate_checks_rest_endpoints_against_the_project_file(
    rest_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "validate", "manifests")[0] == 0
    manifest = rest_project / "manifests" / "categories.yaml"
    text = manifest.read_text("utf-8")
    manifest.write_text(text.replace("endpoint: shop", "endpoint: shpo", 1), "utf-8")
    line = text.splitlines().index("  endpoint: shop") + 1
    code, out, _ = run(capsys, "validate", "manifests")
    assert code == 1
    assert out.splitlines()[0] == (
        f"manifests/categories.yaml:{line}:3: spec.endpoint: endpoint 'shpo' is not declared"
        " in reconciler.yaml (declared: shop)"
    )
    code, out, _ = run(capsys, "validate", "manifests", "--format", "json")
    assert code == 1 and json.loads(out)["errors"][0]["path"] == "spec.endpoint"


@pytest.mark.parametrize(
    ("provider", "ref", "schema"),
    [("rest", "shop:/api/categories/:tools", "rest-object"),
     ("akana", "Payments Reports", "akana-app")],
)  # fmt: skip
def test_import_writes_a_schema_line_that_works_in_the_users_repository(
    fleet: Path, capsys: pytest.CaptureFixture[str], provider: str, ref: str, schema: str
) -> None:
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "manifests" / "rest")
    shutil.copy(REPO / "examples" / "rest" / "reconciler.yaml", fleet / "reconciler.yaml")
    assert run(capsys, "schema", "--write", "schema")[0] == 0
    code, _, err = run(capsys, "apply", f"manifests/{provider}", "--sandbox", "--auto-approve")
    assert code == 0, err
    address = f"{'rest_object' if provider == 'rest' else 'akana_app'}[{ref}]"
    assert run(capsys, "state", "rm", address, "--sandbox")[0] == 0
    code, _, err = run(capsys, "import", "--provider", provider, ref, "--out",
                       "manifests/imported", "--sandbox")  # fmt: skip
    assert code == 0, err
    (written,) = (fleet / "manifests" / "imported").iterdir()
    first, *rest = written.read_text("utf-8").splitlines()
    assert first == f"# yaml-language-server: $schema=../../schema/{schema}.schema.json"
    assert (written.parent / first.split("=", 1)[1]).resolve().is_file()
    if provider == "rest":
        assert "    slug: \"tools\"" in rest and not any(x.strip().startswith('"') for x in rest)
    assert run(capsys, "validate", str(written))[0] == 0


def test_a_mini_app_import_from_a_subfolder_writes_a_schema_line_that_works(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule for the Mini App Center: the schema is found above the written file,
    not in the current folder (run from inside manifests/, it was left out)."""
    assert run(capsys, "schema", "--write", "schema")[0] == 0
    code, _, err = run(capsys, "apply", "manifests/cafe", "--sandbox", "--auto-approve")
    assert code == 0, err
    monkeypatch.chdir(fleet / "manifests")
    key = "com.genexus.verdant.teatime"
    assert run(capsys, "state", "rm", f"miniapp[{key}]", "--sandbox")[0] == 0
    code, _, err = run(capsys, "import", key, "--out", "imported", "--sandbox")
    assert code == 0, err
    written = fleet / "manifests" / "imported" / f"{key}.yaml"
    first = written.read_text("utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schema/miniapp.schema.json"
    assert (written.parent / first.split("=", 1)[1]).resolve().is_file()
