"""How a workflow tells the person running it what happens, without knowing how it is shown:
the CLI implements these (stderr, a progress bar, a prompt); a workflow only calls them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reconciler.engine.plan import Change, Plan
    from reconciler.providers.miniappcenter.apply import ChangeResult


class Reporter(Protocol):
    def say(self, message: str) -> None:
        """One diagnostic line: endpoints, warnings, notes (the CLI writes it to stderr, so
        stdout stays machine-readable)."""


class Stoppable(Protocol):
    """What a graceful stop asks of the running writes (the Mini App Center's executor)."""

    @property
    def stopping(self) -> bool: ...

    def request_stop(self) -> None:
        """Start no new change; the writes in flight finish and are recorded."""


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
        (Ctrl-C, SIGTERM) here; ``current`` is the executor to stop, None when another
        provider's writes run."""

    def loop_closed(self) -> None:
        """An event loop closed (closing one resets the signal handlers it installed)."""

    def progress_begin(self, total: int) -> None: ...

    def progress_start(self, change: Change) -> None: ...

    def progress_result(self, result: ChangeResult) -> None: ...

    def progress_end(self) -> None: ...
