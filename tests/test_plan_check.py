"""Saved plans are data, never code (issue 11 §1): `apply --plan` refuses a tampered plan
whole, naming the first bad change, exit 1, before any request. Real saved plans come from
`reconciler plan --out` against the embedded sandbox; every request the sandbox receives is
logged, so "nothing written" is measured, not assumed."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.cli.main import main
from reconciler.state import mac_records
from tests.test_cli_pipeline import APP_YAML, write_app, write_other

APP = "com.genexus.verdant.coffeemuffins"
OTHER = "com.genexus.verdant.other"

Plan = dict[str, Any]


@pytest.fixture
def requests_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every request the embedded sandbox receives, as (method, path)."""
    log: list[tuple[str, str]] = []
    original = httpx.ASGITransport.handle_async_request

    async def logged(self: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
        log.append((request.method, request.url.path))
        return await original(self, request)

    monkeypatch.setattr(httpx.ASGITransport, "handle_async_request", logged)
    return log


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "manifests").mkdir()
    write_app(tmp_path, "Coffee")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def saved_plan(capsys: pytest.CaptureFixture[str], name: str = "plan.json") -> Plan:
    assert run(capsys, "plan", "manifests", "--sandbox", "--out", name)[0] == 0
    data: Plan = json.loads(Path(name).read_text())
    return data


