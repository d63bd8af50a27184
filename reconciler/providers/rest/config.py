"""The project file (``reconciler.yaml``): REST endpoints declared by name.

```yaml
endpoints:
  shop:
    base_url: ${TENANT_BASE_URL}          # ${VAR} and ${VAR:-default} are expanded
    auth:
      type: jwt
      token_path: /api/token/
      refresh_path: /api/token/refresh/
      username_env: TENANT_USERNAME       # the NAMES of the variables, never the values
      password_env: TENANT_PASSWORD
    api_key:                              # optional: without it, the read-only public schema
      header: Api-Key
      env: TENANT_API_KEY
    page_size_param: page_size            # optional: none is sent unless named
```

The file names where secrets live, never the secrets: a value that looks like one (any key
not listed above) is refused, and the variables are read only by :func:`resolve_credentials`.
Every problem is reported with ``file:line:column`` like a manifest's, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from reconciler.engine.descriptor import DEFAULT_PROJECT_FILE as PROJECT_FILE
from reconciler.errors import ConfigError, ManifestIssue
from reconciler.manifest.files import FileRefused, read_regular_file
from reconciler.manifest.loader import _syntax_issue
from reconciler.manifest.nodes import display_path, pos_of, read_string, substitute
from reconciler.manifest.screen import screen
from reconciler.transport.config import check_endpoint_security
from reconciler.transport.redact import Secret

DEFAULT_PROJECT_FILE: Final = PROJECT_FILE  # the project file every provider shares
MAX_PROJECT_BYTES: Final = 256 * 1024
MAX_ENDPOINTS: Final = 100
_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# A path as sent: absolute, URL-safe characters only, no query, fragment, dot segments.
_PATH_RE = re.compile(r"/(?:[A-Za-z0-9_~.-]+/)*(?:[A-Za-z0-9_~.-]+)?")
_HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Headers a key must never replace: the bearer token and the message framing.
_RESERVED_HEADERS: Final = frozenset(
    {"authorization", "host", "content-length", "content-type", "transfer-encoding", "cookie"}
)


class ProjectConfigError(ConfigError):
    """The project file is invalid; ``issues`` carries every problem with its place."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        count = len(issues)
        head = f"{count} project file error{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  {issue}" for issue in issues))


@dataclass(frozen=True)
class JwtAuth:
    token_path: str
    refresh_path: str
    username_env: str
    password_env: str


@dataclass(frozen=True)
class ApiKeyHeader:
    header: str
    env: str


@dataclass(frozen=True)
class RestEndpoint:
    name: str
    base_url: str  # scheme://host[:port], no trailing slash; collection paths are absolute
    auth: JwtAuth
    api_key: ApiKeyHeader | None
    file: str
    line: int
    # The query parameter that asks for a page size, when the server takes one (DRF's default
    # pagination takes none, and pages are followed whatever their size).
    page_size_param: str | None = None


@dataclass(frozen=True)
class ProjectConfig:
    file: str
    endpoints: Mapping[str, RestEndpoint]

    def endpoint(self, name: str) -> RestEndpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise ConfigError(
                f"endpoint {name[:64]!r} is not declared in {self.file} (declared: {known})"
            ) from None


@dataclass(frozen=True)
class Credentials:
    username: Secret
    password: Secret
    api_key: Secret | None


def is_safe_path(path: str) -> bool:
    """A path this tool may send: absolute, URL-safe, no dot segments, no query."""
    if not _PATH_RE.fullmatch(path) or "//" in path:
        return False
    return not any(part in (".", "..") for part in path.split("/"))


