"""Generated cases for the selection guards: a selection is refused exactly when it matches
nothing the plan could touch, the refusal is one bounded line, and a malformed selector is
always a usage error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ConfigError, UsageError
from reconciler.manifest import check_selection, parse_selectors
from reconciler.providers.miniappcenter.session import in_scope_filter

IDS = st.sampled_from([f"com.example.app{i}" for i in range(6)])
LABELS = st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["a", "b", "c"]))
FLEET = st.dictionaries(IDS, LABELS, max_size=5)


@given(
    declared=FLEET,
    recorded=st.one_of(st.none(), FLEET),
    selectors=st.dictionaries(st.sampled_from(["team", "env", "tier"]), st.sampled_from("abc")),
    targets=st.lists(IDS, max_size=3),
)
def test_refused_exactly_when_nothing_is_in_scope(
    declared: dict[str, dict[str, str]],
    recorded: dict[str, dict[str, str]] | None,
    selectors: dict[str, str],
    targets: list[str],
) -> None:
    # The oracle is the filter the plan itself applies (declared labels win over recorded).
    known = {**(recorded or {}), **declared}
    in_scope = in_scope_filter(selectors, targets)
    matched = [i for i, labels in known.items() if in_scope(i, SimpleNamespace(labels=labels))]
    unknown_target = any(t not in known for t in targets)
    should_refuse = bool(selectors or targets) and (unknown_target or not matched)
    try:
        check_selection(selectors, targets, declared, recorded)
    except ConfigError as exc:
        assert should_refuse
        assert not isinstance(exc, UsageError)  # exit 1, not 64
        assert "\n" not in str(exc)
    else:
        assert not should_refuse


@given(
    count=st.integers(0, 400),
    width=st.integers(1, 200),
    typo=st.text(min_size=1, max_size=500),
)
def test_the_refusal_is_one_bounded_line(count: int, width: int, typo: str) -> None:
    declared = {
        f"com.example.{'x' * width}{i}": {f"k{i}": "v" * width} for i in range(count)
    }
    for selectors, targets in (({"k": typo}, []), ({}, [typo])):
        with pytest.raises(ConfigError) as info:
            check_selection(selectors, targets, declared, {})
        message = str(info.value)
        assert "\n" not in message
        assert len(message) < 12 * 2 * (width + 20) + 1000


@given(st.lists(st.text(max_size=30), min_size=1, max_size=4))
def test_any_selector_text_parses_or_is_a_usage_error(raws: list[str]) -> None:
    try:
        parsed = parse_selectors(raws)
    except UsageError:
        return
    assert all(raw.partition("=")[0] in parsed for raw in raws)
    assert all(parsed[raw.partition("=")[0]] == raw.partition("=")[2] for raw in raws)


@given(st.text(alphabet=st.characters(blacklist_characters="="), max_size=30))
def test_a_selector_without_key_value_is_a_usage_error(raw: str) -> None:
    for bad in (raw, "=" + raw):
        with pytest.raises(UsageError):
            parse_selectors([bad])
