"""Where a run's state (and the embedded sandboxes' files) live when no setting says: at the
repository's root, never in the current directory, so that `cd manifests && reconciler plan .`
finds the state that `reconciler plan manifests/` wrote.

The repository's root is the git work tree holding the manifests; without git, the nearest
folder above them holding ``reconciler.yaml`` or a ``.reconciler/`` folder (the state of an
earlier run); with neither (a first run), the current directory when it holds the manifests,
else the folder the manifests share. Commands that take no manifests (``state``,
``apply --plan``) start from the current directory and walk up the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from reconciler.limits import DEFAULT_SANDBOX_DB

STATE_DIR = ".reconciler"
_MARKERS = (".git", "reconciler.yaml", STATE_DIR)


def repository_root(paths: Sequence[Path], start: Path | None = None) -> Path:
    """The folder a run's ``.reconciler/`` belongs in (see the module docstring). ``start``:
    where to look when no manifest path is given (default: the current directory)."""
    folders: list[str] = []
    for given in paths:
        absolute = Path(os.path.abspath(given))
        folders.append(str(absolute if absolute.is_dir() else absolute.parent))
    if folders:
        shared = Path(os.path.commonpath(folders))
    else:
        shared = Path(os.path.abspath(start if start is not None else Path.cwd()))
    for markers in (_MARKERS[:1], _MARKERS[1:]):  # a git work tree wins over a marker in it
        for folder in (shared, *shared.parents):
            if any((folder / marker).exists() for marker in markers):
                return folder
    # Nothing yet (no git, a first run): the folder the run starts from when it holds the
    # manifests, as before. Its `.reconciler/` is then the marker every later run finds,
    # from wherever it starts.
    here = Path(os.path.abspath(Path.cwd()))
    return here if shared == here or here in shared.parents else shared


def anchored(
    paths: Sequence[Path],
    state: Path | str | None,
    sandbox: bool,
    sandbox_db: Path | None,
    *,
    start: Path | None = None,
) -> tuple[Path | str, Path | None]:
    """(state location, sandbox database) for a run: an explicit ``--state`` /
    RECONCILER_STATE and ``--sandbox-db`` / MAC_SANDBOX_DB as given, else under the
    repository's ``.reconciler/``."""
    root: Path | None = None
    if state is None or (sandbox and sandbox_db is None):
        root = repository_root(paths, start) / STATE_DIR
    if state is None:
        assert root is not None
        state = root / ("sandbox-state.json" if sandbox else "state.json")
    if sandbox and sandbox_db is None:
        assert root is not None
        sandbox_db = root / Path(DEFAULT_SANDBOX_DB).name
    return state, sandbox_db
