"""`reconciler --help` starts fast because nothing heavy is imported for it (D45).

Each check runs in a fresh interpreter (this process has imported everything already). What
is pinned is the set of modules loaded, never a time: times are measured in
bench/startup.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Loaded by commands that do work, never for help: the HTTP stack, the models, the plan and
# the diff, the sandbox server, YAML; and the parts of rich that typer's help formatter
# imports but help never uses (Markdown markup, pretty tracebacks). A command module imports
# these inside its functions; a default it shows in --help comes from reconciler.limits.
HEAVY = (
    "httpx", "httpcore", "anyio", "pydantic", "deepdiff", "yaml", "uvicorn", "starlette",
    "sqlite3", "secrets", "reconciler.providers.miniappcenter.client",
    "reconciler.providers.miniappcenter.sandbox", "reconciler.manifest",
    "reconciler.engine.plan", "reconciler.providers.miniappcenter.diff", "reconciler.engine.render",
    "markdown_it", "pygments", "rich.markdown", "rich.traceback", "rich.syntax", "attr",
)  # fmt: skip


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def modules_after(code: str) -> set[str]:
    out = run_python(
        "import contextlib, io, json, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        + textwrap.indent(textwrap.dedent(code), "    ")
        + "\nprint(json.dumps(sorted(sys.modules)))\n"
    )
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_cli_loads_nothing_heavy() -> None:
    loaded = modules_after("import reconciler.cli.main")
    assert sorted(loaded & set(HEAVY)) == []


@pytest.mark.parametrize("argv", [["--help"], ["plan", "--help"], ["sandbox", "serve", "-h"]])
def test_help_loads_nothing_heavy(argv: list[str]) -> None:
    loaded = modules_after(
        f"from reconciler.cli.main import main\nassert main({argv!r}) == 0"
    )
    assert "typer.rich_utils" in loaded  # the help was rendered by typer's formatter
    assert sorted(loaded & set(HEAVY)) == []


def test_help_is_the_same_as_with_typer_imported_as_usual() -> None:
    """The help is byte for byte what typer renders when it imports rich in full."""
    show_all = """
        from reconciler.cli.main import main, typer_main_command

        def paths(command, path=()):
            yield path
            for name, sub in sorted(getattr(command, "commands", {}).items()):
                yield from paths(sub, (*path, name))

        for path in paths(typer_main_command()):
            print("=====", path)
            main([*path, "--help"])
    """
    fast = run_python(show_all)
    usual = run_python("import typer.rich_utils\n" + textwrap.dedent(show_all))
    assert fast.count("=====") >= 10 and "╭─ Options" in fast
    assert fast == usual


def test_deferred_rich_classes_load_the_real_ones_when_used() -> None:
    out = run_python("""
        import sys
        from reconciler.cli.main import main
        assert main(["--help"]) == 0
        import typer.rich_utils as rich_utils
        from rich.markdown import Markdown
        assert isinstance(rich_utils.Markdown("**x**"), Markdown)
        assert isinstance(rich_utils._make_rich_text(text="**x**", markup_mode="markdown"),
                          Markdown)
        try:
            raise ValueError("boom")
        except ValueError as exc:
            from rich.traceback import Traceback
            assert isinstance(rich_utils.Traceback.from_exception(type(exc), exc, None),
                              Traceback)
        print("real classes")
    """)
    assert out.rstrip().endswith("real classes")


def test_a_typer_that_wants_more_from_rich_falls_back_to_the_usual_import() -> None:
    out = run_python("""
        import reconciler.cli.lean_help as lean
        real = lean._stand_in
        lean._stand_in = lambda name, **attributes: real(name)  # stand-ins without the classes
        from reconciler.cli.main import main
        assert main(["--help"]) == 0
        import rich.markdown, rich.traceback, typer.rich_utils
        assert typer.rich_utils.Markdown is rich.markdown.Markdown
        assert typer.rich_utils.Traceback is rich.traceback.Traceback
        print("fell back")
    """)
    assert "Usage: reconciler" in out
    assert out.rstrip().endswith("fell back")


# A run imports only the providers its manifests (or state, or saved plan) name: validate of
# one provider's file loads that provider's checkers, never another provider, HTTP or the
# differ.
NOT_FOR_VALIDATE = (
    "httpx", "httpcore", "h11", "deepdiff", "asyncio", "uvicorn", "starlette",
    "reconciler.engine.service", "reconciler.engine.plan", "reconciler.transport",
)  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "provider"),
    [("manifests/cafe/bakeries.yaml", "miniappcenter"), ("manifests/akana/payments.yaml", "akana")],
)
def test_validate_imports_only_the_provider_its_manifests_name(
    manifest: str, provider: str
) -> None:
    loaded = modules_after(
        "from reconciler.cli.main import main\n"
        f"assert main(['validate', {str(ROOT / manifest)!r}]) == 0"
    )
    providers = {m.split(".")[2] for m in loaded if m.startswith("reconciler.providers.")}
    assert providers == {"registry", provider}
    assert sorted(loaded & set(NOT_FOR_VALIDATE)) == []


def test_a_plan_imports_only_the_providers_taking_part(tmp_path: Path) -> None:
    """A Mini App Center plan on its sandbox (no state file yet: the first-run notice, the
    proxy check and the fleet's set-up all ask the registry) never imports another provider."""
    fleet = tmp_path / "cafe"
    shutil.copytree(ROOT / "manifests" / "cafe", fleet)
    loaded = modules_after(
        "import os\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "os.environ['HTTPS_PROXY'] = 'http://proxy.invalid:3128'\n"
        "from reconciler.cli.main import main\n"
        "assert main(['plan', 'cafe', '--sandbox', '--no-color']) == 0"
    )
    providers = {m.split(".")[2] for m in loaded if m.startswith("reconciler.providers.")}
    assert providers == {"registry", "miniappcenter"}
