"""The provider contract: every guarantee of the shared transport, proven for every
registered provider by running the CLI as a user would (a child process) against a hostile
server on loopback.

A provider gets this suite by being registered: each one declares a tiny working setup
(``Provider.contract_example(origin)``: env, files, manifests, the secrets that must never
show) and the suite points it at the hostile server. Guarantees:

* **echo**: a server that answers the request back (401 to everything; or a granted login,
  then 400 to everything) never gets a credential, or any 16-character piece of one, into
  stdout, stderr, ``--format json`` or any file the run writes, raw, JSON-escaped,
  URL-encoded or base64.
* **huge body / huge error body / endless chunked**: a clear error, and a bounded peak RSS
  of the child process (its own ``VmHWM``, written as it ends).
* **slowloris**: with ``RECONCILER_REQUEST_DEADLINE`` set, the run ends with an error in a bounded
  multiple of it (not the 120 s default).
* **401 storm**: a clear error, a bounded number of requests (logins included).
* **validate agrees with plan**: a manifest holding a credential's value is refused by both.

Time is asserted only as "far below the default deadline", memory as "far below what an
unbounded read takes": both are order-of-magnitude bounds, not measurements (those are
``bench/hostile.py``'s).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import yaml

from reconciler.engine.provider import ContractExample, Provider
from reconciler.providers.registry import PROVIDERS

from .hostile_server import HostileServer, Mode, hostile_server_thread

NAMES = sorted(PROVIDERS)
# A bounded read of a 100 MB answer costs tens of MB; an unbounded one 650 MB to GBs.
RSS_BOUND_MB = 300
HUGE = 100 * 1024**2
DEADLINE = 2.0  # RECONCILER_REQUEST_DEADLINE for the slowloris
# Far below the 120 s default, above every retry of a 2 s deadline plus interpreter start-up
# on a loaded machine.
SLOW_BOUND = 60.0
MAX_STORM_REQUESTS = 12
RUN_TIMEOUT = 240.0
WINDOW = 16  # no piece of a secret this long may show

# The child writes its own peak RSS (VmHWM: this process image's high-water mark) when it
# ends. wait4's ru_maxrss is no good here: it keeps the peak of the forked pytest image too,
# which is hundreds of MB late in a full run.
CODE = """\
import sys
from reconciler.cli.main import main
try:
    code = main()
finally:
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(".contract-hwm", "w") as out:
        out.write(hwm)
sys.exit(code)
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    rss_mb: float
    seconds: float
    files: dict[str, str]

    def everything(self) -> str:
        return "\n".join([self.stdout, self.stderr, *self.files.values()])

    def describe(self) -> str:
        out, err = self.stdout[-3000:], self.stderr[-3000:]
        return f"exit {self.code}\n--- stdout\n{out}\n--- stderr\n{err}"


def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> Run:
    """Run ``reconciler ARGS`` in ``cwd`` as a child process; its own peak RSS (VmHWM)."""
    child_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MAC_", "AKANA_", "TENANT_", "RECONCILER_", "KVSTORE_"))
    }
    child_env.update(env)
    child_env["NO_COLOR"] = "1"
    out, err = cwd / ".contract-stdout", cwd / ".contract-stderr"
    started = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", CODE, *args],
            cwd=cwd,
            env=child_env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    files = {
        str(path.relative_to(cwd)): path.read_text("utf-8", "replace")
        for path in sorted(cwd.rglob("*"))
        if path.is_file() and not path.name.startswith(".contract-")
    }
    return Run(
        proc.returncode,
        out.read_text("utf-8", "replace"),
        err.read_text("utf-8", "replace"),
        _peak_kib(cwd, usage.ru_maxrss) / 1024,
        seconds,
        files,
    )


def _peak_kib(cwd: Path, fallback: int) -> int:
    """The child's own high-water mark in KiB; wait4's figure (an upper bound) when the child
    was killed before it could say."""
    try:
        return int((cwd / ".contract-hwm").read_text())
    except (OSError, ValueError):
        return fallback


def setup(provider: Provider, origin: str, root: Path) -> ContractExample:
    example = provider.contract_example(origin)
    for name, text in example.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return example


def plan_args(example: ContractExample, *extra: str) -> list[str]:
    return ["plan", *example.manifests, *example.args, *extra]


def forms(secret: str) -> dict[str, str]:
    """How a secret can show: raw, JSON-escaped (both ways), URL-encoded, and the part of its
    base64 that does not depend on what precedes it (a Basic header, an encoded body)."""
    shown = {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "url": quote(secret, safe=""),
        "url-plus": quote_plus(secret),
    }
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        start = (offset * 4 + 2) // 3 + 1  # past the characters mixed with the prefix
        stop = len(encoded) - 4  # before the characters mixed with what follows
        if stop - start >= 8:
            shown[f"base64+{offset}"] = encoded[start:stop]
    return shown


def leaks(text: str, secrets: list[str]) -> list[str]:
    """What of ``secrets`` shows in ``text`` (the form, never the value), whole or as any
    :data:`WINDOW`-character piece of the raw or JSON-escaped form."""
    found: list[str] = []
    for index, secret in enumerate(secrets):
        for form, value in forms(secret).items():
            if value and value in text:
                found.append(f"secret #{index} ({form})")
                continue
            pieces = range(len(value) - WINDOW + 1)
            if form in ("raw", "json") and any(value[i : i + WINDOW] in text for i in pieces):
                found.append(f"secret #{index} ({form}, a {WINDOW}-character piece)")
    return found


