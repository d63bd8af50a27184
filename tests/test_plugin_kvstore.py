"""A provider as a separate package: tests/plugins/kvstore (a key/value store behind a small
HTTP API with its own Starlette sandbox and API-key auth) registers itself through the
``reconciler.providers`` entry point, and every command works for it through the CLI, with
nothing in reconciler/ knowing it. Each scenario runs its commands in one fresh interpreter
with the plugin installed on its path (tests/plugin_install.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugin_install import PLUGINS, install, run_cli

ENTRY = """\
apiVersion: kvstore/v1
kind: Entry
metadata:
  name: {key}
  labels: {{team: {team}}}
spec:
  value: {value}
"""


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(PLUGINS / "kvstore", tmp_path_factory.mktemp("site"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "greeting.yaml").write_text(
        ENTRY.format(key="greeting", team="web", value="hello")
    )
    (manifests / "motd.yaml").write_text(ENTRY.format(key="motd", team="ops", value="be kind"))
    return tmp_path


def test_the_test_session_registers_the_plugin_like_a_built_in_provider() -> None:
    """tests/conftest.py installs it before the registry loads: suites parameterised over the
    registered providers (the provider contract suite) run over it too."""
    from reconciler.providers.registry import CONNECTORS, DESCRIPTORS, PROVIDERS

    assert list(PROVIDERS) == ["miniappcenter", "akana", "rest", "kvstore"]
    assert "kvstore" in CONNECTORS
    [kvstore] = [d for d in DESCRIPTORS if d.name == "kvstore"]
    assert kvstore.package == "reconciler-kvstore"


def test_the_plugin_is_a_registered_provider(site: Path, tmp_path: Path) -> None:
    code = (
        "from reconciler.providers.registry import (\n"
        "    CONNECTORS, MANIFEST_KINDS, PROVIDERS, ROOT_KINDS)\n"
        "print(list(PROVIDERS), list(CONNECTORS), ROOT_KINDS['kv_entry'],\n"
        "      PROVIDERS['kvstore'].title, ('kvstore/v1', 'Entry') in MANIFEST_KINDS)\n"
    )
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PLUGINS.parent.parent)])}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert done.stdout.split("\n")[0] == (
        "['miniappcenter', 'akana', 'rest', 'kvstore']"
        " ['miniappcenter', 'akana', 'rest', 'kvstore'] kvstore"
        " Key/value store True"
    )


def test_validate_plan_apply_drift_import_and_state_through_the_cli(site: Path, repo: Path) -> None:
    sandbox = ["--sandbox"]
    store = repo / ".reconciler" / "kvstore-sandbox.json"
    results = run_cli(
        site,
        repo,
        [
            ["validate", "manifests"],
            ["plan", "manifests", *sandbox],
            ["apply", "manifests", *sandbox, "--auto-approve"],
            ["plan", "manifests", *sandbox, "--detailed-exitcode"],
            ["state", "list", *sandbox],
            ["state", "show", "kv_entry[greeting]", *sandbox],
        ],
    )
    validate, plan, apply, replan, listed, shown = results
    assert validate["code"] == 0, validate
    assert validate["out"].strip() == "OK: 2 kvstore resources in 2 files"
    assert plan["code"] == 0, plan
    assert "kv_entry[greeting]" in plan["out"] and "kv_entry[motd]" in plan["out"]
    assert apply["code"] == 0, apply
    assert json.loads(store.read_text()) == {"greeting": "hello", "motd": "be kind"}
    assert replan["code"] == 0, replan  # converged: no changes
    assert "No changes" in replan["out"]
    assert listed["code"] == 0
    assert listed["out"].splitlines() == [
        "kv_entry[greeting]\tid greeting",
        "kv_entry[motd]\tid motd",
    ]
    assert shown["code"] == 0, shown
    assert json.loads(shown["out"]) == {
        "id": "greeting",
        "value": "hello",
        "labels": {"team": "web"},
    }

    # Changed outside, then drift names it; an entry made outside is imported.
    store.write_text(json.dumps({"greeting": "HELLO", "motd": "be kind", "extra": "found"}))
    drift, imported, listed = run_cli(
        site,
        repo,
        [
            ["drift", "manifests", *sandbox, "--format", "json"],
            ["import", "extra", "--provider", "kvstore", *sandbox, "--out", "manifests"],
            ["state", "list", *sandbox],
        ],
    )
    assert drift["code"] == 2, drift
    [item] = json.loads(drift["out"])["items"]
    assert (item["kind"], item["address"], item["live"], item["expected"]) == (
        "changed_outside",
        "kv_entry[greeting]",
        "HELLO",
        "hello",
    )
    assert imported["code"] == 0, imported
    assert "kv_entry[extra]\tid extra" in listed["out"].splitlines()
    written = (repo / "manifests" / "extra.yaml").read_text()
    assert "kind: Entry" in written and "value: found" in written
    # The imported manifest is a valid one: the next apply converges the fleet.
    validate, apply, replan = run_cli(
        site,
        repo,
        [
            ["validate", "manifests"],
            ["apply", "manifests", *sandbox, "--auto-approve"],
            ["plan", "manifests", *sandbox, "--detailed-exitcode"],
        ],
    )
    assert validate["out"].strip() == "OK: 3 kvstore resources in 3 files", validate
    assert apply["code"] == 0, apply
    assert json.loads(store.read_text())["greeting"] == "hello"
    assert replan["code"] == 0, replan


def test_a_bad_manifest_is_reported_at_its_line(site: Path, repo: Path) -> None:
    (repo / "manifests" / "bad.yaml").write_text(
        "apiVersion: kvstore/v1\nkind: Entry\nmetadata:\n  name: 'no spaces allowed'\n"
        "spec:\n  valeu: x\n"
    )
    [validate] = run_cli(site, repo, [["validate", "manifests/bad.yaml"]])
    assert validate["code"] == 1
    lines = validate["out"].splitlines()
    assert lines[0].startswith("manifests/bad.yaml:4:9: metadata.name: an entry key is")
    assert any(line.startswith("manifests/bad.yaml:6:3: spec.valeu:") for line in lines)


def test_validate_of_another_providers_file_does_not_import_the_plugin(
    site: Path, tmp_path: Path
) -> None:
    """The plugin's descriptor is read (a light module); its provider only when named."""
    import os
    import subprocess
    import sys

    repo_root = PLUGINS.parent.parent
    code = (
        "import contextlib, io, sys\n"
        "from reconciler.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['validate', {str(repo_root / 'manifests/cafe/bakeries.yaml')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('kvstore_provider')))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(repo_root)])}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "['kvstore_provider', 'kvstore_provider.descriptor']"


def _plugin_source(folder: Path, name: str, package: str, init: str, descriptor: str) -> Path:
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text(init)
    (folder / package / "descriptor.py").write_text(descriptor)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
        f'[project.entry-points."reconciler.providers"]\n'
        f'{package.split("_")[0]} = "{package}.descriptor:DESCRIPTOR"\n'
        f'[tool.setuptools]\npackages = ["{package}"]\n'
    )
    return folder