class _Reader:
    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.issues: list[ManifestIssue] = []

    def report(self, node: Node, loc: tuple[str, ...], message: str) -> None:
        pos = pos_of(node)
        self.issues.append(
            ManifestIssue(self.file, pos.line, pos.column, display_path(loc), message)
        )

    def reporter(self, node: Node, loc: tuple[str, ...]) -> Callable[[str], None]:
        return lambda message: self.report(node, loc, message)

    def mapping(
        self, node: Node, loc: tuple[str, ...], required: tuple[str, ...], optional: tuple[str, ...]
    ) -> dict[str, tuple[Node, Node]] | None:
        """{key: (key node, value node)}, after reporting unknown, repeated and missing keys."""
        if not isinstance(node, MappingNode):
            self.report(node, loc, "must be a mapping")
            return None
        found: dict[str, tuple[Node, Node]] = {}
        allowed = (*required, *optional)
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str) or key not in allowed:
                shown = repr(key)[:40] if isinstance(key, str) else "a non-string key"
                self.report(key_node, loc, f"unknown key {shown}; expected {', '.join(allowed)}")
            elif key in found:
                line = pos_of(found[key][0]).line
                self.report(key_node, (*loc, key), f"repeated key (first at line {line})")
            else:
                found[key] = (key_node, value_node)
        for key in required:
            if key not in found:
                self.report(node, loc, f"missing required key {key!r}")
        return found

    def string(
        self, pair: tuple[Node, Node], loc: tuple[str, ...], pattern: re.Pattern[str], what: str
    ) -> str | None:
        node = pair[1]
        value = read_string(node, self.reporter(node, loc))
        if value is None:
            return None
        if not pattern.fullmatch(value):
            self.report(node, loc, f"must be {what}, not {value[:60]!r}")
            return None
        return value

    def path(self, pair: tuple[Node, Node], loc: tuple[str, ...]) -> str | None:
        node = pair[1]
        value = read_string(node, self.reporter(node, loc))
        if value is not None and not is_safe_path(value):
            self.report(
                node,
                loc,
                "must be an absolute path like /api/token/ (letters, digits,"
                " - _ . ~; no query, no .. segments)",
            )
            return None
        return value

    def base_url(self, pair: tuple[Node, Node], loc: tuple[str, ...]) -> str | None:
        node = pair[1]
        raw = read_string(node, self.reporter(node, loc))
        if raw is None:
            return None
        errors_before = len(self.issues)
        value = substitute(raw, self.env, self.reporter(node, loc)).strip().rstrip("/")
        if len(self.issues) > errors_before:
            return None
        try:
            check_endpoint_security(value)
        except ConfigError as exc:
            self.report(node, loc, str(exc).replace("the API endpoint", "base_url", 1))
            return None
        if not re.fullmatch(r"https?://[^/?#@]+", value):
            self.report(
                node,
                loc,
                "must be the API's origin only (scheme://host[:port]);"
                " collection paths start with /",
            )
            return None
        return value

    def endpoint(self, name: str, node: Node) -> RestEndpoint | None:
        loc = ("endpoints", name)
        fields = self.mapping(node, loc, ("base_url", "auth"), ("api_key", "page_size_param"))
        if fields is None:
            return None
        base_url = (
            self.base_url(fields["base_url"], (*loc, "base_url")) if "base_url" in fields else None
        )
        auth = self.jwt(fields["auth"][1], (*loc, "auth")) if "auth" in fields else None
        api_key = (
            self.api_key(fields["api_key"][1], (*loc, "api_key")) if "api_key" in fields else None
        )
        param = (
            self.string(
                fields["page_size_param"],
                (*loc, "page_size_param"),
                _PARAM_RE,
                "a query parameter name (letters, digits, _ . -)",
            )
            if "page_size_param" in fields
            else None
        )
        if base_url is None or auth is None or ("api_key" in fields and api_key is None):
            return None
        if "page_size_param" in fields and param is None:
            return None
        return RestEndpoint(
            name, base_url, auth, api_key, self.file, pos_of(node).line, page_size_param=param
        )

    def jwt(self, node: Node, loc: tuple[str, ...]) -> JwtAuth | None:
        keys = ("type", "token_path", "refresh_path", "username_env", "password_env")
        fields = self.mapping(node, loc, keys, ())
        if fields is None or len(fields) < len(keys):
            return None
        kind = read_string(fields["type"][1], self.reporter(fields["type"][1], (*loc, "type")))
        if kind is not None and kind != "jwt":
            self.report(
                fields["type"][1],
                (*loc, "type"),
                f"unsupported auth type {kind[:30]!r}; supported: jwt",
            )
            return None
        token = self.path(fields["token_path"], (*loc, "token_path"))
        refresh = self.path(fields["refresh_path"], (*loc, "refresh_path"))
        env_name = "an environment variable NAME (letters, digits, _), not its value"
        user = self.string(fields["username_env"], (*loc, "username_env"), _ENV_RE, env_name)
        password = self.string(fields["password_env"], (*loc, "password_env"), _ENV_RE, env_name)
        if kind is None or token is None or refresh is None or user is None or password is None:
            return None
        return JwtAuth(token, refresh, user, password)

    def api_key(self, node: Node, loc: tuple[str, ...]) -> ApiKeyHeader | None:
        fields = self.mapping(node, loc, ("header", "env"), ())
        if fields is None or len(fields) < 2:
            return None
        header = self.string(fields["header"], (*loc, "header"), _HEADER_RE, "an HTTP header name")
        if header is not None and header.lower() in _RESERVED_HEADERS:
            self.report(fields["header"][1], (*loc, "header"), f"{header} cannot carry the Api-Key")
            header = None
        env = self.string(
            fields["env"],
            (*loc, "env"),
            _ENV_RE,
            "an environment variable NAME (letters, digits, _), not its value",
        )
        if header is None or env is None:
            return None
        return ApiKeyHeader(header, env)


