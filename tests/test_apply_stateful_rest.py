"""Hypothesis stateful test of the REST-object provider (library level: read_live ->
build_plan -> apply_plan) against the in-process tenant sandbox: random objects in two
collections, random manifest edits and edits made outside, random injected faults on the
calls each planned change makes (500, write-then-502, answer lost, connection refused, a
kill right after a write), access tokens refused mid-run (the client must refresh and replay)
and refresh tokens refused (it must log in again), short real token lifetimes, a lost state
section.

Invariants: once faults stop, ONE plan + apply converges (the re-plan is empty: no change,
no adoption, no error) with no person in between, a lost state included (declared objects
are adopted by natural key, D81); no natural key is ever on the server twice; every record
names the server id of the object with its key; an object made outside the tool (not
declared, not recorded) is never touched.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from starlette.applications import Starlette

from reconciler.engine.plan import Change, Plan
from reconciler.errors import ReconcilerError
from reconciler.providers.rest.apply import RestResult, apply_plan
from reconciler.providers.rest.client import RestClient
from reconciler.providers.rest.config import ApiKeyHeader, JwtAuth, RestEndpoint
from reconciler.providers.rest.diff import RestPlanOptions, build_plan
from reconciler.providers.rest.fetch import read_live
from reconciler.providers.rest.model import RestObject
from reconciler.providers.rest.records import read_records
from reconciler.providers.rest.sandbox import TenantSandboxConfig, create_tenant_app
from reconciler.providers.rest.vocabulary import address_key
from reconciler.state import ProviderState
from reconciler.transport.http import RetryPolicy
from tests.fixtures_pipeline import Fault, FaultTransport, SimulatedKill, instant_sleep
from tests.fixtures_tenant import TENANT_KEY, TENANT_PASSWORD, TENANT_USER, credentials

SCHEMA = "tenant_one"
PRODUCTS, CATEGORIES = "/api/products/", "/api/categories/"
SKUS = ("A-1", "B-2", "C-3")
SLUGS = ("tools", "toys")
OUTSIDE_SKU = "OUTSIDE"  # made outside the tool; never declared, never touched
IGNORE = ("created_at", "updated_at")

LIST = r"^/api/{}/$"
ONE = r"^/api/{}/\d+/$"
REFRESH = ("POST", r"^/api/token/refresh/$")
# The calls each planned change makes (its write first, then what resolves a lost answer).
CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    "create": (("POST", LIST), ("GET", LIST)),
    "update": (("PATCH", ONE),),
    "delete": (("DELETE", ONE),),
}
WRITE_MODES = ("500", "ambiguous", "timeout_after", "drop_before", "kill_after",
               "token_not_valid")
READ_MODES = ("500", "drop_before", "token_not_valid")
PLAN_FAULTS = st.one_of(
    st.just([]),
    st.lists(
        st.builds(
            lambda collection, mode: Fault("GET", LIST.format(collection), mode, 1),
            collection=st.sampled_from(["products", "categories"]),
            mode=st.sampled_from(READ_MODES),
        ),
        min_size=1,
        max_size=1,
    ),
)


def apply_faults(calls: list[tuple[str, str]]) -> Any:
    """1-4 faults on the calls the plan's changes make, and maybe a refused refresh token
    (the next refresh must fall back to a login)."""
    writes = [c for c in calls if c[0] != "GET"]
    reads = [c for c in calls if c[0] == "GET"]

    def one(pool: list[tuple[str, str]], modes: tuple[str, ...]) -> Any:
        return st.builds(
            lambda call, mode, times: Fault(call[0], call[1], mode, times),
            call=st.sampled_from(pool),
            mode=st.sampled_from(modes),
            times=st.integers(1, 3),
        )

    any_fault = one(writes, WRITE_MODES)
    if reads:
        any_fault |= one(reads, READ_MODES)
    refused_refresh = st.lists(st.just(Fault(*REFRESH, "refresh_refused", 1)),  # type: ignore[arg-type]
                               max_size=1)
    return st.tuples(st.lists(any_fault, min_size=1, max_size=4), refused_refresh).map(
        lambda pair: [*pair[0], *pair[1]]
    )


def _refused(detail: str) -> httpx.Response:
    """simplejwt's 401 for an expired or invalid token."""
    return httpx.Response(
        401,
        json={"detail": detail, "code": "token_not_valid"},
        headers={"WWW-Authenticate": 'Bearer realm="api"'},
    )


