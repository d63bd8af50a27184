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
from tests.fixtures_akana import EMAIL, PASSWORD, RunningAkana
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER, RunningTenant

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


@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_a_selection_outside_the_chosen_provider_is_an_error(
    fleet: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """--provider akana with a selector or target that only mini apps match (declared, or
    recorded in the state after an apply) checks nothing: exit 1, never "No changes"."""
    applied(capsys)
    extra = ["--auto-approve"] if command == "apply" else []
    for narrowing in (
        ["--select", "team=cafe"],
        ["--target", "com.genexus.verdant.coffeemuffins"],
    ):
        code, out, err = run(
            capsys, command, "manifests", "--sandbox", "--provider", "akana", *narrowing, *extra
        )
        assert code == 1, (narrowing, out, err)
        assert narrowing[1] in err and "No changes" not in out and "In sync" not in out


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
    assert opened.names == ["miniappcenter"] and opened.binding is not None
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


def test_a_saved_rest_plan_cannot_point_an_update_at_another_object(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A saved plan is data: an update whose target id was edited to another recorded
    object's id is refused before anything is written (the other object is left alone)."""
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "catalogue")
    assert run(capsys, "apply", "catalogue", "--sandbox", "--auto-approve")[0] == 0
    products = fleet / "catalogue" / "products.yaml"
    products.write_text(products.read_text().replace("price: 12.5", "price: 13.5"))
    code, _, err = run(
        capsys, "plan", "catalogue", "--sandbox", "--provider", "rest", "--out", "plan.json"
    )
    assert code == 0, err
    state = json.loads((fleet / ".reconciler" / "sandbox-state.json").read_text())
    records = state["providers"]["rest"]["resources"]["rest_object"]
    other = records["shop:/api/products/:RAKE-02"]["id"]
    plan = json.loads((fleet / "plan.json").read_text())
    (change,) = plan["changes"]
    assert change["app_id"] == "shop:/api/products/:HAM-01" and change["target_id"] != other
    change["target_id"] = other
    (fleet / "plan.json").write_text(json.dumps(plan))
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1, out + err
    assert "target" in err and "Apply complete" not in out
    code, out, _ = run(capsys, "plan", "catalogue", "--sandbox", "--format", "json")
    changed = {c["app_id"] for c in json.loads(out)["changes"]}
    assert changed == {"shop:/api/products/:HAM-01"}  # RAKE-02 was not written


def test_a_saved_rest_delete_of_an_unrecorded_object_is_confirmed_by_its_key(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ensure: absent` of an object the state does not record: the state cannot vouch for
    the saved plan's target id, so apply reads the object first; an id edited to another
    object's fails that change (exit 1: nothing applied) and the other object survives; the
    genuine one deletes."""
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "catalogue")
    assert run(capsys, "apply", "catalogue", "--sandbox", "--auto-approve")[0] == 0
    rake = "shop:/api/products/:RAKE-02"
    assert run(capsys, "state", "rm", f"rest_object[{rake}]", "--sandbox")[0] == 0
    products = fleet / "catalogue" / "products.yaml"
    text = products.read_text().replace("    sku: RAKE-02\n", "    sku: RAKE-02\n", 1)
    products.write_text(text.replace("  body:\n    sku: RAKE-02", "  ensure: absent\n  body:\n"
                                     "    sku: RAKE-02", 1))  # fmt: skip
    code, _, err = run(
        capsys, "plan", "catalogue", "--sandbox", "--provider", "rest", "--out", "plan.json"
    )
    assert code == 0, err
    plan = json.loads((fleet / "plan.json").read_text())
    (change,) = plan["changes"]
    assert change["app_id"] == rake and change["action"] == "delete"
    state = json.loads((fleet / ".reconciler" / "sandbox-state.json").read_text())
    hammer = state["providers"]["rest"]["resources"]["rest_object"]["shop:/api/products/:HAM-01"]
    tampered = json.loads(json.dumps(plan))
    tampered["changes"][0]["target_id"] = hammer["id"]
    (fleet / "tampered.json").write_text(json.dumps(tampered))
    code, out, err = run(capsys, "apply", "--plan", "tampered.json", "--sandbox", "--auto-approve")
    assert code == 1 and "target id is not this one" in out + err, out + err
    code, out, _ = run(capsys, "plan", "catalogue", "--sandbox", "--format", "json")
    changes = json.loads(out)["changes"]
    assert [(c["app_id"], c["action"]) for c in changes] == [(rake, "delete")]  # HAM-01 lives
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0, out + err
    code, out, _ = run(capsys, "plan", "catalogue", "--sandbox", "--detailed-exitcode")
    assert code == 0, out


@pytest.mark.parametrize("variable", ["T_PASSWORD", "T_KEY"])
def test_a_rest_credential_written_into_a_manifest_is_refused_before_anything_is_printed(
    fleet: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tenant: RunningTenant,
    variable: str,
) -> None:
    """The project file names the variables holding an endpoint's password and Api-Key: a
    manifest whose body holds one of their values (``${T_PASSWORD}``) would print it in the
    plan (a PR comment) and send it to the server. It is refused, file:line, exit 1."""
    env = {"T_USER": TENANT_USER, "T_PASSWORD": TENANT_PASSWORD, "T_KEY": TENANT_KEY}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (fleet / "reconciler.yaml").write_text(
        "endpoints:\n  shop:\n"
        f"    base_url: {tenant.base_url}\n"
        "    auth: {type: jwt, token_path: /api/token/, refresh_path: /api/token/refresh/,"
        " username_env: T_USER, password_env: T_PASSWORD}\n"
        "    api_key: {header: Api-Key, env: T_KEY}\n"
    )
    (fleet / "leak").mkdir()
    (fleet / "leak" / "leak.yaml").write_text(
        "apiVersion: rest/v1\nkind: RestObject\nspec:\n  endpoint: shop\n"
        "  path: /api/suppliers/\n  key: code\n  body:\n    code: LEAK\n"
        f"    name: ${{{variable}}}\n"
    )
    for command in (["plan", "leak"], ["plan", "leak", "--format", "json"], ["drift", "leak"],
                    ["apply", "leak", "--auto-approve"]):  # fmt: skip
        code, out, err = run(capsys, *command)
        assert code == 1, (command, out, err)
        assert env[variable] not in out + err
        assert "leak.yaml:9" in out + err and variable in out + err
    with tenant.http(headers={"Api-Key": TENANT_KEY}) as http:
        token = tenant.tokens()["access"]
        answer = http.get("/api/suppliers/", headers={"Authorization": f"Bearer {token}"})
    assert "LEAK" not in answer.text  # nothing was sent


def test_state_commands_echo_a_hostile_address_bounded_and_escaped(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(capsys)
    for command in ("rm", "show"):
        for address in ("akana_app[" + "x" * 5000 + "]", "akana_app[\x1b[2Jx]"):
            code, out, err = run(capsys, "state", command, address, "--sandbox")
            assert code == 1 and "is not in the state" in err
            assert len(out + err) < 600 and "\x1b" not in out + err


@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_a_provider_the_paths_do_not_declare_is_an_error_not_green(
    fleet: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`--provider akana` on paths holding only mini apps checks no manifest: exit 1 naming
    the provider, never "No changes" / "In sync (0 checked)" (and never a prune of every
    recorded Akana app, as for an empty checkout)."""
    applied(capsys)
    extra = ["--auto-approve", "--prune"] if command == "apply" else []
    code, out, err = run(
        capsys, command, "manifests/cafe", "--sandbox", "--provider", "akana", *extra
    )
    assert code == 1, (out, err)
    assert "akana" in err and "No changes" not in out and "In sync" not in out
    code, out, _ = run(capsys, "state", "list", "--sandbox")
    assert GATEWAY in out and REPORTS in out


def test_a_saved_rest_plan_with_a_reference_applies_in_order(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "examples" / "rest" / "manifests", fleet / "catalogue")
    code, out, err = run(
        capsys, "plan", "catalogue", "--sandbox", "--provider", "rest", "--out", "plan.json"
    )
    assert code == 0, err
    saved = json.loads((fleet / "plan.json").read_text())
    [hammer] = [c for c in saved["changes"] if c["address"].endswith(":HAM-01]")]
    assert hammer["after"]["supplier"] == "(known after apply)"
    assert hammer["depends_on"] == ["rest_object[shop:/api/suppliers/:ACME]"]
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0, out + err
    state = json.loads((fleet / ".reconciler" / "sandbox-state.json").read_text())
    records = state["providers"]["rest"]["resources"]["rest_object"]
    acme = records["shop:/api/suppliers/:ACME"]["id"]
    assert records["shop:/api/products/:HAM-01"]["fields"]["supplier"] == acme
    code, out, _ = run(capsys, "plan", "catalogue", "--sandbox", "--detailed-exitcode")
    assert code == 0 and "No changes" in out


def test_an_apply_logs_in_to_akana_once_for_its_plan_and_its_writes(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    akana: RunningAkana,
) -> None:
    monkeypatch.setenv("AKANA_BASE_URL", akana.base_url)
    monkeypatch.setenv("AKANA_EMAIL", EMAIL)
    monkeypatch.setenv("AKANA_PASSWORD", PASSWORD)
    code, out, err = run(capsys, "apply", "manifests/akana", "--auto-approve")
    assert code == 0, err
    assert (akana.store.count("login"), akana.store.count("logout")) == (1, 1)
    assert PASSWORD not in out + err
    code, out, err = run(capsys, "apply", "manifests/akana", "--auto-approve")  # no change
    assert code == 0, err
    assert (akana.store.count("login"), akana.store.count("logout")) == (2, 2)


def test_an_apply_logs_in_to_a_rest_endpoint_once_for_its_plan_and_its_writes(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tenant: RunningTenant,
) -> None:
    for name, value in {"T_USER": TENANT_USER, "T_PASSWORD": TENANT_PASSWORD,
                        "T_KEY": TENANT_KEY}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    (fleet / "reconciler.yaml").write_text(
        "endpoints:\n  shop:\n"
        f"    base_url: {tenant.base_url}\n"
        "    auth: {type: jwt, token_path: /api/token/, refresh_path: /api/token/refresh/,"
        " username_env: T_USER, password_env: T_PASSWORD}\n"
        "    api_key: {header: Api-Key, env: T_KEY}\n"
    )
    (fleet / "shop").mkdir()
    (fleet / "shop" / "supplier.yaml").write_text(
        "apiVersion: rest/v1\nkind: RestObject\nspec:\n  endpoint: shop\n"
        "  path: /api/suppliers/\n  key: code\n  body:\n    code: ONCE\n    name: Once Ltd\n"
    )
    code, out, err = run(capsys, "apply", "shop", "--auto-approve")
    assert code == 0, err
    assert tenant.api.logins == 1  # the plan's token pair served the writes too
    assert TENANT_PASSWORD not in out + err
