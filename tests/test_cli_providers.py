"""A fleet that spans providers, from the command line, against the in-process sandboxes:
the demo fleet's mini apps and Akana apps planned side by side, applied in one run, checked
for drift, imported, narrowed with --provider / --select / --target, guarded by the fleet-wide
delete budget and protection; a saved plan covers one provider."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from reconciler.cli.main import main

REPO = Path(__file__).resolve().parent.parent
GATEWAY = "akana_app[Payments Gateway]"
REPORTS = "akana_app[Payments Reports]"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "RECONCILER_CONFIG"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "schema", tmp_path / "schema")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def applied(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")
    assert code == 0, err


def test_the_demo_fleet_plans_applies_and_converges_across_providers(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "plan", "manifests", "--sandbox", "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert set(plan["endpoints"]) == {"miniappcenter", "akana"}
    providers = {c["provider"] for c in plan["changes"]}
    assert providers == {"miniappcenter", "akana"}
    assert {c["address"] for c in plan["changes"] if c["provider"] == "akana"} == {
        GATEWAY, REPORTS, f"{GATEWAY}.version[2.0]"
    }
    applied(capsys)
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--detailed-exitcode")
    assert code == 0 and "No changes" in out
    code, out, _ = run(capsys, "state", "list", "--sandbox")
    assert GATEWAY in out and "com.genexus.verdant.coffeemuffins" in out


def test_a_mixed_plan_is_shown_side_by_side(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--no-color")
    assert code == 0
    assert "# miniapp[com.genexus.verdant.coffeemuffins]" in out and f"# {GATEWAY}" in out
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--format", "markdown")
    assert code == 0
    assert "### Plan" in out and "Endpoint (akana)" in out and "Endpoint (miniappcenter)" in out


def test_a_saved_plan_covers_one_provider(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "manifests", "--sandbox", "--out", "all.json")
    assert code == 64 and "--provider NAME" in err and not (fleet / "all.json").exists()
    code, _, err = run(
        capsys, "plan", "manifests", "--sandbox", "--provider", "akana", "--out", "akana.json"
    )
    assert code == 0, err
    saved = json.loads((fleet / "akana.json").read_text())
    assert list(saved["endpoints"]) == ["akana"]
    code, out, err = run(capsys, "apply", "--plan", "akana.json", "--sandbox", "--auto-approve")
    assert code == 0, err
    assert "3 applied" in out
    # Only the mini apps are left to do; a second apply of the same saved plan is stale.
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--format", "json")
    assert {c["provider"] for c in json.loads(out)["changes"]} == {"miniappcenter"}
    code, _, err = run(capsys, "apply", "--plan", "akana.json", "--sandbox", "--auto-approve")
    assert code == 1 and "stale" in err


def test_an_unknown_provider_is_a_usage_error(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "plan", "manifests", "--sandbox", "--provider", "kong")
    assert code == 64 and "miniappcenter" in err and "akana" in err


def test_select_and_target_narrow_every_provider(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "plan", "manifests", "--sandbox", "--select", "team=payments", "--format", "json"
    )
    assert code == 0, err
    roots = {c["address"].split("].")[0].rstrip("]") + "]" for c in json.loads(out)["changes"]}
    assert {GATEWAY, REPORTS} <= roots  # the payments team's apps of both providers...
    assert "miniapp[com.genexus.verdant.coffeemuffins]" not in roots  # ...and not the cafe's
    code, out, _ = run(
        capsys, "plan", "manifests", "--sandbox", "--target", "Payments Reports", "--format", "json"
    )
    assert {c["address"] for c in json.loads(out)["changes"]} == {REPORTS}
    code, _, err = run(capsys, "plan", "manifests", "--sandbox", "--target", "nope")
    assert code == 1 and "nope" in err  # never a green "No changes"


def test_the_delete_budget_and_protection_span_providers(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(capsys)
    (fleet / "manifests" / "akana" / "payments.yaml").unlink()
    (fleet / "manifests" / "cafe" / "bakeries.yaml").unlink()
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--prune", "--format", "json")
    plan = json.loads(out)
    # The Akana gateway is protected: refusing its delete is an error naming it.
    assert code == 1 and any(GATEWAY in e for e in plan["errors"]), plan["errors"]
    code, out, _ = run(
        capsys, "plan", "manifests", "--sandbox", "--prune", "--max-deletes", "1",
        "--format", "json",
    )  # fmt: skip
    plan = json.loads(out)
    deletes = sum(1 for c in plan["changes"] if c["action"] == "delete")
    assert deletes >= 2 and {c["provider"] for c in plan["changes"]} == {"miniappcenter", "akana"}
    assert any(f"deletes {deletes} object(s), more than --max-deletes 1" in e
               for e in plan["errors"])  # fmt: skip
    # Without --prune nothing recorded is deleted; the akana apps are named in a warning.
    code, out, _ = run(capsys, "plan", "manifests", "--sandbox", "--format", "json")
    plan = json.loads(out)
    assert not [c for c in plan["changes"] if c["action"] == "delete"]
    assert any("Payments Reports" in w for w in plan["warnings"])


def test_drift_names_an_akana_app_changed_outside(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(capsys)
    code, _, err = run(capsys, "drift", "manifests", "--sandbox")
    assert code == 0, err
    with sqlite3.connect(fleet / ".reconciler" / "akana-sandbox.db") as db:
        db.execute("UPDATE apps SET summary = 'edited by hand' WHERE name = 'Payments Reports'")
    code, out, _ = run(capsys, "drift", "manifests", "--sandbox", "--format", "json")
    report = json.loads(out)
    assert code == 2
    assert [item["address"] for item in report["items"]] == [REPORTS]
    # the text report heads each app with its own root address, and counts apps, not
    # "mini apps": the demo fleet has 5 mini apps and 2 Akana apps
    code, out, _ = run(capsys, "drift", "manifests", "--sandbox", "--no-color")
    assert code == 2
    assert f"# {REPORTS}" in out.splitlines() and "# miniapp[Payments Reports]" not in out
    assert "Drift: 1 difference(s) in 1 of 7 app(s): 1 changed outside," in out


def test_import_an_akana_app_by_name(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied(capsys)
    code, _, err = run(capsys, "state", "rm", REPORTS, "--sandbox")
    assert code == 0 and "Forgot" in err
    code, out, _ = run(capsys, "state", "list", "--sandbox")
    assert REPORTS not in out
    code, _, err = run(
        capsys, "import", "--provider", "akana", "Payments Reports", "--out", "imported",
        "--sandbox",
    )  # fmt: skip
    assert code == 0, err
    text = (fleet / "imported" / "Payments-Reports.yaml").read_text()
    assert "apiVersion: akana/v1" in text and "Payments Reports" in text
    code, out, _ = run(capsys, "state", "list", "--sandbox")
    assert REPORTS in out
    code, _, err = run(
        capsys, "import", "--provider", "akana", "Payments Reports", "--out", "again",
        "--sandbox",
    )  # fmt: skip
    assert code == 1 and "already managed" in err and not (fleet / "again").exists()


def test_validate_counts_every_provider(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "manifests")
    assert code == 0 and "5 mini apps, 2 Akana apps" in out
    code, out, _ = run(capsys, "validate", "manifests", "--format", "json")
    assert json.loads(out)["by_provider"] == {"miniappcenter": 5, "akana": 2}


def test_an_akana_only_repository_needs_no_mini_app_center(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "plan", "manifests/akana")
    assert code == 1
    assert "no akana endpoint is configured" in err and "MAC_BASE_URL" not in err
    code, _, err = run(capsys, "plan", "manifests/akana", "--sandbox")
    assert code == 0, err
    assert "Endpoint (akana)" in err and "embedded sandbox (in-process" not in err


def test_rest_objects_through_the_cli(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "catalogue")
    code, out, err = run(capsys, "plan", "catalogue", "--sandbox", "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert list(plan["endpoints"]) == ["rest"] and plan["summary"]["create"] >= 1
    code, _, err = run(capsys, "apply", "catalogue", "--sandbox", "--auto-approve")
    assert code == 0, err
    code, out, _ = run(capsys, "plan", "catalogue", "--sandbox", "--detailed-exitcode")
    assert code == 0 and "No changes" in out
    code, _, _ = run(capsys, "drift", "catalogue", "--sandbox")
    assert code == 0


def test_a_provider_recorded_but_not_configured_is_named_not_checked(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.cli.common import StderrReporter
    from reconciler.errors import ConfigError
    from reconciler.state import FileStateStore, ProviderState, State
    from reconciler.workflows.desired import load_desired
    from reconciler.workflows.fleet import FleetOptions, open_fleet

    store = FileStateStore(fleet / "state.json")
    record = {"id": "a1", "protect": False, "labels": {}, "fields": {}, "versions": {}}
    store.save(State(providers={"akana": ProviderState(resources={"akana_app": {"X": record}})}))
    monkeypatch.setenv("MAC_BASE_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("MAC_API_TOKEN", "t" * 20)
    desired = load_desired([fleet / "manifests" / "cafe"], [], [])
    options = FleetOptions(False, None, None, None, False, None, 4, 100, ())
    opened = open_fleet(desired, store, options, StderrReporter())
    assert opened.others == [] and opened.mac is not None
    assert opened.notices == [
        "the state records akana resources that were not checked: no akana endpoint is"
        " configured in this run"
    ]
    with pytest.raises(ConfigError, match="--prune may delete"):
        open_fleet(desired, store, FleetOptions(False, None, None, None, True, None, 4, 100, ()),
                   StderrReporter())


def test_a_proxy_variable_is_said_not_silently_ignored(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.workflows.fleet import proxy_variable

    assert proxy_variable({"HTTPS_PROXY": "", "http_proxy": "http://p:3128"}) == "http_proxy"
    assert proxy_variable({}) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("MAC_BASE_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("MAC_API_TOKEN", "t" * 20)
    code, _, err = run(capsys, "plan", "manifests/cafe")
    assert code == 1  # nothing listens there; the warning came first
    assert "HTTPS_PROXY is set, but the miniappcenter clients do not use proxies" in err
    assert "proxy.internal" not in err  # the value (it may carry credentials) is not shown
    # REST objects only: their client honours the variable, so nothing is said.
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "catalogue")
    shutil.copy(REPO / "examples" / "rest" / "reconciler.yaml", fleet / "reconciler.yaml")
    monkeypatch.setenv("TENANT_BASE_URL", "http://127.0.0.1:9")
    for name in ("TENANT_USERNAME", "TENANT_PASSWORD", "TENANT_API_KEY"):
        monkeypatch.setenv(name, "x" * 12)
    code, _, err = run(capsys, "plan", "catalogue")
    assert code == 1 and "Endpoint (rest)" in err
    assert "proxies" not in err


def test_rest_objects_import_and_markdown_through_the_cli(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "catalogue")
    code, out, _ = run(capsys, "plan", "catalogue", "--sandbox", "--format", "markdown")
    assert code == 0 and "### Plan" in out and "Mini App Center" not in out
    assert "rest_object[shop:/api/products/:HAM-01]" in out
    assert run(capsys, "apply", "catalogue", "--sandbox", "--auto-approve")[0] == 0
    address = "rest_object[shop:/api/products/:HAM-01]"
    code, _, err = run(capsys, "state", "rm", address, "--sandbox")
    assert code == 0 and "Forgot" in err
    code, _, err = run(
        capsys, "import", "--provider", "rest", "shop:/api/products/:sku=HAM-01",
        "--out", "imported", "--sandbox",
    )  # fmt: skip
    assert code == 0, err
    (written,) = (fleet / "imported").iterdir()
    assert "kind: RestObject" in written.read_text() and "HAM-01" in written.read_text()
    code, out, _ = run(capsys, "state", "list", "--sandbox")
    assert address in out
    code, _, err = run(capsys, "import", "--provider", "kong", "x", "--sandbox")
    assert code == 64 and "rest" in err
