"""``plan --changed-since REF``: which mini apps a change against a git revision touches.

What counts as changed is what ``git diff REF`` shows (committed, staged and working-tree
changes of tracked files) plus untracked files that are not ignored: in a pull request's CI
job that is the pull request; on a laptop it includes what is not committed yet. Renames are
a delete plus an add (``--no-renames``), so the old path's apps are looked at too.

An app is touched when

* a changed manifest declares it now (its file is added or modified), or
* a manifest declared it at REF and that file is modified or deleted (so an app whose
  manifest was removed shows as a prune warning, or a delete with ``--prune``), or
* one of its ``file:`` objects (an icon, a version's metadata) is a changed file.

Every manifest is still loaded and validated (locally: it costs no API request, and which
ids are declared anywhere decides what is an orphan); only the touched apps are read from the
API and planned.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml
from yaml.nodes import MappingNode, ScalarNode

from reconciler.errors import ConfigError
from reconciler.manifest.compose import compose_documents
from reconciler.manifest.files import MAX_MANIFEST_BYTES
from reconciler.manifest.loader import MANIFEST_SUFFIXES, LoadedApp
from reconciler.secrets import shown

GIT_TIMEOUT_S = 60


@runtime_checkable
class ReadsFiles(Protocol):
    """A desired resource whose manifest points at files (``file:`` images, metadata)."""

    def referenced_files(self) -> Iterable[str]: ...


MAX_REF_CHARS = 200


@dataclass(frozen=True)
class ChangedFiles:
    """What changed in the work tree against ``ref``; paths are resolved, absolute."""

    ref: str
    commit: str
    top: Path  # the work tree
    present: frozenset[Path]  # added or modified (now on disk)
    gone: frozenset[Path]  # deleted (or the old side of a rename)
    manifests: tuple[str, ...]  # changed manifest files under the given paths, repo-relative
    ids_then: frozenset[str]  # app ids the changed or deleted manifests declared at ref

    @property
    def file_count(self) -> int:
        return len(self.manifests)


def changed_since(ref: str, paths: Sequence[Path]) -> ChangedFiles:
    """Ask git what changed since ``ref`` in the repository holding ``paths``.

    Raises :class:`ConfigError` with what to do when git is missing, the paths are not in
    a git work tree, or git does not know ``ref``.
    """
    unprintable = any(ord(char) < 32 or ord(char) == 127 for char in ref)
    if not ref or ref.startswith("-") or len(ref) > MAX_REF_CHARS or unprintable:
        raise ConfigError(
            f"--changed-since {shown(ref[:MAX_REF_CHARS])}: expected a git revision (a branch,"
            " tag or commit such as origin/main)"
        )
    start = _folder_of(paths[0]) if paths else Path.cwd()
    top = Path(_git(start, "rev-parse", "--show-toplevel", what="find the git work tree",
                    not_found=f"{start} is not inside a git work tree").strip())
    top = Path(os.path.realpath(top))
    for given in paths:
        if not _within(Path(os.path.realpath(given)), top):
            raise ConfigError(
                f"--changed-since: {given} is outside the git work tree {top}; give paths of"
                " one repository"
            )
    commit = _git(
        top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
        what=f"resolve {shown(ref)}",
        not_found=(
            f"git does not know the revision {shown(ref)}; fetch it first (in GitHub Actions:"
            " actions/checkout with fetch-depth: 0, or git fetch origin main)"
        ),
    ).strip()
    diff = _git(top, "diff", "--name-status", "-z", "--no-renames", commit, "--",
                what="list the changes")
    present: set[Path] = set()
    gone: set[Path] = set()
    fields = diff.split("\x00")
    for status, name in zip(fields[0::2], fields[1::2], strict=False):
        (gone if status.startswith("D") else present).add(top / name)
    untracked = _git(top, "ls-files", "--others", "--exclude-standard", "-z", "--",
                     what="list untracked files")
    present.update(top / name for name in untracked.split("\x00") if name)
    folders = [Path(os.path.realpath(p)) for p in paths]
    manifests = sorted(
        str(path.relative_to(top))
        for path in present | gone
        if any(_is_manifest_under(path, folder) for folder in folders)
    )
    before = [top / name for name in manifests if top / name in gone or top / name in present]
    return ChangedFiles(
        ref=ref,
        commit=commit,
        top=top,
        present=frozenset(present),
        gone=frozenset(gone),
        manifests=tuple(manifests),
        ids_then=frozenset(_ids_at(top, commit, [p.relative_to(top) for p in before])),
    )


def touched_ids(loaded: Iterable[LoadedApp[Any]], changes: ChangedFiles) -> frozenset[str]:
    """The ids of the apps ``changes`` touches (see the module docstring)."""
    touched = set(changes.ids_then)
    # Cheap filters first (by file name, before resolving anything): a repository of 10,000
    # apps with one changed file.
    names = {path.name for path in changes.present}
    others = (changes.present | changes.gone) - {changes.top / m for m in changes.manifests}
    other_names = {path.name for path in others}
    for item in loaded:
        own = Path(item.file).name in names and _real(item.file) in changes.present
        objects = [path for path in _file_objects(item.app) if Path(path).name in other_names]
        if own or any(_real(path) in others for path in objects):
            touched.add(item.app.id)
    return frozenset(touched)


# --- helpers -----------------------------------------------------------------------------


def _folder_of(path: Path) -> Path:
    return path if path.is_dir() else (path.parent if str(path.parent) else Path.cwd())


def _within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _is_manifest_under(path: Path, given: Path) -> bool:
    """The loader's rule: the file given itself, or a *.yaml/*.yml below a folder given with
    no hidden part in between."""
    if path == given:
        return True
    if not path.is_relative_to(given) or not path.name.endswith(MANIFEST_SUFFIXES):
        return False
    return not any(part.startswith(".") for part in path.relative_to(given).parts)


def _file_objects(app: object) -> Iterable[str]:
    """Paths of the files a desired resource reads (a provider's model says which, through
    ``referenced_files``; a resource that reads none has no such method)."""
    if isinstance(app, ReadsFiles):
        yield from app.referenced_files()


def _real(path: str) -> Path:
    return Path(os.path.realpath(path))


def _ids_at(top: Path, commit: str, names: Sequence[Path]) -> set[str]:
    """``metadata.id`` of every document of each file as it was at ``commit`` (files that did
    not exist then, or do not parse, declare nothing)."""
    ids: set[str] = set()
    for name in names:
        blob = _git_bytes(top, "cat-file", "blob", f"{commit}:{name.as_posix()}")
        if blob is None or len(blob) > MAX_MANIFEST_BYTES:
            continue
        try:
            for root in compose_documents(blob.decode("utf-8-sig", errors="replace")):
                app_id = _metadata_id(root)
                if app_id is not None:
                    ids.add(app_id)
        except (yaml.YAMLError, RecursionError):
            continue  # broken at that revision: nothing to learn from it
    return ids


def _metadata_id(root: object) -> str | None:
    if not isinstance(root, MappingNode):
        return None
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == "metadata" and isinstance(
            value, MappingNode
        ):
            for inner_key, inner in value.value:
                if isinstance(inner_key, ScalarNode) and inner_key.value == "id" and isinstance(
                    inner, ScalarNode
                ):
                    return str(inner.value)
    return None


def _git_command() -> str:
    git = shutil.which("git")
    if git is None:
        raise ConfigError("--changed-since needs git, and no git command was found on PATH")
    return git


def _run(cwd: Path, args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [_git_command(), *args],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            # No pager, no prompt, no user config that changes the output (colours, external
            # diff drivers): the command is parsed.
            env={**os.environ, "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0",
                 "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--changed-since: running git failed ({type(exc).__name__})") from None


def _git(cwd: Path, *args: str, what: str, not_found: str | None = None) -> str:
    done = _run(cwd, args)
    if done.returncode != 0:
        if not_found is not None:
            raise ConfigError(f"--changed-since: {not_found}")
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise ConfigError(f"--changed-since: git could not {what}: {shown(''.join(first)[:300])}")
    return done.stdout.decode("utf-8", "surrogateescape")


def _git_bytes(cwd: Path, *args: str) -> bytes | None:
    done = _run(cwd, args)
    return done.stdout if done.returncode == 0 else None
