"""A first look at a composed document, before any field is read: what no field may hold.

* **Tags**: only YAML's own (``!!str``, ``!!int``, ``!!map``, ...). ``!!python/object``, a
  custom ``!Thing`` or ``!!set`` mean something to some loader and nothing here; refused on
  scalars, mappings and lists alike, wherever they are.
* **Lone surrogates** (``"\\ud800"`` in a double-quoted string) are not Unicode: no file, JSON
  document or HTTP body can carry them.
* **Depth**: collections nested more than :data:`~reconciler.manifest.compose.MAX_DEPTH`
  levels, in a document libyaml composed (the pure loader stops there itself), reported alone.
* **Alias expansion**: the walk reads an aliased node once per reference. A document whose
  aliases add more than :data:`MAX_ALIAS_EXPANSION` values (a fan-out, a "billion laughs")
  or refer to themselves is refused with one message, so work and output stay bounded.

Each node is visited once (a graph walk with a visited set), so this is linear in the text.

Most manifests can hold none of these: a tag needs a ``!`` in the text, a lone surrogate a
``\\u`` or ``\\U`` escape (the text itself is strict UTF-8), an alias a ``*``.
:func:`text_hints` says which the text can hold, and :func:`screen` then skips the checks
that cannot find anything: for a plain manifest only the depth is walked, over collections
only (scalars are most of the nodes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.manifest.compose import MAX_DEPTH, TOO_DEEP
from reconciler.manifest.nodes import TAG, Pos, pos_of

SCALAR_TAGS = frozenset(
    TAG + kind
    for kind in ("str", "int", "float", "bool", "null", "timestamp", "merge", "value", "binary")
)
MAPPING_TAG = TAG + "map"
SEQUENCE_TAG = TAG + "seq"
MAX_ALIAS_EXPANSION = 10_000
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Hints:
    """What a document's text can hold (a ``False`` is certain, a ``True`` only possible)."""

    tags: bool = True
    surrogates: bool = True
    aliases: bool = True


ANYTHING = Hints()


def text_hints(text: str) -> Hints:
    """The hints for every document of ``text``."""
    return Hints(
        tags="!" in text, surrogates="\\u" in text or "\\U" in text, aliases="*" in text
    )


def screen(root: Node, hints: Hints = ANYTHING) -> list[tuple[Pos, str]]:
    """Problems that make the document unreadable, with their places; [] when none."""
    if not (hints.tags or hints.surrogates or hints.aliases):
        return _depth_only(root)
    problems: list[tuple[Pos, str]] = []
    distinct, shared = 0, False
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(root, 1)]  # and how many collections hold it
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            shared = True  # reached twice: through an alias
            continue
        seen.add(id(node))
        distinct += 1
        problem = _node_problem(node)
        if problem:
            problems.append((pos_of(node), problem))
        if isinstance(node, ScalarNode):
            continue
        if depth > MAX_DEPTH:
            # Alone: the pure loader stops at this very node (see compose.GuardedLoader).
            return [(pos_of(node), TOO_DEEP)]
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                stack.extend(((value, depth + 1), (key, depth + 1)))
        else:
            stack.extend((child, depth + 1) for child in reversed(node.value))
    # Without an alias the tree is its own expansion: the second walk is for aliases only.
    expanded = _expanded_size(root) if shared else distinct
    if expanded is None:
        problems.append((pos_of(root), "an alias refers to a node that contains it (a loop);"
                         " write the value out"))
    elif expanded - distinct > MAX_ALIAS_EXPANSION:
        problems.append((
            pos_of(root),
            f"aliases (*name) expand this document by {expanded - distinct} values, more than"
            f" the limit of {MAX_ALIAS_EXPANSION}; write the values out or use fewer aliases",
        ))
    return sorted(problems, key=lambda problem: problem[0])


def _depth_only(root: Node) -> list[tuple[Pos, str]]:
    """:func:`screen` of a document that has no tag, alias or escape: a tree whose only
    possible problem is its depth. Only collections are pushed; the order of the walk is the
    full screen's (depth-first, in document order), so the node named is the same one."""
    if type(root) is ScalarNode:
        return []
    stack: list[tuple[Node, int]] = [(root, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH:
            return [(pos_of(node), TOO_DEEP)]
        deeper = depth + 1
        if type(node) is MappingNode:
            for key, value in reversed(node.value):
                if type(value) is not ScalarNode:
                    push((value, deeper))
                if type(key) is not ScalarNode:
                    push((key, deeper))
        else:
            for child in reversed(node.value):
                if type(child) is not ScalarNode:
                    push((child, deeper))
    return []


def _node_problem(node: Node) -> str | None:
    if isinstance(node, ScalarNode):
        if node.tag not in SCALAR_TAGS:
            return f"unsupported YAML tag {_tag(node.tag)}; remove it and write a plain value"
        match = _SURROGATE_RE.search(str(node.value))
        if match:
            code = ord(match.group())
            return (
                f"contains U+{code:04X}, a lone surrogate (from a \\u escape), which is not"
                " valid Unicode; remove it"
            )
        return None
    expected = MAPPING_TAG if isinstance(node, MappingNode) else SEQUENCE_TAG
    if node.tag != expected:
        shape = "a mapping" if isinstance(node, MappingNode) else "a list"
        return f"unsupported YAML tag {_tag(node.tag)} on {shape}; remove it"
    return None


def _tag(tag: str) -> str:
    short = "!!" + tag.removeprefix(TAG) if tag.startswith(TAG) else tag
    return repr(short) if len(short) <= 60 else repr(short[:59] + "…")


def _expanded_size(root: Node) -> int | None:
    """How many nodes the tree has with every alias written out; None for a loop."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            continue
        if key in size:
            continue
        if key in on_path:
            return None
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                return None
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []
