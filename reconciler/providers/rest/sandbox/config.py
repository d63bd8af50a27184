"""How a tenant sandbox is configured: users, Api-Keys, token lifetimes, paging, faults."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from reconciler.sandbox_kit.faults import check_fault_settings

# simplejwt's defaults, which the tenant API documents (5 minutes, 1 day).
DEFAULT_ACCESS_SECONDS = 300.0
DEFAULT_REFRESH_SECONDS = 86_400.0


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class TenantSandboxConfig:
    """``users``: user name -> password; ``api_keys``: Api-Key -> tenant (schema) name.

    A request without ``Api-Key`` works in the read-only ``public`` schema.
    """

    db_path: str | Path
    users: Mapping[str, str]
    api_keys: Mapping[str, str]
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    access_seconds: float = DEFAULT_ACCESS_SECONDS
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    page_size: int = 10
    max_page_size: int = 100
    # DRF's PageNumberPagination takes no page-size parameter unless its
    # ``page_size_query_param`` is set: by default the server's pages are what a client gets.
    page_size_param: str | None = None
    latency_ms: float = 0
    fail_rate: float = 0
    ambiguous_rate: float = 0
    seed: int | None = None
    rate_limit: float | None = None
    # An assumption beyond the docs (docs/reference/sandbox-conformance.md): a decimal field
    # answers DRF's fixed-point string (``12.5`` -> ``"12.50"``); False answers the number as
    # sent (`--drop-assumption fixed-point-decimals`).
    fixed_point_decimals: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", _frozen(self.users))
        object.__setattr__(self, "api_keys", _frozen(self.api_keys))
        if not self.users or any(not user or not pw for user, pw in self.users.items()):
            raise ValueError("at least one user, each with a non-empty name and password")
        if any(not key for key in self.api_keys) or "public" in self.api_keys.values():
            raise ValueError("Api-Keys must be non-empty and never name the public schema")
        if len(self.signing_key) < 16:
            raise ValueError("the signing key must be at least 16 bytes")
        if min(self.access_seconds, self.refresh_seconds) <= 0:
            raise ValueError("token lifetimes must be > 0 seconds")
        if not 1 <= self.page_size <= self.max_page_size:
            raise ValueError("page_size must be between 1 and max_page_size")
        check_fault_settings(
            latency_ms=self.latency_ms, fail_rate=self.fail_rate,
            ambiguous_rate=self.ambiguous_rate, rate_limit=self.rate_limit,
        )

    def __repr__(self) -> str:
        # Passwords, keys and the signing key stay out of reprs and test output.
        return (
            f"TenantSandboxConfig(db_path={str(self.db_path)!r}, users={sorted(self.users)!r},"
            f" api_keys=<{len(self.api_keys)}>, access_seconds={self.access_seconds},"
            f" refresh_seconds={self.refresh_seconds}, page_size={self.page_size},"
            f" fail_rate={self.fail_rate}, ambiguous_rate={self.ambiguous_rate},"
            f" fixed_point_decimals={self.fixed_point_decimals})"
        )
