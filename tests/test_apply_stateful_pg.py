"""The stateful hypothesis test of tests/test_apply_stateful.py, once with the PostgreSQL
store: each example in its own workspace of one database; a lost state is a dropped
workspace; every apply locks the apps it declares (a write outside them fails the run)."""

from __future__ import annotations

import uuid

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from reconciler.state import StateStore
from reconciler.state_pg import PgStateStore, split_url
from tests.fixtures_postgres import PgServer
from tests.test_apply_stateful import ApplyMachine


class PgApplyMachine(ApplyMachine):
    url = ""  # set by the test (the session's database)

    def _store(self) -> StateStore:
        if not hasattr(self, "workspace"):
            self.workspace = f"w{uuid.uuid4().hex[:12]}"
        return PgStateStore(f"{self.url}&workspace={self.workspace}")

    def _forget_state(self) -> None:
        self._drop_workspaces()
        # a lost state starts a new lineage, as a deleted file does
        self.workspace = f"w{uuid.uuid4().hex[:12]}"

    def teardown(self) -> None:
        # The next example starts from an empty sandbox: its apps are claimed by no one.
        self._drop_workspaces()
        super().teardown()

    def _drop_workspaces(self) -> None:
        with psycopg.connect(split_url(self.url)[0], autocommit=True) as conn:
            conn.execute("DELETE FROM reconciler_workspaces")


def test_apply_converges_with_the_postgresql_store(pg_server: PgServer) -> None:
    PgApplyMachine.url = pg_server.url(pg_server.create_db())
    run_state_machine_as_test(
        PgApplyMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=14,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
