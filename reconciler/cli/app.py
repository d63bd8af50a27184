"""The typer application object and the exit codes every command module shares.

Command modules (``cli/*_cmd.py``) register themselves on :data:`app`; ``cli/main.py`` imports
them and runs the app. Heavy imports stay inside the command functions so that ``--help``
starts fast.
"""

from __future__ import annotations

import typer

from reconciler import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes; drift: drift found
EXIT_PARTIAL = 3  # apply: some changes applied, some failed
EXIT_USAGE = 64  # EX_USAGE from sysexits.h, so that 2 always means "changes / drift"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"reconciler {__version__}")
        raise typer.Exit(EXIT_OK)


app = typer.Typer(
    name="reconciler",
    help="Keep GeneXus Mini App Center mini apps equal to YAML manifests: validate, plan, "
    "apply, detect drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Keep GeneXus Mini App Center mini apps equal to YAML manifests."""
