"""Unattended convergence, as a GitOps pipeline runs it: real `reconciler` processes against a
real sandbox server over loopback that fails requests, answers writes with 502 after doing
them, and a state file that goes missing. No person runs a command in between."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.state import mac_records
from tests.fixtures_sandbox import RunningSandbox

STATUSES = ("pending", "waiting_for_review", "in_review", "ready")


def _fleet(root: Path, apps: int = 12) -> Path:
    """`apps` mini apps, each with attributes, 2 locations and 2 versions at various statuses."""
    fleet = root / "fleet"
    fleet.mkdir()
    for n in range(apps):
        versions = "".join(
            f"""
    - code: "{major}.0"
      platform_id: iOS
      main_name: start{n}
      main_type: Panel
      service_url: https://example.com/{n}/{major}/
      compatibility: [{major}, {major + 1}]
      status: {STATUSES[(n + major) % len(STATUSES)]}"""
            for major in (1, 2)
        )
        (fleet / f"app{n:02d}.yaml").write_text(
            f"""apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.test.fleet.app{n:02d}
  labels: {{team: t{n % 3}}}
spec:
  name: App {n}
  superapp_id: com.test.super
  type: Native
  keywords: app number {n}
  attributes: {{COUNTRY: Uruguay, TIER: "{n % 4}"}}
  locations:
    - name: North
      geo_point: POINT({n} 10)
    - name: South
      geo_point: POINT({n} -10)
  versions:{versions}
"""
        )
    return fleet


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


def _env(server: RunningSandbox, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MAC_BASE_URL=server.base_url, MAC_API_TOKEN=server.token,
               RECONCILER_STATE=str(state), NO_COLOR="1")
    return env


def _duplicates(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT app_id, code, COUNT(*) FROM versions GROUP BY app_id, code HAVING COUNT(*) > 1"
            " UNION ALL SELECT app_id, name, COUNT(*) FROM locations GROUP BY app_id, name"
            " HAVING COUNT(*) > 1"
        ).fetchall()


def _applied_fleet(
    tmp_path: Path, factory: Callable[..., RunningSandbox], apps: int
) -> tuple[Path, Path, dict[str, str]]:
    """A fleet of ``apps`` applied to a fresh server: (manifests, state file, environment)."""
    fleet = _fleet(tmp_path, apps=apps)
    state = tmp_path / "state.json"
    env = _env(factory(), state)
    assert _run(env, "apply", str(fleet), "--auto-approve").returncode == 0
    return fleet, state, env


PERSON = ("state adopt-version", "state set-status", "find the version's id")


def _statuses(db: Path) -> dict[tuple[str, str], str]:
    """Every version's review status as the server holds it: (app id, code) -> status."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT app_id, code, status FROM versions").fetchall()
    return {(str(app), str(code)): str(status) for app, code, status in rows}


def _desired_statuses(apps: int = 12) -> dict[tuple[str, str], str]:
    return {(f"com.test.fleet.app{n:02d}", f"{major}.0"): STATUSES[(n + major) % len(STATUSES)]
            for n in range(apps) for major in (1, 2)}  # fmt: skip


# What the sandbox does beyond the docs is an assumption: the fleet must converge without
# duplicates, without a field the server ignored, and with every review status where the
# manifest wants it on a server that makes none of them (repeated codes served, unknown
# fields ignored, review steps accepted from any status).
ALL_DROPPED = {"unique_version_codes": False, "refuse_unknown_fields": False,
               "review_flow": False}  # fmt: skip


