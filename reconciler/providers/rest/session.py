"""The REST provider's session for the engine's service (:mod:`reconciler.engine.session`):
:data:`REST_CONNECTOR` opens a :class:`RestSession` on the endpoints of the project file
(``reconciler.yaml`` or ``--config``), or on the in-process tenant sandbox (``--sandbox``).

* **Clients are opened on first use**, one per endpoint name: an endpoint's credentials are
  read (and its login made) only when a manifest, a record, a saved plan or an import names
  it, so an unused endpoint never needs its variables set.
* **With** ``sandbox_dir``: every endpoint name is served by the tenant sandbox, in-process
  (``sandbox_dir/tenant-sandbox.db``), one tenant schema per endpoint name (two names are two
  servers, as in a real project), each with a user, password and Api-Key made for this
  process only. The names are learned from the manifests (``plan``), the section's records
  and the saved plan (``apply``) and the reference (``import``): no project file, no
  variables (docs/decisions.md D94).
* **Binding** (D93): the state's section holds one ``endpoint`` string for several named
  endpoints: ``name=url,name=url`` (sorted; ``,`` and ``%`` in a URL percent-encoded), where
  the sandbox binds the name ``*`` to ``sandbox:DB``. :meth:`RestSession.bind` refuses a
  section whose records' endpoint names now point at other URLs (or a sandbox state with
  records used against a real endpoint, and the reverse), and adds the names it did not know.
* **Grouping key**: a plan groups REST changes by the address key ``ENDPOINT:PATH:KEY``
  (``Change.app_id``), which is what ``Scope.targets`` and ``Scope.declared`` hold.
* **Delete budget**: the service's (fleet-wide); the session passes none to the diff (the
  core's own ``RestPlanOptions.max_deletes`` stays, tested in test_rest_provider_diff).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import unquote

from reconciler.engine.drift import DriftReport
from reconciler.engine.plan import Change, Plan, PlanProblem
from reconciler.engine.session import (
    ChangeEvent,
    Connector,
    Imported,
    ProviderSession,
    RecordWrite,
    Scope,
    Section,
    SectionApplied,
)
from reconciler.errors import (
    ConfigError,
    ManifestError,
    ManifestIssue,
    ReconcilerError,
    StateError,
)
from reconciler.providers.rest.apply import (
    RestResult,
    apply_changes,
    record_adoptions,
    saved_plan_deletes_to_confirm,
)
from reconciler.providers.rest.client import RestClient
from reconciler.providers.rest.config import (
    DEFAULT_PROJECT_FILE,
    ApiKeyHeader,
    Credentials,
    JwtAuth,
    ProjectConfig,
    ProjectConfigError,
    RestEndpoint,
    load_project_config,
    resolve_credentials,
)
from reconciler.providers.rest.diff import RestPlanOptions, build_plan
from reconciler.providers.rest.drift import classify
from reconciler.providers.rest.fetch import read_live
from reconciler.providers.rest.importer import import_object
from reconciler.providers.rest.manifest.document import ENDPOINT_NAME_RE
from reconciler.providers.rest.model import FIELD_NAME_RE, RestObject
from reconciler.providers.rest.records import put_record, read_records
from reconciler.providers.rest.vocabulary import (
    PROVIDER,
    ROOT_KIND,
    address_key,
    adoptions_of,
    split_address_key,
)
from reconciler.transport.config import limits_from_env
from reconciler.transport.redact import Secret

SANDBOX_DB: Final = "tenant-sandbox.db"
# The sandbox's origin as the client sees it: never dialled (an ASGI transport hands every
# request to the in-process app), loopback so that no proxy and no TLS rule applies.
SANDBOX_ORIGIN: Final = "http://localhost"
ANY_ENDPOINT: Final = "*"  # the binding of the sandbox: every endpoint name
MIN_CONNECTIONS: Final = 16


# --- the binding text ----------------------------------------------------------------------


def binding_text(binding: Mapping[str, str]) -> str:
    """``name=url,...`` sorted by name; ``%`` and ``,`` in a URL percent-encoded (a sandbox
    path may hold them; endpoint names never hold ``=`` or ``,``)."""
    return ",".join(
        f"{name}={url.replace('%', '%25').replace(',', '%2C')}"
        for name, url in sorted(binding.items())
    )


def parse_binding(text: str) -> dict[str, str] | None:
    """The inverse of :func:`binding_text`; None when ``text`` is not one."""
    out: dict[str, str] = {}
    for part in text.split(","):
        name, sep, url = part.partition("=")
        if not sep or not url or not (name == ANY_ENDPOINT or ENDPOINT_NAME_RE.fullmatch(name)):
            return None
        out[name] = unquote(url)
    return out


def _shown(text: str) -> str:
    return repr(text[:200] + ("..." if len(text) > 200 else ""))


# --- where the clients come from -------------------------------------------------------------


class _Backend(Protocol):
    @property
    def binding(self) -> Mapping[str, str]:
        """Endpoint name (or ``*``) -> the URL (or ``sandbox:DB``) it talks to."""
        ...

    @property
    def display(self) -> str: ...

    def serves(self, name: str) -> bool: ...

    def open(self, name: str) -> tuple[RestClient, Callable[[], None]]:
        """A client for endpoint ``name`` and what to close after it (ConfigError when the
        name is not declared or its credentials are not set)."""
        ...


class _ProjectBackend:
    """The endpoints of the project file, at their base URLs."""

    def __init__(
        self,
        config: ProjectConfig,
        env: Mapping[str, str],
        *,
        max_connections: int,
        client_options: Mapping[str, Any],
    ) -> None:
        self.config = config
        self.env = env
        self.max_connections = max_connections
        self.client_options = client_options
        self._binding = {name: e.base_url for name, e in config.endpoints.items()}

    @property
    def binding(self) -> Mapping[str, str]:
        return self._binding

    @property
    def display(self) -> str:
        return f"REST endpoints of {self.config.file}: {_describe(self._binding)}"

    def serves(self, name: str) -> bool:
        return name in self.config.endpoints

    def open(self, name: str) -> tuple[RestClient, Callable[[], None]]:
        endpoint = self.config.endpoint(name)
        credentials = resolve_credentials(endpoint, self.env)
        client = RestClient(
            endpoint, credentials, max_connections=self.max_connections, **self.client_options
        )
        return client, lambda: None


class _SandboxBackend:
    """Every endpoint name served by the in-process tenant sandbox: one app (one tenant
    schema, ``endpoint-NAME``) per name over one SQLite file, credentials made here."""

    def __init__(
        self,
        db: Path,
        env: Mapping[str, str],
        *,
        max_connections: int,
        client_options: Mapping[str, Any],
        opens: Path | None = None,
    ) -> None:
        self.db = db
        # What the sandbox opens: ``db``, or an empty in-memory database for a read-only
        # run whose file does not exist (sandbox_kit.files).
        self.opens = opens or db
        self.env = env
        self.max_connections = max_connections
        self.client_options = client_options

    @property
    def binding(self) -> Mapping[str, str]:
        return {ANY_ENDPOINT: f"sandbox:{self.db}"}

    @property
    def display(self) -> str:
        return _describe(self.binding)

    def serves(self, name: str) -> bool:
        return bool(ENDPOINT_NAME_RE.fullmatch(name))

    def open(self, name: str) -> tuple[RestClient, Callable[[], None]]:
        # Imported here: only --sandbox needs the sandbox (and Starlette).
        import httpx

        from reconciler.providers.rest.sandbox import create_tenant_app, tenant_config_from_env
        from reconciler.providers.rest.sandbox.server import (
            ACCESS_SECONDS_ENV,
            REFRESH_SECONDS_ENV,
        )

        if not self.serves(name):
            raise ConfigError(f"{name[:64]!r} is not an endpoint name")
        names = (ACCESS_SECONDS_ENV, REFRESH_SECONDS_ENV)
        lifetimes = {k: self.env[k] for k in names if k in self.env}
        try:
            base = tenant_config_from_env(self.opens, lifetimes)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        user, password, api_key = "sandbox", secrets.token_urlsafe(18), secrets.token_urlsafe(24)
        config = dataclasses.replace(
            base, users={user: password}, api_keys={api_key: f"endpoint-{name}"}
        )
        app = create_tenant_app(config)
        endpoint = RestEndpoint(
            name=name,
            base_url=SANDBOX_ORIGIN,
            # Variable names only show in messages; the sandbox's secrets are never read
            # from the environment.
            auth=JwtAuth("/api/token/", "/api/token/refresh/", "SANDBOX_USER", "SANDBOX_PASSWORD"),
            api_key=ApiKeyHeader("Api-Key", "SANDBOX_API_KEY"),
            file="--sandbox",
            line=0,
        )
        credentials = Credentials(Secret(user), Secret(password), Secret(api_key))
        client = RestClient(
            endpoint,
            credentials,
            transport=httpx.ASGITransport(app=app),
            max_connections=self.max_connections,
            **self.client_options,
        )
        return client, app.state.store.close


# --- the session ---------------------------------------------------------------------------


class RestSession:
    """One run's REST endpoints (see the module docstring)."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self._clients: dict[str, RestClient] = {}
        self._closers: list[Callable[[], None]] = []

    # --- what it talks to --------------------------------------------------------------

    @property
    def identity(self) -> str:
        return binding_text(self._backend.binding)

    @property
    def display(self) -> str:
        return self._backend.display

    @property
    def clients(self) -> Mapping[str, RestClient]:
        """The clients opened so far, by endpoint name (their ``auth`` and ``stats`` count
        logins, refreshes and requests)."""
        return dict(self._clients)

    def client(self, name: str) -> RestClient:
        """The client of endpoint ``name``, opened on first use."""
        if name not in self._clients:
            client, close = self._backend.open(name)
            self._clients[name] = client
            self._closers.append(close)
        return self._clients[name]

    def _clients_for(self, names: set[str], *, required: set[str]) -> dict[str, RestClient]:
        """Clients of ``names``; a name in ``required`` that is not served is a ConfigError
        (a manifest names an undeclared endpoint), another is left out (its collections are
        then unreadable: named in the plan, never guessed)."""
        out: dict[str, RestClient] = {}
        for name in sorted(names):
            if name in required or self._backend.serves(name):
                out[name] = self.client(name)
        return out

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        closers, self._closers = self._closers, []
        try:
            for client in clients:
                await client.aclose()
        finally:
            for close in closers:
                close()

    # --- binding -----------------------------------------------------------------------

    def bind(self, section: Section) -> None:
        mine = dict(self._backend.binding)
        recorded: dict[str, str] = {}
        if section.endpoint is not None:
            parsed = parse_binding(section.endpoint)
            if parsed is None:
                raise StateError(
                    f"state: providers.{PROVIDER}: the endpoint binding"
                    f" {_shown(section.endpoint)} is not a REST binding (name=url,...);"
                    " was this state made by another tool?"
                )
            recorded = parsed
        # Only a name records use can be refused: the records are that server's objects; a
        # name nothing was recorded under may point anywhere (D93).
        used = {record.endpoint for record in read_records(section).values()}

        def holds(name: str) -> bool:
            return bool(used) if name == ANY_ENDPOINT else name in used

        if used and recorded and (ANY_ENDPOINT in recorded) != (ANY_ENDPOINT in mine):
            was = _describe(recorded)
            raise StateError(
                f"state: providers.{PROVIDER} was made against {was}, and this run talks to"
                f" {self.display}: use the state file made for it (--state), or another one"
            )
        moved = [
            f"{name}: recorded {recorded[name]}, now {mine[name]}"
            for name in sorted(recorded)
            if name in mine and mine[name] != recorded[name] and holds(name)
        ]
        if moved:
            raise StateError(
                f"state: providers.{PROVIDER}: endpoint(s) now point elsewhere than when"
                f" this state was made ({'; '.join(moved)}). Its records are the other"
                " server's objects: use the state file made for this one (--state), or"
                " restore the base_url in the project file"
            )
        kept = {name: url for name, url in recorded.items() if holds(name)}
        section.endpoint = binding_text({**kept, **mine})

    # --- the workflows -----------------------------------------------------------------

    async def plan(self, desired: Sequence[Any], section: Section, scope: Scope) -> Plan:
        objects = rest_objects(desired)
        declared_names = {obj.endpoint for obj in objects}
        recorded_names = {record.endpoint for record in read_records(section).values()}
        clients = self._clients_for(declared_names | recorded_names, required=declared_names)
        _refuse_credentials(objects, clients)
        live = await read_live(clients, objects, section)
        options = RestPlanOptions(
            prune=scope.prune,
            declared=scope.declared,
            in_scope=lambda key, record: scope.includes(key, record.labels),
            notices=scope.notices,
        )
        return build_plan(objects, live, section, endpoint=self.identity, options=options)

    async def apply(
        self,
        plan: Plan,
        section: Section,
        *,
        desired: Sequence[Any] | None,
        parallelism: int,
        record: RecordWrite,
        on_event: Callable[[ChangeEvent], None],
    ) -> SectionApplied:
        applied = SectionApplied()
        # A saved plan (no manifests) is checked against the state before anything runs.
        confirm = saved_plan_deletes_to_confirm(plan, section) if desired is None else frozenset()
        # Adoptions first: recorded (no write) and durable before any change runs.
        for fact in adoptions_of(plan):
            record_adoptions(section, [fact])
            await record(ROOT_KIND, fact.key, section.resources[ROOT_KIND][fact.key])
            applied.adopted += 1
        mine = [change for change in plan.changes if change.provider == PROVIDER]
        stuck = _stuck(plan, mine)
        applied.stuck = sorted(stuck)
        todo: list[Change] = []
        for change in mine:
            if change.app_id in stuck:
                event = ChangeEvent(change, "skipped", stuck[change.app_id])
                applied.events.append(event)
                on_event(event)
            else:
                todo.append(change)
        names = {split_address_key(change.app_id)[0] for change in todo}
        clients = self._clients_for(names, required=set())
        objects = {
            address_key(o.endpoint, o.path, o.key): o for o in rest_objects(desired or ())
        }

        async def written(result: RestResult) -> None:
            # Durable before it is reported: a crash after this write finds it recorded.
            key = result.change.app_id
            await record(ROOT_KIND, key, section.resources.get(ROOT_KIND, {}).get(key))

        def report(result: RestResult) -> None:
            event = ChangeEvent(
                result.change, "applied" if result.ok else "failed", result.message
            )
            applied.events.append(event)
            on_event(event)

        await apply_changes(
            clients,
            todo,
            section,
            meta=plan.app_meta,
            objects=objects if desired is not None else None,
            parallelism=parallelism,
            on_result=report,
            after_write=written,
            confirm=confirm,
            # Shown, not a result: never in applied.events.
            on_start=lambda change: on_event(ChangeEvent(change, "started")),
        )
        return applied

    def drift(self, plan: Plan, section: Section) -> DriftReport:
        return classify(plan, section)

    async def import_resource(self, ref: str, section: Section) -> Imported:
        endpoint, path, key_field, value = parse_import_ref(ref, section)
        key = address_key(endpoint, path, value)
        if key in read_records(section):
            raise ReconcilerError(
                f"{_shown(key)} is already in the state: its manifest is what plan compares"
            )
        if not self._backend.serves(endpoint):
            raise ConfigError(
                f"endpoint {endpoint!r} is not declared ({self.display}); declare it in the"
                f" project file ({DEFAULT_PROJECT_FILE} or --config)"
            )
        manifest, found = await import_object(
            self.client(endpoint), endpoint, path, key_field, value
        )
        put_record(section, found)
        return Imported(key, manifest)