def writes(log: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [entry for entry in log if entry[0] != "GET"]


def index_of(plan: Plan, predicate: Callable[[dict[str, Any]], bool]) -> int:
    return next(i for i, c in enumerate(plan["changes"]) if predicate(c))


def status_index(plan: Plan) -> int:
    return index_of(plan, lambda c: c["kind"] == "status")


def resummarize(plan: Plan) -> None:
    counts = {"create": 0, "update": 0, "delete": 0}
    for change in plan["changes"]:
        counts[change["action"]] += 1
    plan["summary"] = counts


# --- the hand-made cases ------------------------------------------------------------------


def rename_step_to_delete_location(plan: Plan) -> int:
    i = status_index(plan)
    plan["changes"][i]["step"] = "delete_location"
    return i


def rename_step_consistently(plan: Plan) -> int:
    """Step, key and address all say delete_location: still not an operation."""
    i = status_index(plan)
    change = plan["changes"][i]
    change["step"] = change["key"] = "delete_location"
    change["address"] = change["address"].replace("send_to_review", "delete_location")
    return i


def skip_review_steps(plan: Plan) -> int:
    i = status_index(plan)
    change = plan["changes"][i]
    change["step"] = change["key"] = "ready"
    change["address"] = change["address"].replace("send_to_review", "ready")
    change["after"] = {"status": "ready"}
    return i


def status_after_lies(plan: Plan) -> int:
    i = status_index(plan)
    plan["changes"][i]["after"] = {"status": "ready"}
    return i


def append_app_delete(plan: Plan) -> int:
    plan["changes"].append({
        "address": f"miniapp[{APP}]", "provider": "miniappcenter", "kind": "miniapp",
        "action": "delete",
        "app_id": APP, "before": None, "after": None,
    })
    resummarize(plan)
    return len(plan["changes"]) - 1


def append_delete_of_an_app_outside_the_plan(plan: Plan) -> int:
    plan["changes"].append({
        "address": f"miniapp[{OTHER}]", "provider": "miniappcenter", "kind": "miniapp",
        "action": "delete",
        "app_id": OTHER, "before": None, "after": None,
    })
    resummarize(plan)
    return len(plan["changes"]) - 1


def append_delete_without_resummarizing(plan: Plan) -> int | None:
    plan["changes"].append({
        "address": f"miniapp[{APP}].attribute[COUNTRY]", "provider": "miniappcenter",
        "kind": "attribute",
        "action": "delete", "app_id": APP, "key": "COUNTRY", "before": {"value": "Uruguay"},
        "after": None,
    })
    return None  # the summary is checked first: a plan-level error


def duplicate_a_change(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location")
    plan["changes"].insert(i + 1, copy.deepcopy(plan["changes"][i]))
    resummarize(plan)
    return i + 1


def key_without_address(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "attribute")
    plan["changes"][i]["key"] = "CITY"
    return i


def address_of_another_app(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location")
    plan["changes"][i]["address"] = plan["changes"][i]["address"].replace(APP, OTHER)
    return i


def location_payload_renamed(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location")
    plan["changes"][i]["payload"]["name"] = "Elsewhere"
    return i


def compatibility_payload_differs(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "compatibility")
    plan["changes"][i]["payload"] = {"superapp_version": 99}
    return i


def app_id_traversal(plan: Plan) -> int:
    plan["changes"][0]["app_id"] = "../../admin"
    return 0


def version_code_traversal(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "version")
    change = plan["changes"][i]
    change["key"] = change["version_code"] = change["payload"]["code"] = "../1.0.0"
    change["after"]["code"] = "../1.0.0"
    change["address"] = f"miniapp[{APP}].version[../1.0.0]"
    return i


def attribute_key_traversal(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "attribute")
    change = plan["changes"][i]
    change["key"] = change["payload"]["field"] = "../x"
    change["address"] = f"miniapp[{APP}].attribute[../x]"
    return i


def file_path_absolute(plan: Plan) -> int:
    change = plan["changes"][0]
    change["payload"]["icon"] = "file:/etc/passwd#sha256=" + "0" * 64
    change["after"]["icon"] = change["payload"]["icon"]
    return 0


def target_id_is_text(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location")
    plan["changes"][i]["target_id"] = "7"
    return i


def key_is_a_number(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "attribute")
    plan["changes"][i]["key"] = 5
    return i


def depends_on_is_text(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "version")
    plan["changes"][i]["depends_on"] = f"miniapp[{APP}]"
    return i


def depends_on_unknown(plan: Plan) -> int:
    i = status_index(plan)
    plan["changes"][i]["depends_on"] = ["miniapp[com.x.y]"]
    return i


def before_is_text(plan: Plan) -> int:
    i = status_index(plan)
    plan["changes"][i]["before"] = "pending"
    return i


def unknown_field_in_a_change(plan: Plan) -> int:
    plan["changes"][1]["exec"] = "rm -rf /"
    return 1


def unknown_top_level_field(plan: Plan) -> None:
    plan["hooks"] = ["curl evil"]


def huge_target_id(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location")
    plan["changes"][i]["target_id"] = 10**30
    return i


def huge_string(plan: Plan) -> int:
    change = plan["changes"][0]
    change["payload"]["name"] = change["after"]["name"] = "x" * 5_000_000
    return 0


def deep_nesting(plan: Plan) -> int:
    value: Any = "x"
    for _ in range(50):
        value = [value]
    plan["changes"][0]["after"]["name"] = value
    return 0


def summary_lies(plan: Plan) -> None:
    plan["summary"]["delete"] = 0
    plan["summary"]["create"] += 1


def future_format(plan: Plan) -> None:
    plan["format_version"] = 3


def boolean_as_id(plan: Plan) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location")
    plan["changes"][i]["target_id"] = True
    return i


CASES: dict[str, Callable[[Plan], int | None]] = {
    f.__name__: f
    for f in (
        rename_step_to_delete_location, rename_step_consistently, skip_review_steps,
        status_after_lies, append_app_delete, append_delete_of_an_app_outside_the_plan,
        append_delete_without_resummarizing, duplicate_a_change, key_without_address,
        address_of_another_app, location_payload_renamed, compatibility_payload_differs,
        app_id_traversal, version_code_traversal, attribute_key_traversal, file_path_absolute,
        target_id_is_text, key_is_a_number, depends_on_is_text, depends_on_unknown,
        before_is_text, unknown_field_in_a_change, unknown_top_level_field, huge_target_id,
        huge_string, deep_nesting, summary_lies, future_format, boolean_as_id,
    )
}


def assert_refused(
    capsys: pytest.CaptureFixture[str], log: list[tuple[str, str]], workdir: Path,
    expected_change: int | None, plan: Plan,
) -> str:
    Path("plan.json").write_text(json.dumps(plan))
    log.clear()
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1, err
    assert writes(log) == [] and log == []  # refused before any request at all
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "plan file plan.json" in errors[0], err
    assert "Traceback" not in err and "Internal error" not in err
    assert len(err) < 2_000 and out == ""
    if expected_change is not None:
        address = plan["changes"][expected_change]["address"]
        shown = address if isinstance(address, str) and len(address) < 1000 else ""
        assert f"change {expected_change} ({shown}" in errors[0], errors[0]
    assert not (workdir / ".reconciler" / "sandbox-state.json").exists()
    return errors[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tampered_saved_plan_is_refused_whole(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
    case: str,
) -> None:
    plan = saved_plan(capsys)
    expected = CASES[case](plan)
    message = assert_refused(capsys, requests_log, workdir, expected, plan)
    assert "xxxxxxxxxx" not in message and "rm -rf" not in message  # values never echoed
    # the untouched plan still applies: the refusal was the tampering, not the plan
    log_before = len(requests_log)
    saved_plan(capsys)
    code, out, _ = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0 and "6 applied" in out
    assert writes(requests_log[log_before:])


def test_a_delete_of_an_app_protected_in_the_state_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    """The plan's own meta says nothing; the state remembers `protect: true`."""
    write_other(workdir, protect="true")
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    plan = saved_plan(capsys)
    assert plan["changes"] == []
    plan["app_meta"].pop(OTHER)
    plan["changes"].append({
        "address": f"miniapp[{OTHER}]", "provider": "miniappcenter", "kind": "miniapp",
        "action": "delete",
        "app_id": OTHER, "before": None, "after": None,
    })
    resummarize(plan)
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and f"change 0 (miniapp[{OTHER}])" in err and "protected" in err, err
    assert requests_log == []
    assert run(capsys, "state", "show", OTHER, "--sandbox")[0] == 0


def test_a_status_step_that_does_not_start_where_the_state_says_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    (workdir / "manifests" / "app.yaml").write_text(
        APP_YAML.replace("{name}", "Coffee").replace("waiting_for_review", "ready")
    )
    plan = saved_plan(capsys)
    steps = [c for c in plan["changes"] if c["kind"] == "status"]
    assert [c["step"] for c in steps] == ["in_review", "ready"]
    # forge a chain that starts from in_review (skipping the in_review step)
    plan["changes"] = [c for c in plan["changes"] if c.get("step") != "in_review"]
    ready = next(c for c in plan["changes"] if c.get("step") == "ready")
    ready.pop("depends_on", None)
    resummarize(plan)
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "status the state records" in err, err
    assert writes(requests_log) == []


def test_a_payload_field_the_plan_does_not_show_is_refused_at_apply(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    """An update PUTs every managed field; one the plan does not show changing must be what
    the server already has (checked against the re-read live app, before its first write)."""
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    write_app(workdir, "Coffee 2")
    plan = saved_plan(capsys)
    i = index_of(plan, lambda c: c["kind"] == "miniapp")
    assert plan["changes"][i]["after"] == {"name": "Coffee 2"}
    plan["changes"][i]["payload"]["type"] = "Web"  # not shown in the plan
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, out, _ = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1, out
    assert "payload changes type, which the plan does not show changing" in out
    assert writes(requests_log) == []


def test_max_deletes_is_rechecked_before_any_request(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    (workdir / "manifests" / "app.yaml").write_text(
        APP_YAML.replace("{name}", "Coffee").replace("    COUNTRY: Uruguay\n", "    {}\n")
        .replace("  attributes:\n    {}\n", "  attributes: {}\n")
    )
    plan = saved_plan(capsys)
    assert plan["summary"]["delete"] == 1
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve",
                       "--max-deletes", "0")
    assert code == 1 and "more than --max-deletes 0" in err
    assert requests_log == []


def test_a_plan_file_too_large_is_refused_without_parsing(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import reconciler.engine.plan_file as plan_file

    monkeypatch.setattr(plan_file, "MAX_PLAN_BYTES", 1000)
    saved_plan(capsys)
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "larger than 1000 bytes" in err


def test_a_huge_integer_literal_is_a_clear_error(
    workdir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    text = json.dumps(saved_plan(capsys)).replace('"format_version": 2', '"format_version": '
                                                  + "9" * 5000, 1)
    Path("plan.json").write_text(text)
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "plan file plan.json" in err and "Internal error" not in err


def test_a_key_given_twice_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    """`{"step": "send_to_review", "step": "delete_location"}`: a viewer may show either."""
    text = json.dumps(saved_plan(capsys))
    text = text.replace('"step": "send_to_review"',
                        '"step": "send_to_review", "step": "send_to_review"', 1)
    Path("plan.json").write_text(text)
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "same key twice" in err and requests_log == []


def test_an_address_with_terminal_escapes_is_never_printed(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    plan = saved_plan(capsys)
    plan["changes"][1]["address"] = "\x1b[2J\x1b]0;pwned\x07" + plan["changes"][1]["address"]
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "change 1 (address not printable)" in err, err
    assert "\x1b" not in err and "pwned" not in err and requests_log == []


# --- generated tampering ------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside the plan (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


REPLACEMENTS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from([
        "delete_location", "delete_miniapp", "ready", "in_review", "rejected", "send_to_review",
        "../..", "com.genexus.verdant.other", "miniapp[com.genexus.verdant.other]", "delete",
        "create", "update", "miniapp", "location", "status", "version", "compatibility",
        "attribute", "COUNTRY", "Central", "1.0.0", "2", "pending", "waiting_for_review",
        "__class__", "file:/etc/passwd#sha256=" + "0" * 64,
    ]),
    st.lists(st.integers(0, 5), max_size=3), st.dictionaries(st.text(max_size=5),
                                                             st.integers(), max_size=2),
)


def _mutate(plan: Plan, path: tuple[Any, ...], how: str, value: Any) -> Plan:
    mutated = copy.deepcopy(plan)
    if not path:
        return mutated
    parent: Any = mutated
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last]["injected"] = value
    else:
        parent[last] = value
    return mutated


def _dump(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


EDITED_YAML = (
    APP_YAML.replace("{name}", "Coffee 2")
    .replace("COUNTRY: Uruguay", "CITY: Montevideo")
    .replace("POINT(-56.16 -34.92)", "POINT(-56 -34)")
    .replace("compatibility: [1]", "compatibility: [2]")
    .replace("main_name: start", "main_name: begin")
    .replace("waiting_for_review", "ready")
)


@dataclass
class Pristine:
    plan: Plan
    files: dict[str, bytes]  # .reconciler/* as the plan was made against them
    applied: list[str]  # the sandbox after applying the untouched plan
    applied_state: str


@pytest.fixture(params=["fresh", "edited"])
def pristine(
    request: pytest.FixtureRequest, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> Pristine:
    """A real saved plan (creates only; or updates, deletes and two review steps against an
    applied app), the sandbox and state it was made against, and what applying the untouched
    plan makes of them."""
    if request.param == "edited":
        assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
        (workdir / "manifests" / "app.yaml").write_text(EDITED_YAML)
    plan = saved_plan(capsys)
    if request.param == "edited":
        assert {c["action"] for c in plan["changes"]} == {"create", "update", "delete"}
    folder = workdir / ".reconciler"
    # `plan` writes nothing: before a first apply there is no sandbox file and no state yet
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if (
        folder.is_dir()) else {}  # fmt: skip
    code, _, _ = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0
    state = (folder / "sandbox-state.json").read_text()
    return Pristine(plan, files, _dump(folder / "sandbox.db"),
                    json.dumps(mac_records(json.loads(state)), sort_keys=True))


@settings(max_examples=int(os.environ.get("PLAN_FUZZ_EXAMPLES", "120")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_saved_plan_is_refused_or_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
    pristine: Pristine, data: st.DataObject,
) -> None:
    plan = pristine.plan
    # app_meta's values (labels, protect) are the manifests' word with nothing in the plan
    # or the state to check them against (a lifted protection looks exactly like this):
    # see docs/decisions.md. Removing an app's entry is checked.
    paths = [p for p in _paths(plan) if p and not (p[0] == "app_meta" and len(p) > 2)]
    path = data.draw(st.sampled_from(paths), label="path")
    how = data.draw(st.sampled_from(["replace", "delete", "add"]), label="how")
    value = data.draw(REPLACEMENTS, label="value")
    mutated = _mutate(plan, path, how, value)
    # reset the sandbox and the state to what the plan was made against
    folder = workdir / ".reconciler"
    for leftover in folder.iterdir():
        leftover.unlink(missing_ok=True)  # a -shm file goes when its last connection closes
    for name, content in pristine.files.items():
        (folder / name).write_bytes(content)
    db = folder / "sandbox.db"
    before = _dump(db)
    Path("plan.json").write_text(json.dumps(mutated))
    requests_log.clear()
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert "Traceback" not in err and "Internal error" not in err + out
    event(f"exit {code}")
    if code == 1:
        assert writes(requests_log) == [], (path, how, err)
        assert _dump(db) == before
        # one line, or (refused at apply, per app) one line per change
        assert len(err) < 2_000 + 400 * len(plan["changes"])
        return
    # accepted: it must mean exactly what the original meant
    assert code == 0, (path, how, value, out, err)
    assert _dump(db) == pristine.applied, (path, how, value)
    state = (folder / "sandbox-state.json").read_text()
    assert json.dumps(mac_records(json.loads(state)), sort_keys=True) == pristine.applied_state, (
        path, how, value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('code: "1.0.0"', 'code: "../1.0.0"', "spec.versions[0].code: must not contain '/'"),
        ("name: Central", 'name: "Cen\\ttral"', "spec.locations[0].name: must not contain"),
    ],
)
def test_manifests_follow_the_rules_saved_plans_are_checked_with(
    workdir: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str,
) -> None:
    """`plan --out` never writes a plan that `apply --plan` would refuse: the manifest is
    refused first, at its line."""
    manifest = workdir / "manifests" / "app.yaml"
    manifest.write_text(manifest.read_text().replace(old, new))
    code, out, _ = run(capsys, "validate", "manifests")
    assert code == 1 and "app.yaml:" in out and message in out, out


def test_a_format_1_plan_is_refused_with_re_run_plan(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    """A plan saved by the previous version (format 1: `resource`, one `endpoint`)."""
    plan = saved_plan(capsys)
    plan["format_version"] = 1
    plan["endpoint"] = plan.pop("endpoints")["miniappcenter"]
    for change in plan["changes"]:
        del change["provider"]
        change["resource"] = change.pop("kind")
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and requests_log == []
    assert "format_version 1" in err and "re-run `reconciler plan --out FILE`" in err


def test_a_change_whose_provider_or_kind_is_not_its_address_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    plan = saved_plan(capsys)
    i = index_of(plan, lambda c: c["kind"] == "attribute")
    plan["changes"][i]["kind"] = "location"
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and requests_log == []
    assert f"change {i} (" in err and "provider and kind do not match its address" in err


def test_a_plan_for_a_provider_this_version_does_not_manage_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
) -> None:
    plan = saved_plan(capsys)
    plan["endpoints"]["elsewhere"] = "https://elsewhere.example.com"
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and requests_log == []
    assert "names a provider this reconciler does not manage" in err


@pytest.mark.parametrize("other_id", [2, 999])
def test_a_location_update_aimed_at_another_id_is_refused_before_any_write(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
    other_id: int,
) -> None:
    """Found by the mutation test above: an edited target_id passed every check, then the
    PUT went to a location that is not this app's of that name (another app's, or none)."""
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    (workdir / "manifests" / "app.yaml").write_text(EDITED_YAML)
    plan = saved_plan(capsys)
    index = index_of(plan, lambda c: c["kind"] == "location" and c["action"] == "update")
    plan["changes"][index]["target_id"] = other_id
    Path("plan.json").write_text(json.dumps(plan))
    db = workdir / ".reconciler" / "sandbox.db"
    before = _dump(db)
    requests_log.clear()
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1, err
    assert "target_id is not the id of this app's location of that name" in err
    assert writes(requests_log) == [] and _dump(db) == before


TWO_APPS = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: {id}
spec:
  name: {name}
  superapp_id: com.genexus.verdantbank
  type: Native
  attributes: {{COUNTRY: {country}{tier}}}
  locations:
    - name: Central
      geo_point: POINT({lon} -34.92)
{pocitos}"""


def _write_two(root: Path, *, trimmed: bool) -> None:
    pocitos = "    - name: Pocitos\n      geo_point: POINT({lon} -34.91)\n"
    for app_id, name, country, lon, tier in (
        (APP, "Coffee", "Uruguay", "-56.16", "gold"), (OTHER, "Tea", "Chile", "-70.6", "silver")
    ):
        cut = trimmed and app_id == APP  # the PR drops APP's TIER and Pocitos
        (root / "manifests" / f"{name}.yaml").write_text(TWO_APPS.format(
            id=app_id, name=name, country=country, lon=lon,
            tier="" if cut else f", TIER: {tier}",
            pocitos="" if cut else pocitos.format(lon=lon),
        ))


def _retarget_attribute_to_other_app(plan: Plan, state: dict[str, Any]) -> int:
    i = index_of(plan, lambda c: c["kind"] == "attribute" and c["action"] == "delete")
    change = plan["changes"][i]
    change["app_id"] = OTHER
    change["address"] = change["address"].replace(APP, OTHER)
    return i


def _retarget_attribute_to_another_key(plan: Plan, state: dict[str, Any]) -> int:
    i = index_of(plan, lambda c: c["kind"] == "attribute" and c["action"] == "delete")
    change = plan["changes"][i]
    change["key"] = "COUNTRY"
    change["address"] = change["address"].replace("TIER", "COUNTRY")
    return i


def _retarget_location_to_other_app(plan: Plan, state: dict[str, Any]) -> int:
    i = index_of(plan, lambda c: c["kind"] == "location" and c["action"] == "delete")
    change = plan["changes"][i]
    change["app_id"] = OTHER
    change["address"] = change["address"].replace(APP, OTHER)
    change["target_id"] = mac_records(state)[OTHER]["locations"]["Pocitos"]["id"]
    return i


@pytest.mark.parametrize("retarget", [
    _retarget_attribute_to_other_app, _retarget_attribute_to_another_key,
    _retarget_location_to_other_app,
])
def test_a_delete_moved_to_another_target_is_never_sent(
    workdir: Path, capsys: pytest.CaptureFixture[str], requests_log: list[tuple[str, str]],
    retarget: Callable[[Plan, dict[str, Any]], int],
) -> None:
    """Found by a drill: a delete moved consistently (app_id, address, target_id) to an
    object the manifests keep passed every check, and was sent."""
    (workdir / "manifests" / "app.yaml").unlink()
    _write_two(workdir, trimmed=False)
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    _write_two(workdir, trimmed=True)
    plan = saved_plan(capsys)
    state = json.loads((workdir / ".reconciler" / "sandbox-state.json").read_text())
    index = retarget(plan, state)
    moved = plan["changes"][index]
    Path("plan.json").write_text(json.dumps(plan))
    requests_log.clear()
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code in (1, 3), out + err
    assert "refusing it: run `reconciler plan` again" in out + err
    assert moved["address"] in out + err
    # Nothing the manifests keep was deleted: OTHER whole, APP's COUNTRY.
    db = workdir / ".reconciler" / "sandbox.db"
    with sqlite3.connect(db) as conn:
        attributes = set(conn.execute("SELECT app_id, field FROM attributes").fetchall())
        locations = conn.execute("SELECT COUNT(*) FROM locations WHERE app_id = ?",
                                 (OTHER,)).fetchone()
    assert {(OTHER, "COUNTRY"), (OTHER, "TIER"), (APP, "COUNTRY")} <= attributes
    assert locations == (2,)


def _readdress(change: dict[str, Any]) -> None:
    """The change's address recomputed from its (possibly edited) fields, as `plan` makes it."""
    from reconciler.providers.miniappcenter.addresses import (
        attribute_address,
        location_address,
        version_address,
    )

    app_id, key = change["app_id"], change.get("key") or ""
    kind = change["kind"]
    if kind == "attribute":
        change["address"] = str(attribute_address(app_id, key))
    elif kind == "location":
        address = location_address(app_id, key)
        if "#" in change["address"] and isinstance(change.get("target_id"), int):
            address = address.duplicate(change["target_id"])
        change["address"] = str(address)
    elif kind == "version":
        change["address"] = str(version_address(app_id, key))


def _kept(db: Path) -> set[tuple[Any, ...]]:
    """What the trimmed manifests keep on the server: OTHER whole, APP's COUNTRY and Central."""
    with sqlite3.connect(db) as conn:
        rows = {("attribute", *r) for r in conn.execute("SELECT app_id, field, value FROM"
                                                        " attributes")}
        rows |= {("location", *r) for r in conn.execute("SELECT app_id, name, geo_point FROM"
                                                        " locations")}
    return {r for r in rows if r[1] == OTHER or r[2] in ("COUNTRY", "Central")}


@settings(max_examples=int(os.environ.get("PLAN_RETARGET_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_change_moved_to_another_target_never_touches_what_the_manifests_keep(
    workdir: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject,
) -> None:
    """Any field of any change of a two-app plan set to a value another change (or app) has,
    with the address recomputed to match, as an edit that passes the file's own checks
    would: applied or refused, nothing the manifests keep is deleted or changed."""
    folder = workdir / ".reconciler"
    if not (workdir / "pristine").exists():
        (workdir / "manifests" / "app.yaml").unlink()
        _write_two(workdir, trimmed=False)
        assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
        _write_two(workdir, trimmed=True)
        saved_plan(capsys, "pristine.json")
        (workdir / "pristine").mkdir()
        for path in folder.iterdir():
            (workdir / "pristine" / path.name).write_bytes(path.read_bytes())
    for leftover in folder.iterdir():
        leftover.unlink(missing_ok=True)  # a -shm file goes when its last connection closes
    for path in (workdir / "pristine").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    plan = json.loads(Path("pristine.json").read_text())
    kept = _kept(folder / "sandbox.db")
    index = data.draw(st.integers(0, len(plan["changes"]) - 1), label="change")
    change = plan["changes"][index]
    fields = sorted(k for k in change if k not in ("address", "provider", "kind", "action"))
    field = data.draw(st.sampled_from(fields), label="field")
    pool = [c[field] for c in plan["changes"] if field in c and c[field] != change[field]]
    pool += [OTHER, APP, "COUNTRY", "TIER", "Central", "Pocitos"]
    state = json.loads((folder / "sandbox-state.json").read_text())
    pool += [loc["id"] for rec in mac_records(state).values()
             for loc in (rec.get("locations") or {}).values()]
    # A value of the field's own type: anything else the schema refuses before any request.
    pool = [v for v in pool if type(v) is type(change[field]) and v != change[field]]
    if not pool:
        return
    change[field] = data.draw(st.sampled_from(pool), label="value")
    _readdress(change)
    Path("plan.json").write_text(json.dumps(plan))
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert "Traceback" not in err and "Internal error" not in out + err
    event(f"exit {code}")
    assert _kept(folder / "sandbox.db") == kept, (index, field, change[field], out, err)


# --- generated tampering of Akana changes --------------------------------------------------

AKANA_APPS = """\
apiVersion: akana/v1
kind: App
metadata: {name: Gateway}
spec:
  summary: Payments
  description: The gateway.
  versions:
    - {name: "1.0", description: First, tags: [a, b], visibility: Public,
       initial_environment: Sandbox}
    - {name: "2.0", description: Second, tags: [c], visibility: Limited}
---
apiVersion: akana/v1
kind: App
metadata: {name: Reports}
spec:
  summary: Reports
  versions:
    - {name: "1.0", description: One}
"""
# Updates of both apps and of a version, a version deleted, one created.
AKANA_EDITED = (
    AKANA_APPS.replace("summary: Payments", "summary: Payments v2")
    .replace("description: First,", "description: Refreshed,")
    .replace('    - {name: "2.0", description: Second, tags: [c], visibility: Limited}\n',
             '    - {name: "3.0", description: Third}\n')
    .replace("summary: Reports", "summary: Reports v2")
)


def _akana_view(db: Path, *, ids: bool) -> list[tuple[Any, ...]]:
    """What the Akana sandbox holds: every column (``ids``), or what a manifest can say
    (server ids and timestamps are the server's own)."""
    with sqlite3.connect(db) as conn:
        apps = conn.execute("SELECT * FROM apps ORDER BY name, id").fetchall()
        versions = conn.execute(
            "SELECT v.*, a.name FROM versions v JOIN apps a ON a.id = v.app_id"
            " ORDER BY a.name, v.name, v.id"
        ).fetchall()
        if ids:
            return [("app", *row) for row in apps] + [("version", *row) for row in versions]
        apps = conn.execute("SELECT name, summary, description, picture_id, visibility, state"
                            " FROM apps ORDER BY name").fetchall()
        versions = conn.execute(
            "SELECT a.name, v.name, v.description, v.tags, v.visibility, v.website,"
            " v.environment, v.state FROM versions v JOIN apps a ON a.id = v.app_id"
            " ORDER BY a.name, v.name"
        ).fetchall()
        return [("app", *row) for row in apps] + [("version", *row) for row in versions]


@dataclass
class AkanaPristine:
    plan: Plan
    files: dict[str, bytes]
    applied: list[tuple[Any, ...]]  # the sandbox after applying the untouched plan


@pytest.fixture
def akana_pristine(workdir: Path, capsys: pytest.CaptureFixture[str]) -> AkanaPristine:
    (workdir / "manifests" / "app.yaml").unlink()
    (workdir / "manifests" / "akana.yaml").write_text(AKANA_APPS)
    assert run(capsys, "apply", "manifests", "--sandbox", "--auto-approve")[0] == 0
    (workdir / "manifests" / "akana.yaml").write_text(AKANA_EDITED)
    plan = saved_plan(capsys)
    assert {c["action"] for c in plan["changes"]} == {"create", "update", "delete"}
    folder = workdir / ".reconciler"
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 0, err
    return AkanaPristine(plan, files, _akana_view(folder / "akana-sandbox.db", ids=False))


@settings(max_examples=int(os.environ.get("PLAN_FUZZ_EXAMPLES", "120")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_saved_akana_plan_is_refused_or_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], akana_pristine: AkanaPristine,
    data: st.DataObject,
) -> None:
    """Any field of any Akana change (and of the rest of the plan) replaced, removed or
    added to, or set to a value another change has: refused with nothing written, or
    accepted meaning exactly what the untouched plan meant."""
    plan = akana_pristine.plan
    paths = [p for p in _paths(plan) if p and not (p[0] == "app_meta" and len(p) > 2)]
    # Half the draws land in the changes: that is where a target or a `before` lives.
    in_changes = [p for p in paths if p[0] == "changes" and len(p) > 2]
    path = data.draw(st.sampled_from(in_changes) | st.sampled_from(paths), label="path")
    how = data.draw(st.sampled_from(["replace", "delete", "add"]), label="how")
    others: list[Any] = []
    if path[0] == "changes" and len(path) > 2:
        # the same field of another change: another app's, another version's server id
        for change in plan["changes"]:
            value: Any = change
            for part in path[2:]:
                found = (isinstance(value, dict) and part in value) or (
                    isinstance(value, list) and isinstance(part, int) and part < len(value))
                if not found:
                    break
                value = value[part]
            else:
                others.append(value)
    pool = REPLACEMENTS | st.sampled_from(others) if others else REPLACEMENTS
    value = data.draw(pool, label="value")
    mutated = _mutate(plan, path, how, value)
    folder = workdir / ".reconciler"
    for leftover in folder.iterdir():
        leftover.unlink(missing_ok=True)  # a -shm file goes when its last connection closes
    for name, content in akana_pristine.files.items():
        (folder / name).write_bytes(content)
    db = folder / "akana-sandbox.db"
    before = _akana_view(db, ids=True)
    Path("plan.json").write_text(json.dumps(mutated))
    code, out, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert "Traceback" not in err and "Internal error" not in err + out
    event(f"exit {code}")
    if code == 1:
        assert _akana_view(db, ids=True) == before, (path, how, value, err)
        assert len(err) < 2_000 + 400 * len(plan["changes"])
        return
    assert code == 0, (path, how, value, out, err)
    assert _akana_view(db, ids=False) == akana_pristine.applied, (path, how, value, out, err)


def test_an_akana_body_that_sends_other_than_the_plan_shows_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], akana_pristine: AkanaPristine,
) -> None:
    """Found by the mutation test above: a version update whose body dropped the description
    the plan shows was accepted, and wrote nothing of it."""
    plan = copy.deepcopy(akana_pristine.plan)
    index = next(i for i, c in enumerate(plan["changes"])
                 if c["kind"] == "version" and c["action"] == "update")
    del plan["changes"][index]["payload"]["Description"]
    folder = workdir / ".reconciler"
    for leftover in folder.iterdir():
        leftover.unlink(missing_ok=True)  # a -shm file goes when its last connection closes
    for name, content in akana_pristine.files.items():
        (folder / name).write_bytes(content)
    before = _akana_view(folder / "akana-sandbox.db", ids=True)
    Path("plan.json").write_text(json.dumps(plan))
    code, _, err = run(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1 and "description is not what the plan shows" in err, err
    assert _akana_view(folder / "akana-sandbox.db", ids=True) == before
