"""The typer application object and the exit codes every command module shares.

Command modules (``cli/*_cmd.py``) register themselves on :data:`app`; ``cli/main.py`` imports
them and runs the app. Heavy imports stay inside the command functions so that ``--help``
starts fast.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer import _click
from typer.core import TyperArgument

import reconciler

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes; drift: drift found
EXIT_PARTIAL = 3  # apply: some changes applied, some failed
EXIT_USAGE = 64  # EX_USAGE from sysexits.h, so that 2 always means "changes / drift"

HELP_OPTION_NAMES = ["-h", "--help"]



def _version_callback(value: bool) -> None:
    if value:
        # read here, not at import: the metadata read costs ~30 ms that help need not pay
        typer.echo(f"reconciler {reconciler.__version__}")
        raise typer.Exit(EXIT_OK)


app = typer.Typer(
    name="reconciler",
    help="Keep the objects of your APIs equal to YAML manifests: validate, plan, apply, detect"
    " drift. One engine, one plan and one state for every provider listed below.",
    no_args_is_help=True,
    add_completion=False,  # our own options below: typer's import its completion at start
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTION_NAMES},
)


COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETE_VAR = "_RECONCILER_COMPLETE"  # the variable the completion scripts set to ask us
COMPLETION_OPTIONS = ("--show-completion", "--install-completion")


def _completion_shell(value: str) -> str:
    if value not in COMPLETION_SHELLS:
        raise typer.BadParameter(f"{value[:20]!r}: use one of {', '.join(COMPLETION_SHELLS)}")
    return value


def _show_completion(ctx: typer.Context, value: str) -> None:
    """Print the completion script for a shell, to source it or save it where the shell
    looks (typer's scripts: they call this CLI back with ``_RECONCILER_COMPLETE`` set)."""
    if not value or ctx.resilient_parsing:
        return
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name="reconciler", complete_var=COMPLETE_VAR,
                                     shell=_completion_shell(value)))  # fmt: skip
    raise typer.Exit(EXIT_OK)


def _install_completion(ctx: typer.Context, value: str) -> None:
    if not value or ctx.resilient_parsing:
        return
    from typer._completion_shared import install

    shell, path = install(shell=_completion_shell(value), prog_name="reconciler",
                          complete_var=COMPLETE_VAR)  # fmt: skip
    typer.echo(f"{shell} completion installed in {path}; it works in shells started from now.")
    raise typer.Exit(EXIT_OK)


class _StderrLog(logging.Handler):
    """Log records to the current ``sys.stderr`` (the masking stream main installs)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(self.format(record), err=True)


_REQUEST_LOG_HANDLER = _StderrLog()


def request_log(on: bool) -> None:
    """``-v``: the transport's line per request on stderr (see reconciler.transport.guard)."""
    log = logging.getLogger("reconciler.requests")
    if on and _REQUEST_LOG_HANDLER not in log.handlers:
        _REQUEST_LOG_HANDLER.setFormatter(logging.Formatter("request: %(message)s"))
        log.addHandler(_REQUEST_LOG_HANDLER)
        log.setLevel(logging.INFO)
        log.propagate = False
    elif not on:
        log.removeHandler(_REQUEST_LOG_HANDLER)
        log.setLevel(logging.NOTSET)
        log.propagate = True


def _verbose(value: bool) -> None:
    if value:
        request_log(True)


def verbose_option() -> Any:
    """``-v/--verbose`` for the root and every command (``reconciler -v plan`` and
    ``reconciler plan -v`` alike): it sets up the request log and is passed to no command."""
    holder = typer.Typer(add_completion=False)

    @holder.command()
    def _options(
        verbose: bool = typer.Option(
            False, "-v", "--verbose", callback=_verbose, expose_value=False,
            help="Log each request to stderr: method, host and path, status, milliseconds"
            " (never a query, header or secret).",
        ),
    ) -> None:  # pragma: no cover - never run: only its option is taken
        pass

    from typer.main import get_command

    (option,) = get_command(holder).params
    return option


def completion_options() -> list[Any]:
    """``--show-completion SHELL`` and ``--install-completion SHELL`` for the root command.
    Added only when asked for or on the root's help (see main): typer's own
    (``add_completion``) import its completion machinery at every start, and an option's
    value goes through pydantic, slow to import, whenever a subcommand runs."""
    holder = typer.Typer(add_completion=False)

    @holder.command()
    def _options(
        show: str = typer.Option(
            "", "--show-completion", metavar="SHELL", callback=_show_completion,
            is_eager=True, expose_value=False,
            help="Print the completion script for SHELL (bash, zsh, fish, powershell); exit.",
        ),
        install: str = typer.Option(
            "", "--install-completion", metavar="SHELL", callback=_install_completion,
            is_eager=True, expose_value=False,
            help="Install completion for SHELL (bash, zsh, fish, powershell) and exit.",
        ),
    ) -> None:  # pragma: no cover - never run: only its options are taken
        pass

    from typer.main import get_command

    return list(get_command(holder).params)


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
    """Keep the objects of your APIs equal to YAML manifests."""