def _refuse_credentials(objects: Sequence[RestObject], clients: Mapping[str, RestClient]) -> None:
    """A manifest holding an endpoint's password or Api-Key (``${TENANT_PASSWORD}`` in a body)
    would print it in the plan, a PR comment, and send it: refused before anything is read
    or shown, at the line that holds it (the variable named, never its value)."""
    issues: list[ManifestIssue] = []
    for obj in objects:
        client = clients.get(obj.endpoint)
        if client is None:
            continue
        texts = {name: json.dumps(value, ensure_ascii=False) for name, value in obj.body.items()}
        texts[""] = json.dumps([obj.name, dict(obj.labels)], ensure_ascii=False)
        for name, text in texts.items():
            variable = client.credential_variable_in(text)
            if variable is None:
                continue
            where = obj.positions.get(name) or obj.positions.get("")
            issues.append(
                ManifestIssue(
                    where.file if where else obj.name,
                    where.line if where else 1,
                    where.column if where else 1,
                    f"spec.body.{name}" if name else "metadata",
                    f"holds the value of ${variable} (a credential of endpoint"
                    f" {obj.endpoint}); a secret must never be written into a manifest",
                )
            )
    if issues:
        raise ManifestError(issues)


def _describe(binding: Mapping[str, str]) -> str:
    if ANY_ENDPOINT in binding:
        where = binding[ANY_ENDPOINT].removeprefix("sandbox:")
        return f"the embedded tenant sandbox (in-process, {where})"
    return ", ".join(f"{name} ({url})" for name, url in sorted(binding.items()))