@pytest.mark.parametrize(
    "assumptions",
    [{}, {"unique_version_codes": False}, ALL_DROPPED],
    ids=["as-the-sandbox-assumes", "duplicate-codes-allowed", "no-assumption"],
)
def test_fleet_converges_under_faults_without_a_person(
    tmp_path: Path,
    sandbox_server_factory: Callable[..., RunningSandbox],
    assumptions: dict[str, bool],
) -> None:
    fleet = _fleet(tmp_path)
    state = tmp_path / "state.json"
    faulty = sandbox_server_factory(fail_rate=0.25, ambiguous_rate=0.2, seed=7,
                                    **assumptions)  # fmt: skip
    env = _env(faulty, state)
    codes = []
    for _ in range(2):
        run = _run(env, "apply", str(fleet), "--auto-approve")
        codes.append(run.returncode)
        assert not any(p in run.stderr + run.stdout for p in PERSON), run.stderr
        assert run.returncode in (0, 1, 3), run.stderr
    assert 3 in codes or 0 in codes, codes  # writes happened despite the faults
    # Faults stop (the same server restarted without them): ONE apply converges.
    port = int(faulty.base_url.rsplit(":", 1)[1].split("/")[0])
    faulty.stop()
    clean = sandbox_server_factory(port=port, **assumptions)
    env = _env(clean, state)
    final = _run(env, "apply", str(fleet), "--auto-approve")
    assert final.returncode == 0, final.stderr + final.stdout
    plan = _run(env, "plan", str(fleet), "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert _duplicates(clean.store.db_path) == []
    # The tool sends only fields the docs name: a lenient server ignores nothing of it.
    assert faulty.store.ignored_fields == clean.store.ignored_fields == []
    # The server's own statuses, not only the tool's belief (an empty plan).
    assert _statuses(clean.store.db_path) == _desired_statuses()
    assert "set-status" not in final.stderr + final.stdout


def test_lost_state_is_said_and_apply_adopts_without_duplicates(
    tmp_path: Path, sandbox_server_factory: Callable[..., RunningSandbox]
) -> None:
    fleet, state, env = _applied_fleet(tmp_path, sandbox_server_factory, apps=4)
    versions_before = {
        (app_id, code): record["id"]
        for app_id, app in mac_records(json.loads(state.read_text())).items()
        for code, record in app["versions"].items()
    }
    state.unlink()  # a deleted CI cache

    plan = _run(env, "plan", str(fleet), "--format", "json")
    assert f"no state file was found at {state}" in plan.stderr
    data = json.loads(plan.stdout)
    assert any(w.startswith(f"no state file was found at {state}") for w in data["warnings"])
    adopted = {(a["app_id"], a.get("code")): a.get("version_id") for a in data["learned"]}
    assert {k: v for k, v in adopted.items() if k[1]} == versions_before  # every id found
    assert data["summary"]["adopt"] == 4 + len(versions_before)
    # nothing is created again; compatibilities (unreadable) are re-added: idempotent
    assert {c["kind"] for c in data["changes"] if c["action"] == "create"} == {
        "compatibility"
    }
    drift = _run(env, "drift", str(fleet), "--format", "json")
    assert f"no state file was found at {state}" in drift.stderr
    statuses = [i for i in json.loads(drift.stdout)["items"] if i["resource"] == "status"]
    assert statuses and all(i["address"].endswith(".status") for i in statuses)
    text = _run(env, "plan", str(fleet)).stdout
    assert "= miniapp[com.test.fleet.app00]: adopt" in text
    assert "to adopt" in text and "version read(s) spent finding unknown versions" in text

    applied = _run(env, "apply", str(fleet), "--auto-approve", "--format", "json")
    assert f"no state file was found at {state}" in applied.stderr
    output = json.loads(applied.stdout)
    assert any(w.startswith("no state file") for w in output["plan"]["warnings"])
    result = output["apply"]
    assert _duplicates(tmp_path / "sandbox.db") == []
    # Statuses were learnt by steps the server refuses; those no such step can tell apart
    # (a version that should stay pending, say) are named, for that version only: exit 3.
    # Some are known at plan time (unresolved), the rest once refused steps narrowed them
    # down as far as they safely could (failed, with the same message).
    named = result["unresolved"] + [
        r["message"] for r in result["results"] if r["outcome"] == "failed"
    ]
    assert all("state set-status" in m and "review status" in m for m in named), named
    assert result["summary"]["skipped"] == 0  # nothing else of those apps waited
    assert applied.returncode == (3 if named else 0), applied.stderr
    again = _run(env, "plan", str(fleet), "--format", "json")
    follow = json.loads(again.stdout)
    assert follow["changes"] == [] and follow["learned"] == []
    assert len(follow["errors"]) == len(named)
    assert all(e["scope"] == "version" for e in follow["details"]["errors"])


def test_a_saved_plan_after_a_lost_state_is_checked_then_applied(
    tmp_path: Path, sandbox_server_factory: Callable[..., RunningSandbox]
) -> None:
    fleet, state, env = _applied_fleet(tmp_path, sandbox_server_factory, apps=2)
    state.unlink()
    saved = tmp_path / "plan.json"
    _run(env, "plan", str(fleet), "--out", str(saved))
    plan = json.loads(saved.read_text())
    adopted = [item for item in plan["learned"] if item.get("version_id")]
    assert adopted and all(item["address"] in plan["fingerprints"] for item in adopted)

    # An adoption edited to point at another version is refused before anything is recorded.
    tampered = json.loads(saved.read_text())
    first, second = [i for i, item in enumerate(tampered["learned"]) if item.get("version_id")][:2]
    tampered["learned"][first]["version_id"] = tampered["learned"][second]["version_id"]
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    refused = _run(env, "apply", "--plan", str(tmp_path / "tampered.json"), "--auto-approve",
                   "--format", "json")
    assert refused.returncode in (1, 3), refused.stderr
    result = json.loads(refused.stdout)["apply"]
    app_id = tampered["learned"][first]["app_id"]
    failed = {r["app_id"] for r in result["results"] if r["outcome"] == "failed"}
    assert app_id in failed and "does not read as it did" in refused.stdout
    recorded = mac_records(json.loads(state.read_text())).get(app_id, {}).get("versions", {})
    code = tampered["learned"][first]["code"]
    assert recorded.get(code, {}).get("id") != tampered["learned"][first]["version_id"]

    # The untouched plan (made again: the state changed) applies: adoptions recorded first,
    # statuses learnt, nothing created twice.
    _run(env, "plan", str(fleet), "--out", str(saved))
    applied = _run(env, "apply", "--plan", str(saved), "--auto-approve", "--format", "json")
    assert applied.returncode in (0, 3), applied.stderr
    assert json.loads(applied.stdout)["apply"]["summary"]["adopted"] >= 1
    assert _duplicates(tmp_path / "sandbox.db") == []


def test_a_saved_adoption_must_fit_the_state(
    tmp_path: Path, sandbox_server_factory: Callable[..., RunningSandbox]
) -> None:
    fleet, state, env = _applied_fleet(tmp_path, sandbox_server_factory, apps=2)
    kept = mac_records(json.loads(state.read_text()))["com.test.fleet.app01"]["versions"]
    assert _run(env, "state", "rm", "com.test.fleet.app00").returncode == 0
    saved = tmp_path / "plan.json"
    _run(env, "plan", str(fleet), "--out", str(saved))
    plan = json.loads(saved.read_text())
    index = next(i for i, item in enumerate(plan["learned"]) if item.get("version_id"))

    def refused(edit: Callable[[dict[str, object]], None], reason: str) -> None:
        tampered = json.loads(saved.read_text())
        edit(tampered["learned"][index])
        path = tmp_path / "tampered.json"
        path.write_text(json.dumps(tampered))
        run = _run(env, "apply", "--plan", str(path), "--auto-approve")
        assert run.returncode == 1 and reason in run.stderr, run.stderr
        assert "com.test.fleet.app00" not in mac_records(json.loads(state.read_text()))

    # "fresh" would skip learning the status: only for our own unanswered create
    refused(lambda item: item.update(fresh=True), "fresh is said of a version")
    # an id the state records for another app's version
    other_id = next(iter(kept.values()))["id"]
    refused(lambda item: item.update(version_id=other_id), "adopts an id the state records")
