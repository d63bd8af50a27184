"""Resource addresses: one type, one formatter, one parser.

An address names one managed resource the way the plan, the state, the journal and every
message show it: ``miniapp[shop].version[1.2.0].status[ready]``. Nothing else builds or
splits these strings; code that needs a part reads the structured field.

Text form: segments ``kind[key]`` joined by ``.``, the root first, then an optional
``#instance`` (a duplicate of the same key on the server, named by its server id). A
segment with no key (``.status``, ``.locations``) names the one thing of that kind its
parent has (a version's review status, an app's location list). Keys are free text, so
``]`` and ``\\`` inside a key are escaped with a backslash. The provider is not spelled in
the text: each root kind belongs to exactly one provider (``miniapp`` to the Mini App
Center, ``akana_app`` to Akana), and the parser is told which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Kinds are identifiers; keys are anything printable (ids, names, codes, field names).
_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
MAX_ADDRESS_CHARS = 2048
MAX_DEPTH = 8


class AddressError(ValueError):
    """A string that is not an address this reconciler writes."""


@dataclass(frozen=True, slots=True)
class Address:
    provider: str
    kind: str
    key: str | None  # None: the parent's one thing of this kind (a singleton)
    parent: Address | None = None
    instance: int | None = None  # a server-side duplicate of this key, by its server id

    def child(self, kind: str, key: str | None = None) -> Address:
        _check_kind(kind)
        return Address(self.provider, kind, key, self)

    def duplicate(self, server_id: int) -> Address:
        """The same address for one of several server objects sharing this key."""
        return Address(self.provider, self.kind, self.key, self.parent, server_id)

    @property
    def root(self) -> Address:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def path(self) -> tuple[tuple[str, str | None], ...]:
        """(kind, key) from the root down to this address."""
        nodes: list[tuple[str, str | None]] = []
        node: Address | None = self
        while node is not None:
            nodes.append((node.kind, node.key))
            node = node.parent
        return tuple(reversed(nodes))

    def key_of(self, kind: str) -> str | None:
        """The key of the ancestor (or self) of ``kind``, if any."""
        node: Address | None = self
        while node is not None:
            if node.kind == kind:
                return node.key
            node = node.parent
        return None

    def __str__(self) -> str:
        text = ".".join(
            kind if key is None else f"{kind}[{_escape(key)}]" for kind, key in self.path()
        )
        return text if self.instance is None else f"{text}#{self.instance}"


def root_address(provider: str, kind: str, key: str) -> Address:
    _check_kind(kind)
    return Address(provider, kind, key)


def parse_address(text: str, root_kinds: Mapping[str, str]) -> Address:
    """Parse ``text``; ``root_kinds`` maps each root kind to the provider that owns it.

    Raises :class:`AddressError` naming what is wrong; never returns a partial address.
    """
    if not isinstance(text, str) or not text:
        raise AddressError("an address must be a non-empty string")
    if len(text) > MAX_ADDRESS_CHARS:
        raise AddressError(f"an address is at most {MAX_ADDRESS_CHARS} characters")
    segments: list[tuple[str, str | None]] = []
    position = 0
    instance: int | None = None
    while True:
        end = position
        while end < len(text) and text[end] in _KIND_CHARS:
            end += 1
        kind = text[position:end]
        _check_kind(kind)
        key: str | None = None
        if end < len(text) and text[end] == "[":
            key, position = _read_key(text, end + 1)
        elif not segments:
            raise AddressError(f"expected kind[key] at character {position + 1}")
        else:
            position = end
        segments.append((kind, key))
        if len(segments) > MAX_DEPTH:
            raise AddressError(f"an address is at most {MAX_DEPTH} levels deep")
        if position == len(text):
            break
        if text[position] == "#":
            digits = text[position + 1 :]
            if not digits.isdigit() or not digits.isascii() or len(digits) > 18:
                raise AddressError("#instance must be a server id (digits)")
            instance = int(digits)
            break
        if text[position] != ".":
            raise AddressError(f"expected '.' or '#' at character {position + 1}")
        position += 1
    root_kind = segments[0][0]
    provider = root_kinds.get(root_kind)
    if provider is None:
        known = ", ".join(sorted(root_kinds)) or "none"
        raise AddressError(f"unknown resource kind {root_kind!r} (known: {known})")
    address: Address | None = None
    for kind, key in segments:
        address = Address(provider, kind, key, address)
    assert address is not None
    if instance is not None:
        address = address.duplicate(instance)
    return address


def _check_kind(kind: str) -> None:
    if not kind or len(kind) > 40 or not set(kind) <= _KIND_CHARS or not kind[0].isalpha():
        # The text may come from a file: never echoed (it may hold terminal escapes).
        raise AddressError("a resource kind must be a lowercase identifier")


def _escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace("]", "\\]")


def _read_key(text: str, start: int) -> tuple[str, int]:
    """The unescaped key starting at ``start`` and the position after its closing ``]``."""
    out: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text) or text[index + 1] not in "\\]":
                raise AddressError(f"bad escape at character {index + 1}")
            out.append(text[index + 1])
            index += 2
            continue
        if char == "]":
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise AddressError("unclosed '[' in address")