@dataclass
class Faulty(httpx.AsyncBaseTransport):
    """The first fault of ``faults`` that matches a request acts on it. ``token_not_valid``
    ends the access token the request carries (as when it expires in flight: that token is
    refused from then on); a token is never ended on its first use (a new token lives for
    seconds at least). ``refresh_refused`` ends the refresh token a refresh sends (expired,
    or blacklisted). The other modes are :class:`FaultTransport`'s."""

    inner: httpx.AsyncBaseTransport
    faults: list[Fault] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)  # access and refresh tokens refused
    used: set[str] = field(default_factory=set)  # access tokens sent before

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        access = request.headers.get("authorization", "").removeprefix("Bearer ")
        refresh = _refresh_token(request)
        if access in self.ended or refresh in self.ended:
            return _refused("Given token not valid for any token type")
        first_use = access not in self.used
        self.used.add(access)
        fault = next(
            (f for f in self.faults
             if f.matches(request) and not (f.mode == "token_not_valid" and first_use)),  # type: ignore[comparison-overlap]
            None,
        )
        if fault is None:
            return await self.inner.handle_async_request(request)
        if fault.mode == "token_not_valid" and access:  # type: ignore[comparison-overlap]
            fault.times -= 1
            self.ended.add(access)
            return _refused("Given token not valid for any token type")
        if fault.mode == "refresh_refused" and refresh:  # type: ignore[comparison-overlap]
            fault.times -= 1
            self.ended.add(refresh)
            return _refused("Token is blacklisted")
        return await FaultTransport(self.inner, [fault]).handle_async_request(request)


def _refresh_token(request: httpx.Request) -> str:
    if not request.url.path.endswith("/token/refresh/"):
        return ""
    try:
        token = json.loads(request.content).get("refresh")
    except (ValueError, AttributeError):
        return ""
    return token if isinstance(token, str) else ""


