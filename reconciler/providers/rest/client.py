"""A client for one JSON collection API (Django REST framework style): list, find, create,
update, delete; the only place that builds this provider's URLs.

Why not :class:`reconciler.transport.http.ApiSession`: it speaks the Mini App Center's dialect
(``/api/v1`` roots, ``{"errors": [...]}`` bodies, a 404 without that body read as "wrong base
URL"); a DRF API answers ``{"detail": "Not found."}``. The transport pieces are shared:
``RetryPolicy`` (backoff, ``Retry-After``), the verifying TLS context, bounded body reads,
``ClientLimits`` and redaction.

Rules (the question is always "could the server have acted on it?"):

* Reads, ``PATCH`` and ``DELETE`` are retried on 429/502/503/504, timeouts and connection
  errors. A ``PATCH`` of the same fields twice leaves the same object.
* A ``POST`` (create) is retried only when the request provably never left (connect
  errors) or was refused before any work (429). A timeout, a lost connection or a 5xx after
  sending is *ambiguous*: :meth:`RestClient.create` lists the collection and matches the
  natural key; found, it is the created object; absent, the create is sent again (at most
  ``RetryPolicy.max_attempts`` rounds), and a 400 "already exists" on the key after an
  ambiguous round is resolved by listing too.
* ``PATCH`` (not ``PUT``) for updates: it sends only the fields the manifest manages, which
  is what "fields left out are not managed" means; a ``PUT`` would need every required field.
* Pagination follows the server's pages, whatever their size (a page size is asked for only
  when the endpoint names its parameter, ``page_size_param``), only on the same origin and
  path (a ``next`` pointing elsewhere would send the bearer token and the Api-Key to another
  host), with bounded pages and items, and a ``next`` seen twice is a loop. A ``next`` on the
  same host and port in another scheme (``http://`` from an application behind a
  TLS-terminating proxy) is read at the base URL's origin: never followed in clear.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from reconciler import __version__
from reconciler.errors import AmbiguousWriteError, ReconcilerError, TransportError
from reconciler.providers.rest.auth import (
    MAX_TOKEN_BODY,
    JwtApiKeyScheme,
    JwtCredential,
    jwt_session_auth,
)
from reconciler.providers.rest.config import Credentials, RestEndpoint, is_safe_path
from reconciler.providers.rest.model import SERVER_ID_RE
from reconciler.transport.body import ACCEPT_ENCODING, BodyError, read_body
from reconciler.transport.config import (
    REQUEST_DEADLINE_ENV,
    ClientLimits,
    check_endpoint_security,
    is_loopback,
)
from reconciler.transport.guard import GuardedTransport
from reconciler.transport.http import RetryPolicy, byte_size, parse_retry_after, tls_context
from reconciler.transport.redact import redact
from reconciler.transport.session_auth import Lease, SessionAuth, current_carrier

log = logging.getLogger("reconciler.providers.rest.client")

USER_AGENT: Final = f"miniapp-reconciler/{__version__}"
MAX_ERROR_BODY: Final = 64 * 1024
MAX_SHOWN: Final = 300
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_ID_RE = SERVER_ID_RE

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ListLimits:
    """How much one listing may cost: pages followed, objects kept, objects per page asked."""

    max_pages: int = 1_000
    max_items: int = 100_000
    # Asked for when the endpoint names a page-size parameter (servers cap it); None: never.
    page_size: int | None = 100

    def __post_init__(self) -> None:
        if self.max_pages < 1 or self.max_items < 1:
            raise ValueError("max_pages and max_items must be >= 1")
        if self.page_size is not None and self.page_size < 1:
            raise ValueError("page_size must be >= 1")


class RestApiError(ReconcilerError):
    """A non-2xx answer (after retries where they apply). ``detail`` is DRF's, redacted."""

    def __init__(self, method: str, path: str, status: int, detail: str, hint: str = "") -> None:
        self.method, self.path, self.status, self.detail, self.hint = (
            method,
            path,
            status,
            detail,
            hint,
        )
        message = f"{method} {path} -> HTTP {status}: {detail}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class ReadOnlyError(RestApiError):
    """403: no permission, most often the read-only public schema (no or a wrong Api-Key)."""


class RestValidationError(RestApiError):
    """400 with DRF's field errors: ``fields`` maps each invalid field to its messages
    (``non_field_errors`` and a bare ``detail`` go to ``general``), so that a caller can point
    each one at the manifest line of that field."""

    def __init__(
        self, method: str, path: str, fields: Mapping[str, list[str]], general: list[str]
    ) -> None:
        self.fields = dict(fields)
        self.general = list(general)
        parts = [f"{name}: {'; '.join(msgs)}" for name, msgs in self.fields.items()]
        parts += self.general
        super().__init__(method, path, 400, " | ".join(parts) or "invalid data")


class PaginationError(ReconcilerError):
    """The listing cannot be followed safely (another origin, a loop, too many pages)."""


class DuplicateKeyError(ReconcilerError):
    """Two objects of a collection share a natural key: matching by it would be a guess."""


@dataclass
class RestStats:
    by_request: dict[str, int] = field(default_factory=dict)  # "METHOD /path" -> attempts
    retries: int = 0

    def count(self, method: str, path: str) -> None:
        key = f"{method} {path}"
        self.by_request[key] = self.by_request.get(key, 0) + 1


@dataclass
class _Answer:
    status: int
    data: Any
    retry_after: str | None = None


def _clean(text: str) -> str:
    text = redact(text)
    text = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...(truncated)"


def _too_slow(deadline: float) -> str:
    return (
        f"the server was too slow: no complete answer within {deadline:g}s (the per-request"
        f" deadline; {REQUEST_DEADLINE_ENV} raises it)"
    )


def _messages(value: object) -> list[str]:
    if isinstance(value, list):
        return [_clean(str(v)) for v in value[:20]]
    if isinstance(value, dict):  # nested serializer errors: flattened, bounded
        # Masked before it is cut (in _clean): a cut secret would no longer match.
        return [_clean(json.dumps(value))]
    return [_clean(str(value))]


