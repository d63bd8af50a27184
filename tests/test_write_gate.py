"""The lease check before every write, for every provider: the shared transport awaits the
run's write gate before any request that may write, so a run that lost its PostgreSQL lease
sends no write, whichever provider (or plugin, or auth flow) would have sent it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from reconciler.cli.main import main
from reconciler.errors import StateError
from reconciler.state.pg import PgStateStore
from reconciler.transport.config import ClientLimits
from reconciler.transport.guard import WRITE_GATE, GuardedTransport

REPO = Path(__file__).resolve().parent.parent


def _client(sent: list[str]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json={})

    limits = ClientLimits(request_deadline=5.0, max_response_bytes=1 << 20)
    return httpx.AsyncClient(transport=GuardedTransport(httpx.MockTransport(answer), limits))


def test_a_refusing_gate_stops_every_write_before_it_is_sent_and_no_read() -> None:
    sent: list[str] = []

    async def refuse() -> None:
        raise StateError("this run lost its lease")

    async def run() -> list[str]:
        refused: list[str] = []
        WRITE_GATE.set(refuse)
        async with _client(sent) as client:
            await client.get("http://api.test/items")
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                try:
                    await client.request(method, "http://api.test/items/1")
                except StateError:
                    refused.append(method)
        return refused

    assert asyncio.run(run()) == ["POST", "PUT", "PATCH", "DELETE"]
    assert sent == ["GET"]  # the refused writes never left


def test_without_a_gate_writes_go_out() -> None:
    sent: list[str] = []

    async def run() -> None:
        async with _client(sent) as client:
            await client.post("http://api.test/items", json={})

    asyncio.run(run())
    assert sent == ["POST"]


def test_an_akana_apply_whose_lease_is_lost_sends_no_write(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD"):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / ".git").mkdir()
    checks: list[str | None] = []
    real = PgStateStore.before_write

    async def lost(self: PgStateStore, app_id: str | None) -> None:
        checks.append(app_id)
        raise StateError("this run lost its lease in the state (test)")

    monkeypatch.setattr(PgStateStore, "before_write", lost)
    args = ["manifests", "--sandbox", "--provider", "akana", "--state", pg_url]
    code = main(["apply", *args, "--auto-approve"])
    err = capsys.readouterr().err
    assert code != 0 and "lost its lease" in err, err[-3000:]
    assert checks and all(app_id is None for app_id in checks)  # asked by the transport
    # Nothing reached the Akana sandbox: with the lease back, every app is still to create.
    monkeypatch.setattr(PgStateStore, "before_write", real)
    assert main(["plan", *args]) == 0
    out = capsys.readouterr().out
    assert "+ akana_app[Payments Gateway]" in out, out[-3000:]
    assert "Plan: 3 to create, 0 to update, 0 to delete." in out
