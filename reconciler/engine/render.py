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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from reconciler.address import Address
from reconciler.engine.drift import KIND_LABELS, DriftItem, DriftReport
from reconciler.engine.plan import (
    ACTIONS,
    KNOWN_AFTER_APPLY,
    SYMBOLS,
    Change,
    Fact,
    Plan,
    PlanProblem,
)

Format = Literal["text", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("text", "json", "markdown")

MAX_VALUE_CHARS = 120  # of one value in Markdown and drift tables: a comment has a size limit
# A text plan shows each value whole, wrapped at this width (continuation lines indented);
# only a value beyond TEXT_VALUE_MAX_CHARS is cut, saying how much is left out and where to
# read it, so that one huge value cannot flood a terminal or a CI log.
TEXT_WRAP_CHARS = 92
TEXT_VALUE_MAX_CHARS = 20_000
_CONTINUATION = "  "  # under a field line's own indent
MAX_MESSAGE_LINES = 50  # of one failure in the summary: output stays bounded
NO_CHANGES = "No changes. Live state matches the manifests."
# Never say "matches" while something is left unchecked (an error below).
NO_CHANGES_WITH_ERRORS = "No changes to make, but not everything could be checked: see the errors."
MARKDOWN_MARKER = "<!-- miniapp-reconciler plan -->"
MARKDOWN_MAX_CHARS = 60000  # GitHub refuses comments over 65,536 characters
DEFAULT_FULL_PLAN_HINT = "the JSON plan (`reconciler plan --out plan.json`)"
RETRY_HINT = (
    "Re-run `reconciler apply` to retry: applied changes are recorded and will not be repeated."
)
# A saved plan is applied once: what it did is in the state, so applying it again is refused as
# stale. The one way on is a new plan (which each stale change's own message says too).
REPLAN_HINT = (
    "Run `reconciler plan` again (with --out to save it) and apply that plan: applied changes"
    " are recorded and will not be repeated."
)
DELETE_MARKER = "(DELETE)"

# Caps for the Markdown blocks that are never cut away, so they always leave room for apps.
_CAUTION_MAX_ITEMS = 200
_PROBLEM_MAX_ITEMS = 100
_MD_ITEM_MAX_CHARS = 500
_STUCK_MAX_NAMES = 20

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

# C0/C1 controls, DEL, line/paragraph separators, bidi overrides/isolates and marks, and the
# zero-width characters (a value holding one looks like another in a review).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff]"
)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$#!])")


@dataclass(frozen=True)
class _Line:
    action: str
    kind: Literal["change", "field", "note"]
    text: str


# --- public API ----------------------------------------------------------------------------


def render(plan: Plan, fmt: Format, *, color: bool, said: Collection[str] = ()) -> str:
    """``said``: warnings already shown on the same terminal (stderr), left out of the text
    so that each is read once; JSON and Markdown are documents and keep them all."""
    if fmt == "text":
        return render_text(plan, color=color, said=said)
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    raise ValueError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def render_json(plan: Plan) -> str:
    return json_lines(plan.as_dict())