def _stuck(plan: Plan, changes: Sequence[Change]) -> dict[str, str]:
    """This provider's grouping keys with app-scoped errors -> the first reason."""
    keys = {change.app_id for change in changes}
    out: dict[str, str] = {}
    for key, problems in plan.stuck_apps.items():
        if key in keys or any(_is_mine(problem) for problem in problems):
            out[key] = problems[0].message
    return out


def _is_mine(problem: PlanProblem) -> bool:
    return problem.address is not None and problem.address.provider == PROVIDER


def rest_objects(desired: Sequence[Any]) -> list[RestObject]:
    """The REST objects of ``desired``: models, or loaded manifests carrying one (``.app``)."""
    out: list[RestObject] = []
    for item in desired:
        obj = item if isinstance(item, RestObject) else getattr(item, "app", None)
        if not isinstance(obj, RestObject):
            raise TypeError(f"not a REST object: {type(item).__name__}")
        out.append(obj)
    return out


def parse_import_ref(ref: str, section: Section) -> tuple[str, str, str, str]:
    """``ENDPOINT:PATH:FIELD=VALUE`` -> (endpoint, path, key field, key value). Without
    ``FIELD=``, the key field the state records for that collection is used; ConfigError
    naming the form otherwise."""
    form = "ENDPOINT:/collection/path/:FIELD=VALUE (e.g. shop:/api/products/:sku=HAM-01)"
    try:
        endpoint, path, rest = split_address_key(ref.strip())
    except ValueError:
        raise ConfigError(f"import: {_shown(ref)} is not {form}") from None
    if not ENDPOINT_NAME_RE.fullmatch(endpoint):
        raise ConfigError(f"import: {_shown(endpoint)} is not an endpoint name")
    field, sep, value = rest.partition("=")
    if sep and FIELD_NAME_RE.fullmatch(field) and value:
        return endpoint, path, field, value
    known = {
        record.key_field
        for record in read_records(section).values()
        if (record.endpoint, record.path) == (endpoint, path)
    }
    if len(known) == 1 and rest:
        return endpoint, path, known.pop(), rest
    raise ConfigError(
        f"import: name the key field: {form}; the state records no object of"
        f" {endpoint} {path} to learn it from"
    )


