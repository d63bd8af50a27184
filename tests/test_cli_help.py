"""`--help` speaks to people: no Python types as placeholders, flags shown as flags, the
environment variables and exit codes each command uses, and `--no-color` where colour is."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main, typer_main_command

# What typer writes when it has nothing better: <bool>, <list[str]>, <int range>, {paths}...
PYTHON_PLACEHOLDER = re.compile(
    r"<(bool|str|int|float|path|list\[[^\]]*\]|[a-z]+ range)>|\{[a-z_]+\}"
)
API_ENV = ("RECONCILER_STATE", "RECONCILER_REQUEST_DEADLINE", "RECONCILER_MAX_RESPONSE_BYTES",
           "NO_COLOR", "RECONCILER_DEBUG")  # fmt: skip


def every_providers_variables() -> list[str]:
    """What each registered provider declares (the example plugin's too): every command
    that calls an API lists them all."""
    from reconciler.providers.registry import DESCRIPTORS

    return [name for d in DESCRIPTORS for name, _ in d.variables]


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


ALL_COMMANDS = list(_commands(typer_main_command()))


def help_text(capsys: pytest.CaptureFixture[str], *path: str) -> str:
    capsys.readouterr()
    assert main([*path, "--help"]) == 0
    # rich wraps to the terminal: join the lines so that words split across cells still match
    return capsys.readouterr().out


def test_every_command_is_covered() -> None:
    assert {" ".join(p) for p in ALL_COMMANDS} >= {
        "", "validate", "schema", "plan", "apply", "drift", "import", "state list",
        "sandbox serve",
    }  # fmt: skip


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "reconciler")
def test_help_has_no_python_placeholders(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...]
) -> None:
    text = help_text(capsys, *path)
    assert PYTHON_PLACEHOLDER.search(text) is None, text


def test_flags_show_no_value_and_arguments_read_as_paths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_text(capsys, "plan")
    assert "Usage: reconciler plan [OPTIONS] PATH..." in text
    (line,) = [x for x in text.splitlines() if "│ --detailed-exitcode" in x]
    assert re.search(r"--detailed-exitcode\s+Exit 0", line), line  # no value column
    assert re.search(r"--select\s+KEY=VALUE", text)
    assert re.search(r"--parallelism\s+N\b", text)
    assert "[OPTIONS] [PATH...]" in help_text(capsys, "apply")  # optional with --plan


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        (("validate",), ("0", "1", "64")),
        (("plan",), ("0", "1", "2", "64")),
        (("apply",), ("0", "1", "3", "64", "130")),
        (("drift",), ("0", "1", "2", "64")),
        (("import",), ("0", "1", "64")),
        (("sandbox", "serve"), ("1", "64")),
        ((), ("0", "1", "2", "3", "64", "130")),
    ],
)
def test_help_lists_exit_codes(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], codes: tuple[str, ...]
) -> None:
    text = help_text(capsys, *path)
    assert "Exit codes" in text
    section = text.split("Exit codes", 1)[1]
    for code in codes:
        assert re.search(rf"(^|\s){code}\s", section, re.MULTILINE), (code, section)


def test_state_help_lists_no_endpoint_variable(capsys: pytest.CaptureFixture[str]) -> None:
    """The state commands read the state; they never call an API."""
    text = help_text(capsys, "state", "list")
    assert "RECONCILER_STATE" in text
    assert "MAC_BASE_URL" not in text and "AKANA_BASE_URL" not in text


@pytest.mark.parametrize("path", [(), ("plan",), ("apply",), ("drift",), ("import",)])
def test_help_lists_the_environment(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...]
) -> None:
    text = help_text(capsys, *path)
    assert "Environment" in text
    assert "AKANA_PASSWORD" in every_providers_variables()
    assert "KVSTORE_API_KEY" in every_providers_variables()  # a plugin's, by itself
    for name in (*API_ENV, *every_providers_variables()):
        if name == "NO_COLOR" and path[:1] in (("import",), ("state",)):
            continue  # they print no colour
        assert name in text, (name, path)


def test_sandbox_serve_help_lists_its_environment(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "sandbox", "serve")
    assert "MAC_API_TOKEN" in text and "MAC_SANDBOX_DB" in text


@pytest.mark.parametrize("command", ["plan", "apply", "drift"])
def test_no_color_is_offered_where_there_is_colour(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    options = help_text(capsys, command).split("Environment:", 1)[0]  # not the epilog's mention
    assert re.search(r"--no-color\s+Plain text", options), options


@pytest.fixture
def painted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A colour terminal (as far as the CLI can tell), recording each text render's colour.

    click strips escape codes from output that is not a terminal, so the renderers' ``color``
    argument is what can be observed."""
    import shutil

    import reconciler.cli.common as common
    import reconciler.engine.render as render

    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB",
                "NO_COLOR", "TERM"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(common, "stdout_is_tty", lambda: True)
    calls: list[bool] = []
    real = render._painter

    def recording(color: bool) -> Any:
        calls.append(color)
        return real(color)

    monkeypatch.setattr(render, "_painter", recording)
    shutil.copytree(Path(__file__).resolve().parent.parent / "manifests", tmp_path / "manifests")
    return calls


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "manifests", "--sandbox"],
        ["drift", "manifests", "--sandbox"],
        ["apply", "manifests", "--sandbox", "--auto-approve"],
    ],
)
def test_no_color_turns_colour_off(
    painted: list[bool], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([*argv, "--no-color"]) in (0, 2)
    assert painted and not any(painted)
    painted.clear()
    assert main(argv) in (0, 2)  # the same on a colour terminal without the flag: coloured
    assert painted and all(painted)
    painted.clear()
    os.environ["NO_COLOR"] = "1"  # the convention, without the flag
    try:
        assert main(argv) in (0, 2)
    finally:
        del os.environ["NO_COLOR"]
    assert painted and not any(painted)


def _leaf(path: tuple[str, ...]) -> Any:
    command = typer_main_command()
    for name in path:
        command = command.commands[name]
    return command


LEAVES = [p for p in ALL_COMMANDS if not getattr(_leaf(p), "commands", None) or not p]


@pytest.mark.parametrize("path", LEAVES, ids=lambda p: " ".join(p) or "reconciler")
def test_every_command_lists_exit_codes_and_one_example(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...]
) -> None:
    """From the one table (EXIT_CODES, EXAMPLES): the example names this command and only
    options it has."""
    import shlex

    from reconciler.cli.app import EXAMPLES, EXIT_CODES

    name = " ".join(path)
    text = help_text(capsys, *path)
    assert "Exit codes" in text and "64  usage error" in text
    for row in EXIT_CODES[name]:
        assert row in text, (row, text)
    assert "Example:" in text and EXAMPLES[name] in text, text
    words = shlex.split(EXAMPLES[name])
    assert words[: 1 + len(path)] == ["reconciler", *path]
    command = _leaf(path) if path else _leaf(tuple(words[1:2]))
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    assert {w for w in words if w.startswith("--")} <= options, words