def load_project_config(path: str | Path, env: Mapping[str, str]) -> ProjectConfig:
    """Read and check the project file; :class:`ProjectConfigError` lists every problem."""
    file = str(path)
    reader = _Reader(file, env)

    def fail(message: str, line: int = 1, column: int = 1) -> ProjectConfigError:
        return ProjectConfigError([ManifestIssue(file, line, column, "", message)])

    try:
        data = read_regular_file(Path(path), MAX_PROJECT_BYTES, "project file")
    except FileRefused as exc:
        raise fail(str(exc)) from None
    try:
        text = data.decode("utf-8-sig")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise fail("not valid UTF-8; save the file as UTF-8") from None
    except yaml.MarkedYAMLError as exc:
        # The manifest loader's message: placed, and never quoting the file's text (a
        # secret pasted by mistake would otherwise be printed back).
        raise ProjectConfigError([_syntax_issue(file, text, exc)]) from None
    except (yaml.YAMLError, RecursionError):
        raise fail("not readable as YAML") from None
    if root is None:
        raise fail("the project file is empty; it declares endpoints: {name: {...}}")
    problems = screen(root)
    if problems:
        raise ProjectConfigError(
            [ManifestIssue(file, p.line, p.column, "", m) for p, m in problems[:50]]
        )
    top = reader.mapping(root, (), ("endpoints",), ())
    endpoints: dict[str, RestEndpoint] = {}
    if top is not None and "endpoints" in top:
        node = top["endpoints"][1]
        entries = reader.mapping(
            node,
            ("endpoints",),
            (),
            tuple(
                k.value
                for k, _ in getattr(node, "value", [])
                if isinstance(k, ScalarNode) and isinstance(k.value, str)
            ),
        )
        for name, (key_node, value_node) in (entries or {}).items():
            if len(endpoints) >= MAX_ENDPOINTS:
                reader.report(key_node, ("endpoints",), f"more than {MAX_ENDPOINTS} endpoints")
                break
            if not _NAME_RE.fullmatch(name):
                reader.report(
                    key_node,
                    ("endpoints",),
                    f"endpoint name {name[:40]!r} must be"
                    " lower case letters, digits, - and _ (starting with a letter)",
                )
                continue
            endpoint = reader.endpoint(name, value_node)
            if endpoint is not None:
                endpoints[name] = endpoint
        if entries is not None and not entries:
            reader.report(node, ("endpoints",), "declares no endpoint")
    if reader.issues:
        reader.issues.sort(key=lambda issue: (issue.line, issue.column))
        raise ProjectConfigError(reader.issues[:50])
    return ProjectConfig(file, endpoints)


def resolve_credentials(endpoint: RestEndpoint, env: Mapping[str, str]) -> Credentials:
    """The secrets the endpoint names, from ``env``; ConfigError naming what is missing."""

    def need(name: str, what: str) -> Secret:
        value = env.get(name, "")
        if not value:
            raise ConfigError(
                f"endpoint {endpoint.name!r} ({endpoint.file}:{endpoint.line}): {what} is read"
                f" from ${name}, which is not set"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ConfigError(f"${name} contains control characters ({what})")
        return Secret(value)

    auth = endpoint.auth
    return Credentials(
        username=need(auth.username_env, "the user name"),
        password=need(auth.password_env, "the password"),
        api_key=need(endpoint.api_key.env, "the Api-Key") if endpoint.api_key else None,
    )


def credential_variables(env: Mapping[str, str], config: Path | None) -> frozenset[str]:
    """The password and Api-Key variables of every endpoint of the project file (``config``,
    else ``./reconciler.yaml`` when it exists); none when there is no readable one (the run
    that needs it reports its problems)."""
    path = config if config is not None else Path(DEFAULT_PROJECT_FILE)
    if config is None and not path.is_file():
        return frozenset()
    try:
        project = load_project_config(path, env)
    except ConfigError:
        return frozenset()
    names: set[str] = set()
    for endpoint in project.endpoints.values():
        names.add(endpoint.auth.password_env)
        if endpoint.api_key is not None:
            names.add(endpoint.api_key.env)
    return frozenset(names)