def _detail(data: Any, fallback: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return _clean(data["detail"])
    return _clean(fallback) or "no error body"


def object_key(obj: JsonObject, key_field: str) -> str | None:
    """The natural key of ``obj`` as compared: strings as they are, numbers as JSON; None
    when the field is absent or not a scalar."""
    value = obj.get(key_field)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    return None


def index_by_key(objects: list[JsonObject], key_field: str, path: str) -> dict[str, JsonObject]:
    """``{natural key: object}``; :class:`DuplicateKeyError` when two share one."""
    index: dict[str, JsonObject] = {}
    for obj in objects:
        key = object_key(obj, key_field)
        if key is None:
            continue
        if key in index:
            raise DuplicateKeyError(
                f"{path}: two objects have {key_field}={_clean(key)!r} (ids"
                f" {_clean(str(index[key].get('id')))} and {_clean(str(obj.get('id')))});"
                f" {key_field} cannot identify them"
            )
        index[key] = obj
    return index


class RestClient:
    """One endpoint of the project file: one ``httpx.AsyncClient`` with JWT + Api-Key auth."""

    def __init__(
        self,
        endpoint: RestEndpoint,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limits: ClientLimits | None = None,
        list_limits: ListLimits | None = None,
        max_connections: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_endpoint_security(endpoint.base_url)
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        self.limits = limits or ClientLimits()
        self.list_limits = list_limits or ListLimits()
        self.stats = RestStats()
        self._origin = httpx.URL(endpoint.base_url)
        # One login per run, as for Akana: a run's plan and writes (two event loops) share
        # the tokens when the run carries them; only on the real network.
        carrier = current_carrier() if transport is None else None
        self._carry_key = (
            f"rest {endpoint.name} {endpoint.base_url} {credentials.username.reveal()}"
        )
        taken = carrier.take(self._carry_key) if carrier is not None else None
        self.auth: SessionAuth[JwtCredential]
        if taken is not None and isinstance(taken.scheme, JwtApiKeyScheme):
            self.auth, self._scheme = taken, taken.scheme
        else:
            self._scheme = JwtApiKeyScheme(
                base_url=endpoint.base_url,
                jwt=endpoint.auth,
                credentials=credentials,
                api_key_header=endpoint.api_key.header if endpoint.api_key else None,
                clock=clock,
            )
            self.auth = jwt_session_auth(self._scheme, clock)
        self._scheme.send = self._token_call
        self._carried = carrier is not None
        loopback = is_loopback(self._origin.host)
        self._http = httpx.AsyncClient(
            headers={
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=tls_context(),
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            trust_env=not loopback,  # never a proxy for loopback: it would see the tokens
        )
        # The shared guard: the deadline and the size cap for every request, the token calls
        # of the auth flow included, whichever transport httpx picked (a proxy's included).
        self._http._transport = GuardedTransport(self._http._transport, self.limits)
        self._http._mounts = {
            pattern: None if mounted is None else GuardedTransport(mounted, self.limits)
            for pattern, mounted in self._http._mounts.items()
        }
        self._closed = False

    def credential_variable_in(self, text: str) -> str | None:
        """The name of the variable whose value (this endpoint's password or Api-Key)
        ``text`` holds, or None: never the value itself."""
        which = self._scheme.secret_in(text)
        if which == "password":
            return self.endpoint.auth.password_env
        if which == "api_key" and self.endpoint.api_key is not None:
            return self.endpoint.api_key.env
        return None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        carrier = current_carrier() if self._carried else None
        if carrier is not None and not carrier.final and self.auth.has_credential:
            carrier.park(self._carry_key, self.auth, _nothing_to_send)
            await self._http.aclose()
            return
        try:
            try:
                await self.auth.logout()  # JWTs send nothing; forgets the tokens
            finally:
                await self._http.aclose()
        finally:
            self.auth.close()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RestClient(endpoint={self.endpoint.name!r}, base_url={self.endpoint.base_url!r})"

    # --- URLs (only here) --------------------------------------------------------------

    @staticmethod
    def _collection(path: str) -> str:
        if not is_safe_path(path) or not path.endswith("/"):
            raise ReconcilerError(
                f"collection path {_clean(path)!r} must be an absolute path ending in /"
                " (letters, digits, - _ . ~; no query, no .. segments)"
            )
        return path

    def _object(self, path: str, object_id: object) -> str:
        if isinstance(object_id, bool) or not isinstance(object_id, int | str):
            raise ReconcilerError(f"object id {_clean(repr(object_id))} is not an id")
        text = str(object_id)
        if not _ID_RE.fullmatch(text):
            raise ReconcilerError(f"object id {_clean(text)!r} cannot be put in a URL")
        return f"{self._collection(path)}{text}/"

    def _onto_origin(self, url: httpx.URL) -> httpx.URL:
        """``url`` in the base URL's scheme when only the scheme differs: an application
        behind a TLS-terminating proxy builds its links from the ``http://`` it is reached
        by; the same host and port are the same server, reached the way the user chose."""
        origin = self._origin
        if (
            url.scheme in ("http", "https")
            and url.scheme != origin.scheme
            and url.host == origin.host
            and url.port == origin.port
            and not url.userinfo
        ):
            return url.copy_with(scheme=origin.scheme)
        return url

    def _same_place(self, url: httpx.URL, path: str) -> bool:
        origin = self._origin
        return (
            url.scheme == origin.scheme
            and url.host == origin.host
            and url.port == origin.port
            and url.path == path
            and not url.userinfo
        )

    # --- operations --------------------------------------------------------------------

    async def list_objects(self, path: str) -> list[JsonObject]:
        """Every object of the collection at ``path``, following DRF pagination safely."""
        path = self._collection(path)
        limits = self.list_limits
        url = httpx.URL(self.endpoint.base_url + path)
        param = self.endpoint.page_size_param
        if param is not None and limits.page_size is not None:
            url = url.copy_add_param(param, str(limits.page_size))
        objects: list[JsonObject] = []
        seen: set[str] = set()
        for _ in range(limits.max_pages):
            seen.add(str(url))
            answer = await self._call("GET", url, idempotent=True)
            data = answer.data
            if isinstance(data, list):  # an unpaginated collection answers a bare list
                page, next_url = data, None
            elif isinstance(data, dict) and isinstance(data.get("results"), list):
                page, next_url = data["results"], data.get("next")
            else:
                raise PaginationError(
                    f"GET {path}: the answer is neither a list nor a DRF page"
                    " ({count, next, previous, results})"
                )
            for item in page:
                if not isinstance(item, dict):
                    raise PaginationError(f"GET {path}: an item of the list is not an object")
                objects.append(item)
            if len(objects) > limits.max_items:
                raise PaginationError(
                    f"GET {path}: more than {limits.max_items} objects; refusing to read on"
                )
            if next_url is None:
                return objects
            if not isinstance(next_url, str):
                raise PaginationError(f"GET {path}: 'next' is not a URL")
            try:
                following = url.join(next_url)
            except httpx.InvalidURL:
                raise PaginationError(f"GET {path}: 'next' is not a valid URL") from None
            following = self._onto_origin(following)
            if not self._same_place(following, path):
                origin = f"{following.scheme}://{following.netloc.decode(errors='replace')}"
                raise PaginationError(
                    f"GET {path}: refusing to follow 'next' to {_clean(origin)}"
                    f"{_clean(following.path)}: pages are followed on"
                    f" {self.endpoint.base_url}{path} only (the tokens and the Api-Key would be"
                    " sent there)"
                )
            if str(following) in seen:
                raise PaginationError(f"GET {path}: 'next' points back to a page already read")
            url = following
        raise PaginationError(
            f"GET {path}: more than {limits.max_pages} pages; refusing to read on"
        )

    async def find(self, path: str, key_field: str, value: str) -> JsonObject | None:
        """The object whose ``key_field`` is ``value`` (as :func:`object_key` shows it)."""
        return index_by_key(await self.list_objects(path), key_field, path).get(value)

    async def get(self, path: str, object_id: object) -> JsonObject | None:
        url = httpx.URL(self.endpoint.base_url + self._object(path, object_id))
        try:
            answer = await self._call("GET", url, idempotent=True)
        except RestApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _object_or_fail("GET", url.path, answer.data)

    async def create(self, path: str, key_field: str, body: JsonObject) -> JsonObject:
        """POST ``body``; an ambiguous answer is resolved by listing and matching the key."""
        path = self._collection(path)
        key = object_key(body, key_field)
        url = httpx.URL(self.endpoint.base_url + path)
        content = _encode(body)
        ambiguous: AmbiguousWriteError | None = None
        for _round in range(self.retry.max_attempts):
            try:
                answer = await self._call("POST", url, idempotent=False, content=content)
            except AmbiguousWriteError as exc:
                ambiguous = exc
            except RestValidationError as exc:
                # After an ambiguous round, "already exists" on the key is our own create.
                if ambiguous is None or key_field not in exc.fields:
                    raise
            else:
                return _object_or_fail("POST", path, answer.data)
            if key is None:
                assert ambiguous is not None
                raise ambiguous
            found = await self.find(path, key_field, key)
            if found is not None:
                log.debug("POST %s: ambiguous create resolved by listing: created", path)
                return found
            log.debug("POST %s: ambiguous create not found by listing: sending it again", path)
        assert ambiguous is not None
        raise AmbiguousWriteError(
            "POST",
            path,
            f"{ambiguous.reason}; still unresolved after {self.retry.max_attempts}"
            " rounds of listing and sending again",
        )

    async def update(self, path: str, object_id: object, fields: JsonObject) -> JsonObject:
        """PATCH the managed ``fields`` only (see the module docstring)."""
        url = httpx.URL(self.endpoint.base_url + self._object(path, object_id))
        answer = await self._call("PATCH", url, idempotent=True, content=_encode(fields))
        return _object_or_fail("PATCH", url.path, answer.data)

    async def delete(self, path: str, object_id: object) -> bool:
        """DELETE; False when the object was already gone (404)."""
        url = httpx.URL(self.endpoint.base_url + self._object(path, object_id))
        try:
            await self._call("DELETE", url, idempotent=True)
        except RestApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- one call ----------------------------------------------------------------------

    async def _call(
        self, method: str, url: httpx.URL, *, idempotent: bool, content: bytes | None = None
    ) -> _Answer:
        policy = self.retry
        path = url.path
        started = policy.clock()
        attempt = 0
        while True:
            attempt += 1
            self.stats.count(method, path)
            delay: float | None = None
            try:
                answer = await self._send(method, url, content)
            except httpx.ConnectError as exc:  # never left this process: always retryable
                error: ReconcilerError = TransportError(
                    method, path, _clean(f"could not connect ({exc})")
                )
            except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error = TransportError(
                    method, path, _clean(f"could not connect ({type(exc).__name__})")
                )
            except TimeoutError:  # the per-request deadline (asyncio.timeout in _send)
                reason = _too_slow(self.limits.request_deadline)
                if not idempotent:
                    raise AmbiguousWriteError(method, path, reason) from None
                error = TransportError(method, path, reason)
            except (
                httpx.TimeoutException,
                httpx.NetworkError,
                httpx.RemoteProtocolError,
            ) as exc:
                reason = _clean(f"no complete answer ({type(exc).__name__}: {exc})")
                if not idempotent:
                    raise AmbiguousWriteError(method, path, reason) from None
                error = TransportError(method, path, reason)
            else:
                status = answer.status
                if 200 <= status < 300:
                    return answer
                error = self._error(method, path, answer)
                if status >= 500 and not idempotent and status != 501:
                    # The write may have been done before the failure (commit, then crash).
                    raise AmbiguousWriteError(
                        method, path, f"HTTP {status}: {_detail(answer.data, '')}"
                    )
                if status not in _RETRY_STATUSES:
                    raise error
                delay = parse_retry_after(answer.retry_after)
            if delay is None:
                delay = policy.backoff(attempt)
            delay = min(delay, policy.retry_after_cap)
            if attempt >= policy.max_attempts or policy.clock() - started + delay > policy.deadline:
                raise error
            log.debug("%s %s: retrying in %.2fs (%s)", method, path, delay, error)
            self.stats.retries += 1
            await policy.sleep(delay)

    async def _send(self, method: str, url: httpx.URL, content: bytes | None) -> _Answer:
        """One attempt, under a lease on the session's tokens; a request refused as
        unauthenticated (``token_not_valid``) is replayed after one refresh."""
        replays = 0
        while True:
            lease = await self.auth.acquire()
            try:
                answer, response = await self._send_once(method, url, content, lease)
            finally:
                self.auth.release(lease)
            if self.auth.is_refusal(response) and await self.auth.refused(lease, replays):
                replays += 1
                log.debug("%s %s: replaying after a refreshed token", method, url.path)
                continue
            return answer

    async def _token_call(self, url: httpx.URL, body: dict[str, str]) -> tuple[int, Any]:
        """A token call through the same path (deadline, a small body cap), no lease."""
        answer, _ = await self._send_once("POST", url, _encode(body), None, MAX_TOKEN_BODY)
        return answer.status, answer.data

    async def _send_once(
        self,
        method: str,
        url: httpx.URL,
        content: bytes | None,
        lease: Lease[JwtCredential] | None,
        max_bytes: int | None = None,
    ) -> tuple[_Answer, httpx.Response]:
        headers = {"Content-Type": "application/json"} if content is not None else {}
        request = self._http.build_request(method, url, content=content, headers=headers)
        if lease is not None:
            self.auth.attach(request, lease)
        async with asyncio.timeout(self.limits.request_deadline):
            response = await self._http.send(request, stream=True)
            try:
                ok = 200 <= response.status_code < 300
                cap = self.limits.max_response_bytes if ok else MAX_ERROR_BODY
                if ok and max_bytes is not None:
                    cap = min(cap, max_bytes)
                try:
                    body = await read_body(response, cap)
                except BodyError as exc:
                    if ok:
                        raise TransportError(method, url.path, _clean(str(exc))) from None
                    content_read = b""
                else:
                    if ok and body.truncated:
                        raise TransportError(
                            method,
                            url.path,
                            f"the answer is larger than {byte_size(cap)} (the response cap)",
                        )
                    content_read = body.content
            finally:
                await response.aclose()
        log.debug("%s %s -> %d", method, url.path, response.status_code)
        response._content = content_read  # read and closed: what the scheme may look at
        answer = _Answer(
            response.status_code, _parse(content_read), response.headers.get("retry-after")
        )
        return answer, response

    def _error(self, method: str, path: str, answer: _Answer) -> RestApiError:
        status, data = answer.status, answer.data
        if status == 400 and isinstance(data, dict) and data:
            general: list[str] = []
            fields: dict[str, list[str]] = {}
            for name, value in list(data.items())[:100]:
                if name in ("non_field_errors", "detail"):
                    general += _messages(value)
                else:
                    fields[_clean(str(name))] = _messages(value)
            return RestValidationError(method, path, fields, general)
        detail = _detail(data, "" if data is None else str(data))
        if status == 403:
            key = self.endpoint.api_key
            where = f" (${key.env}, sent as {key.header})" if key else " (none is configured)"
            return ReadOnlyError(
                method,
                path,
                status,
                detail,
                f"read-only (public schema?): check the Api-Key{where}",
            )
        if status == 401:
            auth = self.endpoint.auth
            return RestApiError(
                method,
                path,
                status,
                detail,
                f"the token was refused even after a refresh; check ${auth.username_env}",
            )
        return RestApiError(method, path, status, detail)


async def _nothing_to_send() -> None:
    return None  # a JWT session ends by itself: no logout request


def _encode(body: JsonObject) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _parse(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return _clean(content[:MAX_SHOWN].decode("utf-8", "replace"))


def _object_or_fail(method: str, path: str, data: Any) -> JsonObject:
    if not isinstance(data, dict):
        raise TransportError(method, path, "the answer is not a JSON object")
    return data
