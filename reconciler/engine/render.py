"""Plan -> text, JSON and Markdown; apply result -> text. Pure: no I/O, no environment.

The caller (the CLI) decides whether to colour. Every change is first turned into
:class:`_Line` records, so the terminal text and the Markdown ``diff`` block show the same
lines. Everything that came from a manifest or the server (ids, names, values, messages) goes
through :func:`_clean` before it reaches a terminal, so a crafted value cannot emit escape
sequences or reorder text with bidi controls.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from reconciler.address import Address
from reconciler.engine.drift import KIND_LABELS, DriftItem, DriftReport
from reconciler.engine.plan import ACTIONS, SYMBOLS, Change, Fact, Plan, PlanProblem

Format = Literal["text", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("text", "json", "markdown")

MAX_VALUE_CHARS = 120
NO_CHANGES = "No changes. Live state matches the manifests."
# Never say "matches" while something is left unchecked (an error below).
NO_CHANGES_WITH_ERRORS = "No changes to make, but not everything could be checked: see the errors."
MARKDOWN_MARKER = "<!-- miniapp-reconciler plan -->"
MARKDOWN_MAX_CHARS = 60000  # GitHub refuses comments over 65,536 characters
DEFAULT_FULL_PLAN_HINT = "the JSON plan (`reconciler plan --out plan.json`)"
RETRY_HINT = (
    "Re-run `reconciler apply` to retry: applied changes are recorded and will not be repeated."
)
DELETE_MARKER = "(DELETE)"

# Caps for the Markdown blocks that are never cut away, so they always leave room for apps.
_CAUTION_MAX_ITEMS = 200
_PROBLEM_MAX_ITEMS = 100
_MD_ITEM_MAX_CHARS = 500

_RESET = "\x1b[0m"
_STYLE = {
    "create": "\x1b[32m",
    "update": "\x1b[33m",
    "delete": "\x1b[1;31m",
    "bold": "\x1b[1m",
    "warning": "\x1b[1;33m",
    "error": "\x1b[1;31m",
    "ok": "\x1b[1;32m",
}
# GitHub's diff highlighting keys on column 0: + green, - red, ! orange.
_GUTTER = {"create": "+", "update": "!", "delete": "-"}

# C0/C1 controls, DEL, line/paragraph separators and bidi overrides/isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$#!])")


@dataclass(frozen=True)
class _Line:
    action: str
    kind: Literal["change", "field", "note"]
    text: str


# --- public API ----------------------------------------------------------------------------


def render(plan: Plan, fmt: Format, *, color: bool) -> str:
    if fmt == "text":
        return render_text(plan, color=color)
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    raise ValueError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def render_json(plan: Plan) -> str:
    return json.dumps(plan.as_dict(), indent=2, ensure_ascii=False) + "\n"


def render_text(plan: Plan, *, color: bool) -> str:
    paint = _painter(color)
    # No "Endpoint:" line: the command says it once on stderr (D21); JSON and Markdown carry
    # it as part of the document.
    out: list[str] = []
    if plan.incremental is not None and plan.incremental.apps:  # else: "No manifest changed"
        out.append(incremental_line(plan))
    if not plan.has_changes:
        out.append(_nothing_line(plan))
    else:
        adoptions = _adoptions_by_app(plan)
        changes_by_app = plan.changes_by_app()
        for app_id in dict.fromkeys([*adoptions, *changes_by_app]):
            out.append(paint(f"# miniapp[{_clean(app_id)}]", "bold"))
            out += [paint(_adopt_line(item), "update") for item in adoptions.get(app_id, ())]
            for change in changes_by_app.get(app_id, ()):
                for line in _change_lines(change):
                    text = _text_line(line)
                    out.append(paint(text, line.action) if line.kind == "change" else text)
            out.append("")
        out.append(paint(_summary_line(plan), "bold"))
    out.extend(_problem_lines(plan.warnings, plan.errors, paint))
    if plan.stuck_apps:
        out.append(_stuck_line(plan))
    return "\n".join(out) + "\n"


def incremental_line(plan: Plan, *, markdown: bool = False) -> str:
    """What an incremental plan (plan --changed-since) looked at, said first."""
    assert plan.incremental is not None
    narrowed = plan.incremental
    ref = _code(narrowed.changed_since) if markdown else _clean(narrowed.changed_since)
    lead = "**Incremental plan**" if markdown else "Incremental plan"
    return (
        f"{lead}: only the {narrowed.apps} mini app(s) touched by changes since {ref}"
        f" ({narrowed.files} manifest file(s) changed) were read and planned; apply --plan"
        " refuses it."
    )


def _nothing_line(plan: Plan, *, markdown: bool = False) -> str:
    """The line for a plan without changes: an incremental plan that looked at nothing says
    so, never "No changes" (nothing was checked)."""
    if plan.incremental is not None and plan.incremental.apps == 0 and not plan.errors:
        ref = plan.incremental.changed_since
        shown = _code(ref) if markdown else _clean(ref)
        return f"No manifest changed since {shown}: nothing to plan."
    return NO_CHANGES_WITH_ERRORS if plan.errors else NO_CHANGES


def _adoptions_by_app(plan: Plan) -> dict[str, list[Fact]]:
    out: dict[str, list[Fact]] = {}
    for item in plan.adoptions:
        out.setdefault(item.app_id, []).append(item)
    return out


def _adopt_line(item: Fact) -> str:
    """``= miniapp[x]: adopt ...``: on the server, unknown to the state (nothing is written)."""
    return f"  = {_clean(item.address)}: {_clean(item.describe())}"


def _stuck_line(plan: Plan) -> str:
    stuck = ", ".join(_clean(app_id) for app_id in plan.stuck_apps)
    return (
        f"Stuck: {stuck}. Apply skips these mini apps (errors above) and applies the others;"
        " it then exits 3."
    )


def render_markdown(
    plan: Plan, *, max_chars: int = MARKDOWN_MAX_CHARS, full_plan_hint: str | None = None
) -> str:
    """A pull-request comment. Best effort to stay under ``max_chars`` (meant for >= 2,000).

    ``full_plan_hint`` is Markdown written by the caller (a link to a CI artifact, say) and is
    inserted as is.
    """
    summary = plan.summary
    head = [
        MARKDOWN_MARKER,
        "### Mini App Center plan",
        "",
        *_endpoint_lines(plan),
        "",
        *([incremental_line(plan, markdown=True), ""] if plan.incremental else []),
        *_md_summary_table(summary),
        "",
    ]
    deletes = [c for c in plan.changes if c.action == "delete"]
    if deletes:
        items = [_code(c.address) + (f" ({_md(c.reason)})" if c.reason else "") for c in deletes]
        head += _alert(
            "CAUTION",
            f"**This plan deletes {len(deletes)} object(s).** Review them before applying:",
            _capped(items, _CAUTION_MAX_ITEMS, max_chars // 4, "delete(s)"),
        )
    if plan.errors:
        if plan.fleet_errors:
            title = f"**{len(plan.errors)} error(s): this plan cannot be applied.**"
        elif not plan.stuck_apps:
            title = (
                f"**{len(plan.errors)} error(s) that stop only what they name; apply does the"
                " rest.**"
            )
        else:
            stuck = ", ".join(_code(app_id) for app_id in plan.stuck_apps)
            title = (
                f"**{len(plan.errors)} error(s): stuck mini app(s) {stuck} are skipped by"
                " apply; the others are applied.**"
            )
        head += _alert(
            "WARNING",
            title,
            _capped(
                [_md_problem(e) for e in plan.errors],
                _PROBLEM_MAX_ITEMS,
                max_chars // 8,
                "error(s)",
            ),
        )
    if plan.warnings:
        head += _alert(
            "IMPORTANT",
            f"**{len(plan.warnings)} warning(s)**",
            _capped(
                [_md_problem(w) for w in plan.warnings],
                _PROBLEM_MAX_ITEMS,
                max_chars // 8,
                "warning(s)",
            ),
        )
    if plan.adoptions:
        items = [_code(item.address) + f": {_md(_adopt_line(item).split(': ', 1)[1])}"
                 for item in plan.adoptions]
        head += _alert(
            "NOTE",
            f"**{len(plan.adoptions)} adoption(s)**: on the server, unknown to the state;"
            " apply records them (no API write).",
            _capped(items, _PROBLEM_MAX_ITEMS, max_chars // 8, "adoption(s)"),
        )
    body = "\n".join(head) + "\n"
    if not plan.changes:
        if plan.adoptions:
            return body
        return body + _nothing_line(plan, markdown=True) + "\n"

    sections = [_md_section(app_id, changes) for app_id, changes in plan.changes_by_app().items()]
    hint = full_plan_hint or DEFAULT_FULL_PLAN_HINT
    shown = 0
    for index, section in enumerate(sections):
        left_after = len(sections) - index - 1
        # Keep room for the note about the apps after this one, should they not fit.
        need = len(section) + (len(_truncation_note(left_after, hint)) if left_after else 0)
        if len(body) + need > max_chars:
            break
        body += section
        shown += 1
    if shown < len(sections):
        body += _truncation_note(len(sections) - shown, hint)
    return body


def _md_summary_table(summary: Mapping[str, int]) -> list[str]:
    columns = [("To adopt", "adopt")] if summary.get("adopt") else []
    columns += [("To create", "create"), ("To update", "update"), ("To delete", "delete")]
    return [
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "---:|" * len(columns),
        "| " + " | ".join(str(summary.get(key, 0)) for _, key in columns) + " |",
    ]


def render_apply_result(result: Mapping[str, Any], *, color: bool) -> str:
    """``result`` has the shape of ``ApplyResult.as_dict()`` (taken as data: no import)."""

    paint = _painter(color)
    counts = result.get("summary", {})
    applied, failed, skipped = (int(counts.get(k, 0)) for k in ("applied", "failed", "skipped"))
    interrupted = bool(result.get("interrupted", False))
    verb = "Apply interrupted" if interrupted else "Apply complete"
    style = "error" if failed or interrupted else ("warning" if skipped else "ok")
    adopted, probe_reads = int(counts.get("adopted", 0)), int(counts.get("probe_reads", 0))
    extra = f", {adopted} adopted" if adopted else ""
    line = f"{verb}: {applied} applied, {failed} failed, {skipped} skipped{extra}."
    if probe_reads:
        line += f" ({probe_reads} version read(s) spent finding unknown versions.)"
    out = [paint(line, style)]
    stuck_apps: Sequence[Mapping[str, Any]] = result.get("stuck_apps", ())
    unresolved: Sequence[str] = result.get("unresolved", ())
    if unresolved:
        out += ["", paint("Unresolved (everything else was applied):", "warning")]
        out += [f"  {_clean(str(item))}" for item in unresolved]
    if stuck_apps:
        out += ["", paint("Stuck (skipped whole; the other apps were applied):", "warning")]
        out += [
            f"  {_clean(str(row.get('app_id', '?')))}: {_clean(str(row.get('reason', '')))}"
            for row in stuck_apps
        ]
    rows: Sequence[Mapping[str, Any]] = result.get("results", ())
    sections = (("failed", "Failed:", "error"), ("skipped", "Skipped:", "warning"))
    for outcome, title, row_style in sections:
        # A stuck app's changes are summed up by its line above, not listed one by one.
        picked = [r for r in rows if r.get("outcome") == outcome and not r.get("stuck")]
        if not picked:
            continue
        out += ["", paint(title, row_style)]
        for row in picked:
            symbol = SYMBOLS.get(str(row.get("action")), "?")
            line = f"  {symbol} {_clean(str(row.get('address', '?')))}"
            if row.get("message"):
                line += f": {_clean(str(row['message']))}"
            out.append(paint(line, row_style) if outcome == "failed" else line)
    if failed or skipped or interrupted or stuck_apps or unresolved:
        out += ["", RETRY_HINT]
    return "\n".join(out) + "\n"


# --- lines shared by text and Markdown -----------------------------------------------------


def _problem_lines(
    warnings: Sequence[PlanProblem],
    errors: Sequence[PlanProblem],
    paint: Callable[[str, str], str],
) -> list[str]:
    """The closing block of a text report: a blank line, then warnings, then errors."""
    if not warnings and not errors:
        return []
    return [
        "",
        *(f"{paint('Warning:', 'warning')} {_clean(str(w))}" for w in warnings),
        *(f"{paint('Error:', 'error')} {_clean(str(e))}" for e in errors),
    ]


def _painter(color: bool) -> Callable[[str, str], str]:
    """``paint(text, style)``: ANSI colour on a terminal, the text unchanged otherwise."""

    def paint(text: str, style: str) -> str:
        return f"{_STYLE[style]}{text}{_RESET}" if color else text

    return paint



def _summary_line(plan: Plan) -> str:
    s = plan.summary
    adopt = f"{s['adopt']} to adopt, " if s.get("adopt") else ""
    line = (
        f"Plan: {adopt}{s['create']} to create, {s['update']} to update,"
        f" {s['delete']} to delete."
    )
    if plan.probe_reads:
        line += f" ({plan.probe_reads} version read(s) spent finding unknown versions.)"
    return line


def _change_lines(change: Change) -> list[_Line]:
    head = f"{SYMBOLS[change.action]} {_clean(change.address)}"
    step = _status_step(change)
    if step is not None:
        head += f"  {_clean(step[0])} -> {_clean(step[1])}"
    if change.action == "delete":
        head += f"  {DELETE_MARKER}"
    lines = [_Line(change.action, "change", head)]
    if step is None:
        lines += [_Line(change.action, "field", f"{_clean(k)}: {v}") for k, v in _fields(change)]
    if change.reason:
        lines.append(_Line(change.action, "note", f"({_clean(change.reason)})"))
    return lines


def _text_line(line: _Line) -> str:
    return ("  " if line.kind == "change" else "      ") + line.text


def _diff_line(line: _Line) -> str:
    # The text line with column 0 replaced by the diff gutter; notes stay uncoloured.
    text = _text_line(line)
    return text if line.kind == "note" else _GUTTER[line.action] + text[1:]


def _status_step(change: Change) -> tuple[str, str] | None:
    before, after = change.before or {}, change.after or {}
    if change.kind == "status" and "status" in before and "status" in after:
        return str(before["status"]), str(after["status"])
    return None


def _fields(change: Change) -> list[tuple[str, str]]:
    # ``payload`` is never shown: it duplicates ``after`` and is the wire body.
    if change.action == "create":
        return [(k, _value(v)) for k, v in (change.after or {}).items()]
    if change.action == "delete":
        return [(k, _value(v)) for k, v in (change.before or {}).items()]
    if change.fields:
        return [(f.path, f"{_value(f.before)} -> {_value(f.after)}") for f in change.fields]
    before, after = change.before or {}, change.after or {}
    keys = [*before, *(k for k in after if k not in before)]
    return [
        (k, f"{_value(before.get(k))} -> {_value(after.get(k))}")
        for k in keys
        if (k in before) != (k in after) or before.get(k) != after.get(k)
    ]


def _value(value: Any) -> str:
    return _shorten(_clean(json.dumps(value, ensure_ascii=False, default=str)))


def _shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(text: str | Address) -> str:
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(text))


def _endpoint_lines(plan: Plan) -> list[str]:
    """One line per provider's endpoint (one provider: the plain line it always was)."""
    if len(plan.endpoints) == 1:
        (endpoint,) = plan.endpoints.values()
        return [f"Endpoint: {_code(_safe_endpoint(endpoint))}"]
    return [
        f"Endpoint ({_md(provider)}): {_code(_safe_endpoint(endpoint))}"
        for provider, endpoint in sorted(plan.endpoints.items())
    ]


