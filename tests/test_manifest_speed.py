"""Checking manifests does each piece of work once (issue 25): libyaml's callbacks into the
resolver are answered from memory for a text already resolved, the slow "pure loader only"
expression is not run over a text that cannot match it, the screen of a plain document walks
its collections only, and a clean document builds no position for the values it reads.
These count work, never time it; the answers themselves must stay the reference's."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode

from bench.fleet import make_fleet, write_manifests
from reconciler.manifest import checker, compose, screen
from reconciler.providers.miniappcenter.manifest import load_manifests

needs_libyaml = pytest.mark.skipif(
    not compose.fast_loader_safe(), reason="libyaml missing or without a nesting limit"
)

SCALARS = [
    "1", "-0", "0x1F", "0o17", "017", "1_000", "1.10", ".5", "1e3", "6.8523015e+5", ".inf",
    "-.Inf", ".NaN", "true", "False", "yes", "NO", "on", "Off", "y", "n", "null", "~", "Null",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "<<", "=", "", "plain text", "1:20",
    "0b101", "+12", "1,000", "a b c", "NULL", "TRUE", "0.", "-1_0.5e-3", "12:30:45",
]


def _shape(node: Node) -> object:
    """A node tree as comparable data: tags, values and marks (not styles: libyaml writes
    ``''`` where the pure loader writes None, for every loader alike)."""
    mark = (node.start_mark.line, node.start_mark.column, node.end_mark.line, node.end_mark.column)
    if isinstance(node, ScalarNode):
        return (node.tag, node.value, mark)
    if isinstance(node, MappingNode):
        return (node.tag, [(_shape(k), _shape(v)) for k, v in node.value], mark)
    return (node.tag, [_shape(child) for child in node.value], mark)


@needs_libyaml
@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(SCALARS), min_size=1, max_size=12), st.booleans())
def test_the_remembered_resolver_tags_like_the_pure_loader(values: list[str], flow: bool) -> None:
    if flow:
        text = "k: [" + ", ".join(v if v else "''" for v in values) + "]\n"
    else:
        text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    for _ in range(2):  # the second time from memory
        fast = yaml.compose(text, Loader=compose.CachedResolverLoader)
        pure = yaml.compose(text, Loader=compose.GuardedLoader)
        libyaml = yaml.compose(text, Loader=yaml.CSafeLoader)
        assert _shape(fast) == _shape(pure) == _shape(libyaml)


@needs_libyaml
def test_a_plain_scalar_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Texts no other test composes (the memory lasts as long as the process).
    new, other, number = (f"{part}{uuid.uuid4().hex[:8]}" for part in ("v", "k", "3.25e"))
    number = "3.25e" + str(int(number[5:], 16) % 90 + 10)
    text = f"{other}: {new}\n{other}x: [{new}, {number}]\n"
    calls: list[str] = []
    resolve = yaml.resolver.BaseResolver.resolve

    def counting(self: object, kind: object, value: object, implicit: object) -> object:
        calls.append(str(value))
        return resolve(self, kind, value, implicit)  # type: ignore[arg-type]

    monkeypatch.setattr(yaml.resolver.BaseResolver, "resolve", counting)
    first = list(compose.compose_documents(text))
    assert sorted(set(calls)) == sorted([number, other, other + "x", new])
    assert calls.count(new) == 1  # the second occurrence came from memory
    calls.clear()
    assert [_shape(n) for n in compose.compose_documents(text)] == [_shape(n) for n in first]
    assert calls == []


@needs_libyaml
def test_a_full_memory_starts_over_instead_of_forgetting_new_texts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compose, "_RESOLVED_MAX", 3)
    monkeypatch.setattr(compose.CachedResolverLoader, "_resolved", {})
    calls: list[str] = []
    resolve = yaml.resolver.BaseResolver.resolve

    def counting(self: object, kind: object, value: object, implicit: object) -> object:
        calls.append(str(value))
        return resolve(self, kind, value, implicit)  # type: ignore[arg-type]

    monkeypatch.setattr(yaml.resolver.BaseResolver, "resolve", counting)
    list(compose.compose_documents("a: b\nc: d\n"))  # four texts: the memory fills
    calls.clear()
    list(compose.compose_documents("[late, late]\n"))
    assert calls == ["late"]  # remembered after its first reading, though memory was full
    assert len(compose.CachedResolverLoader._resolved) <= 3


@needs_libyaml
def test_the_pure_only_expression_runs_only_on_texts_it_can_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    searched: list[str] = []

    class Spy:
        def search(self, text: str) -> object:
            searched.append(text)
            return None

    monkeypatch.setattr(compose, "_PURE_ONLY_RE", Spy())
    list(compose.compose_documents("a: 1\nb: [x, y]\n"))
    assert searched == []
    list(compose.compose_documents("a: !!str 1\n"))
    assert searched == ["a: !!str 1\n"]


DOCUMENTS = [
    "a: 1\n",
    "a: !!python/object x\n",
    "a: !Thing {b: 1}\n",
    'a: "\\ud800"\n',
    'a: "\\U0000DC00"\n',
    "a: &x [1, 2]\nb: *x\n",
    "a: &x [*x]\n",
    "[" * 60 + "]" * 60 + "\n",
    "a:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 40)) + "  " * 40 + "- end\n",
    "- " * 55 + "x\n",
    "{a: [b, {c: [d, [e]]}]}\n",
    "plain\n",
]


@needs_libyaml
@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_screen_with_hints_finds_what_the_full_screen_finds(text: str) -> None:
    hints = screen.text_hints(text)
    for root in compose.compose_documents(text):  # the pure loader where libyaml refuses
        assert screen.screen(root, hints) == screen.screen(root)


def test_hints_are_false_only_when_the_text_cannot_hold_it() -> None:
    assert screen.text_hints("a: b\n") == screen.Hints(False, False, False)
    assert screen.text_hints("a: !b\n").tags
    assert screen.text_hints('a: "\\ud800"\n').surrogates
    assert screen.text_hints('a: "\\U0001F600"\n').surrogates
    assert screen.text_hints("a: *b\n").aliases


def test_a_plain_document_is_screened_over_its_collections_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full walk visits every scalar (most of the nodes); a document that can hold no tag,
    escape or alias needs only its depth."""
    visited: list[Node] = []
    problem = screen._node_problem

    def counting(node: Node) -> str | None:
        visited.append(node)
        return problem(node)

    monkeypatch.setattr(screen, "_node_problem", counting)
    text = "a: 1\nb: [x, y, {c: d}]\n"
    root = yaml.compose(text, Loader=compose.GuardedLoader)
    assert screen.screen(root, screen.text_hints(text)) == []
    assert visited == []


def test_a_clean_document_builds_no_position_for_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positions are built when a message needs one; a clean fleet needs almost none."""
    write_manifests(make_fleet(3), tmp_path)
    built: list[Node] = []
    pos_of = checker.pos_of

    def counting(node: Node) -> checker.Pos:
        built.append(node)
        return pos_of(node)

    monkeypatch.setattr(checker, "pos_of", counting)
    assert len(load_manifests([tmp_path], {})) == 3
    # Per document: where its sections and list items are written, none per field (43 per
    # document of this fleet before: one per value read).
    assert len(built) <= 12 * 3
