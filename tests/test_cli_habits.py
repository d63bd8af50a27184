"""The habits people expect of a CLI: `python -m`, shell completion, `--version`, `show`,
`-v`, streaming JSON events, Ctrl-C, one warning once, honest summaries, full values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from tests.test_docs_runs import fleet as fleet  # a fresh copy of the demo fleet, as cwd

REPO = Path(__file__).resolve().parent.parent




def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            module: bool = False) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The CLI in a child process (the `python` of this venv, as a user runs it)."""
    command = [sys.executable, "-m", "reconciler"] if module else [
        sys.executable, "-c", "import sys; from reconciler.cli.main import main; "
        "sys.exit(main())"]  # fmt: skip
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )  # fmt: skip


def run_on_terminal(*args: str, cwd: Path, env: dict[str, str] | None = None,
                    timeout: float = 120, when: str | None = None,
                    type_in: bytes = b"") -> tuple[int, str]:  # fmt: skip
    """The CLI with stdin, stdout and stderr on one pseudo-terminal, as a person runs it:
    its exit code and everything the terminal showed. ``type_in`` is typed once ``when``
    has been shown (b"\x03": the terminal sends the process SIGINT, as Ctrl-C does)."""
    import fcntl
    import pty
    import select
    import termios

    def own_terminal() -> None:  # a session of its own, this terminal its controlling one
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from reconciler.cli.main import main; "
         "sys.exit(main())", *args],
        stdin=slave, stdout=slave, stderr=slave, cwd=cwd, close_fds=True,
        preexec_fn=own_terminal,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                child.kill()
                raise AssertionError(f"no output for {timeout}s: {b''.join(chunks)!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
            if when is not None and when.encode() in b"".join(chunks):
                time.sleep(0.3)  # the prompt is read by now
                os.write(master, type_in)
                when = None
    finally:
        os.close(master)
    return child.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


# --- python -m, --version, completion --------------------------------------------------------


def test_python_dash_m_runs_the_cli() -> None:
    done = run_cli("--help", module=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: reconciler" in done.stdout


def test_version_is_read_from_the_installed_metadata(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    asked: list[str] = []

    def fake_version(name: str) -> str:
        asked.append(name)
        return "9.8.7-test"

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "reconciler 9.8.7-test\n"
    assert asked == ["miniapp-reconciler"]


def test_version_of_this_install_matches_its_metadata() -> None:
    import importlib.metadata

    done = run_cli("--version", module=True)
    assert done.stdout.strip() == f"reconciler {importlib.metadata.version('miniapp-reconciler')}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script_for_each_shell(shell: str) -> None:
    done = run_cli("--show-completion", shell)
    assert done.returncode == 0, done.stderr
    assert "_RECONCILER_COMPLETE" in done.stdout
    assert "not supported" not in done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_script_completes_commands_and_options(tmp_path: Path) -> None:
    """The generated script, sourced in a real bash, asks this CLI and fills COMPREPLY."""
    script = run_cli("--show-completion", "bash").stdout
    (tmp_path / "completion.bash").write_text(script)
    launcher = tmp_path / "reconciler"
    launcher.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from reconciler.cli.main import main;"
        " sys.exit(main())' \"$@\"\n"
    )
    launcher.chmod(0o755)
    probe = (
        f"source {tmp_path / 'completion.bash'}\n"
        "COMP_WORDS=(reconciler pl); COMP_CWORD=1; _reconciler_completion reconciler\n"
        'printf "%s\\n" "${COMPREPLY[@]}"; echo ---\n'
        "COMP_WORDS=(reconciler plan --det); COMP_CWORD=2; _reconciler_completion reconciler\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe], capture_output=True, text=True,
        timeout=120, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )  # fmt: skip
    first, second = done.stdout.split("---\n")
    assert first.split() == ["plan"], done
    assert second.split() == ["--detailed-exitcode"], done


def test_zsh_and_fish_completion_protocols_answer() -> None:
    zsh = run_cli(env={"_RECONCILER_COMPLETE": "complete_zsh",
                       "_TYPER_COMPLETE_ARGS": "reconciler sta"})  # fmt: skip
    assert zsh.returncode == 0
    assert '"state"' in zsh.stdout, zsh
    fish = run_cli(env={"_RECONCILER_COMPLETE": "complete_fish",
                        "_TYPER_COMPLETE_ARGS": "reconciler apply --auto",
                        "_TYPER_COMPLETE_FISH_ACTION": "get-args"})  # fmt: skip
    assert fish.returncode == 0
    assert fish.stdout.startswith("--auto-approve"), fish


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--show-completion", "tcsh"]) == 64
    assert "use one of bash, zsh, fish" in capsys.readouterr().err


# --- an honest summary, and one piece of advice for a stale saved plan ---------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_stale_saved_plan_is_not_complete_and_gets_one_piece_of_advice(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mac = ("--sandbox", "--provider", "miniappcenter")
    assert cli(capsys, "apply", "manifests", *mac, "--auto-approve")[0] == 0
    bakeries = fleet / "manifests" / "cafe" / "bakeries.yaml"
    bakeries.write_text(bakeries.read_text().replace("Sweet Corner Bakery", "Sweet Corner 2"))
    assert cli(capsys, "plan", "manifests", *mac, "--out", "plan.json")[0] == 0
    # the app is renamed in the backoffice after the plan was reviewed
    from reconciler.providers.miniappcenter.sandbox import SandboxStore

    with SandboxStore(fleet / ".reconciler" / "sandbox.db") as store:
        store.update_miniapp("com.genexus.verdant.sweetcorner", {"name": "Outside"})
    code, out, err = cli(capsys, "apply", "--plan", "plan.json", "--sandbox", "--auto-approve")
    assert code == 1
    assert "Apply complete" not in out + err
    assert "Apply incomplete: 0 applied, 1 failed" in out
    assert "run `reconciler plan` again" in out  # the change's own reason
    assert "Run `reconciler plan` again" in out  # and the closing advice agrees with it
    assert "Re-run `reconciler apply`" not in out + err


def test_a_clean_apply_is_complete_and_gives_no_advice() -> None:
    from reconciler.engine.render import render_apply_result

    done = {"summary": {"applied": 2, "failed": 0, "skipped": 0}, "interrupted": False}
    assert render_apply_result(done, color=False, saved_plan=True) == (
        "Apply complete: 2 applied, 0 failed, 0 skipped.\n"
    )
    stuck = {**done, "stuck_apps": [{"app_id": "a.b", "reason": "locked"}]}
    assert render_apply_result(stuck, color=False).startswith("Apply incomplete: 2 applied")


# --- each warning once ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "drift"])
def test_the_no_state_warning_is_shown_once_on_a_terminal(fleet: Path, command: str) -> None:
    code, shown = run_on_terminal(command, "manifests", "--sandbox", cwd=fleet)
    assert code in (0, 2), shown
    assert shown.count("no state file was found") == 1, shown


def test_a_redirected_report_keeps_its_warnings(fleet: Path) -> None:
    done = run_cli("plan", "manifests", "--sandbox", cwd=fleet)
    assert done.returncode == 0, done.stderr
    # stdout (a file, a pipe) is a document of its own: the warning is in it
    assert done.stdout.count("no state file was found") == 1
    assert done.stderr.count("no state file was found") == 1


def test_apply_on_a_terminal_shows_the_warning_once(fleet: Path) -> None:
    code, shown = run_on_terminal("apply", "manifests", "--sandbox", "--auto-approve", cwd=fleet)
    assert code == 0, shown
    assert shown.count("no state file was found") == 1, shown


# --- full values in the text plan ----------------------------------------------------------


def test_the_akana_text_plan_shows_every_value_whole(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "plan", "manifests", "--sandbox", "--provider", "akana")
    assert code == 0
    assert "…" not in out
    joined = out.replace("\n        ", "")  # continuation lines joined back
    assert '"website_address": "https://payments.example.com"}' in joined
    assert all(len(line) <= 100 for line in out.splitlines() if line.startswith("      "))


# --- show: a saved plan ------------------------------------------------------------------------


def test_show_renders_a_saved_plan_as_plan_printed_it(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    akana = ("manifests", "--sandbox", "--provider", "akana", "--no-color")
    code, printed, _ = cli(capsys, "plan", *akana, "--out", "plan.json")
    assert code == 0
    code, shown, err = cli(capsys, "show", "plan.json", "--no-color")
    assert code == 0, err
    # the same renderer: the changes and summary as printed (the warnings travel in the file)
    assert shown.split("\nPlan:")[0] == printed.split("\nPlan:")[0]
    assert "Plan: 3 to create, 0 to update, 0 to delete." in shown
    code, markdown, _ = cli(capsys, "show", "plan.json", "--format", "markdown")
    assert code == 0 and markdown.startswith("<!-- miniapp-reconciler plan -->")
    assert "akana_app[Payments Gateway]" in markdown
    code, document, _ = cli(capsys, "show", "plan.json", "--format", "json")
    assert code == 0 and document == (fleet / "plan.json").read_text()


def test_show_validates_the_plan_whole_first(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    assert cli(capsys, "plan", "manifests", "--sandbox", "--provider", "akana",
               "--out", "plan.json")[0] == 0  # fmt: skip
    saved = json.loads((fleet / "plan.json").read_text())
    saved["changes"][0]["action"] = "rm -rf"  # edited after review
    (fleet / "edited.json").write_text(json.dumps(saved))
    code, out, err = cli(capsys, "show", "edited.json")
    assert code == 1 and out == ""
    assert err.startswith("Error: ") and len(err.splitlines()) == 1
    code, _, err = cli(capsys, "show", "missing.json")
    assert code == 1 and "does not exist" in err
    code, _, err = cli(capsys, "show", "plan.json", "--format", "yaml")
    assert code == 64


# --- Ctrl-C: exit 130 and one line saying what was written ------------------------------------


def _readline(stream: Any, deadline: float) -> str:
    line = stream.readline()
    assert line or time.monotonic() < deadline, "the process closed its output"
    return str(line)


def test_ctrl_c_while_planning_and_in_sandbox_serve(tmp_path: Path) -> None:
    """A plan against a slow server (the sandbox served with 3 s latency) is interrupted
    mid-read; then the server itself is stopped the same way."""
    import signal

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAC_", "RECONCILER_"))}
    server = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", "0",
         "--latency-ms", "3000", "--db", str(tmp_path / "sandbox.db"), "--token", "t0ken-x"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stderr is not None
        deadline = time.monotonic() + 30
        exports = dict(
            _readline(server.stdout, deadline).removeprefix("export ").strip().split("=", 1)
            for _ in range(2)
        )
        shutil.copytree(REPO / "manifests" / "cafe", tmp_path / "cafe")
        planner = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "plan", "cafe", "--state",
             str(tmp_path / "state.json"), "--out", str(tmp_path / "plan.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env={**clean, **exports},
        )  # fmt: skip
        assert planner.stderr is not None
        while not _readline(planner.stderr, deadline).startswith("Endpoint"):
            pass
        time.sleep(1.0)  # reading, each answer 3 s away
        planner.send_signal(signal.SIGINT)
        rest = planner.stderr.read()
        assert planner.wait(timeout=30) == 130, rest
        assert rest.strip().splitlines()[-1] == (
            "Interrupted: nothing was written (no plan file, no state, no API write)."
        )
        assert "Traceback" not in rest and "Aborted" not in rest
        assert not (tmp_path / "plan.json").exists() and not (tmp_path / "state.json").exists()
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=30)
    assert code == 130  # as `sandbox serve --help` says
    assert server.stderr.read().strip().splitlines()[-1] == (
        "Stopped: every write it answered is kept in its database."
    )


def test_ctrl_c_at_the_prompt_exits_130_having_written_nothing(fleet: Path) -> None:
    code, shown = run_on_terminal(
        "apply", "manifests", "--sandbox", cwd=fleet, when="Only 'yes'", type_in=b"\x03"
    )
    assert code == 130, shown
    assert shown.rstrip().splitlines()[-1] == (
        "Interrupted before any write: nothing was written to the API or the state."
    )
    assert "Aborted" not in shown
    assert not (fleet / ".reconciler" / "sandbox-state.json").exists()


def test_help_says_what_ctrl_c_does(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["plan"], ["drift"], ["sandbox", "serve"]):
        assert main([*command, "--help"]) == 0
        assert "130" in capsys.readouterr().out, command


# --- -v: one line per request, never a secret ---------------------------------------------------

MAC_TOKEN = "mac-token-RECOGNISABLE-7f3e"


@pytest.fixture
def sandbox_config(tmp_path: Path) -> Any:
    """The Mini App Center sandbox (tests/fixtures_sandbox.py) with a token we can look for."""
    from reconciler.providers.miniappcenter.sandbox import SandboxConfig

    return SandboxConfig(db_path=tmp_path / "sandbox.db", token=MAC_TOKEN)


def test_verbose_logs_each_request_of_every_provider_and_no_secret(
    fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    sandbox_server: Any, akana: Any,
) -> None:  # fmt: skip
    """Over real HTTP: the Mini App Center with its token, Akana with its session login."""
    from tests.fixtures_akana import EMAIL, PASSWORD

    monkeypatch.setenv("MAC_BASE_URL", sandbox_server.base_url)
    monkeypatch.setenv("MAC_API_TOKEN", MAC_TOKEN)
    monkeypatch.setenv("AKANA_BASE_URL", akana.base_url)
    monkeypatch.setenv("AKANA_EMAIL", EMAIL)
    monkeypatch.setenv("AKANA_PASSWORD", PASSWORD)
    code, out, err = cli(capsys, "plan", "manifests", "-v", "--state", "state.json")
    assert code == 0, err
    requests = [x for x in err.splitlines() if x.startswith("request: ")]
    assert "request: GET 127.0.0.1/api/v1/miniapps/com.genexus.verdant.splitbill -> 404" in (
        "\n".join(requests)
    )
    assert any(x.startswith("request: POST 127.0.0.1/api/login -> 200 (") for x in requests)
    assert all(x.endswith(" ms)") for x in requests)
    assert "request:" not in out  # stdout stays the plan
    for secret in (MAC_TOKEN, PASSWORD):
        assert secret not in out + err
    # the flag goes before the command too; without it, no request is logged
    code, _, err = cli(capsys, "-v", "drift", "manifests", "--state", "state.json")
    assert "request: GET 127.0.0.1/api/apps -> 200" in err
    code, _, err = cli(capsys, "plan", "manifests", "--state", "state.json")
    assert code == 0 and "request:" not in err


def test_verbose_never_logs_a_query(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import logging

    import httpx

    from reconciler.cli.app import request_log
    from reconciler.transport.config import ClientLimits
    from reconciler.transport.guard import GuardedTransport

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    async def call() -> None:
        guarded = GuardedTransport(httpx.MockTransport(answer), ClientLimits())
        async with httpx.AsyncClient(transport=guarded) as client:
            await client.get("https://api.example/v1/items?api_key=QUERY-SECRET-1")

    request_log(True)
    try:
        asyncio.run(call())
    finally:
        request_log(False)
    err = capsys.readouterr().err
    assert err.startswith("request: GET api.example/v1/items -> 204 (")
    assert "QUERY-SECRET" not in err and "api_key" not in err
    from reconciler.cli.app import _REQUEST_LOG_HANDLER

    assert _REQUEST_LOG_HANDLER not in logging.getLogger("reconciler.requests").handlers


# --- apply --format jsonl: a stream of change events ------------------------------------------


def test_apply_jsonl_streams_one_event_a_line(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    code, out, err = cli(capsys, "apply", "manifests/payments", "--sandbox", "--auto-approve",
                         "--format", "jsonl")  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["type"] for e in events]
    planned = [e["address"] for e in events if e["type"] == "planned"]
    applied = [e["address"] for e in events if e["type"] == "applied"]
    assert planned and sorted(planned) == sorted(applied)
    assert kinds.index("started") > max(i for i, k in enumerate(kinds) if k == "planned")
    for address in applied:  # each change starts before it is applied
        started = next(
            i for i, e in enumerate(events) if e["type"] == "started" and e["address"] == address
        )
        done = next(i for i, e in enumerate(events)
                    if e["type"] == "applied" and e["address"] == address)  # fmt: skip
        assert started < done
    assert kinds[-1] == "summary" and kinds.count("summary") == 1
    summary = events[-1]
    assert summary["applied"] == len(applied) and summary["failed"] == 0
    assert summary["approved"] is True and summary["interrupted"] is False
    assert {e["kind"] for e in events[:-1]} >= {"miniapp", "version"}


# --- the docs page's examples run as written --------------------------------------------------

DOCS_PAGE = REPO / "docs" / "how-to" / "cli-habits.md"


def test_the_docs_page_examples_run(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from tests.test_docs_runs import check_console

    text = DOCS_PAGE.read_text(encoding="utf-8")
    prose = re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)
    assert prose.startswith("# ") and prose.count("\n# ") == 0  # one H1
    blocks = re.findall(r"(<!-- norun: [^>]*-->\n)?^```console\n(.*?)^```$", text,
                        flags=re.S | re.M)  # fmt: skip
    runnable = [block for norun, block in blocks if not norun]
    assert len(runnable) == 5
    assert sum(check_console(block, capsys) for block in runnable) == 8


# --- import says what it left out --------------------------------------------------------------


def test_import_says_versions_were_left_out_and_how_to_add_them(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_id = "com.genexus.verdant.splitbill"
    assert cli(capsys, "apply", "manifests/payments", "--sandbox", "--auto-approve")[0] == 0
    (fleet / ".reconciler" / "sandbox-state.json").unlink()  # as in another repository
    code, _, err = cli(capsys, "import", app_id, "--sandbox", "--out", "imported")
    assert code == 0, err
    assert f"Not imported: the versions of {app_id} (the API cannot list them)" in err
    assert "--version CODE=ID" in err and "reconciler state rm APP_ID" in err
    # following the advice brings the version in, and then nothing is said about versions
    assert cli(capsys, "state", "rm", app_id, "--sandbox")[0] == 0
    code, _, err = cli(capsys, "import", app_id, "--sandbox", "--out", "imported",
                       "--version", "3.1.0=2", "--force")  # fmt: skip
    assert code == 0, err
    assert "Not imported: the versions" not in err
    assert "3.1.0" in (fleet / "imported" / f"{app_id}.yaml").read_text()


# --- the apply bar counts -----------------------------------------------------------------------


def test_the_apply_bar_counts_each_change_as_it_is_done(fleet: Path) -> None:
    import re

    code, shown = run_on_terminal("apply", "manifests/akana", "--sandbox", "--auto-approve",
                                  cwd=fleet, env={"TERM": "xterm"})  # fmt: skip
    assert code == 0, shown
    # Under the k-th "applied" line, the bar is next drawn as k/3.
    pieces = re.split(r"applied  \+ [^\n]*\n", shown)
    assert len(pieces) == 4, shown
    for done, after in enumerate(pieces[1:], start=1):
        first_count = re.search(r"(\d+)/3", after)
        assert first_count is not None and int(first_count.group(1)) == done, after
