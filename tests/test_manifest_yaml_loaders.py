"""libyaml where it is safe, the pure-Python loader otherwise (issue 14): the same nodes, the
same marks, the same errors either way, and deep nesting a clean file:line:col error from both.

``compose.use_fast_loader`` picks the loader; tests force each in turn. Forcing libyaml on a
version without a nesting limit (0.2.5) is only done on shallow documents: it is what the
tool itself never does (it would crash the interpreter on 50,000 levels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, SequenceNode

from bench.fleet import make_app
from reconciler.errors import ManifestError
from reconciler.manifest import compose
from reconciler.providers.miniappcenter.manifest import load_manifests, render_manifest
from tests import test_manifest_errors as manifest_errors
from tests import test_manifest_hostile as hostile

HAS_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))
needs_libyaml = pytest.mark.skipif(not HAS_LIBYAML, reason="PyYAML built without libyaml")
needs_safe_libyaml = pytest.mark.skipif(
    not compose.fast_loader_safe(),
    reason=f"libyaml {compose.libyaml_version()} has no nesting limit: never used that deep",
)
LOADERS = [pytest.param(False, id="pure"), pytest.param(True, id="libyaml", marks=needs_libyaml)]
TOO_DEEP = compose.TOO_DEEP


@contextlib.contextmanager
def loader(fast: bool) -> Iterator[None]:
    before = compose.use_fast_loader
    compose.use_fast_loader = fast
    try:
        yield
    finally:
        compose.use_fast_loader = before


def issues_with(
    fast: bool, folder: Path, text: str, env: dict[str, str] | None = None
) -> list[str]:
    """The issues of ``folder/m.yaml`` (["OK"] when it loads), read with the chosen loader."""
    (folder / "m.yaml").write_text(text, encoding="utf-8")
    with loader(fast):
        try:
            load_manifests([folder / "m.yaml"], env or {})
        except ManifestError as exc:
            return [str(issue).removeprefix(f"{folder}/") for issue in exc.issues]
    return ["OK"]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- which loader --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_libyaml", "version", "safe"),
    [
        (True, (0, 2, 5), False),  # segfaults on 50,000 levels
        (True, (0, 2, 6), True),  # refuses more than 1,000 levels
        (True, (0, 3, 0), True),
        (False, (0, 2, 6), False),  # PyYAML built without it
    ],
)
def test_libyaml_is_used_only_from_0_2_6(
    monkeypatch: pytest.MonkeyPatch, with_libyaml: bool, version: tuple[int, ...], safe: bool
) -> None:
    monkeypatch.setattr(yaml, "__with_libyaml__", with_libyaml)
    if HAS_LIBYAML:
        monkeypatch.setattr(yaml._yaml, "get_version", lambda: version)  # type: ignore[attr-defined]
    elif with_libyaml:
        pytest.skip("no yaml._yaml to report a version")
    assert compose.fast_loader_safe() is safe


@needs_libyaml
def test_libyaml_composes_valid_files_and_errors_are_explained_by_the_pure_loader(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path is really taken (a broken switch would only cost speed, silently)."""
    used: list[str] = []
    real = yaml.compose_all

    def spy(text: str, Loader: type) -> Iterator[Node]:
        # libyaml's loader, with the resolver's answers remembered (compose.py)
        used.append("CSafeLoader" if issubclass(Loader, yaml.CSafeLoader) else Loader.__name__)
        return real(text, Loader=Loader)

    monkeypatch.setattr(yaml, "compose_all", spy)
    valid = render_manifest(make_app(2))
    assert issues_with(True, here, valid) == ["OK"]
    assert used == ["CSafeLoader"]
    used.clear()
    assert issues_with(True, here, valid + "---\nkey: [unclosed\n") == [
        "m.yaml:40:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence at line 39)"
    ]
    assert used == ["CSafeLoader", "GuardedLoader"]


# --- the depth guard -----------------------------------------------------------------------


def _block(levels: int) -> str:
    """``levels`` nested block mappings: a:, then b: indented under it, and so on."""
    return "".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "x\n"


