"""The REST provider's plan vocabulary: its one kind, its writes, its address key and the
fact its plans learn by reading (an object to adopt)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.address import Address

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan

PROVIDER = "rest"
ROOT_KIND = "rest_object"
ROOT_KINDS: Mapping[str, str] = {ROOT_KIND: PROVIDER}
# One kind, no dependencies between objects (yet): every change is at level 0.
LEVELS: Mapping[str, int] = {ROOT_KIND: 0}
# The closed vocabulary of writes, exactly the keys of ``apply.DISPATCH``.
OPERATIONS: frozenset[tuple[str, str, str | None]] = frozenset(
    {(ROOT_KIND, "create", None), (ROOT_KIND, "update", None), (ROOT_KIND, "delete", None)}
)


def address_key(endpoint: str, path: str, key: str) -> str:
    """``ENDPOINT:PATH:KEY`` (``shop:/api/products/:SKU-1``). Endpoint names and collection
    paths never hold ``:`` (the project file and the checker refuse it), so the first two
    colons split it back whatever the key holds."""
    return f"{endpoint}:{path}:{key}"


def split_address_key(text: str) -> tuple[str, str, str]:
    """(endpoint, path, key) of :func:`address_key`; ValueError when it is not one."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].startswith("/") or not parts[1].endswith(
        "/"
    ):
        raise ValueError("a REST object key is ENDPOINT:/collection/path/:NATURAL_KEY")
    return parts[0], parts[1], parts[2]


def as_target_id(server_id: int | str) -> int | str:
    """``server_id`` for ``Change.target_id``: an integer, or a string (a slug, a UUID: D95)
    that :func:`reconciler.providers.rest.plan_check.load_saved_plan` validates."""
    return server_id


def object_address(endpoint: str, path: str, key: str) -> Address:
    return Address(PROVIDER, ROOT_KIND, address_key(endpoint, path, key))


@dataclass(frozen=True)
class Adopt:
    """An object the manifests declare that exists live (matched by its natural key) and the
    state does not record: apply records it, with no API write (D81)."""

    key: str  # the address key
    record: Mapping[str, Any] = field(default_factory=dict)  # a RestRecord as JSON
    reads: int = 0

    @property
    def address(self) -> Address:
        return Address(PROVIDER, ROOT_KIND, self.key)

    @property
    def app_id(self) -> str:
        return self.key

    @property
    def adopts(self) -> bool:
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"address": str(self.address), "adopt": dict(self.record)}

    def describe(self) -> str:
        return (
            f"adopt id {self.record.get('id')} (exists on the server with this"
            f" {self.record.get('key_field')}, unknown to the state)"
        )


def adoptions_of(plan: Plan) -> tuple[Adopt, ...]:
    """This provider's facts in ``plan`` (a plan may carry other providers' too)."""
    return tuple(item for item in plan.learned if isinstance(item, Adopt))
