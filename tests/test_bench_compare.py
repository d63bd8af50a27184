"""``bench/run.py --compare``: a saved run against another, a regression over 10% flagged by
name and by exit status. Pure: two small result files, nothing measured."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.run import compare, main


def _results(
    plan_vs_floor: float = 1.2, speedup: float = 15.0, cpu: float = 0.0005
) -> dict[str, Any]:
    return {
        "sizes": [
            {
                "n": 100,
                "ratios": {
                    "plan_vs_floor": plan_vs_floor,
                    "apply_vs_floor": 1.3,
                    "sequential_vs_plan": speedup,
                    "plan_vs_peer": 1.0,
                    "apply_vs_peer": 1.05,
                },
            }
        ],
        "cpu": {
            "now": {"tool_cpu_per_request_s": cpu, "peer_cpu_per_request_s": 0.001},
        },
        "diff": {"converged": {"cpu_s": 0.1}, "changed": {"cpu_s": 0.2}},
    }


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_lower_is_better_ratio_11_percent_worse_is_flagged_by_name() -> None:
    regressions, _ = compare(_results(), _results(plan_vs_floor=1.2 * 1.11))
    assert len(regressions) == 1
    assert regressions[0].startswith("plan_vs_floor[N=100]: 1.2 -> 1.332")


def test_a_higher_is_better_ratio_that_drops_is_flagged() -> None:
    regressions, _ = compare(_results(), _results(speedup=13.0))  # 15 / 13 = 1.15
    assert [r.split(":")[0] for r in regressions] == ["sequential_vs_plan[N=100]"]


def test_within_tolerance_and_improvements_pass() -> None:
    assert compare(_results(), _results(plan_vs_floor=1.2 * 1.09)) == ([], [])
    assert compare(_results(), _results(plan_vs_floor=0.6, speedup=40.0)) == ([], [])


def test_absolute_seconds_are_compared_only_on_request() -> None:
    slower = _results()
    slower["diff"]["changed"]["cpu_s"] = 0.5
    assert compare(_results(), slower)[0] == []
    flagged, _ = compare(_results(), slower, absolute=True)
    assert [r.split(":")[0] for r in flagged] == ["diff_cpu_s[changed]"]


def test_a_metric_on_one_side_only_is_noted_not_flagged() -> None:
    current = copy.deepcopy(_results())
    del current["cpu"]
    regressions, notes = compare(_results(), current)
    assert regressions == []
    assert notes == ["cpu_per_request_tool_vs_peer: only in the baseline"]


def test_the_command_exits_1_and_names_the_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = _write(tmp_path / "baseline.json", _results())
    worse = _write(tmp_path / "worse.json", _results(cpu=0.0006))  # tool/peer 0.5 -> 0.6
    same = _write(tmp_path / "same.json", _results())
    assert main(["--compare", str(baseline), "--results", str(worse)]) == 1
    assert "REGRESSION cpu_per_request_tool_vs_peer: 0.5 -> 0.6 (20% worse" in (
        capsys.readouterr().err
    )
    assert main(["--compare", str(baseline), "--results", str(same)]) == 0
    assert "no regression over 10%" in capsys.readouterr().err
