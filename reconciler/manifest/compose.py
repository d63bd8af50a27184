"""YAML text -> composed documents: libyaml where it is safe, PyYAML's pure-Python loader
otherwise, with the same marks, the same errors and the same depth limit either way.

Composing is most of the time ``validate`` spends (82% with the pure-Python loader, which
libyaml's ``CSafeLoader`` does about 7x faster). libyaml is used only from version 0.2.6:

* older libyaml composes nested collections by recursing in C without a limit, so a deeply
  nested document (50,000 ``[``) crashes the interpreter; 0.2.6 refuses nesting past 1,000
  levels with an ordinary error;
* the pure-Python loader recurses in Python: 1,000 levels raise ``RecursionError``.

So both are guarded before they compose anything that deep. The pure loader counts levels as
it composes and stops past :data:`MAX_DEPTH` (:class:`GuardedLoader`). libyaml's own limit
keeps its recursion shallow (a deeper document is an error, below), and the screen
(:mod:`reconciler.manifest.screen`) refuses a document it composed past :data:`MAX_DEPTH`,
at the same node and with the same words as the pure loader. Any error from libyaml is
explained by the pure loader too: it is the reference for what is valid and for the wording
(whose quoting of the source :mod:`reconciler.manifest.loader` trims), and a file that is
broken anyway can afford a second, slower read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Collections inside collections. A manifest needs 5 (document, spec, versions, a version,
# compatibility); the pure loader spends 2 Python frames per level, so 50 stay far from the
# interpreter's limit of 1,000 frames whoever calls it.
MAX_DEPTH = 50
# The first libyaml with a nesting limit (and the one bundled with PyYAML 6.0.4's wheels).
SAFE_LIBYAML = (0, 2, 6)
TOO_DEEP = (
    f"YAML is nested too deeply: collections inside collections more than {MAX_DEPTH} levels"
    " deep (a manifest needs 5)"
)


# Where the two read the same text differently, the pure loader reads it, so that a file
# means the same on every machine: a tab after a value (libyaml skips it as YAML allows,
# PyYAML refuses it), a byte order mark inside the text (skipped by libyaml), and tags (the
# bare "!" is an empty string to libyaml and null to PyYAML; malformed ones are refused with
# other words). A manifest rarely has any of them, and a match only costs speed. Malformed
# text they disagree on beyond these (``|#``: a comment glued to a block scalar indicator,
# accepted by libyaml) is read by whichever runs.
_PURE_ONLY_RE = re.compile(r"[\t\ufeff]|(?:^|(?<=[\s\[\]{},]))!", re.MULTILINE)


def _pure_only(text: str) -> bool:
    """Whether the pure loader must read ``text``: the regular expression is slow on long
    texts (a lookbehind tried at every position), and most manifests have none of the three
    characters it starts from."""
    if "!" not in text and "\t" not in text and "\ufeff" not in text:
        return False
    return _PURE_ONLY_RE.search(text) is not None


def libyaml_version() -> tuple[int, ...] | None:
    """The libyaml PyYAML was built with, or None when it has none."""
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    try:
        from yaml import _yaml

        return tuple(int(part) for part in _yaml.get_version())
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - odd builds
        return None


def fast_loader_safe() -> bool:
    version = libyaml_version()
    return version is not None and version >= SAFE_LIBYAML


class GuardedLoader(yaml.SafeLoader):
    """The pure-Python SafeLoader, refusing to compose past :data:`MAX_DEPTH` levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_sequence_node(self, anchor: Any) -> SequenceNode:
        self._enter()
        try:
            return super().compose_sequence_node(anchor)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        self._enter()
        try:
            return super().compose_mapping_node(anchor)
        finally:
            self._depth -= 1

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            # The start of the collection one level too deep: the node the screen of a
            # libyaml-composed document names (reconciler.manifest.screen).
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ComposerError(None, None, TOO_DEEP, event.start_mark)


_RESOLVED_MAX = 4096  # plain scalars remembered (a fleet repeats its values: types, booleans)
_RESOLVED_LENGTH = 64  # longer texts are resolved, not remembered


# libyaml's loader (only used when libyaml is there and safe: see use_fast_loader).
_LIBYAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CachedResolverLoader(_LIBYAML_LOADER):  # type: ignore[misc]
    """libyaml's composer with PyYAML's resolver remembered: libyaml calls back into Python's
    ``resolve`` for every node (a regex list per plain scalar), a fifth of composing a
    manifest. A plain scalar's tag depends only on its text here (a SafeLoader has no path
    resolvers), so the answer is kept per text; other nodes get their default tags, as
    ``BaseResolver.resolve`` gives them without path resolvers."""

    _resolved: ClassVar[dict[str, str]] = {}  # shared: the answers hold for every text

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if self.yaml_path_resolvers:  # someone added some: PyYAML's own way
            return super().resolve(kind, value, implicit)
        if kind is ScalarNode:
            if not implicit[0]:
                return self.DEFAULT_SCALAR_TAG  # quoted (or tagged "!"): a string
            tag = self._resolved.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(value) <= _RESOLVED_LENGTH:
                    if len(self._resolved) >= _RESOLVED_MAX:
                        # Bounded: start over rather than stop remembering (a long process
                        # meets new values; the recent ones are the ones that repeat).
                        self._resolved.clear()
                    self._resolved[value] = tag
            return tag
        if kind is SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        if kind is MappingNode:
            return self.DEFAULT_MAPPING_TAG
        return super().resolve(kind, value, implicit)

    # No path resolvers, so nothing to track as the composer descends and ascends; libyaml
    # still calls both for every node, so they are C callables that do nothing of note
    # (``{}.get(node, index)`` answers ``index``; ``tuple()`` is ``()``), not Python methods.
    _NOTHING: ClassVar[dict[Any, Any]] = {}
    descend_resolver: ClassVar[Any] = staticmethod(_NOTHING.get)
    ascend_resolver: ClassVar[Any] = staticmethod(tuple)


# Chosen once: the answer cannot change while the process runs. ``use_fast_loader`` lets the
# benchmark time both loaders in one run.
use_fast_loader = fast_loader_safe()


def compose_documents(text: str) -> Iterator[Node]:
    """Every document of ``text`` as a composed node (possibly an empty scalar), lazily: a
    syntax error in a later document still lets the earlier ones be checked.

    Raises what PyYAML's pure-Python loader raises for the same text (``MarkedYAMLError``,
    ``ReaderError``), including the :data:`TOO_DEEP` ``ComposerError``.
    """
    done = 0
    if use_fast_loader and not _pure_only(text):
        try:
            for root in yaml.compose_all(text, Loader=CachedResolverLoader):
                done += 1
                yield root
            return
        except yaml.YAMLError:
            pass  # the pure loader says why, in its words, at the same place
    for count, root in enumerate(yaml.compose_all(text, Loader=GuardedLoader)):
        if count >= done:  # the documents libyaml already gave are not checked twice
            yield root
