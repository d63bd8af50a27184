"""Manifest files and folders -> validated desired resources, or a ManifestError with every
issue. Each document goes to the checker of its ``(apiVersion, kind)``: the providers' manifest
kinds are given to the loader, which knows none of their fields."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import yaml
from yaml.nodes import Node, ScalarNode

from reconciler.errors import ManifestError, ManifestIssue
from reconciler.manifest.compose import TOO_DEEP, compose_documents
from reconciler.manifest.files import (
    MAX_DOCUMENTS,
    MAX_MANIFEST_BYTES,
    FileRefused,
    confined,
    find_roots,
    read_regular_file,
)
from reconciler.manifest.nodes import NULL_TAG, Pos, pos_of
from reconciler.manifest.screen import Hints, screen, text_hints
from reconciler.secrets import bounded, secrets_registered

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_PATHS_LISTED = 20  # "no manifests found" names at most this many of the given paths
# Output stays small whatever the input: the first errors of each file (by position), and
# of the run, then "... and N more".
MAX_ERRORS_PER_FILE = 50
MAX_ERRORS_TOTAL = 200
MAX_MESSAGE_CHARS = 500
MAX_PATH_CHARS = 200


class DocumentCheck(Protocol):
    """One provider's checker of one document (a fresh one per document)."""

    issues: list[ManifestIssue]
    app_id: str | None  # the document's natural key, known even when the rest is invalid
    app_id_pos: Pos | None
    id_label: str  # "mini app id": what a duplicate is called in messages
    id_path: str  # "metadata.id": where the natural key is written

    def check(self, root: Node) -> Any:
        """The desired resource, or None (its problems are in ``issues``)."""
        ...


# file, environment, roots -> a checker
CheckerFactory = Callable[[str, Mapping[str, str], Sequence[Path]], DocumentCheck]
ManifestKinds = Mapping[tuple[str, str], CheckerFactory]  # (apiVersion, kind) -> checker

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedApp(Generic[T]):
    """A desired resource and the place its manifest document starts (1-based line)."""

    app: T
    file: str
    line: int
    # The document's (apiVersion, kind): which provider's resource it is.
    document: tuple[str, str] = ("", "")


def load_manifests(
    paths: Sequence[str | Path],
    env: Mapping[str, str],
    roots: Sequence[str | Path] = (),
    *,
    kinds: ManifestKinds,
) -> list[LoadedApp[Any]]:
    """Load and validate every manifest under ``paths``, in a deterministic order.

    Files are read as given; folders recursively (``*.yaml``, ``*.yml``, hidden entries
    skipped, sorted). Every file read must lie inside the root of ``paths`` or one of
    ``roots`` (see :mod:`reconciler.manifest.files`). Raises :class:`ManifestError`
    carrying the issues found (bounded: see :data:`MAX_ERRORS_PER_FILE`).
    """
    return load_manifest_files(paths, env, roots, kinds=kinds)[0]


def load_manifest_files(
    paths: Sequence[str | Path],
    env: Mapping[str, str],
    roots: Sequence[str | Path] = (),
    *,
    kinds: ManifestKinds,
) -> tuple[list[LoadedApp[Any]], list[str]]:
    """Like :func:`load_manifests`, also answering which files were read."""
    # The token is masked in every message, even before any client holds it.
    with secrets_registered(env.get("MAC_API_TOKEN", "")):
        return _load(paths, env, find_roots(paths, roots), kinds)


def _checker_for(root: Node, kinds: ManifestKinds) -> CheckerFactory:
    """The checker of the document's (apiVersion, kind); for a header that names no known
    kind, the checker of its apiVersion, else the first: it reports the header problem."""
    header = _peek_header(root)
    factory = kinds.get(header)
    if factory is not None:
        return factory
    same_api = [f for (api, _), f in kinds.items() if api == header[0]]
    return same_api[0] if same_api else next(iter(kinds.values()))


def _peek_header(root: Node) -> tuple[str, str]:
    found = {"apiVersion": "", "kind": ""}
    if isinstance(root.value, list):
        for pair in root.value:
            if not isinstance(pair, tuple):
                continue
            key, value = pair
            if isinstance(key, ScalarNode) and key.value in found and isinstance(value, ScalarNode):
                found[key.value] = str(value.value)
    return found["apiVersion"], found["kind"]


