"""What every provider's saved-plan schema shares: the bounds, the strict base model, and the
parts of the plan document that no provider shapes (summary, state reference, app meta).
Each provider's ``plan_check`` builds its own ``changes`` and ``learned`` on these."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_CHANGES = 100_000
MAX_TEXT = 65_536  # one string value (a description, a URL)
MAX_NAME = 255  # an id, a key, a name, a version code
MAX_INT = 2**53  # ids and counters: exact in JSON everywhere

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Address = Annotated[str, Field(min_length=1, max_length=4 * MAX_NAME)]


# Unknown fields refused, no coercion, immutable. Providers' own models set it on a local
# ``BaseModel`` subclass (linters recognise only direct pydantic subclasses).
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class Strict(BaseModel):
    model_config = STRICT


class Summary(Strict):
    create: Annotated[int, Field(ge=0)]
    update: Annotated[int, Field(ge=0)]
    delete: Annotated[int, Field(ge=0)]
    adopt: Annotated[int, Field(ge=1)] | None = None  # present only when there are adoptions


class StateRef(Strict):
    lineage: Name | None
    serial: Annotated[int, Field(ge=0, le=MAX_INT)] | None


class AppMeta(Strict):
    protect: bool
    labels: Annotated[dict[Name, Text], Field(max_length=100)]
