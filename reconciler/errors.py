"""One error root for the whole tool.

Every module raises a subclass of :class:`ReconcilerError` (converting foreign exceptions at
its boundary with ``raise ... from e``); only ``cli`` turns them into messages and exit codes.
Messages never contain secrets: the client redacts before it raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ReconcilerError(Exception):
    """Root of every error this tool raises on purpose."""


class ConfigError(ReconcilerError):
    """Bad configuration: endpoint, token, flags that contradict each other."""


class UsageError(ConfigError):
    """A malformed command-line value (``--select team``): exit 64, like click's own usage
    errors, so that a pipeline tells "you called it wrong" from "it found a problem"."""


class InvalidIdError(ReconcilerError, ValueError):
    """An id that must not enter a URL (not on the allow-list)."""


@dataclass(frozen=True)
class ManifestIssue:
    """One problem in one manifest, pointing at the offending key or value."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # dotted field path inside the document, e.g. "spec.versions[0].code"
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class ManifestError(ReconcilerError):
    """The manifests are invalid; carries the issues found, not only the first.

    ``omitted``: how many more were found but not kept (the loader caps what it reports so
    that a hostile file cannot flood a terminal or a PR comment).
    """

    def __init__(self, issues: list[ManifestIssue], omitted: int = 0) -> None:
        self.issues = list(issues)
        self.omitted = omitted
        count = len(self.issues) + omitted
        head = f"{count} manifest error{'s' if count != 1 else ''}"
        lines = [f"\n  {issue}" for issue in self.issues]
        if omitted:
            lines.append(f"\n  {self.more_line}")
        super().__init__(head + "".join(lines))

    @property
    def total(self) -> int:
        return len(self.issues) + self.omitted

    @property
    def more_line(self) -> str:
        """The line printed after the issues when some were left out ("" when none were)."""
        if not self.omitted:
            return ""
        return f"... and {self.omitted} more error{'s' if self.omitted != 1 else ''}"


@dataclass(frozen=True)
class ApiErrorItem:
    code: int | None
    message: str


@dataclass
class ApiError(ReconcilerError):
    """A non-2xx answer from the Mini App Center (after retries, where retries apply)."""

    method: str
    path: str  # path only, never the query string or a header
    status: int
    errors: list[ApiErrorItem] = field(default_factory=list)
    text: str = ""  # the raw body when it was not the documented JSON error shape

    def __post_init__(self) -> None:
        Exception.__init__(self, str(self))

    @property
    def detail(self) -> str:
        if self.errors:
            return "; ".join(
                f"{e.message} (code {e.code})" if e.code is not None else e.message
                for e in self.errors
            )
        return self.text.strip()[:500] or "no error body"

    def __str__(self) -> str:
        msg = f"{self.method} {self.path} -> HTTP {self.status}: {self.detail}"
        if self.status in (401, 403):
            msg += (
                " (check MAC_API_TOKEN: it must be a valid Mini App Center API token with the"
                " Member Organization User scope)"
            )
        return msg


class TransportError(ReconcilerError):
    """The API could not be reached (connection refused, DNS, TLS, timeout) after retries."""

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(f"{method} {path}: {reason}")


class AmbiguousWriteError(ReconcilerError):
    """A non-idempotent write may or may not have happened (timeout, 502/503/504, dropped
    connection). The caller must re-read the live state and decide; it is never retried blindly.
    """

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(
            f"{method} {path}: outcome unknown ({reason}); the write may or may not have happened"
        )


class StateError(ReconcilerError):
    """The state file is unreadable, for another endpoint, or otherwise unusable."""


class LockError(StateError):
    """Another run holds the state lock."""


class PlanError(ReconcilerError):
    """A plan that must not be applied: too many deletes, stale saved plan, and the like."""