def test_a_plugin_that_fails_to_import_is_a_clear_error_naming_its_package(
    tmp_path: Path,
) -> None:
    source = _plugin_source(
        tmp_path / "src",
        "reconciler-broken",
        "broken_provider",
        "raise ImportError('No module named libbroken')\n",
        "",
    )
    site = install(source, tmp_path / "site")
    [validate] = run_cli(site, tmp_path, [["validate", str(PLUGINS.parent.parent / "manifests")]])
    assert validate["code"] == 1
    assert validate["err"] == (
        "Error: the provider plugin 'broken' (package reconciler-broken) failed to import:"
        " ImportError: No module named libbroken; fix or uninstall that package\n"
    )


def test_a_plugin_claiming_a_built_in_kind_is_refused_naming_both(tmp_path: Path) -> None:
    descriptor = (
        "from reconciler.engine.descriptor import ProviderDescriptor\n"
        "DESCRIPTOR = ProviderDescriptor(name='copycat', root_kind='copy',"
        " manifest_kinds=(('akana/v1', 'App'),), provider='copycat_provider:X')\n"
    )
    source = _plugin_source(
        tmp_path / "src", "reconciler-copycat", "copycat_provider", "", descriptor
    )
    site = install(source, tmp_path / "site")
    [validate] = run_cli(site, tmp_path, [["validate", str(PLUGINS.parent.parent / "manifests")]])
    assert validate["code"] == 1
    assert validate["err"] == (
        "Error: providers clash: akana (package miniapp-reconciler) and copycat (package"
        " reconciler-copycat) both claim the manifest kind apiVersion akana/v1, kind App;"
        " uninstall one of them\n"
    )


@pytest.fixture
def kv_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The plugin's own sandbox served over real HTTP on loopback: (URL, API key, store)."""
    import socket
    import threading
    import time

    import uvicorn
    from kvstore_provider.sandbox import make_app  # on the path: tests/conftest.py installs it

    key, store = "kv-key-0123456789abcdef", tmp_path / "served.json"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(make_app(store, key), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", key, store
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_a_real_endpoint_over_http_with_its_api_key(
    site: Path, repo: Path, kv_server: tuple[str, str, Path]
) -> None:
    url, key, store = kv_server
    env = {"KVSTORE_URL": url, "KVSTORE_API_KEY": key}
    apply, replan = run_cli(site, repo, [
        ["apply", "manifests", "--provider", "kvstore", "--auto-approve"],
        ["plan", "manifests", "--provider", "kvstore", "--detailed-exitcode"],
    ], env=env)  # fmt: skip
    assert apply["code"] == 0, apply
    assert f"Endpoint (kvstore): {url}" in apply["err"]
    assert json.loads(store.read_text()) == {"greeting": "hello", "motd": "be kind"}
    assert replan["code"] == 0, replan

    wrong = "kv-wrong-key-fedcba9876543210"
    [refused] = run_cli(site, repo, [["plan", "manifests", "--provider", "kvstore"]],
                        env={**env, "KVSTORE_API_KEY": wrong})  # fmt: skip
    assert refused["code"] == 1
    assert "401" in refused["err"] and "missing or wrong API key" in refused["err"]
    assert wrong not in refused["out"] + refused["err"]
    assert key not in refused["out"] + refused["err"]
