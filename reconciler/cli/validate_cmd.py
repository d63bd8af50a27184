"""`reconciler validate` and `reconciler schema`: check manifests without touching any API.

Issues go to stdout as ``file:line:col: path: message`` (the form editors and CI annotators
parse); the summary goes to stderr so that stdout stays exactly the list of issues.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path

import typer

from reconciler.cli.app import EXIT_ERROR, EXIT_OK, EXIT_USAGE, app
from reconciler.cli.common import (
    ConfigOpt,
    RootOpt,
    SelectOpt,
    TargetOpt,
    err,
    handled_errors,
    target_keys,
)


class ValidateFormat(StrEnum):
    text = "text"
    json = "json"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="Manifest files or folders (read recursively)."),
    format: ValidateFormat = typer.Option(
        ValidateFormat.text, "--format", help="text: one issue a line; json: one object."
    ),
    select: list[str] = SelectOpt,
    target: list[str] = TargetOpt,
    root: list[Path] = RootOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Load and validate manifests; report every error as file:line:col: path: message."""
    from reconciler.errors import ConfigError, ManifestError
    from reconciler.manifest import (
        check_selection,
        load_manifest_files,
        parse_selectors,
        require_manifests,
    )

    try:
        selectors = parse_selectors(select)
    except ConfigError as exc:
        err(f"Error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        from reconciler.providers.registry import MANIFEST_KINDS

        loaded, files = load_manifest_files(paths, dict(os.environ), root, kinds=MANIFEST_KINDS)
        require_manifests(paths, loaded)
        from reconciler.workflows.desired import check_project_references, refuse_credentials

        # What plan refuses: a manifest holding any provider's credential.
        refuse_credentials(loaded, config)
        check_project_references(loaded, config)
    except ManifestError as exc:
        issues = exc.issues
        if format is ValidateFormat.json:
            errors = [issue.as_dict() for issue in issues]
            _print_json(valid=False, apps=0, errors=errors, omitted=exc.omitted)
        else:
            for issue in issues:
                typer.echo(str(issue))
            if exc.omitted:
                typer.echo(exc.more_line)
            bad_files = len({issue.file for issue in issues})
            err(f"{_plural(exc.total, 'error')} in {_plural(bad_files, 'file')}")
        raise typer.Exit(EXIT_ERROR) from None
    from reconciler.engine.provider import split_by_provider
    from reconciler.providers.registry import PROVIDERS
    from reconciler.workflows.desired import root_provider

    # (provider, grouping key, labels) of every resource: --select/--target match these.
    keyed = [
        (name, PROVIDERS[name].resource_key(item.app), PROVIDERS[name].resource_labels(item.app))
        for name, items in split_by_provider(loaded, PROVIDERS).items()
        for item in items
    ]
    target = list(target_keys(target))
    try:  # no state here: a selection must match a declared resource
        check_selection(selectors, target, {key: labels for _, key, labels in keyed})
    except ConfigError as exc:
        err(f"Error: {exc}")
        if format is ValidateFormat.json:
            _print_json(valid=False, apps=0, errors=[{"message": str(exc)}])
        raise typer.Exit(EXIT_ERROR) from None
    counts: dict[str, int] = {}
    for name, key, labels in keyed:
        if (not target or key in target) and all(
            labels.get(k) == v for k, v in selectors.items()
        ):
            counts[name] = counts.get(name, 0) + 1
    # The state-root provider first (the line it always was), then the others by name.
    first = root_provider()
    counts = dict(sorted(counts.items(), key=lambda item: (item[0] != first, item[0])))
    count = sum(counts.values())
    if format is ValidateFormat.json:
        _print_json(valid=True, apps=count, errors=[], by_provider=counts)
    else:
        # Only the providers counted (and the first): asking another would import it.
        nouns = {name: str(getattr(PROVIDERS[name], "noun", f"{name} resource"))
                 for name in {*counts, first}}  # fmt: skip
        said = [_plural(n, nouns[name]) for name, n in counts.items()]
        typer.echo(f"OK: {', '.join(said) or _plural(0, nouns[first])} in"
                   f" {_plural(len(files), 'file')}")  # fmt: skip
    raise typer.Exit(EXIT_OK)


def _print_json(
    *,
    valid: bool,
    apps: int,
    errors: list[dict[str, object]],
    omitted: int = 0,
    by_provider: dict[str, int] | None = None,
) -> None:
    document: dict[str, object] = {"valid": valid, "apps": apps, "errors": errors}
    from reconciler.workflows.desired import root_provider

    if by_provider and set(by_provider) != {root_provider()}:
        document["by_provider"] = by_provider
    if omitted:  # errors found beyond the caps, not listed
        document["omitted_errors"] = omitted
    typer.echo(json.dumps(document, indent=2))


@app.command()
def schema(
    kind: str | None = typer.Argument(
        None,
        metavar="KIND",
        help="Whose schema: a provider (miniappcenter, akana, rest, a plugin's) or a kind"
        " (miniapp, akana_app, rest_object). Default: print the first; with --write, all.",
    ),
    write: Path | None = typer.Option(
        None,
        "--write",
        metavar="DIR",
        help="Write the schema files into DIR (e.g. schema/ in your repository) instead of"
        " printing; point your editor at them (see the schemas reference page).",
    ),
) -> None:
    """Print or write the JSON Schema of a manifest document, for editors
    (yaml-language-server: completion, hover and checks while typing)."""
    from reconciler.cli.schemas import choose
    from reconciler.cli.schemas import write as write_files

    try:
        chosen = choose(kind)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="KIND") from None
    with handled_errors():
        if write is None:
            sys.stdout.write(chosen[0].text())
            sys.stdout.flush()
            return
        try:
            written, skipped = write_files(chosen, write)
        except OSError as exc:
            err(f"Error: cannot write the schemas into {write}: {exc.strerror or exc}")
            raise typer.Exit(EXIT_ERROR) from None
    for path in written:
        err(f"Wrote {path}")
    for name in skipped:
        err(f"Left out {name}: it ships no JSON Schema")