def _load(
    paths: Sequence[str | Path],
    env: Mapping[str, str],
    roots: tuple[Path, ...],
    kinds: ManifestKinds,
) -> tuple[list[LoadedApp[Any]], list[str]]:
    issues: list[ManifestIssue] = []
    omitted = 0
    files: list[str] = []
    apps: list[LoadedApp[Any]] = []
    first_place: dict[tuple[CheckerFactory, str], tuple[str, Pos]] = {}
    # Listed first: problems with the paths themselves come before those inside files.
    for file, real in list(_manifest_files(paths, roots, issues)):
        files.append(file)
        file_issues: list[ManifestIssue] = []
        for root, hints in _documents(file, real, file_issues):
            problems = screen(root, hints)
            if problems:  # nothing below can be read safely: report these alone
                file_issues.extend(_file_issue(file, m, p.line, p.column) for p, m in problems)
                continue
            factory = _checker_for(root, kinds)
            checker = factory(file, env, roots)
            app = checker.check(root)
            file_issues.extend(checker.issues)
            if checker.app_id is not None and checker.app_id_pos is not None:
                here = checker.app_id_pos
                key = (factory, checker.app_id)  # ids are unique per kind of resource
                if key in first_place:
                    where, first = first_place[key]
                    file_issues.append(
                        ManifestIssue(
                            file,
                            here.line,
                            here.column,
                            checker.id_path,
                            f"{checker.id_label} {checker.app_id!r} is already defined at"
                            f" {where}:{first.line}",
                        )
                    )
                    continue
                first_place[key] = (file, here)
            if app is not None:
                apps.append(LoadedApp(app, file, pos_of(root).line, _peek_header(root)))
        file_issues.sort(key=lambda issue: (issue.line, issue.column))
        room = max(0, min(MAX_ERRORS_PER_FILE, MAX_ERRORS_TOTAL - len(issues)))
        omitted += max(0, len(file_issues) - room)
        issues.extend(_bounded_issue(issue) for issue in file_issues[:room])
    if not issues and not omitted:
        # Checks that need every document of a kind (a provider's references between its
        # resources): a checker class may offer ``check_together(models) -> issues``.
        # Only the kinds these files declare: looking up another would import its provider.
        for factory in dict.fromkeys(kinds[a.document] for a in apps):
            together = getattr(factory, "check_together", None)
            if together is None:
                continue
            mine = [a.app for a in apps if kinds[a.document] is factory]
            found = list(together(mine))
            issues.extend(_bounded_issue(issue) for issue in found[:MAX_ERRORS_TOTAL])
            omitted += max(0, len(found) - MAX_ERRORS_TOTAL)
    if issues or omitted:
        raise ManifestError(issues, omitted=omitted)
    return apps, files


def require_manifests(paths: Sequence[str | Path], loaded: Sequence[LoadedApp[Any]]) -> None:
    """Refuse paths that hold no manifest at all (YAML files of only comments or empty
    documents): validating or planning nothing must not look like a success.

    The loader itself accepts such a file among others (a commented-out app is fine); only
    a whole command line that declares nothing is an error.
    """
    if loaded:
        return
    issues = [
        _file_issue(
            str(path),
            f"no manifests found in {path}: its YAML holds only comments or empty documents"
            " (a manifest starts with apiVersion: miniappcenter/v1 and kind: MiniApp)",
        )
        for path in list(dict.fromkeys(str(p) for p in paths))[:MAX_PATHS_LISTED]
    ]
    raise ManifestError(issues)


def _bounded_issue(issue: ManifestIssue) -> ManifestIssue:
    """The last guard: secrets masked and lengths capped, whatever built the message."""
    return replace(
        issue,
        file=bounded(issue.file, MAX_PATH_CHARS),
        path=bounded(issue.path, MAX_PATH_CHARS),
        message=bounded(issue.message, MAX_MESSAGE_CHARS),
    )


