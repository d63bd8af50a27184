"""The one address type: formatter and parser are inverse; bad text is a clear error."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.address import MAX_DEPTH, Address, AddressError, parse_address

ROOTS = {"miniapp": "miniappcenter", "akana_app": "akana"}
kinds = st.sampled_from(["version", "location", "status", "compatibility", "attribute"])
keys = st.text(max_size=20)


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    root = draw(st.sampled_from(sorted(ROOTS)))
    address = Address(ROOTS[root], root, draw(keys))
    for _ in range(draw(st.integers(0, MAX_DEPTH - 1))):
        address = address.child(draw(kinds), draw(st.none() | keys))
    if draw(st.booleans()):
        address = address.duplicate(draw(st.integers(0, 10**12)))
    return address


@settings(max_examples=500, deadline=None)
@given(addresses())
def test_format_then_parse_is_the_identity(address: Address) -> None:
    assert parse_address(str(address), ROOTS) == address


def test_the_text_form_is_the_one_users_know() -> None:
    version = Address("miniappcenter", "miniapp", "com.x.y").child("version", "1.0")
    assert str(version.child("status")) == "miniapp[com.x.y].version[1.0].status"
    assert str(version.child("compatibility", "3")) == (
        "miniapp[com.x.y].version[1.0].compatibility[3]"
    )
    location = Address("miniappcenter", "miniapp", "a").child("location", "x]y\\z")
    assert str(location.duplicate(7)) == "miniapp[a].location[x\\]y\\\\z]#7"
    assert version.key_of("miniapp") == "com.x.y" and version.root.kind == "miniapp"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "non-empty"),
        ("miniapp", "kind[key]"),
        ("nothing[a]", "unknown resource kind"),
        ("miniapp[a", "unclosed"),
        ("miniapp[a]x", "expected '.' or '#'"),
        ("miniapp[a]#x", "#instance"),
        ("miniapp[a]#１", "#instance"),  # a full-width digit is not an id
        ("Miniapp[a]", "lowercase"),
        ("miniapp[a]..version[b]", "lowercase"),
        ("miniapp[a\\x]", "bad escape"),
        ("miniapp[a]" + ".status" * (MAX_DEPTH + 1), "levels deep"),
        ("miniapp[" + "a" * 3000 + "]", "at most"),
    ],
)
def test_bad_text_is_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(AddressError, match=re.escape(why)):
        parse_address(text, ROOTS)


def test_a_refusal_never_echoes_the_text() -> None:
    with pytest.raises(AddressError) as caught:
        parse_address("\x1b[2J]evil[a]", ROOTS)
    assert "\x1b" not in str(caught.value) and "evil" not in str(caught.value)


def test_the_registry_gives_each_root_kind_one_provider() -> None:
    from reconciler.engine.provider import root_kinds
    from reconciler.providers.miniappcenter.provider import MINIAPPCENTER
    from reconciler.providers.registry import PROVIDERS, ROOT_KINDS

    # The built-in three, and the example plugin the test session installs (conftest).
    assert ROOT_KINDS == {"miniapp": "miniappcenter", "akana_app": "akana", "rest_object": "rest",
                          "kv_entry": "kvstore"}
    assert all(name == provider.name for name, provider in PROVIDERS.items())
    with pytest.raises(ValueError, match="both claim root kind miniapp"):
        root_kinds({"miniappcenter": MINIAPPCENTER, "copy": MINIAPPCENTER})
