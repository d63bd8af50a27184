"""Hypothesis stateful test: random manifests, random edits, random injected faults (500s,
writes answered by 502, answers lost, connections refused, a kill right after a write), a
random lost state file, repeated applies against the in-process sandbox.

Invariants: once faults stop, ONE apply converges (the plan is empty) with no person in
between; no version or location is ever duplicated; nothing is left unknown; an app no
manifest declares is never touched. The only thing a person is ever asked is what no read
or refused step can tell: a review status after a lost state, when every step that could tell
might move the version away from its desired status (review.py); the test checks that exactly
those are named, with the true status among the named ones, then answers as a person would.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reconciler.engine.plan import Plan
from reconciler.errors import ReconcilerError
from reconciler.providers.miniappcenter.apply import ApplyOptions, Executor
from reconciler.providers.miniappcenter.model import MiniApp, MiniAppSpec
from reconciler.providers.miniappcenter.planning import make_plan
from reconciler.providers.miniappcenter.sandbox import SandboxConfig, SandboxStore, create_app
from reconciler.state import FileStateStore, StateStore
from tests.fixtures_pipeline import IDENTITY, TOKEN, Fault, Mac, SimulatedKill

APP_IDS = ("com.test.alpha", "com.test.beta", "com.test.gamma")
OUTSIDE = "com.test.outside"  # made outside the tool; must never be touched
ATTRS = ("COUNTRY", "CATEGORY", "TIER")
LOCATIONS = ("North", "South", "East")
CODES = ("1.0", "1.1", "2.0")
CHAIN = ("pending", "waiting_for_review", "in_review", "ready")  # forward-only targets

# Every call the pipeline makes, as (method, path pattern): faults land where they matter.
CALLS = (
    ("GET", r"/miniapps/[^/]+$"),
    ("GET", r"/locations$"),
    ("GET", r"/versions/\d+$"),
    ("POST", r"/miniapps$"),
    ("PUT", r"/miniapps/[^/]+$"),
    ("POST", r"/attributes$"),
    ("DELETE", r"/attributes/"),
    ("POST", r"/locations$"),
    ("PUT", r"/locations/\d+$"),
    ("DELETE", r"/locations/\d+$"),
    ("POST", r"/versions$"),
    ("PUT", r"/versions/\d+$"),
    ("POST", r"/compatibility$"),
    ("POST", r"/compatibility/delete$"),
    ("POST", r"/send_to_review$"),
    ("POST", r"/in_review$"),
    ("POST", r"/ready$"),
)
FAULTS = st.lists(
    st.builds(
        lambda call, mode, times: Fault(call[0], call[1], mode, times),
        call=st.sampled_from(CALLS),
        mode=st.sampled_from(["500", "ambiguous", "timeout_after", "drop_before", "kill_after"]),
        times=st.integers(1, 3),
    ),
    min_size=1,
    max_size=4,
)


class ApplyMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        db = root / "sandbox.db"
        create_app(SandboxConfig(db_path=db, token=TOKEN))
        self.sandbox = SandboxStore(db)
        self.sandbox.create_miniapp(
            {"id": OUTSIDE, "name": "Outside", "superapp_id": "com.test.super", "type": "Web"}
        )
        self.mac = Mac(db=db, state_path=root / "state.json", sandbox=self.sandbox)
        self.desired: dict[str, MiniApp] = {}
        self.floor: dict[tuple[str, str], int] = {}  # lowest status index a target may take
        # Versions that were on the server when the state file was lost, whose review
        # status a person may be asked for (and only those).
        self.lost: set[tuple[str, str]] = set()

    def teardown(self) -> None:
        self.sandbox.close()
        self.tmp.cleanup()

    @rule(
        app_id=st.sampled_from(APP_IDS),
        name=st.sampled_from(["One", "Two", "Three"]),
        attrs=st.dictionaries(st.sampled_from(ATTRS), st.sampled_from(["a", "b"]), max_size=3),
        locs=st.dictionaries(
            st.sampled_from(LOCATIONS),
            st.tuples(st.integers(-179, 179), st.integers(-89, 89)),
            max_size=3,
        ),
        versions=st.dictionaries(
            st.sampled_from(CODES),
            st.tuples(
                st.sampled_from(["Panel", "Menu"]),
                st.frozensets(st.integers(1, 4), max_size=3),
                st.integers(0, 3),
            ),
            max_size=2,
        ),
    )
    def edit(
        self,
        app_id: str,
        name: str,
        attrs: dict[str, str],
        locs: dict[str, tuple[int, int]],
        versions: dict[str, tuple[str, frozenset[int], int]],
    ) -> None:
        specs: list[dict[str, Any]] = []
        for code, (main_type, compat, status_index) in sorted(versions.items()):
            floor = self.floor.get((app_id, code), 0)
            index = max(status_index, floor)
            self.floor[(app_id, code)] = index
            specs.append(
                {"code": code, "platform_id": "iOS", "main_name": "start",
                 "main_type": main_type, "compatibility": sorted(compat),
                 "status": CHAIN[index]}
            )
        self.desired[app_id] = MiniApp(
            id=app_id,
            spec=MiniAppSpec(
                name=name,
                superapp_id="com.test.super",
                type="Native",
                attributes=attrs,
                locations=[
                    {"name": n, "geo_point": f"POINT({x} {y})"} for n, (x, y) in locs.items()
                ],
                versions=specs,
            ),
        )

    @rule(app_id=st.sampled_from(APP_IDS))
    def drop(self, app_id: str) -> None:
        # removing a manifest never deletes (no --prune); versions stay recorded
        self.desired.pop(app_id, None)

    @rule(faults=FAULTS)
    def apply_with_faults(self, faults: list[Fault]) -> None:
        self.mac.faults[:] = faults
        try:
            asyncio.run(self._apply(list(self.desired.values())))
        except ReconcilerError:
            pass  # a failed read stops the run before any write, as `apply` exits 1
        except BaseException as exc:
            if not _killed(exc):
                raise
            # killed: the journal holds what was recorded, nothing was saved
        finally:
            self.mac.faults.clear()

    def _store(self) -> StateStore:
        return FileStateStore(self.mac.state_path)

    async def _plan(self, desired: list[MiniApp]) -> Plan:
        state = self._store().load(IDENTITY)
        async with self.mac.client() as client:
            return await make_plan(client, desired, state, identity=IDENTITY)

    def _forget_state(self) -> None:
        for path in (self.mac.state_path, self.mac.state_path.with_name("state.json.journal")):
            path.unlink(missing_ok=True)

    @rule()
    def lose_state(self) -> None:
        # A deleted CI cache, a mistyped RECONCILER_STATE: the next run starts from the API.
        self._forget_state()
        # The review status of every version on the server is now unknown to the tool.
        import sqlite3

        with sqlite3.connect(self.mac.db) as conn:
            self.lost |= set(conn.execute("SELECT app_id, code FROM versions").fetchall())

    @rule()
    def apply_clean(self) -> None:
        desired = list(self.desired.values())
        asyncio.run(self._apply(desired))
        plan = asyncio.run(self._plan(desired))
        assert plan.changes == (), [c.address for c in plan.changes]
        if plan.errors:
            # Only after a lost state, and only a status no step can learn safely: the rest
            # converged; a person answers exactly what is asked, then one apply finishes.
            self._answer_as_a_person(plan)
            asyncio.run(self._apply(desired))
            plan = asyncio.run(self._plan(desired))
        assert plan.changes == () and plan.errors == (), [str(e) for e in plan.errors]
        state = self._store().load(IDENTITY)
        for app_id, app in self.desired.items():  # what the manifests declare is all known
            for declared in app.spec.versions or ():
                version = state.apps[app_id].versions[declared.code]
                assert version.id is not None and version.create_outcome is None
                assert version.status == declared.status

    async def _apply(self, desired: list[MiniApp]) -> None:
        """`reconciler apply --auto-approve`, where a simulated kill skips the final save."""
        store = self._store()
        with store.lock("apply", apps=sorted(app.id for app in desired)):
            state = store.load(IDENTITY)
            async with self.mac.client() as client:
                plan = await make_plan(client, desired, state, identity=IDENTITY, parallelism=4)
                if plan.fleet_errors:
                    return
                executor = Executor(client, store, state, plan,
                                    options=ApplyOptions(parallelism=4))
                await executor.run()
            store.save(state)

    def _answer_as_a_person(self, plan: Plan) -> None:
        """What the message asks: look up the status, then `reconciler state set-status`."""
        store = self._store()
        state = store.load(IDENTITY)
        for error in plan.errors:
            assert error.scope == "version" and "state set-status" in error.message, error.message
            assert error.address is not None
            code = error.address.key_of("version")
            assert error.app_id is not None
            assert (error.app_id, code) in self.lost, "asked about a status it could know"
            self.lost.discard((error.app_id, code))
            version = state.apps[error.app_id].versions[code]
            assert version.id is not None
            truth = self.sandbox.version_status(error.app_id, version.id)
            named = error.message.split("one of ")[1].split(", and no step")[0].split(", ")
            assert truth in named, (truth, named)
            version.status, version.status_candidates = truth, None
        store.save(state)

    @invariant()
    def no_duplicates_and_outside_untouched(self) -> None:
        if not hasattr(self, "sandbox"):
            return
        assert self.sandbox.get_miniapp(OUTSIDE)["name"] == "Outside"
        import sqlite3

        with sqlite3.connect(self.mac.db) as conn:
            dup_versions = conn.execute(
                "SELECT app_id, code, COUNT(*) FROM versions GROUP BY app_id, code"
                " HAVING COUNT(*) > 1"
            ).fetchall()
            dup_locations = conn.execute(
                "SELECT app_id, name, COUNT(*) FROM locations GROUP BY app_id, name"
                " HAVING COUNT(*) > 1"
            ).fetchall()
        assert dup_versions == []
        assert dup_locations == []


def _killed(exc: BaseException) -> bool:
    """The run died (whatever else failed beside it in the same task group)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_killed(inner) for inner in exc.exceptions)
    return isinstance(exc, SimulatedKill)


ApplyMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestApplyConverges = ApplyMachine.TestCase