def _manifest_files(
    paths: Sequence[str | Path], roots: tuple[Path, ...], issues: list[ManifestIssue]
) -> Iterator[tuple[str, Path]]:
    """(path as shown, resolved path inside a root) of each manifest file, once each."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(_walk(path), key=lambda p: p.parts)  # all share path's parts
            if not found:
                issues.append(
                    _file_issue(
                        str(path),
                        f"no manifests found in {path}: the folder holds no *.yaml or *.yml"
                        " files",
                    )
                )
        elif path.exists() or path.is_symlink():
            found = [path]
        else:
            issues.append(_file_issue(str(given), "no such file or folder"))
            continue
        for file in found:
            try:
                real = confined(file, roots, "manifest")
            except FileRefused as exc:
                issues.append(_file_issue(str(file), str(exc)))
                continue
            if real not in seen:  # a file named twice (itself and via its folder) is read once
                seen.add(real)
                yield str(file), real


def _walk(folder: Path) -> Iterator[Path]:
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                yield Path(top, name)


def _file_issue(file: str, message: str, line: int = 1, column: int = 1) -> ManifestIssue:
    return ManifestIssue(file, line, column, "", message)


def _documents(
    file: str, real: Path, issues: list[ManifestIssue]
) -> Iterator[tuple[Node, Hints]]:
    """The non-empty documents of one file, as composed nodes (no Python objects built), and
    what the file's text can hold (the screen skips the checks that cannot find anything)."""
    text = _read_text(file, real, issues)
    if text is None:
        return
    hints = text_hints(text)
    try:
        for count, root in enumerate(compose_documents(text), start=1):
            if count > MAX_DOCUMENTS:
                line = pos_of(root).line
                message = f"more than {MAX_DOCUMENTS} documents in one file; split it into files"
                issues.append(_file_issue(file, message, line))
                return
            if isinstance(root, ScalarNode) and root.tag == NULL_TAG and not root.value:
                continue  # an empty document (`---` followed by nothing)
            yield root, hints
    except yaml.MarkedYAMLError as exc:
        issues.append(_syntax_issue(file, text, exc))
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        message = f"YAML does not allow the control character U+{code:04X}"
        issues.append(_file_issue(file, message, line, column))
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error is one of the above
        issues.append(_file_issue(file, f"YAML error: {exc}"))
    except RecursionError:  # pragma: no cover - compose_documents stops well before
        issues.append(_file_issue(file, "YAML is nested too deeply"))


def _syntax_issue(file: str, text: str, exc: yaml.MarkedYAMLError) -> ManifestIssue:
    if exc.problem == TOO_DEEP and exc.problem_mark is not None:  # compose.GuardedLoader
        where = exc.problem_mark
        return _file_issue(file, TOO_DEEP, where.line + 1, where.column + 1)
    problem = _without_source(exc.problem or exc.context or "invalid YAML")
    if exc.problem and exc.context and exc.context_mark is not None:
        problem += f" ({_without_source(exc.context)} at line {exc.context_mark.line + 1})"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return _file_issue(file, f"YAML syntax error: {problem}")
    lines = text.splitlines()
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        problem += "; indent with spaces: YAML does not allow tabs there"
    return _file_issue(file, f"YAML syntax error: {problem}", mark.line + 1, mark.column + 1)


# PyYAML quotes pieces of the source in its problems (alias and anchor names, tag handles,
# the characters it stopped at). The file may be anything (a symlinked secret): keep a quoted
# single character or token name like '<block end>', drop anything longer.
_QUOTED_RE = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_SHORT_QUOTED_RE = re.compile(r"'(\\[xuU]?[0-9a-fA-F]{0,8}|\\.|.)'|'<[a-z ]+>'")


def _without_source(problem: str) -> str:
    def keep_or_drop(match: re.Match[str]) -> str:
        text = match.group(0)
        return text if _SHORT_QUOTED_RE.fullmatch(text) else "(text omitted)"

    return _QUOTED_RE.sub(keep_or_drop, problem)


def _read_text(file: str, real: Path, issues: list[ManifestIssue]) -> str | None:
    try:
        data = read_regular_file(real, MAX_MANIFEST_BYTES, "manifest")
    except FileRefused as exc:
        message = str(exc).replace(f"manifest {real}", "the manifest", 1)
        if real != Path(os.path.abspath(file)):
            message += f" (it is a link to {real})"
        issues.append(_file_issue(file, message))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8-sig", errors="replace")) + 1
        issues.append(
            _file_issue(
                file,
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
                line,
                column,
            )
        )
        return None


def _line_column(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1
