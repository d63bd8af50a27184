"""The providers' registry: descriptors first (plain data), each provider imported on first
use, plugins found through the ``reconciler.providers`` entry point group, and every clash or
broken plugin refused with one clear line naming the package."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.descriptor import ProviderDescriptor
from reconciler.errors import ConfigError
from reconciler.providers.registry import (
    BUILTIN,
    CONNECTORS,
    LazyProvider,
    checked,
    plugin_descriptors,
)


@pytest.mark.parametrize("descriptor", BUILTIN, ids=lambda d: d.name)
def test_each_built_in_descriptor_says_what_its_provider_declares(
    descriptor: ProviderDescriptor,
) -> None:
    assert descriptor.problems() == []
    provider = LazyProvider(descriptor).loaded()  # refuses a mismatch (next test)
    assert (provider.name, provider.root_kind) == (descriptor.name, descriptor.root_kind)
    assert set(provider.manifest_kinds) == set(descriptor.manifest_kinds)
    if descriptor.connector is not None:
        assert CONNECTORS[descriptor.name].loaded().name == descriptor.name  # type: ignore[attr-defined]


MODULE = """
from reconciler.engine.provider import ProviderBase

class Fake(ProviderBase):
    name = "fake"
    title = "A fake"
    root_kind = "fake_thing"
    manifest_kinds = {("fake/v1", "Thing"): object}
    levels = {"fake_thing": 0}
    operations = frozenset()

    def load_saved_plan(self, data, source):
        raise NotImplementedError

    def resource_key(self, model):
        return str(model)

FAKE = Fake()
"""


def _descriptor(module: str, **changes: Any) -> ProviderDescriptor:
    fields: dict[str, Any] = {
        "name": "fake",
        "root_kind": "fake_thing",
        "manifest_kinds": (("fake/v1", "Thing"),),
        "provider": f"{module}:FAKE",
        "package": "reconciler-fake",
    }
    fields.update(changes)
    return ProviderDescriptor(**fields)


def test_a_provider_is_imported_on_first_use_not_for_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_first_use.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    lazy = LazyProvider(_descriptor("fake_first_use"))
    assert (lazy.name, lazy.root_kind, list(lazy.manifest_kinds)) == (
        "fake",
        "fake_thing",
        [("fake/v1", "Thing")],
    )
    assert "fake_first_use" not in sys.modules
    assert lazy.title == "A fake"
    assert "fake_first_use" in sys.modules
    assert lazy.manifest_kinds[("fake/v1", "Thing")] is object


def test_a_provider_unlike_its_descriptor_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_unlike.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    lazy = LazyProvider(_descriptor("fake_unlike", root_kind="other"))
    with pytest.raises(
        ConfigError,
        match=r"^the fake provider \(package reconciler-fake\) does"
        " not match its descriptor: it declares name 'fake', root kind"
        " 'fake_thing'",
    ):
        lazy.resource_key("x")


def test_a_provider_module_that_fails_is_named_with_its_package() -> None:
    lazy = LazyProvider(_descriptor("no_such_module_anywhere"))
    with pytest.raises(ConfigError) as caught:
        lazy.title  # noqa: B018
    assert str(caught.value) == (
        "the fake provider (package reconciler-fake) failed to load its provider:"
        " ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )


@pytest.mark.parametrize(
    ("other", "first", "claim"),
    [
        ({"name": "akana"}, "akana", "the provider name akana"),
        ({"root_kind": "miniapp"}, "miniappcenter", "the root kind miniapp"),
        (
            {"manifest_kinds": (("rest/v1", "RestObject"),)},
            "rest",
            "the manifest kind apiVersion rest/v1, kind RestObject",
        ),
    ],
)
def test_two_providers_claiming_one_name_root_or_kind_are_refused(
    other: dict[str, Any], first: str, claim: str
) -> None:
    plugin = _descriptor("anything", **other)
    with pytest.raises(ConfigError) as caught:
        checked([*BUILTIN, plugin])
    assert str(caught.value).startswith(
        f"providers clash: {first} (package miniapp-reconciler)"
        f" and {plugin.name} (package reconciler-fake) both"
        f" claim {claim}"
    )


@dataclass
class _Dist:
    name: str


@dataclass
class _Point:
    name: str
    value: str
    loaded: Any
    dist: _Dist | None = None

    def load(self) -> Any:
        if isinstance(self.loaded, Exception):
            raise self.loaded
        return self.loaded


def _found(point: _Point) -> list[ProviderDescriptor]:
    return plugin_descriptors(lambda: [point])


def test_a_plugin_descriptor_gets_its_package_from_its_distribution() -> None:
    [found] = _found(_Point("fake", "fake:D", _descriptor("x"), _Dist("reconciler-fake2")))
    assert found.package == "reconciler-fake2"


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (
            _Point("fake", "fake.descriptor:D", RuntimeError("boom" * 200), _Dist("pkg-fake")),
            "the provider plugin 'fake' (package pkg-fake) failed to import: RuntimeError: boom",
        ),
        (
            _Point("fake", "fake.descriptor:D", {"name": "fake"}, _Dist("pkg-fake")),
            "the provider plugin 'fake' (package pkg-fake) registers dict, not a"
            " ProviderDescriptor",
        ),
        (
            _Point("other", "fake.descriptor:D", _descriptor("x"), _Dist("pkg-fake")),
            "the provider plugin 'other' (package pkg-fake) is malformed: its entry point is"
            " named 'other', not 'fake'",
        ),
        (
            _Point("Bad Name", "fake.descriptor:D", _descriptor("x", name="Bad Name"), None),
            "the provider plugin 'Bad Name' (package fake.descriptor) is malformed: name 'Bad"
            " Name' is not a lowercase word",
        ),
        (
            _Point("fake", "m:D", _descriptor("x", provider="not a reference"), None),
            "the provider plugin 'fake' (package m) is malformed: provider 'not a reference' is"
            " not a 'module:ATTRIBUTE' reference",
        ),
    ],
    ids=["import-fails", "not-a-descriptor", "name-mismatch", "bad-name", "bad-reference"],
)
def test_a_broken_plugin_is_one_clear_line_naming_its_package(point: _Point, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _found(point)
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text and len(text) < 600


def test_what_a_builtin_descriptor_says_is_what_its_provider_says() -> None:
    """The descriptor answers without importing the provider (nouns, credentials, the
    state-root flag, its sandbox's name): each answer must be the loaded provider's own."""
    from reconciler.providers.registry import BUILTIN, CONNECTORS, LazyProvider

    for descriptor in BUILTIN:
        fresh = LazyProvider(descriptor)
        said = (fresh.noun, fresh.credential_variables({}, None))
        loaded = fresh.loaded()
        assert said == (loaded.noun, loaded.credential_variables({}, None))  # type: ignore[attr-defined]
        connector = CONNECTORS[descriptor.name]
        # The provider that binds the state file says what it is bound to before any session.
        assert descriptor.state_root == hasattr(connector.loaded(), "binding")  # type: ignore[attr-defined]
        # `sandbox serve --api` lists the descriptor's name for the sandbox the provider serves.
        assert descriptor.sandbox_api == getattr(loaded, "sandbox_api", None)
