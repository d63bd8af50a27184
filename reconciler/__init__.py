"""miniapp-reconciler: keep GeneXus Mini App Center mini apps equal to YAML manifests in git."""

from __future__ import annotations

__all__ = ["__version__"]

DISTRIBUTION = "miniapp-reconciler"


def __getattr__(name: str) -> str:
    """``reconciler.__version__``, read from the installed package's metadata.

    pyproject.toml is the version's one source: an install (editable too) carries it in its
    metadata, so a release bumps one line and nothing here can disagree. It is read on first
    use, not at import: importlib.metadata costs ~30 ms, and every command imports this
    package before it can print its help.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"
