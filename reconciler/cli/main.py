"""Entry point: registers every command module and maps click's usage errors to exit 64."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer

try:  # typer >= 0.24 vendors click; older releases use the click package itself.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from reconciler.cli.app import (
    COMPLETE_VAR,
    COMPLETION_OPTIONS,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    HELP_OPTION_NAMES,
    app,
    request_log,
    tidy_help,
)
from reconciler.cli.lean_help import import_typer_rich_utils
from reconciler.cli.output import redacted_output
from reconciler.secrets import redact

# Each module registers its commands on `app` when imported; `--help` lists them in this
# order, the order of the pipeline.
COMMAND_MODULES = (
    "validate_cmd",  # validate, schema
    "plan_cmd",
    "apply_cmd",
    "show_cmd",  # a saved plan
    "drift_cmd",
    "import_cmd",
    "state_cmd",
    "sandbox_cmd",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"reconciler.cli.{_module}")

_NO_ARGS = getattr(click_exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script passes it to sys.exit)."""
    args = sys.argv[1:] if argv is None else argv
    helping = not args or any(arg in HELP_OPTION_NAMES for arg in args)
    if os.environ.get(COMPLETE_VAR):
        # A completion script asks for candidates: register typer's shell classes (bash,
        # zsh, fish, powershell), which click then finds by name. Only now: they cost startup.
        from typer._completion_classes import completion_init

        completion_init()
    if helping:
        import_typer_rich_utils()  # help will be shown: load its formatter lean (D45)
    command = typer_main_command(helping=helping, completion=_completion_asked(args))
    with redacted_output():
        try:
            return _run(command, argv)
        finally:
            request_log(False)  # in-process callers (tests) run main again


def _run(command: Any, argv: list[str] | None) -> int:
    try:
        result = command.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click_exceptions.UsageError as exc:
        # click exits 2 on usage errors; 2 means "changes/drift" to our pipelines.
        exc.show()
        return EXIT_OK if isinstance(exc, _NO_ARGS) else EXIT_USAGE
    except click_exceptions.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # typer's own exits (a closed pipe: `reconciler ... | head`)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except Exception as exc:  # a bug of ours: say so plainly, never a bare traceback
        from reconciler.errors import ReconcilerError

        if isinstance(exc, ReconcilerError):
            # Raised outside a command's own handling: loading the providers (a plugin that
            # fails to import, two providers claiming one kind) is a clear error, not a bug.
            print(f"Error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("RECONCILER_DEBUG"):
            raise
        print(
            f"Internal error: {type(exc).__name__}: {redact(str(exc))}\n"
            "This is a bug in miniapp-reconciler; rerun with RECONCILER_DEBUG=1 for the"
            " traceback and report it. Every completed write is recorded in the state.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return result if isinstance(result, int) else EXIT_OK


def _add_verbose(command: Any, option: Any) -> None:
    """``-v`` on the root and on every command that calls an API (one shared option)."""
    if not getattr(command, "commands", None) or command.name in (None, "reconciler"):
        command.params.append(option)
    for sub in getattr(command, "commands", {}).values():
        _add_verbose(sub, option)


def _completion_asked(args: list[str]) -> bool:
    """The completion options are on the root's help, or asked for (see completion_options)."""
    root_help = all(arg in HELP_OPTION_NAMES for arg in args)
    return root_help or any(arg.split("=")[0] in COMPLETION_OPTIONS for arg in args)


def typer_main_command(*, helping: bool = True, completion: bool = True) -> Any:
    """The click command tree; ``helping``: help is to be shown, so the epilogs list every
    registered provider's variables (read from the registry's descriptors)."""
    import typer.main

    from reconciler.cli.app import completion_options, provider_environment, verbose_option

    command = typer.main.get_command(app)
    if completion:
        command.params.extend(completion_options())
    _add_verbose(command, verbose_option())
    tidy_help(command, providers=provider_environment() if helping else None)
    return command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
