"""Which files a manifest run may read, and reading them without hanging or flooding.

Manifests come from pull requests, so a manifest can point anywhere: ``file:../../etc/passwd``,
``/proc/self/environ``, a symlink to a ``.env``, a FIFO that blocks ``open`` forever,
``/dev/zero``. Every file the loader reads (manifests and the files they point at) must be:

* inside a **root**: the git work tree holding the path given on the command line (found by
  walking up to a ``.git``), else the folder given (or a given file's folder), plus any
  ``--root``; symlinks are resolved before the check, so a link cannot leave the root;
* a **regular file** (checked on the open descriptor, which is opened non-blocking so a FIFO
  cannot hang), not on a pseudo file system whose "regular" files have no real size;
* at most a **size cap**, counted while reading (``st_size`` is not trusted).

Messages name the path and the rule, never a byte of the content.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

# Pure-Python PyYAML reads about 0.5 MB/s: 1 MiB is a few seconds at worst, and some 3,500
# mini apps in a single file. Larger inventories split into files (folders are read whole).
MAX_MANIFEST_BYTES = 1024 * 1024
# Each document costs a check of its own: tiny documents (`---\na: 1\n`) must not multiply it.
MAX_DOCUMENTS = 5_000
# Images and version metadata bundles; apply holds each in memory while it uploads it.
MAX_OBJECT_BYTES = 50 * 1024 * 1024
# Their files report st_size 0 (or lie) and may stream forever or reveal the process.
_PSEUDO_FS = (Path("/proc"), Path("/sys"), Path("/dev"))
_CHUNK = 1024 * 1024


class FileRefused(Exception):
    """A file the loader will not read; the message says why and what to do."""


def find_roots(paths: Iterable[str | Path], extra: Iterable[str | Path] = ()) -> tuple[Path, ...]:
    """The resolved roots for ``paths`` (see the module docstring) and each ``--root``."""
    roots: list[Path] = []
    for given in paths:
        absolute = Path(os.path.abspath(given))
        worktree = _worktree(absolute)
        if worktree is not None:
            root = worktree
        elif absolute.is_dir():
            root = absolute
        else:
            root = absolute.parent
        roots.append(Path(os.path.realpath(root)))
    roots.extend(Path(os.path.realpath(os.path.abspath(extra_root))) for extra_root in extra)
    return tuple(dict.fromkeys(roots))


def _worktree(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(_within(str(path), str(root)) for root in roots)


def _within(path: str, folder: str) -> bool:
    """``Path(path).is_relative_to(folder)`` for normalised absolute paths, without building
    Path objects: it runs for every file read, thousands per run."""
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def confined(path: Path, roots: Sequence[Path], what: str) -> Path:
    """``path`` with every symlink resolved; FileRefused when that leaves every root."""
    real = Path(os.path.realpath(path))
    if not inside(real, roots):
        via = " (through a symlink)" if real != Path(os.path.abspath(path)) else ""
        raise FileRefused(
            f"{what} {path} is outside the repository root{via}"
            f" ({_describe_roots(roots)}); keep it inside, or widen with --root DIR"
        )
    if any(_within(str(real), str(pseudo)) for pseudo in _PSEUDO_FS):
        raise FileRefused(f"{what} {path} is a system file ({real}), not a file of the repository")
    return real


def _describe_roots(roots: Sequence[Path]) -> str:
    shown = ", ".join(str(root) for root in roots[:3])
    more = f" and {len(roots) - 3} more" if len(roots) > 3 else ""
    return f"root: {shown}{more}"


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes, else FileRefused.

    Opened with O_NONBLOCK (a FIFO opens at once instead of waiting for a writer) and checked
    on the descriptor, so what is checked is what is read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileRefused(f"cannot read {what} {path}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{what} {path} is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise FileRefused(_too_large(what, path, limit))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: plain reads from here on
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:  # grew while we read, or lied about its size
                raise FileRefused(_too_large(what, path, limit))
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"cannot read {what} {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def _too_large(what: str, path: Path, limit: int) -> str:
    return f"{what} {path} is larger than the limit of {_size(limit)}"


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EISDIR:
        return "it is a folder"
    return exc.strerror or type(exc).__name__


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
