"""Manifest files and folders -> validated mini apps, or a ManifestError with every issue."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import Node, ScalarNode

from reconciler.errors import ManifestError, ManifestIssue
from reconciler.manifest.document import DocumentChecker
from reconciler.manifest.nodes import NULL_TAG, Pos, pos_of
from reconciler.model import MiniApp

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_PATHS_LISTED = 20  # "no manifests found" names at most this many of the given paths
# The pure-Python loader, not libyaml's CSafeLoader: that one is about 7x faster but
# recurses in C, and a deeply nested document crashes the interpreter (segfault) instead of
# raising RecursionError.
_LOADER = yaml.SafeLoader


@dataclass(frozen=True)
class LoadedApp:
    """A mini app and the place its manifest document starts (1-based line)."""

    app: MiniApp
    file: str
    line: int


def load_manifests(paths: Sequence[str | Path], env: Mapping[str, str]) -> list[LoadedApp]:
    """Load and validate every manifest under ``paths``, in a deterministic order.

    Files are read as given; folders recursively (``*.yaml``, ``*.yml``, hidden entries
    skipped, sorted). Raises :class:`ManifestError` carrying every issue found.
    """
    return load_manifest_files(paths, env)[0]


def load_manifest_files(
    paths: Sequence[str | Path], env: Mapping[str, str]
) -> tuple[list[LoadedApp], list[str]]:
    """Like :func:`load_manifests`, also answering which files were read."""
    issues: list[ManifestIssue] = []
    files = list(_manifest_files(paths, issues))
    apps: list[LoadedApp] = []
    first_place: dict[str, tuple[str, Pos]] = {}
    for file in files:
        file_issues: list[ManifestIssue] = []
        for root in _documents(file, file_issues):
            checker = DocumentChecker(file, env)
            app = checker.check(root)
            file_issues.extend(checker.issues)
            if checker.app_id is not None and checker.app_id_pos is not None:
                here = checker.app_id_pos
                if checker.app_id in first_place:
                    where, first = first_place[checker.app_id]
                    file_issues.append(
                        ManifestIssue(
                            file,
                            here.line,
                            here.column,
                            "metadata.id",
                            f"mini app id {checker.app_id!r} is already defined at"
                            f" {where}:{first.line}",
                        )
                    )
                    continue
                first_place[checker.app_id] = (file, here)
            if app is not None:
                apps.append(LoadedApp(app, file, pos_of(root).line))
        issues.extend(sorted(file_issues, key=lambda issue: (issue.line, issue.column)))
    if issues:
        raise ManifestError(issues)
    return apps, files


def require_manifests(paths: Sequence[str | Path], loaded: Sequence[LoadedApp]) -> None:
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


def _manifest_files(paths: Sequence[str | Path], issues: list[ManifestIssue]) -> Iterator[str]:
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(_walk(path), key=lambda p: p.relative_to(path).parts)
            if not found:
                issues.append(
                    _file_issue(
                        str(path),
                        f"no manifests found in {path}: the folder holds no *.yaml or *.yml"
                        " files",
                    )
                )
        elif path.exists():
            found = [path]
        else:
            issues.append(_file_issue(str(given), "no such file or folder"))
            continue
        for file in found:
            key = file.resolve()
            if key not in seen:  # a file named twice (itself and via its folder) is read once
                seen.add(key)
                yield str(file)


def _walk(folder: Path) -> Iterator[Path]:
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                yield Path(top, name)


def _file_issue(file: str, message: str, line: int = 1, column: int = 1) -> ManifestIssue:
    return ManifestIssue(file, line, column, "", message)


def _documents(file: str, issues: list[ManifestIssue]) -> Iterator[Node]:
    """The non-empty documents of one file, as composed nodes (no Python objects built)."""
    text = _read_text(file, issues)
    if text is None:
        return
    try:
        for root in yaml.compose_all(text, Loader=_LOADER):
            if isinstance(root, ScalarNode) and root.tag == NULL_TAG and not root.value:
                continue  # an empty document (`---` followed by nothing)
            yield root
    except yaml.MarkedYAMLError as exc:
        issues.append(_syntax_issue(file, text, exc))
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        message = f"YAML does not allow the control character U+{code:04X}"
        issues.append(_file_issue(file, message, line, column))
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error is one of the above
        issues.append(_file_issue(file, f"YAML error: {exc}"))
    except RecursionError:
        issues.append(_file_issue(file, "YAML is nested too deeply"))


def _syntax_issue(file: str, text: str, exc: yaml.MarkedYAMLError) -> ManifestIssue:
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context and exc.context_mark is not None:
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return _file_issue(file, f"YAML syntax error: {problem}")
    lines = text.splitlines()
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        problem += "; indent with spaces: YAML does not allow tabs there"
    return _file_issue(file, f"YAML syntax error: {problem}", mark.line + 1, mark.column + 1)


def _read_text(file: str, issues: list[ManifestIssue]) -> str | None:
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        issues.append(_file_issue(file, f"cannot read file: {exc.strerror or exc}"))
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
