"""How a workflow tells the person running it what happens, without knowing how it is shown:
the CLI implements these (stderr, a progress bar, a prompt); a workflow only calls them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from reconciler.engine.session import Stoppable

if TYPE_CHECKING:
    from reconciler.engine.plan import Change, Plan

__all__ = ["ApplyReporter", "ChangeResult", "Reporter", "Stoppable"]


class Reporter(Protocol):
    def say(self, message: str) -> None:
        """One diagnostic line: endpoints, warnings, notes (the CLI writes it to stderr, so
        stdout stays machine-readable)."""


class ChangeResult(Protocol):
    """One change's result as the progress line shows it (engine.result.ChangeResult)."""

    @property
    def change(self) -> Change: ...

    @property
    def outcome(self) -> str: ...

    @property
    def message(self) -> str | None: ...


class ApplyReporter(Reporter, Protocol):
    """What `apply` tells, and asks, the person running it."""

    def review(self, plan: Plan, asks: bool) -> None:
        """The plan about to run (``asks``: confirmation follows), shown before any write."""

    def confirm(self) -> bool:
        """Approve the plan? False: nothing is applied."""

    def may_write(self) -> None:
        """From here on an interruption may leave completed writes behind (recorded)."""

    def writes_running(self, current: Callable[[], Stoppable | None]) -> None:
        """Called inside the event loop as writes start: a CLI installs its graceful stop
        (Ctrl-C, SIGTERM) here; ``current`` is the run's graceful stop, None when no running
        session polls it (then a stop cancels the writes; each completed one is recorded)."""

    def loop_closed(self) -> None:
        """An event loop closed (closing one resets the signal handlers it installed)."""

    def progress_begin(self, total: int) -> None: ...

    def progress_start(self, change: Change) -> None: ...

    def progress_result(self, result: ChangeResult) -> None: ...

    def progress_end(self) -> None: ...