def _origin(server: HostileServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def hostile(mode: Mode, **options: Any) -> Any:
    # The server outlives any client: the client, not the server, must end each call.
    return hostile_server_thread(mode, **{"max_seconds": 300.0, **options})


def _refused_cleanly(run: Run) -> None:
    assert run.code == 1, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    assert "error" in (run.stdout + run.stderr).lower(), run.describe()


# --- echo: no secret anywhere ------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 400])
@pytest.mark.parametrize("name", NAMES)
def test_an_echoing_server_never_gets_a_secret_shown(
    name: str, status: int, tmp_path: Path
) -> None:
    grant = status == 400  # logins granted: the session's own secrets are echoed too
    with hostile("echo", echo_status=status, grant_logins=grant) as server:
        example = setup(PROVIDERS[name], _origin(server), tmp_path)
        runs = [
            run_cli(plan_args(example, "--format", "json"), example.env, tmp_path),
            run_cli(plan_args(example), example.env, tmp_path),
        ]
        issued = list(server.issued)
        requests = server.requests
    assert requests >= 1
    secrets = [*example.secrets, *issued]
    for run in runs:
        _refused_cleanly(run)
        assert leaks(run.everything(), secrets) == [], run.describe()


# --- bounded memory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("huge_body", {"body_size": HUGE}),
        ("huge_error", {"body_size": HUGE}),
        ("endless_chunked", {}),
    ],
    ids=["huge-body", "huge-error-body", "endless-chunked"],
)
@pytest.mark.parametrize("name", NAMES)
def test_a_huge_answer_is_refused_with_bounded_memory(
    name: str, mode: Mode, options: dict[str, Any], tmp_path: Path
) -> None:
    with hostile(mode, **options) as server:
        example = setup(PROVIDERS[name], _origin(server), tmp_path)
        run = run_cli(plan_args(example, "--format", "json"), example.env, tmp_path)
    _refused_cleanly(run)
    assert run.rss_mb < RSS_BOUND_MB, f"peak RSS {run.rss_mb:.0f} MB\n{run.describe()}"


# --- the per-request deadline ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_dripping_server_is_cut_by_the_deadline_from_the_environment(
    name: str, tmp_path: Path
) -> None:
    with hostile("slow_headers", drip_interval=0.2) as server:
        example = setup(PROVIDERS[name], _origin(server), tmp_path)
        env = {**example.env, "RECONCILER_REQUEST_DEADLINE": str(DEADLINE)}
        run = run_cli(plan_args(example), env, tmp_path)
    _refused_cleanly(run)
    assert run.seconds < SLOW_BOUND, f"{run.seconds:.0f}s\n{run.describe()}"
    assert "RECONCILER_REQUEST_DEADLINE" in run.stdout + run.stderr, run.describe()


# --- a 401 storm -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_401_storm_ends_with_a_clear_error_after_few_requests(
    name: str, tmp_path: Path
) -> None:
    with hostile("echo", echo_status=401) as server:
        example = setup(PROVIDERS[name], _origin(server), tmp_path)
        run = run_cli(plan_args(example), example.env, tmp_path)
        requests = server.requests
    _refused_cleanly(run)
    assert "401" in run.stderr, run.describe()
    assert 1 <= requests <= MAX_STORM_REQUESTS, f"{requests} requests\n{run.describe()}"


# --- validate agrees with plan ---------------------------------------------------------------


def _a_manifest_value(example: ContractExample, root: Path) -> str:
    """The longest string without spaces the example's manifests hold (as a credential's
    value it must be refused: the manifest "holds" the secret)."""
    values: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in ("apiVersion", "kind"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str) and " " not in node and len(node) >= 8:
            values.append(node)

    for name in example.files:
        if any(name.startswith(m) for m in example.manifests):
            for document in yaml.safe_load_all((root / name).read_text("utf-8")):
                walk(document)
    assert values, "the example manifest holds no value to plant a secret in"
    return max(values, key=len)


@pytest.mark.parametrize("name", NAMES)
def test_validate_and_plan_refuse_a_manifest_holding_a_credential(
    name: str, tmp_path: Path
) -> None:
    provider = PROVIDERS[name]
    example = setup(provider, "http://127.0.0.1:9", tmp_path)  # nothing listens: never reached
    config = tmp_path / example.args[1] if "--config" in example.args else None
    variables = provider.credential_variables(example.env, config)
    assert variables, f"{name} declares no credential variable"
    value = _a_manifest_value(example, tmp_path)
    for variable in sorted(variables):
        env = {**example.env, variable: value}
        checked = run_cli(["validate", *example.manifests, *example.args], env, tmp_path)
        planned = run_cli(plan_args(example), env, tmp_path)
        for run in (checked, planned):
            assert run.code == 1, run.describe()
            assert variable in run.stdout + run.stderr, run.describe()
            assert "Traceback" not in run.stderr, run.describe()