def json_lines(document: Mapping[str, Any]) -> str:
    """``document`` as JSON, one top-level key a line, and one item a line for a top-level list
    or object: a saved plan diffs change by change (D44).

    ``json.dumps`` with ``indent`` runs CPython's pure-Python encoder; each value here is
    dumped without it, by the C encoder (about 9x faster on a 20 MB plan, bench/plan_json.py).
    Deterministic: keys in the document's own order, the default separators.
    """
    dump = json.JSONEncoder(ensure_ascii=False).encode
    lines = ["{"]
    last = len(document) - 1
    for index, (key, value) in enumerate(document.items()):
        comma = "," if index < last else ""
        if isinstance(value, list) and value:
            items = [dump(item) for item in value]
            close = "]"
        elif isinstance(value, dict) and value:
            items = [f"{dump(k)}: {dump(v)}" for k, v in value.items()]
            close = "}"
        else:
            lines.append(f"  {dump(key)}: {dump(value)}{comma}")
            continue
        lines.append(f"  {dump(key)}: {'[' if close == ']' else '{'}")
        lines.append(",\n".join(f"    {item}" for item in items))
        lines.append(f"  {close}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_text(plan: Plan, *, color: bool, said: Collection[str] = ()) -> str:
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
        changes_by_app = plan.changes_by_group()
        for app_id in dict.fromkeys([*adoptions, *changes_by_app]):
            out.append(paint(f"# {_clean(_group_head(plan, app_id, adoptions, changes_by_app))}",
                             "bold"))  # fmt: skip
            out += [paint(_adopt_line(item), "update") for item in adoptions.get(app_id, ())]
            for change in changes_by_app.get(app_id, ()):
                for line in _change_lines(change, full=True):
                    text = _text_line(line)
                    out.append(paint(text, line.action) if line.kind == "change" else text)
            out.append("")
        out.append(paint(_summary_line(plan), "bold"))
    out.extend(_problem_lines(plan.warnings, plan.errors, paint, said))
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
        out.setdefault(plan.group_of(item.address, item.app_id), []).append(item)
    return out


def _group_head(
    plan: Plan,
    group: str,
    adoptions: Mapping[str, Sequence[Fact]],
    changes: Mapping[str, Sequence[Change]],
) -> str:
    """The root address of a group (``miniapp[x]``, ``akana_app[y]``): every provider's own."""
    addresses = [item.address for item in adoptions.get(group, ())]
    addresses += [change.address for change in changes.get(group, ())]
    root = addresses[0].root
    return str(Address(root.provider, root.kind, root.key))


def _adopt_line(item: Fact) -> str:
    """``= miniapp[x]: adopt ...``: on the server, unknown to the state (nothing is written)."""
    return f"  = {_clean(item.address)}: {_clean(item.describe())}"


def _stuck_line(plan: Plan) -> str:
    stuck = ", ".join(_clean(app_id) for app_id in plan.stuck_apps)
    return (
        f"Stuck: {stuck}. Apply skips these apps (errors above) and applies the others;"
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
        "### Mini App Center plan" if set(plan.endpoints) <= {"miniappcenter"} else "### Plan",
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
            stuck = _md_names(list(plan.stuck_apps), _STUCK_MAX_NAMES)
            title = (
                f"**{len(plan.errors)} error(s): stuck app(s) {stuck} are skipped by"
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

    hint = full_plan_hint or DEFAULT_FULL_PLAN_HINT
    return body + _md_apps(plan, max_chars - len(body), hint)


def _md_summary_table(summary: Mapping[str, int]) -> list[str]:
    columns = [("To adopt", "adopt")] if summary.get("adopt") else []
    columns += [("To create", "create"), ("To update", "update"), ("To delete", "delete")]
    return [
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "---:|" * len(columns),
        "| " + " | ".join(str(summary.get(key, 0)) for _, key in columns) + " |",
    ]


def render_apply_result(
    result: Mapping[str, Any], *, color: bool, saved_plan: bool = False
) -> str:
    """``result`` has the shape of ``ApplyResult.as_dict()`` (taken as data: no import).
    ``saved_plan``: it applied a saved plan (``apply --plan``), which is never applied twice,
    so the advice after a failure is a new plan rather than another apply."""

    paint = _painter(color)
    counts = result.get("summary", {})
    applied, failed, skipped = (int(counts.get(k, 0)) for k in ("applied", "failed", "skipped"))
    interrupted = bool(result.get("interrupted", False))
    stuck_apps: Sequence[Mapping[str, Any]] = result.get("stuck_apps", ())
    unresolved: Sequence[str] = result.get("unresolved", ())
    unfinished = bool(failed or skipped or stuck_apps or unresolved)
    # "complete" only when it is: a run with a failure says so in its first word.
    verb = ("Apply interrupted" if interrupted
            else "Apply incomplete" if unfinished else "Apply complete")  # fmt: skip
    style = "error" if failed or interrupted else ("warning" if skipped else "ok")
    adopted, probe_reads = int(counts.get("adopted", 0)), int(counts.get("probe_reads", 0))
    extra = f", {adopted} adopted" if adopted else ""
    line = f"{verb}: {applied} applied, {failed} failed, {skipped} skipped{extra}."
    if probe_reads:
        line += f" ({probe_reads} version read(s) spent finding unknown versions.)"
    out = [paint(line, style)]
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
            # A message of several lines (a 400's fields, each at its manifest line) keeps
            # its line breaks; each line is cleaned of other control characters.
            first, *more = str(row.get("message") or "").split("\n")
            if first or more:
                line += f": {_clean(first)}"
            lines = [line, *(f"    {_clean(text)}" for text in more[:MAX_MESSAGE_LINES])]
            if len(more) > MAX_MESSAGE_LINES:
                lines.append(f"    ... {len(more) - MAX_MESSAGE_LINES} more line(s)")
            out += [paint(text, row_style) if outcome == "failed" else text for text in lines]
    if unfinished or interrupted:
        out += ["", REPLAN_HINT if saved_plan else RETRY_HINT]
    return "\n".join(out) + "\n"


# --- lines shared by text and Markdown -----------------------------------------------------


def _problem_lines(
    warnings: Sequence[PlanProblem],
    errors: Sequence[PlanProblem],
    paint: Callable[[str, str], str],
    said: Collection[str] = (),
) -> list[str]:
    """The closing block of a text report: a blank line, then warnings, then errors
    (``said``: the warnings already shown, by their text, left out)."""
    warnings = [w for w in warnings if str(w) not in said]
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


def _change_lines(change: Change, *, full: bool = False) -> list[_Line]:
    """``full``: each value whole, wrapped over continuation lines (the text plan); else
    shortened to one line (Markdown, which has a size budget)."""
    head = f"{SYMBOLS[change.action]} {_clean(change.address)}"
    step = _status_step(change)
    if step is not None:
        head += f"  {_clean(step[0])} -> {_clean(step[1])}"
    if change.action == "delete":
        head += f"  {DELETE_MARKER}"
    lines = [_Line(change.action, "change", head)]
    if step is None:
        for key, value in _fields(change, full=full):
            line = f"{_clean(key)}: {value}"
            first, *more = _wrapped(line) if full else [line]
            lines.append(_Line(change.action, "field", first))
            lines += [_Line(change.action, "field", _CONTINUATION + x) for x in more]
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


def _fields(change: Change, *, full: bool = False) -> list[tuple[str, str]]:
    # ``payload`` is never shown: it duplicates ``after`` and is the wire body.
    def value(item: Any) -> str:
        return _full_value(item) if full else _value(item)

    if change.action == "create":
        return [(k, value(v)) for k, v in (change.after or {}).items()]
    if change.action == "delete":
        return [(k, value(v)) for k, v in (change.before or {}).items()]
    if change.fields:
        return [(f.path, f"{value(f.before)} -> {value(f.after)}") for f in change.fields]
    before, after = change.before or {}, change.after or {}
    keys = [*before, *(k for k in after if k not in before)]
    return [
        (k, f"{value(before.get(k))} -> {value(after.get(k))}")
        for k in keys
        if (k in before) != (k in after) or before.get(k) != after.get(k)
    ]


def _value(value: Any) -> str:
    if value == KNOWN_AFTER_APPLY:
        return KNOWN_AFTER_APPLY
    return _shorten(_clean(json.dumps(value, ensure_ascii=False, default=str)))


def _full_value(value: Any) -> str:
    """The whole value (up to TEXT_VALUE_MAX_CHARS, then a note saying what is left out)."""
    if value == KNOWN_AFTER_APPLY:
        return KNOWN_AFTER_APPLY
    text = _clean(json.dumps(value, ensure_ascii=False, default=str))
    if len(text) <= TEXT_VALUE_MAX_CHARS:
        return text
    left = len(text) - TEXT_VALUE_MAX_CHARS
    return f"{text[:TEXT_VALUE_MAX_CHARS]} … ({left} more characters: see the JSON plan)"


def _wrapped(text: str, width: int = TEXT_WRAP_CHARS) -> list[str]:
    """``text`` over lines of at most ``width`` characters, broken after a ", " or a space
    where there is one (else anywhere). Nothing is dropped or added: the lines joined give
    ``text`` back, so a value can be read, and copied, whole."""
    lines: list[str] = []
    while len(text) > width:
        cut = max(text.rfind(", ", 0, width - 1) + 2, text.rfind(" ", 0, width) + 1)
        if cut < width // 3:  # no break point worth taking: break the word
            cut = width
        lines.append(text[:cut])
        text = text[cut:]
    return [*lines, text]


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


def _md_names(names: list[str], limit: int) -> str:
    shown = ", ".join(_code(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- Markdown: the apps, within the comment's budget (D43) ---------------------------------
# Every app is always listed. When the sections do not all fit, small sections stay whole and
# the big ones share the rest equally; a cut section keeps its changes in the order below and
# hides only the tail of that order, with a count. When not even one short section per app
# fits, the apps are listed one line each (apps with deletes first) as far as they fit.

_SECTION_END = "\n\n</details>\n\n"
_DIFF_OPEN, _DIFF_CLOSE = "```diff\n", "\n```"


def _md_priority(
    change: Change, errors: frozenset[Address], warned: frozenset[Address]
) -> tuple[int, int]:
    """Lower first: what an error names, deletes, overwrites of changes made outside (and what
    a warning names), other updates, creates; inside each, the app before its parts (by the
    address's depth: any provider's root comes first)."""
    if change.address in errors:
        rank = 0
    elif change.action == "delete":
        rank = 1
    elif change.reason or change.address in warned:
        rank = 2
    elif change.action == "update":
        rank = 3
    else:
        rank = 4
    return rank, len(change.address.path())


def _md_apps(plan: Plan, budget: int, hint: str) -> str:
    groups = plan.changes_by_group()
    cut_note = _cut_note(hint)
    heads = {app_id: _md_summary(app_id, changes) for app_id, changes in groups.items()}
    blocks = {
        app_id: ["\n".join(_diff_line(x) for x in _change_lines(c)) for c in changes]
        for app_id, changes in groups.items()
    }
    full = {app_id: _md_section(heads[app_id], blocks[app_id], "") for app_id in groups}
    if sum(len(section) for section in full.values()) <= budget:
        return "".join(full.values())
    # The least a section can take: all its changes hidden, or whole when that is shorter.
    least = {
        app_id: len(_md_section(heads[app_id], [], _md_hidden_note(app_id, changes)))
        for app_id, changes in groups.items()
    }
    floor = {app_id: min(len(full[app_id]), least[app_id]) for app_id in groups}
    if sum(floor.values()) + len(cut_note) > budget:
        return _md_app_list(plan, groups, budget, cut_note)
    cap = _fair_cap(
        [len(full[app_id]) for app_id in groups],
        [floor[app_id] for app_id in groups],
        budget - len(cut_note),
    )
    errors = frozenset(e.address for e in plan.errors if e.address)
    warned = frozenset(w.address for w in plan.warnings if w.address)
    out: list[str] = []
    for app_id, changes in groups.items():
        if len(full[app_id]) <= cap:
            out.append(full[app_id])
            continue
        order = sorted(
            range(len(changes)), key=lambda i: (_md_priority(changes[i], errors, warned), i)
        )
        out.append(
            _md_cut_section(app_id, changes, blocks[app_id], heads[app_id], order,
                            max(cap, least[app_id]))
        )  # fmt: skip
    return "".join(out) + cut_note


def _fair_cap(full: list[int], least: list[int], budget: int) -> int:
    """The largest size ``c`` such that every section cut to ``max(c, its least)`` (or whole,
    when that is smaller) fits in ``budget``: small sections stay whole, big ones share."""
    low, high = 0, max(full, default=0)
    while low < high:
        mid = (low + high + 1) // 2
        used = sum(f if f <= mid else max(mid, m) for f, m in zip(full, least, strict=True))
        low, high = (mid, high) if used <= budget else (low, mid - 1)
    return low


def _md_cut_section(
    app_id: str,
    changes: list[Change],
    blocks: list[str],
    head: str,
    order: list[int],
    cap: int,
) -> str:
    """Take the changes in ``order`` while the section stays within ``cap``; stop at the first
    that does not fit, so that what is hidden is always the tail of the order."""
    deletes_left = sum(1 for c in changes if c.action == "delete")
    kept: list[int] = []
    block_chars = 0
    for i in order:
        deletes = deletes_left - (changes[i].action == "delete")
        note = _hidden_note(app_id, len(changes) - len(kept) - 1, deletes)
        if _section_size(head, block_chars + len(blocks[i]), len(kept) + 1, note) > cap:
            break
        kept.append(i)
        block_chars += len(blocks[i])
        deletes_left = deletes
    shown = sorted(kept)
    note = _hidden_note(app_id, len(changes) - len(kept), deletes_left)
    return _md_section(head, [blocks[i] for i in shown], note)


def _section_size(head: str, block_chars: int, blocks: int, note: str) -> int:
    """``len(_md_section(head, those blocks, note))`` without building it."""
    diff = len(_DIFF_OPEN) + block_chars + blocks - 1 + len(_DIFF_CLOSE) if blocks else 0
    gap = 2 if blocks and note else 0
    return len(head) + diff + gap + len(note) + len(_SECTION_END)


def _md_summary(app_id: str, changes: list[Change]) -> str:
    counts = _action_counts(changes)
    return (
        f"<details><summary><code>{html.escape(_clean(app_id))}</code>: {counts['create']} to"
        f" create, {counts['update']} to update, {counts['delete']} to delete</summary>\n\n"
    )


def _action_counts(changes: Sequence[Change]) -> dict[str, int]:
    counts: dict[str, int] = {action: 0 for action in ACTIONS}
    for change in changes:
        counts[change.action] += 1
    return counts


def _md_section(head: str, blocks: list[str], note: str) -> str:
    parts = [_DIFF_OPEN + "\n".join(blocks) + _DIFF_CLOSE] if blocks else []
    if note:
        parts.append(note)
    return head + "\n\n".join(parts) + _SECTION_END


def _md_hidden_note(app_id: str, hidden: Sequence[Change]) -> str:
    return _hidden_note(app_id, len(hidden), sum(1 for c in hidden if c.action == "delete"))


def _hidden_note(app_id: str, hidden: int, deletes: int) -> str:
    if not hidden:
        return ""
    of_them = f", {deletes} of them deletes" if deletes else ""
    return f"… {hidden} more change(s) of {_code(app_id)} not shown{of_them} (see the JSON plan)."


def _md_app_list(
    plan: Plan, groups: Mapping[str, list[Change]], budget: int, cut_note: str
) -> str:
    """One line per app, as many as fit: apps with deletes first, then apps with errors, then
    the others; shown in plan order, then a count of the apps left out and their changes."""
    error_apps = {e.app_id for e in plan.errors if e.app_id}
    counts = {app_id: _action_counts(changes) for app_id, changes in groups.items()}
    lines = {
        app_id: f"- {_code(app_id)}: {n['create']} to create, {n['update']} to update,"
        f" {n['delete']} to delete\n"
        for app_id, n in counts.items()
    }
    intro = (
        f"Too many mini apps ({len(groups)}) to show their changes here: one line each,"
        " apps with deletes listed first, then apps with errors.\n\n"
    )
    total = _action_counts(plan.changes)
    used = len(intro) + len(_unlisted_note(len(groups), total)) + 1 + len(cut_note)
    listed: set[str] = set()
    ranked = sorted(
        groups, key=lambda a: 0 if counts[a]["delete"] else (1 if a in error_apps else 2)
    )
    for app_id in ranked:
        if used + len(lines[app_id]) > budget:
            break
        listed.add(app_id)
        used += len(lines[app_id])
    out = intro + "".join(lines[app_id] for app_id in groups if app_id in listed)
    left = [app_id for app_id in groups if app_id not in listed]
    if left:
        left_counts: dict[str, int] = {
            a: sum(counts[app_id][a] for app_id in left) for a in ACTIONS
        }
        out += _unlisted_note(len(left), left_counts)
    return out + "\n" + cut_note


def _unlisted_note(apps: int, counts: Mapping[str, int]) -> str:
    return (
        f"\n… {apps} more app(s) not listed ({counts['create']} to create,"
        f" {counts['update']} to update, {counts['delete']} to delete among them).\n"
    )


def _cut_note(hint: str) -> str:
    return f"Cut to fit the comment size limit. The full plan is in {hint}.\n"


# --- drift report ----------------------------------------------------------------------------

DRIFT_MARKER = "<!-- miniapp-reconciler drift -->"
IN_SYNC = "In sync: live state matches the manifests and the last apply."
_DRIFT_STYLE = {"changed_outside": "delete", "missing": "delete", "unmanaged": "update",
                "pending": "create"}
_DRIFT_MD_MAX_ROWS = 500


def render_drift(
    report: DriftReport, fmt: Format, *, color: bool, said: Collection[str] = ()
) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return _drift_markdown(report)
    if fmt == "text":
        return _drift_text(report, color=color, said=said)
    raise ValueError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def _drift_summary(report: DriftReport) -> str:
    apps = len({str(item.address.root) for item in report.items})
    parts = ", ".join(f"{n} {KIND_LABELS[k]}" for k, n in report.summary.items())
    # "app(s)", not "mini app(s)": a fleet's report counts every provider's apps
    return (
        f"Drift: {len(report.items)} difference(s) in {apps} of {report.apps_checked}"
        f" app(s): {parts}."
    )


def _drift_text(report: DriftReport, *, color: bool, said: Collection[str] = ()) -> str:
    paint = _painter(color)
    out: list[str] = []  # the endpoint is said on stderr, as for plans
    if report.in_sync:
        out.append(paint(f"{IN_SYNC} ({report.apps_checked} app(s) checked)", "ok"))
    else:
        # grouped under each item's root address, the plan's headings: an Akana app's
        # differences are `# akana_app[NAME]`, never `# miniapp[NAME]`
        by_app: dict[str, list[DriftItem]] = {}
        for item in report.items:
            by_app.setdefault(str(item.address.root), []).append(item)
        for root, items in by_app.items():
            out.append(paint(f"# {_clean(root)}", "bold"))
            for item in items:
                where = _clean(item.address) + (f" {_clean(item.field)}" if item.field else "")
                label = f"{KIND_LABELS[item.kind]:<15}"
                out.append(f"  {paint(label, _DRIFT_STYLE[item.kind])} {where}")
                out.append(f"      expected (manifest): {_value(item.expected)}")
                out.append(f"      live:                {_drift_live(item)}")
                out.append(f"      last applied:        {_value(item.last_applied)}")
            out.append("")
        out.append(paint(_drift_summary(report), "bold"))
    out.extend(_problem_lines(report.warnings, report.errors, paint, said))
    return "\n".join(out) + "\n"


def _drift_live(item: DriftItem) -> str:
    if item.resource in ("status", "compatibility"):
        return "(not returned by the API)"
    return _value(item.live)


def _drift_markdown(report: DriftReport) -> str:
    out = [DRIFT_MARKER, "### Drift", "",
           f"Endpoint: {_code(_safe_endpoint(report.endpoint))}", ""]
    if report.in_sync:
        out += [f"{IN_SYNC} ({report.apps_checked} app(s) checked)", ""]
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