# --- help for people -----------------------------------------------------------------------
# typer's help shows Python types where it has no metavar (`<bool>`, `<list[str]>`,
# `{paths}...`), which reads as "--detailed-exitcode takes a value". `tidy_help` gives every
# parameter a placeholder a person understands, and every command the environment variables
# and exit codes it uses (epilog). Done once on the assembled command tree, so the command
# modules keep plain typer declarations.

# By option string; anything not listed gets its own name in capitals.
_OPTION_METAVARS: dict[str, str] = {
    "--out": "PATH",
    "--plan": "FILE",
    "--state": "FILE",
    "--sandbox-db": "FILE",
    "--db": "FILE",
    "--select": "KEY=VALUE",
    "--label": "KEY=VALUE",
    "--target": "KEY|ADDRESS",
    "--parallelism": "N",
    "--max-deletes": "N",
    "--seed": "N",
    "--port": "PORT",
    "--latency-ms": "MS",
    "--fail-rate": "RATE",
    "--ambiguous-rate": "RATE",
    "--rate-limit": "PER_SECOND",
    "--token": "TOKEN",
}
# By argument name; a repeatable argument reads NAME...
_ARGUMENT_METAVARS: dict[str, str] = {"paths": "PATH", "app_ids": "APP_ID"}

# The shared variables; each provider's own come from its registry entry (see
# provider_environment), so a provider added later (a plugin) is listed by itself.
_ENV_SHARED = """\
  Every provider:
    RECONCILER_STATE   state file or postgresql:// URL (like --state)
    RECONCILER_REQUEST_DEADLINE
                       seconds one request may take (default 120)
    RECONCILER_MAX_RESPONSE_BYTES
                       largest answer read (default 32 MiB)"""
_ENV_COLOR = """\
  NO_COLOR           set: no colour (like --no-color)"""
_ENV_DEBUG = """\
  RECONCILER_DEBUG   set: show the traceback of an internal error"""
_ENV_MANIFESTS = """\
Environment:
  ${VAR} and ${VAR:-default} in manifests are read from the environment; a manifest
  holding the value of any provider's secret variable is refused.
  RECONCILER_DEBUG   set: show the traceback of an internal error"""
_PROVIDERS_PLACEHOLDER = "{providers}"  # replaced when help is shown (provider_environment)


# One table of exit codes, by command: each help's "Exit codes" section is made from it, and
# the docs' reference is checked against it (tests/test_cli_help.py). 64 (usage) is every
# command's and is added to each.
EXIT_CODES: dict[str, tuple[str, ...]] = {
    "": (
        "0   success; no changes; in sync",
        "1   error (nothing applied, or the check could not run)",
        "2   changes (plan --detailed-exitcode) or drift found",
        "3   apply: some changes applied, some failed (or a provider was stuck)",
        "130 interrupted (Ctrl-C): one line says what was written",
    ),
    "validate": ("0   valid", "1   invalid"),
    "schema": ("0   printed or written", "1   could not write"),
    "plan": (
        "0   no changes (or any plan, without --detailed-exitcode)",
        "2   changes (with --detailed-exitcode)",
        "1   error (the plan has errors, or it could not be made)",
        "130 interrupted (Ctrl-C); nothing was written",
    ),
    "apply": (
        "0   all changes applied",
        "3   partly applied: some changes failed, or a provider could not be reached",
        "1   error before any write (nothing applied)",
        "130 interrupted; every completed write is recorded",
    ),
    "drift": (
        "0   in sync",
        "2   drift found",
        "1   could not check",
        "130 interrupted (Ctrl-C); nothing was written",
    ),
    "import": ("0   imported", "1   error"),
    "show": ("0   shown", "1   not a valid saved plan (damaged, edited, or from another version)"),
    "sandbox serve": (
        "130 stopped (Ctrl-C); its database keeps the data",
        "1   cannot listen on host:port",
    ),
}
for _name in ("list", "show", "rm", "unlock", "adopt-version", "set-status", "history",
              "migrate"):  # fmt: skip
    EXIT_CODES[f"state {_name}"] = ("0   done", "1   error")

# One example per command, a line a person can copy (the demo fleet's names where it has one).
EXAMPLES: dict[str, str] = {
    "": "reconciler plan manifests/ --sandbox",
    "validate": "reconciler validate manifests/",
    "schema": "reconciler schema akana --write schema/",
    "plan": "reconciler plan manifests/ --sandbox --detailed-exitcode",
    "apply": "reconciler apply manifests/ --sandbox --auto-approve",
    "drift": "reconciler drift manifests/ --sandbox",
    "import": "reconciler import --provider akana 'Payments Reports' --sandbox",
    "show": "reconciler show plan.json --format markdown",
    "state list": "reconciler state list --sandbox",
    "state show": "reconciler state show 'akana_app[Payments Gateway]' --sandbox",
    "state rm": "reconciler state rm 'akana_app[Payments Reports]'",
    "state unlock": "reconciler state unlock LOCK_ID",
    "state adopt-version": "reconciler state adopt-version com.example.shop 1.2.0 4711"
    " --status pending",
    "state set-status": "reconciler state set-status com.example.shop 1.2.0 approved",
    "state history": "reconciler state history --state postgresql://ci@db/reconciler --limit 5",
    "state migrate": "reconciler state migrate --to 'postgresql://ci@db/reconciler?workspace=prod'",
    "sandbox serve": "reconciler sandbox serve --port 8080",
}


