"""How a sandbox is configured: where its data lives, its token, and the faults it injects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.sandbox_kit.faults import check_fault_settings


@dataclass(frozen=True)
class SandboxConfig:
    db_path: str | Path
    token: str
    latency_ms: float = 0
    fail_rate: float = 0
    ambiguous_rate: float = 0
    seed: int | None = None
    rate_limit: float | None = None  # requests per second across the server; None = unlimited
    # An assumption beyond the docs (docs/reference/sandbox-conformance.md): False serves a
    # second version of a code, as a real server may (`--drop-assumption unique-version-codes`).
    unique_version_codes: bool = True
    # Likewise: False ignores a JSON body's unknown fields instead of refusing them
    # (`--drop-assumption refuse-unknown-fields`), and lets any review step set its status
    # from any status (`--drop-assumption review-flow`).
    refuse_unknown_fields: bool = True
    review_flow: bool = True

    def __post_init__(self) -> None:
        # An empty token would let an empty APIKey-Auth header through.
        if not self.token:
            raise ValueError("the sandbox token must not be empty")
        check_fault_settings(
            latency_ms=self.latency_ms, fail_rate=self.fail_rate,
            ambiguous_rate=self.ambiguous_rate, rate_limit=self.rate_limit,
        )

    def __repr__(self) -> str:
        # Keep the token out of reprs, tracebacks and test failure output.
        return (
            f"SandboxConfig(db_path={str(self.db_path)!r}, token='***',"
            f" latency_ms={self.latency_ms}, fail_rate={self.fail_rate},"
            f" ambiguous_rate={self.ambiguous_rate}, seed={self.seed},"
            f" rate_limit={self.rate_limit}, unique_version_codes={self.unique_version_codes},"
            f" refuse_unknown_fields={self.refuse_unknown_fields},"
            f" review_flow={self.review_flow})"
        )
