"""`reconciler import`: write manifests for existing mini apps and adopt them into the state."""

from __future__ import annotations

from pathlib import Path

import typer

from reconciler.cli.app import app
from reconciler.cli.common import (
    ConfigOpt,
    SandboxDbOpt,
    SandboxOpt,
    StateOpt,
    StderrReporter,
    err,
    handled_errors,
)
from reconciler.limits import MAC_PROVIDER

REVIEW_IMPORTED = "Review the manifests, then `reconciler plan` should show no changes."


@app.command("import")
def import_(
    app_ids: list[str] = typer.Argument(..., metavar="ID...", help="Mini app ids to import."),
    out: Path = typer.Option(Path("manifests/imported"), "--out", help="Folder for manifests."),
    version: list[str] = typer.Option(
        [],
        "--version",
        help="CODE=ID (one app) or APP_ID:CODE=ID: versions to import, since the API cannot"
        " list them (repeatable).",
    ),
    label: list[str] = typer.Option([], "--label", help="KEY=VALUE label to add (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing manifest files."),
    state: Path | None = StateOpt,
    sandbox: bool = SandboxOpt,
    sandbox_db: Path | None = SandboxDbOpt,
    provider: str = typer.Option(
        MAC_PROVIDER,
        "--provider",
        metavar="NAME",
        help="Whose resources: miniappcenter (mini app ids), akana (app names or AppIDs) or"
        " rest (ENDPOINT:PATH:KEY).",
    ),
    config: Path | None = ConfigOpt,
) -> None:
    """Write a manifest per existing resource from live state and record it as managed."""
    from reconciler.cli.common import root_words
    from reconciler.cli.location import anchored
    from reconciler.workflows.desired import root_provider

    if provider != root_provider() and (version or label):
        raise typer.BadParameter(
            f"--version and --label are for {root_words()[0]}s", param_hint="--provider"
        )
    from reconciler.workflows.importing import run_import

    # The manifests are written to --out: the state belongs to the repository holding it.
    location, sandbox_db = anchored([out], state, sandbox, sandbox_db)

    versions: dict[str, dict[str, int]] = {}
    with handled_errors():
        hints = {}
        if version or label:
            from reconciler.manifest import parse_selectors

            labels = parse_selectors(list(label))
            versions = _parse_versions(version, app_ids)
            hints = {ref: {"versions": versions.get(ref, {}), "labels": labels} for ref in app_ids}
        run_import(
            provider, app_ids, out=out, force=force, state=location, sandbox=sandbox,
            sandbox_db=sandbox_db, config=config, reporter=StderrReporter(), hints=hints,
        )  # fmt: skip
    without = [app_id for app_id in app_ids if app_id not in versions]
    if provider == root_provider() and without:  # the others' imports list their versions
        err(_versions_hint(without, several=len(app_ids) > 1))
    err(REVIEW_IMPORTED)


def _versions_hint(apps: list[str], *, several: bool) -> str:
    """What was left out and how to add it: the API cannot list versions, so an import
    without --version brings none, and saying nothing made that look complete."""
    names = ", ".join(apps[:5]) + (f" and {len(apps) - 5} more" if len(apps) > 5 else "")
    form = "APP_ID:CODE=ID" if several else "CODE=ID"
    return (
        f"Not imported: the versions of {names} (the API cannot list them). To import them,"
        f" run `reconciler state rm APP_ID` and import again with --version {form} for each"
        " version (its id is in the backoffice; repeatable)."
    )


def _parse_versions(values: list[str], app_ids: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for value in values:
        head, sep, raw_id = value.rpartition("=")
        app_id, colon, code = head.rpartition(":") if ":" in head else ("", "", head)
        if not colon:
            if len(app_ids) != 1:
                raise typer.BadParameter(
                    "with several apps, write APP_ID:CODE=ID", param_hint="--version"
                )
            app_id = app_ids[0]
        if not sep or not code or not raw_id.isdigit() or int(raw_id) <= 0:
            raise typer.BadParameter(
                f"{value!r}: expected CODE=ID with a positive integer id",
                param_hint="--version",
            )
        if app_id not in app_ids:
            raise typer.BadParameter(f"{app_id!r} is not being imported", param_hint="--version")
        out.setdefault(app_id, {})[code] = int(raw_id)
    return out
