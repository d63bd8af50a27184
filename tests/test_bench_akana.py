"""The Akana fleet benchmark must not rot: it runs here at 5 apps with no latency against its
real server process. Only what it counts and asserts is checked, never timings."""

from __future__ import annotations

from pathlib import Path

from bench.akana_fleet import (
    DETAIL,
    LISTING,
    LOGIN,
    LOGOUT,
    RENEW,
    SECTION_TITLE,
    VERSIONS,
    expected_creates,
    make_akana_fleet,
    measure_akana_fleet,
    report,
    with_akana_changes,
    write_results_section,
)
from bench.akana_server import route_template
from bench.run import checks


def test_the_fleet_and_its_changes() -> None:
    apps = make_akana_fleet(6, organizations=2)
    assert len({a.name for a in apps}) == 6
    assert [len(a.versions) for a in apps] == [2, 1, 2, 1, 2, 1]
    assert {a.business_id for a in apps} == {"bench-org-0", "bench-org-1"}
    assert expected_creates(apps) == 9
    assert make_akana_fleet(6, organizations=2) == apps  # deterministic
    changed, count = with_akana_changes(apps, 3)
    assert count == 4  # a summary, a version's fields, a version replaced (add + delete)
    assert sum(a != b for a, b in zip(apps, changed, strict=True)) == 3


def test_paths_are_counted_by_route_template() -> None:
    assert route_template("/api/apps") == "/api/apps"
    assert route_template("/api/apps/abc.fed") == "/api/apps/{AppID}"
    assert route_template("/api/apps/abc.fed/versions") == "/api/apps/{AppID}/versions"
    assert route_template("/api/apps/versions/v1.fed") == "/api/apps/versions/{AppVersionID}"
    assert route_template("/api/login/renewToken") == "/api/login/renewToken"
    assert route_template("/elsewhere") == "(other)"


def test_a_tiny_run_against_the_real_server(tmp_path: Path) -> None:
    result = measure_akana_fleet(
        5, latency_ms=0, parallelism=4, organizations=2, changed=3, workdir=tmp_path
    )
    phases = {p["name"]: p for p in result["phases"]}
    assert list(phases) == [
        "plan (all creates)", "apply (creates)", "re-plan (no change)",
        "plan (3 apps changed)", "apply (3 apps changed)", "verify (no change)",
    ]
    # Root level + 2 organizations; per app its detail and versions; one login, one logout.
    listings = 3
    assert result["reads"]["reads"] == listings + 2 * 5
    replan = phases["re-plan (no change)"]
    assert replan["changes"] == 0
    assert replan["requests"] == {LISTING: listings, DETAIL: 5, VERSIONS: 5, LOGIN: 1, LOGOUT: 1}
    created = phases["apply (creates)"]
    assert created["changes"] == 8
    # A renewal never ends a cookie a request in flight still uses: each create is sent once.
    assert created["requests"]["POST /api/apps"] == 5
    assert created["requests"]["POST /api/apps/{AppID}/versions"] == 3
    # The platform asks for renewals; they are served only when nothing is in flight.
    assert created["requests"].get(RENEW, 0) <= 8
    assert phases["apply (3 apps changed)"]["changes"] == 4
    assert phases["verify (no change)"]["changes"] == 0
    # Nothing refused at all: no 4xx/5xx from the work, no 401 from a renewal race.
    assert all(p["refused"] == {} for p in result["phases"])

    text = report(result, command="python bench/akana_fleet.py --apps 5", what_if=result)
    assert text.startswith(SECTION_TITLE)
    assert "`GET /api/apps/{AppID}/versions`" in text
    assert f"= **{listings + 10}** GETs" in text

    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\n## Before\n\nold\n", encoding="utf-8")
    write_results_section(text, results_md)
    write_results_section(text.replace("--apps 5", "--apps 6"), results_md)  # replaced
    written = results_md.read_text(encoding="utf-8")
    assert written.count(SECTION_TITLE) == 1 and "--apps 6" in written
    assert written.startswith("# Results\n\n## Before\n\nold\n")

    row = [c for c in checks({"sizes": [], "akana": result}) if "Akana" in c[0]]
    assert row and row[0][2] and row[0][3]


def test_the_cli_bench_runs_and_counts_the_reads(tmp_path: Path) -> None:
    """bench/akana_cli.py at a tiny size: whole CLI processes against the real server."""
    import json

    from bench.akana_cli import main as cli_bench

    out = tmp_path / "steps.json"
    assert cli_bench(["--apps", "3", "--latency-ms", "0", "--edited", "2", "--json", str(out)]) == 0
    steps = {step["step"]: step for step in json.loads(out.read_text())}
    assert all(step["exit"] == 0 for step in steps.values())
    replan = steps["re-plan (no change)"]["by_route"]
    # one listing (no organization configured) + each recorded app's detail and versions
    assert replan["GET /api/apps"] == 1
    assert replan["GET /api/apps/{AppID}"] == replan["GET /api/apps/{AppID}/versions"] == 3
    assert steps["apply (2 apps edited)"]["by_route"]["PUT /api/apps/{AppID}"] == 2