class RestApplyMachine(RuleBasedStateMachine):
    @initialize(
        access_seconds=st.sampled_from([2.0, 300.0]),  # whole seconds: 2 s live 1 to 2 s
        refresh_seconds=st.sampled_from([1.0, 86_400.0]),
    )
    def setup(self, access_seconds: float, refresh_seconds: float) -> None:
        # Real short lifetimes make refreshes (and re-logins) happen on their own too.
        self.tmp = tempfile.TemporaryDirectory()
        self.db = Path(self.tmp.name) / "tenant.db"
        self.app: Starlette = create_tenant_app(
            TenantSandboxConfig(
                db_path=self.db,
                users={TENANT_USER: TENANT_PASSWORD},
                api_keys={TENANT_KEY: SCHEMA},
                access_seconds=access_seconds,
                refresh_seconds=refresh_seconds,
                page_size=2,  # listings of a few objects are paginated (the client asks 100)
                max_page_size=2,
            )
        )
        self.faults: list[Fault] = []
        self.saved: dict[str, Any] = {}  # the state's REST section (its resources), as saved
        self.desired: dict[str, RestObject] = {}
        self.results: list[RestResult] = []  # of the last run
        self.outside_id = asyncio.run(self._make_outside())

    def teardown(self) -> None:
        self.app.state.store.close()
        self.tmp.cleanup()

    # --- plumbing ------------------------------------------------------------------

    def _client(self) -> RestClient:
        endpoint = RestEndpoint(
            "shop",
            "http://127.0.0.1:9",  # never dialled: requests go to the ASGI app
            JwtAuth("/api/token/", "/api/token/refresh/", "T_USER", "T_PASSWORD"),
            ApiKeyHeader("Api-Key", "T_KEY"),
            "reconciler.yaml",
            2,
        )
        transport = Faulty(httpx.ASGITransport(app=self.app), self.faults)
        return RestClient(endpoint, credentials(), transport=transport,
                          retry=RetryPolicy(sleep=instant_sleep, jitter=False))

    async def _make_outside(self) -> Any:
        async with self._client() as client:
            made = await client.create(
                PRODUCTS, "sku", {"sku": OUTSIDE_SKU, "name": "theirs", "price": 1}
            )
        return made["id"]

    def _section(self) -> ProviderState:
        return ProviderState(resources=copy.deepcopy(self.saved))

    def _server(self) -> list[tuple[str, int, str, dict[str, Any]]]:
        """(collection, id, natural key, fields) of every object of the tenant."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute(
                "SELECT collection, id, natural_key, data FROM objects WHERE schema = ?",
                (SCHEMA,),
            ).fetchall()
        return [(c, i, k, json.loads(d)) for c, i, k, d in rows]

    async def _plan(self, client: RestClient, section: ProviderState, prune: bool) -> Plan:
        desired = list(self.desired.values())
        live = await read_live({"shop": client}, desired, section)
        return build_plan(desired, live, section, endpoint="shop",
                          options=RestPlanOptions(prune=prune))

    async def _run(
        self,
        section: ProviderState,
        *,
        prune: bool = False,
        faults_for: Callable[[list[Change]], list[Fault]] | None = None,
    ) -> Plan:
        """`reconciler apply --auto-approve` on the REST part: a fleet error stops the run
        before any write; objects with an app-scoped error are skipped by apply_plan."""
        async with self._client() as client:
            plan = await self._plan(client, section, prune)
            if plan.fleet_errors:
                return plan
            if faults_for is not None and plan.changes:
                self.faults[:] = faults_for(list(plan.changes))
            self.results = await apply_plan({"shop": client}, plan, section, parallelism=4)
        return plan

    def _save(self, section: ProviderState) -> None:
        self.saved = copy.deepcopy(section.resources)

    # --- rules ---------------------------------------------------------------------

    @rule(
        sku=st.sampled_from(SKUS),
        name=st.sampled_from(["Hammer", "Saw"]),
        price=st.sampled_from([1, 2.5, 10]),
        active=st.sampled_from([None, True, False]),
        category=st.sampled_from([None, "tools", "toys"]),
    )
    def edit_product(
        self, sku: str, name: str, price: float, active: bool | None, category: str | None
    ) -> None:
        body: dict[str, Any] = {"sku": sku, "name": name, "price": price}
        if active is not None:
            body["active"] = active  # left out: not managed
        if category is not None:
            body["category"] = category
        self._declare(RestObject(name=sku, endpoint="shop", path=PRODUCTS, key_field="sku",
                                 body=body, ignore=IGNORE))

    @rule(slug=st.sampled_from(SLUGS), name=st.sampled_from(["Tools", "Toys", "Other"]))
    def edit_category(self, slug: str, name: str) -> None:
        self._declare(RestObject(name=slug, endpoint="shop", path=CATEGORIES, key_field="slug",
                                 body={"slug": slug, "name": name}, ignore=IGNORE))

    def _declare(self, obj: RestObject) -> None:
        self.desired[address_key(obj.endpoint, obj.path, obj.key)] = obj

    @rule(data=st.data())
    def absent(self, data: Any) -> None:
        if not self.desired:
            return
        key = data.draw(st.sampled_from(sorted(self.desired)))
        obj = self.desired[key]
        self.desired[key] = RestObject(
            name=obj.name, endpoint=obj.endpoint, path=obj.path, key_field=obj.key_field,
            body={obj.key_field: obj.body[obj.key_field]}, ensure="absent",
        )

    @rule(data=st.data())
    def drop(self, data: Any) -> None:
        # removing a manifest deletes only with --prune; the record stays
        if self.desired:
            self.desired.pop(data.draw(st.sampled_from(sorted(self.desired))))

    @rule(data=st.data(), name=st.sampled_from(["edited outside", "Saw"]))
    def edit_outside(self, data: Any, name: str) -> None:
        """Someone changes a managed object in the tenant's own UI."""
        ours = [(c, i, k) for c, i, k, _ in self._server() if k != OUTSIDE_SKU]
        if not ours:
            return
        collection, object_id, _key = data.draw(st.sampled_from(sorted(ours)))
        path = f"/api/{collection}/"

        async def patch() -> None:
            async with self._client() as client:
                await client.update(path, object_id, {"name": name})

        asyncio.run(patch())

    @rule()
    def lose_state(self) -> None:
        # A deleted CI cache, a mistyped state path: the next run starts from the API.
        self.saved = {}

    @rule(plan_faults=PLAN_FAULTS, prune=st.booleans(), data=st.data())
    def apply_with_faults(self, plan_faults: list[Fault], prune: bool, data: Any) -> None:
        section = self._section()
        self.faults[:] = plan_faults
        faults = list(plan_faults)
        times = {id(f): f.times for f in faults}

        def faults_for(changes: list[Change]) -> list[Fault]:
            calls = {
                (m, p.format(_collection(c))) for c in changes for m, p in CALLS[c.action]
            }
            drawn: list[Fault] = data.draw(apply_faults(sorted(calls)), label="apply faults")
            faults.extend(drawn)
            times.update({id(f): f.times for f in drawn})
            return drawn

        try:
            asyncio.run(self._run(section, prune=prune, faults_for=faults_for))
        except ReconcilerError:
            self._save(section)  # a failed read or login: the run stops; what it did is kept
        except BaseException as exc:
            if not _killed(exc):
                raise
            # killed: nothing of this run was saved
        else:
            self._save(section)
        finally:
            for fault in faults:  # what was exercised (--hypothesis-show-statistics)
                if fault.times < times[id(fault)]:
                    event(f"fired: {fault.mode} {fault.method} {fault.path}")
            self.faults.clear()

    @rule(data=st.data())
    def apply_with_refused_tokens(self, data: Any) -> None:
        """Access tokens refused on the calls the plan makes (as when they expire in
        flight), maybe the refresh token too: the auth refreshes or logs in again and
        replays, so every change is done."""
        section = self._section()

        def faults_for(changes: list[Change]) -> list[Fault]:
            calls = sorted({
                (m, p.format(_collection(c))) for c in changes for m, p in CALLS[c.action]
            })
            refused = st.builds(lambda call, times: Fault(call[0], call[1],
                                                          "token_not_valid", times),  # type: ignore[arg-type]
                                call=st.sampled_from(calls), times=st.integers(1, 3))
            drawn: list[Fault] = data.draw(st.lists(refused, min_size=1, max_size=3))
            if data.draw(st.booleans(), label="refresh token refused too"):
                drawn.append(Fault(*REFRESH, "refresh_refused", 1))  # type: ignore[arg-type]
            return drawn

        try:
            asyncio.run(self._run(section, faults_for=faults_for))
        finally:
            self.faults.clear()
        self._save(section)
        assert [r.message for r in self.results if not r.ok] == []

    @rule()
    def apply_clean(self) -> None:
        section = self._section()
        first = asyncio.run(self._run(section))
        assert first.errors == (), [e.message for e in first.errors]
        self._save(section)
        section = self._section()

        async def replan() -> Plan:
            async with self._client() as client:
                return await self._plan(client, section, False)

        plan = asyncio.run(replan())
        assert plan.changes == () and plan.errors == () and plan.learned == (), (
            [(str(c.address), c.action, c.payload) for c in plan.changes],
            [e.message for e in plan.errors],
            plan.learned,
        )
        server = {(f"/api/{c}/", k): (i, d) for c, i, k, d in self._server()}
        records = read_records(section)
        for key, obj in self.desired.items():
            found = server.get((obj.path, obj.key))
            if obj.absent:
                assert found is None, f"{key} declared absent but still there"
                continue
            assert found is not None, f"{key} declared but not on the server"
            object_id, fields = found
            assert records[key].id == object_id
            # A decimal is answered in its fixed-point form ("1.00" for 1), as DRF does.
            normal = {k: _decimal_text(v) if k in ("price", "percent") else v
                      for k, v in obj.body.items()}  # fmt: skip
            assert {k: fields.get(k) for k in obj.body} == normal

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def no_duplicates_and_outside_untouched(self) -> None:
        if not hasattr(self, "app"):
            return
        objects = self._server()
        keys = [(c, k) for c, _i, k, _d in objects]
        assert len(keys) == len(set(keys)), keys
        outside = [d for c, i, k, d in objects if i == self.outside_id and c == "products"]
        assert outside and outside[0]["name"] == "theirs", outside

    @invariant()
    def records_name_the_server_ids(self) -> None:
        """A record's id is the server id of the object with its key, when one exists
        (gone: deleted in a run that died before saving, or by ensure: absent)."""
        if not hasattr(self, "app"):
            return
        server = {(f"/api/{c}/", k): i for c, i, k, _d in self._server()}
        for key, record in read_records(self._section()).items():
            live_id = server.get((record.path, record.key))
            assert live_id is None or live_id == record.id, (key, record.id, live_id)


def _collection(change: Change) -> str:
    """``products`` of ``shop:/api/products/:KEY``."""
    assert change.address.key is not None
    return change.address.key.split(":")[1].strip("/").split("/")[1]


def _killed(exc: BaseException) -> bool:
    """The run died (whatever else failed beside it in the same task group)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_killed(inner) for inner in exc.exceptions)
    return isinstance(exc, SimulatedKill)


RestApplyMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRestApplyConverges = RestApplyMachine.TestCase


def _decimal_text(value: object) -> object:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:.2f}" if number else value
