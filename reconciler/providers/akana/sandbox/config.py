"""How an Akana sandbox is configured: its users, its session rules and the faults it injects."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.sandbox_kit.faults import check_fault_settings

DEFAULT_FEDMEMBER = "acmepaymentscorp"
DEFAULT_SESSION_SECONDS = 30 * 60.0  # the platform's default session lifetime
_FEDMEMBER_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class AkanaSandboxConfig:
    """``users`` maps e-mail to password; ``pending_tasks`` maps e-mail to the task a login
    of that user answers instead of a session (e.g. ``"ChangePassword"``).

    ``clock`` (wall seconds) decides session expiry; tests pass a settable one instead of
    sleeping.
    """

    db_path: str | Path
    users: Mapping[str, str]
    fedmember: str = DEFAULT_FEDMEMBER
    csrf: bool = True
    session_seconds: float = DEFAULT_SESSION_SECONDS
    pending_tasks: Mapping[str, str] = field(default_factory=dict)
    latency_ms: float = 0
    fail_rate: float = 0
    ambiguous_rate: float = 0
    seed: int | None = None
    rate_limit: float | None = None
    # False: the injected faults spare /api/login* (tests that fault only the data path).
    faults_on_login: bool = True
    # An assumption beyond the docs (docs/reference/sandbox-conformance.md): False serves
    # duplicate app names, as a real platform may (`--drop-assumption unique-app-names`).
    unique_app_names: bool = True
    # Likewise: False serves a repeated version name in one app
    # (`--drop-assumption unique-version-names`).
    unique_version_names: bool = True
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if not self.users or any(not email or not pw for email, pw in self.users.items()):
            raise ValueError("the Akana sandbox needs at least one user with a non-empty password")
        if not _FEDMEMBER_RE.fullmatch(self.fedmember):
            raise ValueError("fedmember must be lower-case letters, digits and '-'")
        if self.session_seconds <= 0:
            raise ValueError("session_seconds must be > 0")
        check_fault_settings(
            latency_ms=self.latency_ms, fail_rate=self.fail_rate,
            ambiguous_rate=self.ambiguous_rate, rate_limit=self.rate_limit,
        )

    def __repr__(self) -> str:
        # Passwords stay out of reprs, tracebacks and test failure output.
        return (
            f"AkanaSandboxConfig(db_path={str(self.db_path)!r}, users={sorted(self.users)!r}"
            f" (passwords '***'), fedmember={self.fedmember!r}, csrf={self.csrf},"
            f" session_seconds={self.session_seconds}, pending_tasks={dict(self.pending_tasks)!r},"
            f" latency_ms={self.latency_ms}, fail_rate={self.fail_rate},"
            f" ambiguous_rate={self.ambiguous_rate}, seed={self.seed},"
            f" rate_limit={self.rate_limit}, faults_on_login={self.faults_on_login},"
            f" unique_app_names={self.unique_app_names},"
            f" unique_version_names={self.unique_version_names})"
        )
