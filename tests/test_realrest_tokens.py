"""Token expiry and revocation mid-apply against the real Django REST framework server:
1-second access tokens, each write answered 1.5 s late (so the token in use always expires
between two writes), and every refresh token blacklisted after each write (so a refresh is
refused and only a fresh login goes on). The apply must still converge, through the CLI."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures_realrest import RealShop, start_realshop
from tests.test_realrest_cli import manifest, product, run, use_project


@pytest.fixture(scope="module")
def shortlived() -> Iterator[RealShop]:
    with tempfile.TemporaryDirectory(prefix="reconciler-realshop-short-") as folder:
        yield from start_realshop(
            Path(folder), access_seconds=1, write_delay=1.5, blacklist_after_write=True
        )


def test_expired_and_blacklisted_tokens_mid_apply_are_recovered(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shortlived: RealShop,
) -> None:
    key = shortlived.next_tenant()
    project = use_project(tmp_path, monkeypatch, shortlived, key)
    manifest(project, "p.yaml", "---\n".join(product(f"TOK-{n}") for n in range(3)))
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve", "--parallelism", "1")
    assert code == 0 and "Apply complete: 3 applied, 0 failed" in out, out + err
    for secret in (key, "realshop-pw-correct-horse-battery", "eyJ"):
        assert secret not in out + err
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 0, out + err
