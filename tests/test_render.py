"""Tests for reconciler.engine.render: Plans built by hand, no HTTP.

Golden files live in tests/golden/ and are compared byte for byte. After a deliberate change
to the output, regenerate them and review the diff before committing:

    UPDATE_GOLDEN=1 python -m pytest tests/test_render.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.address import Address, parse_address
from reconciler.engine.plan import Change, FieldChange, Plan, PlanProblem
from reconciler.engine.render import (
    MARKDOWN_MARKER,
    NO_CHANGES,
    RETRY_HINT,
    render,
    render_apply_result,
    render_json,
    render_markdown,
    render_text,
)
from reconciler.providers.miniappcenter.addresses import app_address
from reconciler.providers.miniappcenter.vocabulary import PROVIDER, ROOT_KINDS, Learned

GOLDEN = Path(__file__).parent / "golden"
ENDPOINT = "https://sandbox.miniappcenter.com/api"
A = "com.genexus.verdant.coffeemuffins"
B = "com.genexus.verdant.tea"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def app(app_id: str = A) -> str:
    return f"miniapp[{app_id}]"


def at(address: str) -> Address:
    return parse_address(address, ROOT_KINDS)


def change(
    address: str,
    resource: Any,
    action: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    app_id: str = A,
    **extra: Any,
) -> Change:
    return Change(at(address), resource, action, app_id, before, after, **extra)


def plan_of(*changes: Change, **extra: Any) -> Plan:
    return Plan(endpoints={PROVIDER: ENDPOINT}, changes=changes, **extra)


def change_block(text: str) -> list[str]:
    """The lines of the per-app blocks: up to the closing summary line."""
    lines = text.splitlines()
    return lines[: lines.index(next(x for x in lines if x.startswith("Plan: ")))]


# --- the golden plan: every resource kind, every action, reasons and problems ------------

V = f"{app()}.version[1.0.0]"
GOLDEN_PLAN = Plan(
    endpoints={PROVIDER: ENDPOINT},
    changes=(
        change(
            app(),
            "miniapp",
            "create",
            None,
            {"name": "Coffee & Muffins", "type": "Native", "keywords": "coffee cafe"},
            payload={"id": A, "name": "Coffee & Muffins", "type": "Native"},
        ),
        change(
            f"{app()}.attribute[COUNTRY]",
            "attribute",
            "create",
            None,
            {"value": "Uruguay"},
            key="COUNTRY",
            depends_on=(app(),),
        ),
        change(
            f"{app()}.location[Central]",
            "location",
            "create",
            None,
            {"geo_point": "POINT(-56.16 -34.92)"},
            key="Central",
        ),
        change(
            V,
            "version",
            "create",
            None,
            {
                "code": "1.0.0",
                "platform_id": "iOS",
                "integrated_security": True,
                "service_url": "https://apps6.genexus.com/Id555317f4080a0da816dc4eb15d69bc1b/",
            },
            key="1.0.0",
            version_code="1.0.0",
        ),
        change(
            f"{V}.compatibility[2]",
            "compatibility",
            "create",
            None,
            {"superapp_version": 2},
            key="2",
            version_code="1.0.0",
        ),
        change(
            f"{V}.status[send_to_review]",
            "status",
            "update",
            {"status": "pending"},
            {"status": "waiting_for_review"},
            step="send_to_review",
            version_code="1.0.0",
        ),
        change(
            app(B),
            "miniapp",
            "update",
            {"name": "Tea", "description": "Old"},
            {"name": "Tea House", "description": "New"},
            app_id=B,
            fields=(
                FieldChange("description", "Old", "New"),
                FieldChange("name", "Tea", "Tea House"),
            ),
            reason="changed outside since the last apply",
        ),
        change(
            f"{app(B)}.attribute[COUNTRY]",
            "attribute",
            "update",
            {"value": "Chile"},
            {"value": "Uruguay"},
            app_id=B,
        ),
        change(
            f"{app(B)}.version[2.0.0]",
            "version",
            "update",
            {"main_name": "start"},
            {"main_name": "x" * 200},
            app_id=B,
            fields=(FieldChange("main_name", "start", "x" * 200),),
        ),
        change(
            f"{app(B)}.version[2.0.0].compatibility[1]",
            "compatibility",
            "delete",
            {"superapp_version": 1},
            None,
            app_id=B,
        ),
        change(
            f"{app(B)}.location[Old]",
            "location",
            "delete",
            {"geo_point": "POINT(1 2)"},
            None,
            app_id=B,
            target_id=7,
        ),
        change(
            app("com.genexus.verdant.gone"),
            "miniapp",
            "delete",
            {"name": "Gone"},
            None,
            app_id="com.genexus.verdant.gone",
            reason="ensure: absent",
        ),
    ),
    warnings=(
        PlanProblem(
            "version is no longer in the manifest",
            app_id=B,
            address=at(f"{app(B)}.version[0.9.0]"),
        ),
        PlanProblem("2 mini app(s) recorded in the state are in no manifest"),
    ),
    errors=(
        PlanProblem(
            "refusing to delete a protected mini app (protect: true)",
            app_id="com.genexus.verdant.gone",
            address=at(app("com.genexus.verdant.gone")),
        ),
    ),
    state_lineage="3f2a",
    state_serial=4,
    fingerprints={app_address(B): "sha256:bb", app_address(A): "sha256:aa"},
    apps=(A, B, "com.genexus.verdant.gone"),
)

APPLY_RESULT: dict[str, Any] = {
    "summary": {"applied": 2, "failed": 1, "skipped": 1},
    "interrupted": False,
    "results": [
        {"address": app(), "resource": "miniapp", "action": "create", "app_id": A,
         "outcome": "applied"},
        {"address": f"{app()}.location[Central]", "resource": "location", "action": "create",
         "app_id": A, "outcome": "failed", "message": "HTTP 422: geo_point is not a POINT"},
        {"address": f"{V}.status[send_to_review]", "resource": "status", "action": "update",
         "app_id": A, "outcome": "skipped", "message": "a change it depends on failed"},
        {"address": f"{app()}.attribute[COUNTRY]", "resource": "attribute", "action": "create",
         "app_id": A, "outcome": "applied"},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "produce"),
    [
        ("plan.txt", lambda: render_text(GOLDEN_PLAN, color=False)),
        ("plan_color.txt", lambda: render_text(GOLDEN_PLAN, color=True)),
        ("plan.md", lambda: render_markdown(GOLDEN_PLAN)),
        ("plan.json", lambda: render_json(GOLDEN_PLAN)),
        ("apply_result.txt", lambda: render_apply_result(APPLY_RESULT, color=False)),
    ],
)
def test_golden(name: str, produce: Any) -> None:
    path = GOLDEN / name
    actual: bytes = produce().encode("utf-8")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(actual)
    assert path.exists(), f"missing {path}; run with UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_bytes()


# --- text: one change at a time --------------------------------------------------------------

LONG = "https://example.com/" + "a" * 300

CASES: list[tuple[str, Change, list[str]]] = [
    (
        "miniapp create shows after values as JSON literals",
        change(app(), "miniapp", "create", None, {"name": "Coffee", "type": "Native"}),
        [f"  + {app()}", '      name: "Coffee"', '      type: "Native"'],
    ),
    (
        "miniapp update uses field-level diffs",
        change(
            app(), "miniapp", "update", {"name": "Old"}, {"name": "New"},
            fields=(FieldChange("name", "Old", "New"),),
        ),
        [f"  ~ {app()}", '      name: "Old" -> "New"'],
    ),
    (
        "update without fields compares before/after and skips equal keys",
        change(
            app(), "miniapp", "update",
            {"name": "Same", "keywords": "a"}, {"name": "Same", "keywords": "b", "icon": "x"},
        ),
        [f"  ~ {app()}", '      keywords: "a" -> "b"', '      icon: null -> "x"'],
    ),
    (
        "miniapp delete is marked and shows before values and the reason",
        change(app(), "miniapp", "delete", {"name": "Coffee"}, None, reason="ensure: absent"),
        [f"  - {app()}  (DELETE)", '      name: "Coffee"', "      (ensure: absent)"],
    ),
    (
        "attribute create",
        change(f"{app()}.attribute[COUNTRY]", "attribute", "create", None, {"value": "Uruguay"}),
        [f"  + {app()}.attribute[COUNTRY]", '      value: "Uruguay"'],
    ),
    (
        "attribute update",
        change(
            f"{app()}.attribute[COUNTRY]", "attribute", "update",
            {"value": "Chile"}, {"value": "Uruguay"},
        ),
        [f"  ~ {app()}.attribute[COUNTRY]", '      value: "Chile" -> "Uruguay"'],
    ),
    (
        "attribute delete",
        change(f"{app()}.attribute[COUNTRY]", "attribute", "delete", {"value": "Chile"}, None),
        [f"  - {app()}.attribute[COUNTRY]  (DELETE)", '      value: "Chile"'],
    ),
    (
        "location update with a reason",
        change(
            f"{app()}.location[Central]", "location", "update",
            {"geo_point": "POINT(1 2)"}, {"geo_point": "POINT(3 4)"},
            fields=(FieldChange("geo_point", "POINT(1 2)", "POINT(3 4)"),),
            reason="changed outside since the last apply",
        ),
        [
            f"  ~ {app()}.location[Central]",
            '      geo_point: "POINT(1 2)" -> "POINT(3 4)"',
            "      (changed outside since the last apply)",
        ],
    ),
    (
        "duplicate location delete keeps its #id address",
        change(
            f"{app()}.location[Central]#12", "location", "delete",
            {"geo_point": "POINT(1 2)"}, None, target_id=12,
        ),
        [f"  - {app()}.location[Central]#12  (DELETE)", '      geo_point: "POINT(1 2)"'],
    ),
    (
        "version create: booleans and lists are JSON literals",
        change(
            V, "version", "create", None,
            {"code": "1.0.0", "integrated_security": True, "tags": [1, 2], "x": None},
        ),
        [
            f"  + {V}",
            '      code: "1.0.0"',
            "      integrated_security: true",
            "      tags: [1, 2]",
            "      x: null",
        ],
    ),
    (
        "version update",
        change(
            V, "version", "update", {"integrated_security": True},
            {"integrated_security": False},
            fields=(FieldChange("integrated_security", True, False),),
        ),
        [f"  ~ {V}", "      integrated_security: true -> false"],
    ),
    (
        "compatibility create",
        change(f"{V}.compatibility[2]", "compatibility", "create", None, {"superapp_version": 2}),
        [f"  + {V}.compatibility[2]", "      superapp_version: 2"],
    ),
    (
        "compatibility delete",
        change(f"{V}.compatibility[1]", "compatibility", "delete", {"superapp_version": 1}, None),
        [f"  - {V}.compatibility[1]  (DELETE)", "      superapp_version: 1"],
    ),
    (
        "status step on one line, no field lines",
        change(
            f"{V}.status[in_review]", "status", "update",
            {"status": "waiting_for_review"}, {"status": "in_review"}, step="in_review",
        ),
        [f"  ~ {V}.status[in_review]  waiting_for_review -> in_review"],
    ),
    (
        "long values are shown whole, wrapped (never cut)",
        change(app(), "miniapp", "create", None, {"icon": "x" * 150}),
        [f"  + {app()}", "      icon: " + ('"' + "x" * 150 + '"')[:86],
         "        " + ('"' + "x" * 150 + '"')[86:]],
    ),
    (
        "the payload is never rendered",
        change(
            app(), "miniapp", "create", None, {"name": "N"},
            payload={"name": "N", "token": "tok_9f8e7d6c5b4a"},
        ),
        [f"  + {app()}", '      name: "N"'],
    ),
    (
        "control characters and bidi overrides are escaped",
        change(
            "miniapp[com.x\x1b[31m]", "miniapp", "create", None, {"name": "a\x1bb\u202ec\x85"},
            app_id="com.x\x1b[31m",
        ),
        ["  + miniapp[com.x\\u001b[31m]", '      name: "a\\u001bb\\u202ec\\u0085"'],
    ),
    (
        "zero-width characters and bidi marks are escaped (a value that looks like another)",
        change(app(), "miniapp", "create", None, {"name": "a\u200bb\u200fc\u2060d\ufeffe\u061c"}),
        [f"  + {app()}", '      name: "a\\u200bb\\u200fc\\u2060d\\ufeffe\\u061c"'],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "item", "expected"), CASES, ids=[c[0] for c in CASES])
def test_change_lines(case: str, item: Change, expected: list[str]) -> None:
    text = render_text(plan_of(item), color=False)
    heading = f"# miniapp[{item.app_id}]".replace("\x1b", "\\u001b")
    assert change_block(text) == [heading, *expected, ""]
    assert "\x1b" not in text
    assert "tok_" not in text


def test_text_values_are_whole_and_wrapped_markdown_values_shortened() -> None:
    words = ", ".join(f"word {n}" for n in range(200))
    item = change(app(), "miniapp", "create", None, {"description": words, "n": 1})
    lines = render_text(plan_of(item), color=False).splitlines()
    start = lines.index(next(x for x in lines if x.startswith("      description: ")))
    end = lines.index('      n: 1')
    block = lines[start:end]
    assert len(block) > 10 and all(len(x) <= 100 for x in block)
    joined = block[0].removeprefix("      description: ") + "".join(
        x.removeprefix("        ") for x in block[1:]
    )
    assert joined == json.dumps(words) and "…" not in "\n".join(lines)
    markdown = render_markdown(plan_of(item))
    assert json.dumps(words)[:119] + "…" in markdown


def test_a_huge_text_value_is_cut_saying_so() -> None:
    item = change(app(), "miniapp", "create", None, {"description": "é" * 30_000})
    text = render_text(plan_of(item), color=False)
    assert "(10002 more characters: see the JSON" in text
    assert len(text) < 25_000


# --- text: the whole plan --------------------------------------------------------------------


def test_text_header_summary_and_grouping_in_plan_order() -> None:
    text = render_text(GOLDEN_PLAN, color=False)
    lines = text.splitlines()
    # The endpoint is said once, on stderr, by the command: not in the text document.
    assert "Endpoint" not in text and lines[0] == f"# {app()}"
    headings = [x for x in lines if x.startswith("# ")]
    assert headings == [f"# {app()}", f"# {app(B)}", "# miniapp[com.genexus.verdant.gone]"]
    assert "Plan: 5 to create, 4 to update, 3 to delete." in lines
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_text_groups_interleaved_changes_by_app() -> None:
    a1 = change(f"{app()}.attribute[X]", "attribute", "create", None, {"value": "1"})
    b1 = change(f"{app(B)}.attribute[X]", "attribute", "create", None, {"value": "2"}, app_id=B)
    a2 = change(f"{app()}.attribute[Y]", "attribute", "create", None, {"value": "3"})
    block = change_block(render_text(plan_of(a1, b1, a2), color=False))
    assert [x for x in block if x.startswith(("#", "  +"))] == [
        f"# {app()}",
        f"  + {app()}.attribute[X]",
        f"  + {app()}.attribute[Y]",
        f"# {app(B)}",
        f"  + {app(B)}.attribute[X]",
    ]


def test_problems_come_last_warnings_then_errors_with_address() -> None:
    lines = render_text(GOLDEN_PLAN, color=False).splitlines()
    summary_at = lines.index("Plan: 5 to create, 4 to update, 3 to delete.")
    assert lines[summary_at + 1 :] == [
        "",
        f"Warning: {app(B)}.version[0.9.0]: version is no longer in the manifest",
        "Warning: 2 mini app(s) recorded in the state are in no manifest",
        "Error: miniapp[com.genexus.verdant.gone]: refusing to delete a protected mini app"
        " (protect: true)",
    ]


def test_problem_falls_back_to_app_id() -> None:
    plan = plan_of(warnings=(PlanProblem("status unknown", app_id=A),))
    assert render_text(plan, color=False).splitlines()[-1] == f"Warning: {A}: status unknown"


def test_no_changes() -> None:
    assert render_text(plan_of(), color=False) == f"{NO_CHANGES}\n"
    with_warning = render_text(plan_of(warnings=(PlanProblem("careful"),)), color=False)
    assert with_warning.splitlines() == [NO_CHANGES, "", "Warning: careful"]
    assert "Plan:" not in with_warning


def test_color_only_adds_ansi_codes() -> None:
    plain = render_text(GOLDEN_PLAN, color=False)
    colored = render_text(GOLDEN_PLAN, color=True)
    assert "\x1b" not in plain
    assert ANSI.sub("", colored) == plain
    assert f"\x1b[32m  + {app()}\x1b[0m" in colored
    assert f"\x1b[33m  ~ {app(B)}\x1b[0m" in colored
    assert "\x1b[1;31m  - miniapp[com.genexus.verdant.gone]  (DELETE)\x1b[0m" in colored


def test_endpoint_credentials_are_never_shown() -> None:
    plan = Plan(endpoints={PROVIDER: "https://user:s3cret@mac.example.com:8443/api"}, changes=())
    for out in (render_text(plan, color=False), render_markdown(plan)):
        assert "s3cret" not in out and "user" not in out
    assert "https://mac.example.com:8443/api" in render_markdown(plan)


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=30), value=st.text(max_size=300), address=st.text(max_size=40))
def test_plain_text_never_contains_control_characters(key: str, value: str, address: str) -> None:
    where = app_address(address)
    item = Change(where, "attribute", "update", address, {key: "x"}, {key: value})
    text = render_text(plan_of(item, warnings=(PlanProblem(value, address=where),)), color=False)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trips_through_plan_from_dict() -> None:
    out = render_json(GOLDEN_PLAN)
    assert out.endswith("}\n")
    data = json.loads(out)
    assert data == GOLDEN_PLAN.as_dict()
    read = Plan.from_dict(json.loads(out), root_kinds=ROOT_KINDS, read_fact=Learned.from_dict)
    assert read.as_dict() == GOLDEN_PLAN.as_dict()
    assert list(data) == list(GOLDEN_PLAN.as_dict())  # key order is the contract's


def test_json_is_one_change_a_line() -> None:
    """A saved plan diffs change by change, and is written by the C encoder (D44)."""
    out = render_json(GOLDEN_PLAN)
    assert json.loads(out) == GOLDEN_PLAN.as_dict()
    lines = out.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    rows = [line for line in lines if line.startswith('    {"provider": ')]
    assert [json.loads(row.removesuffix(",")) for row in rows] == [
        c.as_dict() for c in GOLDEN_PLAN.changes
    ]
    assert '    "miniapp[com.genexus.verdant.tea]": "sha256:bb"' in lines  # one key a line
    assert '  "format_version": 2,' in lines


def test_json_keeps_non_ascii_and_payload() -> None:
    item = change(app(), "miniapp", "create", None, {"name": "Café"}, payload={"name": "Café"})
    out = render_json(plan_of(item))
    assert '"name": "Café"' in out
    assert json.loads(out)["changes"][0]["payload"] == {"name": "Café"}


# --- Markdown ----------------------------------------------------------------------------------


def test_markdown_layout() -> None:
    md = render_markdown(GOLDEN_PLAN)
    assert md.splitlines()[0] == MARKDOWN_MARKER
    assert "### Mini App Center plan" in md
    assert f"`{ENDPOINT}`" in md
    assert "| 5 | 4 | 3 |" in md
    order = [md.index(s) for s in ("| 5 | 4 | 3 |", "[!CAUTION]", "[!WARNING]", "[!IMPORTANT]")]
    assert order == sorted(order)
    assert order[-1] < md.index("<details>")
    assert md.count("<details>") == 3 == md.count("</details>")
    assert f"<summary><code>{B}</code>: 0 to create, 3 to update, 2 to delete</summary>" in md
    assert "not shown" not in md


def test_markdown_caution_lists_every_delete() -> None:
    md = render_markdown(GOLDEN_PLAN)
    caution = md[md.index("> [!CAUTION]") : md.index("> [!WARNING]")]
    assert "deletes 3 object(s)" in caution
    for address in (
        f"{app(B)}.version[2.0.0].compatibility[1]",
        f"{app(B)}.location[Old]",
        "miniapp[com.genexus.verdant.gone]",
    ):
        assert f"`{address}`" in caution
    assert "(ensure: absent)" in caution


def test_markdown_without_deletes_has_no_caution() -> None:
    item = change(app(), "miniapp", "create", None, {"name": "N"})
    md = render_markdown(plan_of(item))
    assert "[!CAUTION]" not in md and "[!WARNING]" not in md
    assert "| 1 | 0 | 0 |" in md


def test_markdown_diff_block_mirrors_text_lines_with_a_gutter() -> None:
    md = render_markdown(GOLDEN_PLAN)
    blocks = re.findall(r"```diff\n(.*?)\n```", md, flags=re.S)
    diff_lines = [line for block in blocks for line in block.splitlines()]
    # The text shows a long value whole over continuation lines (8 spaces); the Markdown,
    # which has a size budget, shortens it on its one line.
    text_lines: list[str] = []
    for x in change_block(render_text(GOLDEN_PLAN, color=False)):
        if x.startswith(" " * 8):
            text_lines[-1] += x.removeprefix(" " * 8)  # a wrapped value, joined back
        elif x and x[0] != "#":
            text_lines.append(x)
    assert len(diff_lines) == len(text_lines)
    for diff, text in zip(diff_lines, text_lines, strict=True):
        if diff.endswith("…"):
            assert text[1:].startswith(diff[1:-1]), (diff, text)
        else:
            assert diff[1:] == text[1:]
    assert f"+ + {app()}" in diff_lines
    assert f"! ~ {app(B)}" in diff_lines
    assert "- - miniapp[com.genexus.verdant.gone]  (DELETE)" in diff_lines
    assert '-     name: "Gone"' in diff_lines
    assert "\x1b" not in md


def test_markdown_escapes_ids_and_messages_outside_code() -> None:
    evil = "com.x<script>&|*_"
    item = change(f"miniapp[{evil}]", "miniapp", "delete", {"name": "<b>"}, None, app_id=evil,
                  reason="<img src=x>")  # fmt: skip
    plan = plan_of(item, errors=(PlanProblem("bad <tag> | *bold*"),))
    md = render_markdown(plan)
    assert "<summary><code>com.x&lt;script&gt;&amp;|*_</code>" in md
    assert "(&lt;img src=x&gt;)" in md
    assert r"> - bad &lt;tag&gt; \| \*bold\*" in md
    # outside code spans and the diff block, no raw HTML survives
    prose = re.sub(r"`[^`]*`", "", md.split("```diff")[0])
    assert "<script>" not in prose and "<img" not in prose
    assert f"> - `miniapp[{evil}]`" in md  # a code span: GitHub shows it literally
    # inside the code block values are literal: GitHub shows them as text
    assert '-     name: "<b>"' in md
    assert "      (<img src=x>)" in md


def test_markdown_code_span_survives_backticks() -> None:
    item = change("miniapp[a`b]", "miniapp", "delete", None, None, app_id="a`b")
    assert "> - ``miniapp[a`b]``" in render_markdown(plan_of(item))


def test_markdown_no_changes() -> None:
    md = render_markdown(plan_of())
    assert md.startswith(MARKDOWN_MARKER + "\n")
    assert md.endswith(NO_CHANGES + "\n")
    assert "<details>" not in md


def test_markdown_never_renders_payload() -> None:
    item = change(app(), "miniapp", "create", None, {"name": "N"}, payload={"t": "tok_abc123"})
    assert "tok_abc123" not in render_markdown(plan_of(item))


def big_plan(apps: int) -> Plan:
    changes: list[Change] = []
    for i in range(apps):
        app_id = f"com.example.fleet.app{i:03d}"
        base = f"miniapp[{app_id}]"
        changes.append(
            change(base, "miniapp", "update", {"description": "d" * 400},
                   {"description": "e" * 400}, app_id=app_id,
                   fields=(FieldChange("description", "d" * 400, "e" * 400),))
        )  # fmt: skip
        for n in range(3):
            changes.append(
                change(f"{base}.location[L{n}]", "location", "create", None,
                       {"geo_point": "POINT(" + "1" * 300 + ")"}, app_id=app_id)
            )  # fmt: skip
        changes.append(
            change(f"{base}.attribute[OLD]", "attribute", "delete", {"value": "v" * 200}, None,
                   app_id=app_id)
        )  # fmt: skip
    return plan_of(*changes)


def test_markdown_of_a_500_app_plan_lists_apps_one_line_each() -> None:
    plan = big_plan(500)
    md = render_markdown(plan)
    assert len(md) <= 60000
    assert md.startswith(MARKDOWN_MARKER)
    assert "| 1500 | 500 | 500 |" in md
    assert "> [!CAUTION]" in md and "deletes 500 object(s)" in md
    # not even a cut section per app fits: one line per app (here all of them fit)
    assert "<details>" not in md
    assert "Too many mini apps (500) to show their changes here" in md
    listed = re.findall(r"^- `(com\.example\.fleet\.app\d+)`: 3 to create, 1 to update,"
                        r" 1 to delete$", md, flags=re.M)  # fmt: skip
    assert listed == [f"com.example.fleet.app{i:03d}" for i in range(500)]
    assert "not listed" not in md
    assert md.rstrip().endswith(
        "The full plan is in the JSON plan (`reconciler plan --out plan.json`)."
    )
    # the caution list is capped and says how many deletes it left out
    caution = md[md.index("> [!CAUTION]") : md.index("Too many")]
    listed_deletes = caution.count("> - `")
    assert listed_deletes <= 200
    assert f"> - … and {500 - listed_deletes} more delete(s)" in caution


def test_markdown_truncation_respects_a_smaller_limit_and_hint() -> None:
    md = render_markdown(big_plan(40), max_chars=8000, full_plan_hint="[the artifact](https://ci)")
    assert len(md) <= 8000
    assert "| 120 | 40 | 40 |" in md and "> [!CAUTION]" in md
    assert len(re.findall(r"^- `com\.example\.fleet\.app\d+`: ", md, flags=re.M)) == 40
    assert "not listed" not in md
    assert "The full plan is in [the artifact](https://ci)." in md


def test_markdown_stuck_app_names_are_capped() -> None:
    stuck = tuple(PlanProblem("stuck", app_id=f"app{i}", scope="app") for i in range(50))
    md = render_markdown(plan_of(*small_app("app0"), errors=stuck))
    title = next(line for line in md.splitlines() if "stuck app(s)" in line)
    assert "`app19`" in title and "`app20`" not in title and " and 30 more" in title


def test_markdown_small_plan_is_not_truncated() -> None:
    md = render_markdown(big_plan(3))
    assert md.count("<details>") == 3
    assert "not shown" not in md


# --- apply result ------------------------------------------------------------------------------


def test_apply_result_lists_failed_and_skipped_and_hints_retry() -> None:
    text = render_apply_result(APPLY_RESULT, color=False)
    assert text.splitlines() == [
        "Apply incomplete: 2 applied, 1 failed, 1 skipped.",
        "",
        "Failed:",
        f"  + {app()}.location[Central]: HTTP 422: geo_point is not a POINT",
        "",
        "Skipped:",
        f"  ~ {V}.status[send_to_review]: a change it depends on failed",
        "",
        RETRY_HINT,
    ]


def test_apply_result_all_applied_has_no_hint() -> None:
    ok = {"summary": {"applied": 3, "failed": 0, "skipped": 0}, "interrupted": False,
          "results": [{"address": app(), "resource": "miniapp", "action": "create",
                       "app_id": A, "outcome": "applied"}]}  # fmt: skip
    assert render_apply_result(ok, color=False) == (
        "Apply complete: 3 applied, 0 failed, 0 skipped.\n"
    )


def test_apply_result_interrupted_and_colored() -> None:
    result = {**APPLY_RESULT, "interrupted": True}
    plain = render_apply_result(result, color=False)
    assert plain.startswith("Apply interrupted: 2 applied, 1 failed, 1 skipped.\n")
    assert plain.endswith(RETRY_HINT + "\n")
    colored = render_apply_result(result, color=True)
    assert "\x1b[" in colored and ANSI.sub("", colored) == plain
    assert "\x1b" not in plain


def test_apply_result_escapes_server_messages() -> None:
    failure = {"address": app(), "resource": "miniapp", "action": "update", "app_id": A,
               "outcome": "failed", "message": "boom\x1b[2J\nline"}  # fmt: skip
    result = {"summary": {"applied": 0, "failed": 1, "skipped": 0}, "interrupted": False,
              "results": [failure]}  # fmt: skip
    text = render_apply_result(result, color=False)
    assert "\x1b" not in text
    # A line break is kept, the next line indented under its failure (a server cannot
    # write a line of its own into the summary); other control characters are escaped.
    assert f"  ~ {app()}: boom\\u001b[2J\n    line\n" in text


# --- dispatcher --------------------------------------------------------------------------------


def test_render_dispatches_by_format() -> None:
    assert render(GOLDEN_PLAN, "text", color=True) == render_text(GOLDEN_PLAN, color=True)
    assert render(GOLDEN_PLAN, "text", color=False) == render_text(GOLDEN_PLAN, color=False)
    assert render(GOLDEN_PLAN, "json", color=True) == render_json(GOLDEN_PLAN)
    assert render(GOLDEN_PLAN, "markdown", color=True) == render_markdown(GOLDEN_PLAN)
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render(GOLDEN_PLAN, "yaml", color=False)  # type: ignore[arg-type]


# --- Markdown: an oversized app is cut inside its own section (issue 14) ----------------------

BIG = "com.example.big"


def oversized_app(versions: int = 200) -> list[Change]:
    """One app with ``versions`` new versions (a create, a compatibility and a review step
    each), 99 new attributes, an update that overwrites a change made outside, and one
    delete: 3 * versions + 101 changes (701 for 200 versions)."""
    base = app(BIG)
    out = [
        change(base, "miniapp", "update", {"name": "Old"}, {"name": "New"}, app_id=BIG,
               fields=(FieldChange("name", "Old", "New"),),
               reason="changed outside since the last apply"),
    ]  # fmt: skip
    out += [
        change(f"{base}.attribute[A{n:03d}]", "attribute", "create", None, {"value": "v" * 40},
               app_id=BIG)
        for n in range(99)
    ]  # fmt: skip
    for n in range(versions):
        code = f"1.{n}.0"
        version = f"{base}.version[{code}]"
        out.append(
            change(version, "version", "create", None,
                   {"code": code, "platform_id": "iOS", "service_url": "https://x/" + "s" * 60},
                   app_id=BIG, key=code, version_code=code)
        )  # fmt: skip
        out.append(
            change(f"{version}.compatibility[2]", "compatibility", "create", None,
                   {"superapp_version": 2}, app_id=BIG, key="2", version_code=code)
        )  # fmt: skip
        out.append(
            change(f"{version}.status[send_to_review]", "status", "update",
                   {"status": "pending"}, {"status": "waiting_for_review"}, app_id=BIG,
                   step="send_to_review", version_code=code)
        )  # fmt: skip
    out.append(
        change(f"{base}.location[Old]", "location", "delete", {"geo_point": "POINT(1 2)"}, None,
               app_id=BIG, target_id=9)
    )  # fmt: skip
    return out


def small_app(app_id: str, *, delete: bool = False) -> list[Change]:
    base = app(app_id)
    out = [change(f"{base}.attribute[COUNTRY]", "attribute", "update", {"value": "Chile"},
                  {"value": "Uruguay"}, app_id=app_id)]  # fmt: skip
    if delete:
        out.append(change(f"{base}.location[Gone]", "location", "delete",
                          {"geo_point": "POINT(3 4)"}, None, app_id=app_id))  # fmt: skip
    return out


def section_of(md: str, app_id: str) -> str:
    start = md.index(f"<summary><code>{app_id}</code>")
    return md[start : md.index("</details>", start)]


def test_markdown_cuts_an_oversized_app_inside_its_section_and_lists_every_app() -> None:
    smalls = ["com.example.a", "com.example.b", "com.example.c"]
    big = oversized_app()
    assert len(big) == 701
    plan = plan_of(*small_app(smalls[0]), *big, *small_app(smalls[1], delete=True),
                   *small_app(smalls[2]))  # fmt: skip
    md = render_markdown(plan)
    assert len(md) <= 60000
    assert "more app(s) not shown" not in md
    assert md.count("<details>") == 4 == md.count("</details>")
    # the small apps are shown whole
    for app_id in smalls:
        assert f"! ~ {app(app_id)}.attribute[COUNTRY]" in section_of(md, app_id)
    assert "- - miniapp[com.example.b].location[Gone]  (DELETE)" in section_of(md, smalls[1])
    # the big one: its header, its delete and its overwrite first, then a count of the rest
    section = section_of(md, BIG)
    assert f"<summary><code>{BIG}</code>: 499 to create, 201 to update, 1 to delete" in section
    assert f"- - {app(BIG)}.location[Old]  (DELETE)" in section
    assert f"! ~ {app(BIG)}\n" in section and "(changed outside since the last apply)" in section
    shown = len(re.findall(r"^[-+!] [-+~] ", section, flags=re.M))
    assert 0 < shown < 701
    assert f"… {701 - shown} more change(s) of `{BIG}` not shown (see the JSON plan)." in section
    assert "The full plan is in the JSON plan (`reconciler plan --out plan.json`)." in md


def test_markdown_hides_creates_before_updates_and_never_a_delete_first() -> None:
    """What a cut section hides is the end of its priority order: errors, deletes, overwrites
    of changes made outside, updates, then creates (D43)."""
    big = oversized_app()
    plan = plan_of(*big, errors=(PlanProblem("blocked", app_id=BIG,
                                             address=at(f"{app(BIG)}.attribute[A098]")),))
    md = render_markdown(plan, max_chars=12000)
    assert len(md) <= 12000
    section = section_of(md, BIG)
    shown = set(re.findall(r"^[-+!] [-+~] (\S+)", section, flags=re.M))
    assert f"{app(BIG)}.attribute[A098]" in shown  # named by an error
    assert f"{app(BIG)}.location[Old]" in shown
    assert app(BIG) in shown
    hidden_updates = [c for c in big if c.action == "update" and str(c.address) not in shown]
    shown_creates = [c for c in big if c.action == "create" and str(c.address) in shown]
    assert hidden_updates  # the budget is too small for all 200 status steps...
    assert shown_creates == [big[99]]  # ...so the only create shown is the one with an error
    # shown changes keep the plan's order
    order = [str(c.address) for c in big if str(c.address) in shown]
    assert re.findall(r"^[-+!] [-+~] (\S+)", section, flags=re.M) == order


def test_markdown_says_how_many_deletes_a_cut_section_hides() -> None:
    base = app(BIG)
    deletes = [
        change(f"{base}.location[L{n:04d}]", "location", "delete", {"geo_point": "POINT(1 2)"},
               None, app_id=BIG)
        for n in range(2000)
    ]  # fmt: skip
    md = render_markdown(plan_of(*deletes, *small_app("com.example.a")))
    assert len(md) <= 60000
    section = section_of(md, BIG)
    shown = len(re.findall(r"^- - ", section, flags=re.M))
    assert 0 < shown < 2000
    assert (
        f"… {2000 - shown} more change(s) of `{BIG}` not shown, {2000 - shown} of them"
        " deletes (see the JSON plan)." in section
    )


def test_markdown_of_10000_apps_is_bounded_and_lists_apps_with_deletes_first() -> None:
    changes: list[Change] = []
    with_delete = {f"com.example.fleet.app{i:05d}" for i in range(7, 10000, 500)}
    for i in range(10000):
        app_id = f"com.example.fleet.app{i:05d}"
        changes += small_app(app_id, delete=app_id in with_delete)
    stuck = tuple(PlanProblem("stuck", app_id=f"com.example.fleet.app{i:05d}", scope="app")
                  for i in range(0, 10000, 2))  # fmt: skip
    md = render_markdown(plan_of(*changes, errors=stuck))
    assert len(md) <= 60000
    assert "| 0 | 10000 | 20 |" in md
    listed = re.findall(r"^- `(com\.example\.fleet\.app\d+)`: ", md, flags=re.M)
    assert 0 < len(listed) < 10000
    assert with_delete <= set(listed)  # every app with a delete is listed
    assert listed == sorted(listed)  # in plan order
    hidden = 10000 - len(listed)
    assert (
        f"… {hidden} more app(s) not listed (0 to create, {hidden} to update, 0 to delete"
        " among them)." in md
    )
    assert "The full plan is in the JSON plan (`reconciler plan --out plan.json`)." in md


def test_markdown_cut_plan_golden() -> None:
    plan = plan_of(*small_app("com.example.a"), *oversized_app(20),
                   *small_app("com.example.b", delete=True))  # fmt: skip
    path = GOLDEN / "plan_cut.md"
    actual = render_markdown(plan, max_chars=5000).encode("utf-8")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(actual)
    assert path.exists(), f"missing {path}; run with UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_bytes()


def test_markdown_plan_that_fits_whole_is_shown_whole() -> None:
    """Sections shorter than their own cut form (one short change each) count whole when
    deciding whether every app gets a section."""
    ids = [f"a{i:04d}" for i in range(60)]
    plan = plan_of(*[change(f"miniapp[{a}]", "miniapp", "delete", None, None, app_id=a)
                     for a in ids])  # fmt: skip
    md = render_markdown(plan, max_chars=12000)
    assert len(md) <= 12000
    assert md.count("<details>") == 60
    assert "not shown" not in md and "Too many" not in md and "Cut to fit" not in md