def _exits(command: str) -> str:
    rows = (*EXIT_CODES[command], "64  usage error")
    return "Exit codes:\n" + "\n".join(f"  {row}" for row in rows)


def _example(command: str) -> str:
    return f"\n\nExample:\n  {EXAMPLES[command]}"


_ENV_API = f"Environment:\n{_PROVIDERS_PLACEHOLDER}\n{_ENV_SHARED}"
_API_COMMAND = f"{_ENV_API}\n{_ENV_DEBUG}"
_PRINTING_API_COMMAND = f"{_ENV_API}\n{_ENV_COLOR}\n{_ENV_DEBUG}"
# The state commands read the state, and name endpoints only to choose a section.
_ENV_STATE = (
    "Environment:\n  RECONCILER_STATE   state file or postgresql:// URL (like --state)"
    f"\n{_ENV_DEBUG}"
)
_ENVIRONMENTS: dict[str, str] = {
    "": f"{_ENV_API}\n{_ENV_COLOR}\n{_ENV_DEBUG}",
    "validate": _ENV_MANIFESTS,
    "plan": _PRINTING_API_COMMAND,
    "apply": _PRINTING_API_COMMAND,
    "drift": _PRINTING_API_COMMAND,
    "import": _API_COMMAND,
}

EPILOGS: dict[str, str] = {
    command: (
        (f"{_ENVIRONMENTS[command]}\n\n" if command in _ENVIRONMENTS
         else f"{_ENV_STATE}\n\n" if command.startswith("state ") else "")
        + _exits(command)
        + _example(command)
        + ("\n\nRun `reconciler COMMAND --help` for each command's own." if not command else "")
    )
    for command in EXIT_CODES
}  # fmt: skip


def provider_environment() -> str:
    """Every registered provider's variables, under its title: read from the registry's
    descriptors (plain data: no provider is imported to show help)."""
    import textwrap

    from reconciler.providers.registry import DESCRIPTORS

    lines: list[str] = []
    for descriptor in DESCRIPTORS:
        lines.append(f"  {descriptor.title or descriptor.name} ({descriptor.name}):")
        for name, what in descriptor.variables:
            first = f"    {name:<18} " if len(name) <= 18 else f"    {name}\n{' ' * 23}"
            lines.append(textwrap.fill(what, 79, initial_indent=first,
                                       subsequent_indent=" " * 23))  # fmt: skip
    return "\n".join(lines)


def tidy_help(command: Any, path: str = "", *, providers: str | None = None) -> None:
    """Placeholders, flags and epilogs for ``command`` and every subcommand (in place).
    ``providers``: the providers' variables for the epilogs (None: not listed; help is not
    being shown, so the registry is not read)."""
    if command.epilog is None and path in EPILOGS:
        command.epilog = EPILOGS[path].replace(_PROVIDERS_PLACEHOLDER + "\n", providers + "\n"
                                               if providers else "")  # fmt: skip
    for param in command.params:
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                name = _ARGUMENT_METAVARS.get(param.name or "", (param.name or "").upper())
                param.metavar = name + ("..." if param.nargs != 1 else "")
            param.__class__ = _Argument
        elif getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value: show none
        elif param.metavar is None:
            long_name = next((o for o in param.opts if o.startswith("--")), "")
            param.metavar = _OPTION_METAVARS.get(long_name, (param.name or "").upper())
    _tidy_help_option(command)
    for name, sub in getattr(command, "commands", {}).items():
        tidy_help(sub, f"{path} {name}".strip(), providers=providers)


def _tidy_help_option(command: Any) -> None:
    """``--help`` is a flag too. click builds it on demand and caches it on the command, so
    build it now (with the app's option names) and hide its placeholder. Its value when absent
    is False, not None: typer coerces a None through a pydantic adapter, and importing
    pydantic for that was a fifth of `reconciler plan --help` (D45)."""
    context = _click.Context(command, help_option_names=HELP_OPTION_NAMES)
    help_option = command.get_help_option(context)
    if help_option is not None:
        help_option.metavar = ""
        help_option.default = False


class _Argument(TyperArgument):
    """An argument shown by its metavar alone: no Python type column, no braces."""

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        return None

    def get_usage_pieces(self, ctx: _click.Context) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        return [name if self.required else f"[{name}]"]
