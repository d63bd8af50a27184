"""Read a reconciler JSON report for the GitHub Action: step outputs and apply's Markdown.

    report.py outputs COMMAND JSON          -> key=value lines for $GITHUB_OUTPUT
    report.py apply-markdown JSON RC ENV    -> the apply summary as Markdown

Standard library only: it runs with whatever python3 the runner has. A missing or unreadable
report (the command failed before writing one) gives empty counts, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

APPLY_MARKER = "<!-- miniapp-reconciler apply -->"
MAX_FAILURES_SHOWN = 50


def load(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _count(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def outputs(command: str, report: dict[str, Any]) -> dict[str, str]:
    """The action's outputs from one report; values are single-line by construction."""
    result: dict[str, str] = {}
    if command == "plan":
        summary = report.get("summary") or {}
        counts = {k: _count(summary, k) for k in ("create", "update", "delete")}
        result.update(counts)
    elif command == "apply":
        plan = (report.get("plan") or {}).get("summary") or {}
        done = (report.get("apply") or {}).get("summary") or {}
        summary = {"plan": plan, "apply": done}
        result.update({k: _count(plan, k) for k in ("create", "update", "delete")})
        result.update({k: _count(done, k) for k in ("applied", "failed")})
    else:  # drift
        summary = report.get("summary") or {}
        in_sync = report.get("in_sync")
        result["in-sync"] = "" if not isinstance(in_sync, bool) else str(in_sync).lower()
    result["summary"] = json.dumps(summary, separators=(",", ":"), sort_keys=True) if report else ""
    return result


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:300]


def apply_markdown(report: dict[str, Any], rc: int, env: str) -> str:
    lines = [APPLY_MARKER, f"### Mini App Center apply ({_cell(env)}): exit {rc}", ""]
    apply = report.get("apply") or {}
    if not apply:
        lines.append("The apply failed before any change was made: see the job log.")
        return "\n".join(lines) + "\n"
    plan = (report.get("plan") or {}).get("summary") or {}
    done = apply.get("summary") or {}
    lines += [
        "| Planned create | update | delete | Applied | Failed | Skipped |",
        "|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(_count(plan, k) or "0" for k in ("create", "update", "delete"))
        + " | "
        + " | ".join(_count(done, k) or "0" for k in ("applied", "failed", "skipped"))
        + " |",
    ]
    if apply.get("interrupted"):
        lines += ["", "**Interrupted**: every completed write is recorded in the state; re-run."]
    failures = [r for r in apply.get("results") or [] if r.get("outcome") == "failed"]
    if failures:
        lines += ["", "| Failed change | Action | Error |", "|---|---|---|"]
        for item in failures[:MAX_FAILURES_SHOWN]:
            error = item.get("message") or ""
            address, action = _cell(item.get("address", "")), _cell(item.get("action", ""))
            lines.append(f"| `{address}` | {action} | {_cell(error)} |")
        if len(failures) > MAX_FAILURES_SHOWN:
            more = len(failures) - MAX_FAILURES_SHOWN
            lines.append(f"\n... {more} more failed change(s) in the JSON report.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "outputs":
        for key, value in outputs(argv[1], load(argv[2])).items():
            print(f"{key}={value}")
        return 0
    if len(argv) == 4 and argv[0] == "apply-markdown":
        sys.stdout.write(apply_markdown(load(argv[1]), int(argv[2]), argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
