"""Hypothesis stateful test: random manifests, random edits, random injected faults, repeated
applies against the in-process sandbox.

Invariants: after a fault-free apply the plan is empty (convergence); no version or location
is ever duplicated; an app no manifest declares is never touched.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reconciler.errors import ReconcilerError
from reconciler.model import MiniApp, MiniAppSpec
from reconciler.sandbox import SandboxConfig, SandboxStore, create_app
from reconciler.state import UNKNOWN, FileStateStore, VersionRecord
from tests.fixtures_pipeline import IDENTITY, TOKEN, Fault, Mac

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
        mode=st.sampled_from(["500", "ambiguous", "timeout_after", "drop_before"]),
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
            asyncio.run(self.mac.apply(list(self.desired.values())))
        except ReconcilerError:
            pass  # a failed read stops the run before any write, as `apply` exits 1
        finally:
            self.mac.faults.clear()
        self._repair_like_a_user()

    @rule()
    def apply_clean(self) -> None:
        desired = list(self.desired.values())
        asyncio.run(self.mac.apply(desired))
        plan = asyncio.run(self.mac.plan(desired))
        assert plan.changes == (), [c.address for c in plan.changes]
        assert plan.errors == ()

    def _repair_like_a_user(self) -> None:
        """What the error messages tell a user to do after an ambiguous version write."""
        store = FileStateStore(self.mac.state_path)
        state = store.load(IDENTITY)
        changed = False
        for app_id, record in state.apps.items():
            for code, version in list(record.versions.items()):
                if version.create_outcome == UNKNOWN:
                    found = self._server_version(app_id, code)
                    if found is None:
                        del record.versions[code]
                    else:
                        status = self.sandbox.version_status(app_id, found)
                        record.versions[code] = VersionRecord(id=found, status=status)
                    changed = True
                elif version.status == UNKNOWN and version.id is not None:
                    version.status = self.sandbox.version_status(app_id, version.id)
                    changed = True
        if changed:
            store.save(state)

    def _server_version(self, app_id: str, code: str) -> int | None:
        import sqlite3

        with sqlite3.connect(self.mac.db) as conn:
            row = conn.execute(
                "SELECT id FROM versions WHERE app_id = ? AND code = ?", (app_id, code)
            ).fetchone()
        return int(row[0]) if row else None

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


ApplyMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestApplyConverges = ApplyMachine.TestCase