@pytest.mark.parametrize("fast", LOADERS)
@pytest.mark.parametrize(
    ("text", "place"),
    [
        # The 51st level is the 50th "[" (the document's mapping is the first).
        pytest.param("a: " + "[" * 60 + "]" * 60 + "\n", "1:53", id="flow-60"),
        pytest.param("a: " + "{x: " * 60 + "}" * 60 + "\n", "1:200", id="flow-mappings-60"),
        pytest.param(_block(60), "51:51", id="block-60"),
        pytest.param("- " * 60 + "x\n", "1:101", id="compact-sequences-60"),
    ],
)
def test_nesting_past_the_limit_is_one_clean_error_at_the_same_place(
    here: Path, fast: bool, text: str, place: str
) -> None:
    assert issues_with(fast, here, text) == [f"m.yaml:{place}: {TOO_DEEP}"]


SAFE_LOADERS = [
    pytest.param(False, id="pure"),
    pytest.param(True, id="libyaml", marks=needs_safe_libyaml),
]


@pytest.mark.parametrize("fast", SAFE_LOADERS)
@pytest.mark.parametrize("depth", [1_001, 50_000])
def test_nesting_past_libyaml_own_limit_is_the_same_error(
    here: Path, fast: bool, depth: int
) -> None:
    """Past 1,000 levels libyaml refuses by itself; the pure loader explains it, the same
    way as any other depth (before, the pure loader raised RecursionError here and libyaml
    0.2.5 crashed the interpreter)."""
    text = "a: " + "[" * depth + "]" * depth + "\n"
    assert issues_with(fast, here, text) == [f"m.yaml:1:53: {TOO_DEEP}"]


@pytest.mark.parametrize("fast", LOADERS)
def test_nesting_up_to_the_limit_is_read(here: Path, fast: bool) -> None:
    """Exactly MAX_DEPTH levels compose (the document and spec are two of them)."""
    def extra(brackets: int) -> str:
        return manifest_errors.BASE + "  extra: " + "[" * brackets + "]" * brackets + "\n"

    at_limit = issues_with(fast, here, extra(compose.MAX_DEPTH - 2))
    assert len(at_limit) == 1 and "spec.extra: unknown key 'extra'" in at_limit[0]
    assert issues_with(fast, here, extra(compose.MAX_DEPTH - 1)) == [f"m.yaml:9:58: {TOO_DEEP}"]


@pytest.mark.parametrize("fast", LOADERS)
def test_an_alias_adds_no_level(here: Path, fast: bool) -> None:
    """An alias is not composed again: deep only by reference is not deep."""
    levels = compose.MAX_DEPTH - 2
    text = "a: &x " + "[" * levels + "]" * levels + "\nb: [[*x]]\n"
    assert not any("nested too deeply" in issue for issue in issues_with(fast, here, text))


# --- same marks, same errors -----------------------------------------------------------------