def _safe_endpoint(endpoint: str) -> str:
    """Drop any ``user:password@`` from the URL: the endpoint is shown, credentials never."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return endpoint
    if "@" not in parts.netloc:
        return endpoint
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


# --- Markdown pieces -----------------------------------------------------------------------


def _md(text: str) -> str:
    """Escape for Markdown prose (not code): HTML first, then Markdown punctuation."""
    one_line = _clean(text)
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def _code(text: str | Address) -> str:
    """An inline code span that survives backticks in ``text`` (CommonMark rules)."""
    text = _clean(text)
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_problem(problem: PlanProblem) -> str:
    where = problem.address or problem.app_id
    message = _md(_shorten(problem.message, _MD_ITEM_MAX_CHARS))
    return f"{_code(where)}: {message}" if where else message


def _capped(items: list[str], max_items: int, budget: int, noun: str) -> list[str]:
    kept: list[str] = []
    used = 0
    for item in items:
        if len(kept) >= max_items or used + len(item) > budget:
            break
        kept.append(item)
        used += len(item) + 5
    if len(kept) < len(items):
        kept.append(f"… and {len(items) - len(kept)} more {noun}")
    return kept


def _alert(kind: str, title: str, items: list[str]) -> list[str]:
    return [f"> [!{kind}]", f"> {title}", *(f"> - {item}" for item in items), ""]


def _md_section(app_id: str, changes: list[Change]) -> str:
    counts = {action: 0 for action in ACTIONS}
    for change in changes:
        counts[change.action] += 1
    summary = (
        f"<code>{html.escape(_clean(app_id))}</code>: {counts['create']} to create,"
        f" {counts['update']} to update, {counts['delete']} to delete"
    )
    lines = [_diff_line(line) for change in changes for line in _change_lines(change)]
    return (
        f"<details><summary>{summary}</summary>\n\n```diff\n"
        + "\n".join(lines)
        + "\n```\n\n</details>\n\n"
    )


def _truncation_note(count: int, hint: str) -> str:
    return (
        f"… {count} more app(s) not shown (the comment size limit was reached)."
        f" The full plan is in {hint}.\n"
    )


# --- drift report ----------------------------------------------------------------------------

DRIFT_MARKER = "<!-- miniapp-reconciler drift -->"
IN_SYNC = "In sync: live state matches the manifests and the last apply."
_DRIFT_STYLE = {"changed_outside": "delete", "missing": "delete", "unmanaged": "update",
                "pending": "create"}
_DRIFT_MD_MAX_ROWS = 500


def render_drift(report: DriftReport, fmt: Format, *, color: bool) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return _drift_markdown(report)
    if fmt == "text":
        return _drift_text(report, color=color)
    raise ValueError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def _drift_summary(report: DriftReport) -> str:
    apps = len({item.app_id for item in report.items})
    parts = ", ".join(f"{n} {KIND_LABELS[k]}" for k, n in report.summary.items())
    return (
        f"Drift: {len(report.items)} difference(s) in {apps} of {report.apps_checked}"
        f" mini app(s): {parts}."
    )


def _drift_text(report: DriftReport, *, color: bool) -> str:
    paint = _painter(color)
    out: list[str] = []  # the endpoint is said on stderr, as for plans
    if report.in_sync:
        out.append(paint(f"{IN_SYNC} ({report.apps_checked} mini app(s) checked)", "ok"))
    else:
        by_app: dict[str, list[DriftItem]] = {}
        for item in report.items:
            by_app.setdefault(item.app_id, []).append(item)
        for app_id, items in by_app.items():
            out.append(paint(f"# miniapp[{_clean(app_id)}]", "bold"))
            for item in items:
                where = _clean(item.address) + (f" {_clean(item.field)}" if item.field else "")
                label = f"{KIND_LABELS[item.kind]:<15}"
                out.append(f"  {paint(label, _DRIFT_STYLE[item.kind])} {where}")
                out.append(f"      expected (manifest): {_value(item.expected)}")
                out.append(f"      live:                {_drift_live(item)}")
                out.append(f"      last applied:        {_value(item.last_applied)}")
            out.append("")
        out.append(paint(_drift_summary(report), "bold"))
    out.extend(_problem_lines(report.warnings, report.errors, paint))
    return "\n".join(out) + "\n"


def _drift_live(item: DriftItem) -> str:
    if item.resource in ("status", "compatibility"):
        return "(not returned by the API)"
    return _value(item.live)


def _drift_markdown(report: DriftReport) -> str:
    out = [DRIFT_MARKER, "### Mini App Center drift", "",
           f"Endpoint: {_code(_safe_endpoint(report.endpoint))}", ""]
    if report.in_sync:
        out += [f"{IN_SYNC} ({report.apps_checked} mini app(s) checked)", ""]
    else:
        out += [_md(_drift_summary(report)), "", "| kind | count |", "| --- | ---: |"]
        out += [f"| {KIND_LABELS[k]} | {n} |" for k, n in report.summary.items()]
        out += ["", "| kind | address | field | expected | live | last applied |",
                "| --- | --- | --- | --- | --- | --- |"]
        for item in report.items[:_DRIFT_MD_MAX_ROWS]:
            cells = [
                KIND_LABELS[item.kind],
                _code(item.address),
                _md(item.field or ""),
                _code(_value(item.expected)),
                _code(_drift_live(item)),
                _code(_value(item.last_applied)),
            ]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        hidden = len(report.items) - _DRIFT_MD_MAX_ROWS
        if hidden > 0:
            out.append(f"\n… {hidden} more difference(s); see the JSON report (`--out`).")
        out.append("")
    if report.errors:
        out += _alert("WARNING", "Errors", [_md_problem(e) for e in report.errors])
    if report.warnings:
        out += _alert("IMPORTANT", "Warnings", [_md_problem(w) for w in report.warnings])
    return "\n".join(out) + "\n"