# --- the connector -------------------------------------------------------------------------


class RestConnector:
    """How the service opens the REST provider (:class:`reconciler.engine.session.Connector`)."""

    name = PROVIDER

    def __init__(self, **client_options: Any) -> None:
        # Extra RestClient keyword arguments for every client (tests: a fast RetryPolicy).
        self.client_options = client_options

    def configured(self, env: Mapping[str, str], config: Path | None) -> bool:
        """A project file is given (``--config``: a missing one is said when connecting), or
        ``./reconciler.yaml`` exists and declares endpoints. An invalid one counts as
        configured, so that connecting reports its problems (each at its line); one with no
        ``endpoints`` key is not this provider's."""
        if config is not None:
            return True
        path = Path(DEFAULT_PROJECT_FILE)
        if not path.is_file():
            return False
        try:
            load_project_config(path, env)
        except ProjectConfigError as exc:
            return not any(
                issue.path == "" and issue.message == "missing required key 'endpoints'"
                for issue in exc.issues
            )
        except ConfigError:
            return True
        return True

    def connect(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool = True,
    ) -> AbstractAsyncContextManager[RestSession]:
        return self._session(
            env, sandbox_dir=sandbox_dir, config=config, parallelism=parallelism,
            keep_sandbox=keep_sandbox,
        )  # fmt: skip

    @asynccontextmanager
    async def _session(
        self,
        env: Mapping[str, str],
        *,
        sandbox_dir: Path | None,
        config: Path | None,
        parallelism: int,
        keep_sandbox: bool,
    ) -> AsyncIterator[RestSession]:
        connections = max(MIN_CONNECTIONS, parallelism)
        # The fleet-wide limits (MAC_REQUEST_DEADLINE, MAC_MAX_RESPONSE_BYTES), for every
        # client; checked before anything is sent.
        options = {"limits": limits_from_env(env), **self.client_options}
        backend: _Backend
        if sandbox_dir is not None:
            from reconciler.sandbox_kit.files import sandbox_database

            db = sandbox_dir.resolve() / SANDBOX_DB
            backend = _SandboxBackend(
                db,
                env,
                max_connections=connections,
                client_options=options,
                opens=sandbox_database(db, keep=keep_sandbox),
            )
        else:
            backend = _ProjectBackend(
                _project_config(config, env),
                env,
                max_connections=connections,
                client_options=options,
            )
        session = RestSession(backend)
        try:
            yield session
        finally:
            await session.aclose()


def _project_config(config: Path | None, env: Mapping[str, str]) -> ProjectConfig:
    path = config if config is not None else Path(DEFAULT_PROJECT_FILE)
    if not path.is_file():
        if config is None:
            raise ConfigError(
                f"REST objects need a project file declaring their endpoints: no"
                f" {DEFAULT_PROJECT_FILE} here; create one, pass --config PATH, or use"
                " --sandbox"
            )
        raise ConfigError(f"project file {str(config)[:300]!r} (--config) not found")
    return load_project_config(path, env)


REST_CONNECTOR = RestConnector()

if TYPE_CHECKING:  # the engine's protocols, checked by mypy

    def _conforms(session: RestSession) -> tuple[Connector, ProviderSession]:
        return REST_CONNECTOR, session

__all__ = [
    "REST_CONNECTOR",
    "RestConnector",
    "RestSession",
    "binding_text",
    "parse_binding",
    "parse_import_ref",
    "rest_objects",
]