def _marks(node: Node, into: list[tuple[str, int, int, int, int]]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        into.append(
            (
                type(item).__name__,
                item.start_mark.line,
                item.start_mark.column,
                item.end_mark.line,
                item.end_mark.column,
            )
        )
        if isinstance(item, MappingNode):
            stack.extend(part for pair in item.value for part in pair)
        elif isinstance(item, SequenceNode):
            stack.extend(item.value)


MARK_TEXTS = [
    pytest.param(render_manifest(make_app(0)), id="fleet-manifest"),
    pytest.param(render_manifest(make_app(7)).replace("\n", "\r\n"), id="crlf"),
    pytest.param("\ufeffa: 1\nb: [x, y]\n", id="bom"),
    pytest.param("é: ü\n😀: [a, {b: ç}]\nc: 'x\u2028y'\nd: z\n", id="non-ascii"),
    pytest.param("a: 1\x85b: [2,\x85 3]\u2029c: d\n", id="nel-and-paragraph-separator"),
    pytest.param("a: |\n  one\n  two\nb: >-\n  folded\n  text\nc: \"q\\\"\"\n", id="blocks"),
    pytest.param("a: &x {k: v}\nb: *x\nc: !!str 1\n---\n- 1\n- - 2\n", id="anchors-docs"),
]


@needs_libyaml
@pytest.mark.parametrize("text", MARK_TEXTS)
def test_both_loaders_give_every_node_the_same_marks(text: str) -> None:
    """Messages point at ``pos_of(node)``: the nodes libyaml composes must carry the marks
    the pure loader gives them, on every node, start and end."""
    pure: list[tuple[str, int, int, int, int]] = []
    fast: list[tuple[str, int, int, int, int]] = []
    for root in yaml.compose_all(text, Loader=yaml.SafeLoader):
        _marks(root, pure)
    for root in yaml.compose_all(text, Loader=yaml.CSafeLoader):
        _marks(root, fast)
    assert fast == pure
    assert len(pure) > 3


@needs_libyaml
@pytest.mark.parametrize(("text", "expected"), manifest_errors.CASES)
def test_every_pinned_manifest_error_is_the_same_with_libyaml(
    here: Path, text: str, expected: str
) -> None:
    """The rule tests of test_manifest_errors, read by libyaml: same file:line:col, same words."""
    assert issues_with(True, here, text) == issues_with(False, here, text) == [expected]


HOSTILE = [
    "a: [unclosed\n",
    "a:\n\tb: 1\n",  # a tab
    'a: "\\q"\n',  # libyaml marks the escape one column earlier than PyYAML
    'a: "\\ud800"\n',  # libyaml refuses the surrogate escape, PyYAML composes it
    "a: b\x07\n",  # a control character
    "a: *nope\n",
    "a: !!python/object:os.system [x]\n",
    "a: !custom 1\n",
    "a: &a [*a]\n",
    hostile.BASE + "  name: x\n  name: y\n",
    hostile.BASE.replace("type: Native", "type: [Native]"),
    "- a\nb: 1\n",
    "a: 1\n...\nb\n---\n- x\n  y: 2\n",
]


@needs_libyaml
@pytest.mark.parametrize("text", HOSTILE)
def test_broken_yaml_gives_the_same_errors_with_either_loader(here: Path, text: str) -> None:
    pure = issues_with(False, here, text)
    assert issues_with(True, here, text) == pure
    assert pure != ["OK"]


@needs_libyaml
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            ["a", ":", " ", "\n", "-", "[", "]", "{", "}", ",", "'", '"', "&x", "*x", "!",
             "#", "|", ">", "\t", "é", "\\", "?", "---", "...", "1.10", "  ", "%YAML 1.1",
             "!!str", "\ufeff", "\x85", "\u2028", "\r", "\\u", "d800", "~", "<<", "yes"]
        ),
        max_size=60,
    )
)
def test_generated_yaml_with_libyaml_gives_ok_or_file_line_errors(parts: list[str]) -> None:
    """libyaml and PyYAML disagree on some malformed YAML (a comment glued to a block scalar
    indicator: ``|#``); the known realistic cases go to the pure loader (see compose), and
    whatever the text, the fast path ends in OK or file:line:col errors, never a crash."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        found = issues_with(True, Path(folder), "".join(parts))
    assert found == ["OK"] or all(hostile.ISSUE_LINE.match(issue) for issue in found)


@needs_libyaml
@pytest.mark.parametrize(
    "text",
    [
        hostile.BASE.replace("name: Shop", "name: Shop\t"),  # libyaml: fine; PyYAML: error
        hostile.BASE.replace("name: Shop", "name: !"),  # libyaml: ""; PyYAML: null
        hostile.BASE + "\ufeff",  # libyaml skips it; PyYAML: a second document
    ],
)
def test_where_the_parsers_disagree_the_pure_loader_reads(here: Path, text: str) -> None:
    """A file must mean the same on a machine without libyaml."""
    pure = issues_with(False, here, text)
    assert issues_with(True, here, text) == pure
    assert pure != ["OK"]
