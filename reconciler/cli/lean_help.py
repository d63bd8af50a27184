"""typer's help formatter without the parts of rich that help never uses (D45).

``typer.rich_utils`` imports ``rich.markdown`` (markdown-it-py, pygments) and
``rich.traceback`` (pygments, attrs) at its top: about a quarter of `reconciler --help`, for
the "markdown" markup mode (this CLI uses "rich") and pretty tracebacks (turned off). So it
is imported with two stand-in modules whose classes import the real ones on first use. The
stand-ins leave ``sys.modules`` as soon as rich_utils is loaded: a later ``import
rich.markdown`` anywhere gets the real module. Should a typer release want more from those
modules, the stand-ins are dropped and rich_utils is imported as usual.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _Markdown:
    """Stands for ``rich.markdown.Markdown``: constructing it builds the real one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.markdown import Markdown

        return Markdown(*args, **kwargs)


class _Traceback:
    """Stands for ``rich.traceback.Traceback`` (typer calls only ``from_exception``)."""

    @classmethod
    def from_exception(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.traceback import Traceback

        return Traceback.from_exception(*args, **kwargs)


def _stand_in(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name, "stand-in while typer.rich_utils is imported")
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def import_typer_rich_utils() -> None:
    """Load ``typer.rich_utils`` (once) without rich's Markdown and traceback modules."""
    stand_ins = {
        "rich.markdown": _stand_in("rich.markdown", Markdown=_Markdown),
        "rich.traceback": _stand_in("rich.traceback", Traceback=_Traceback),
    }
    if "typer.rich_utils" in sys.modules or any(name in sys.modules for name in stand_ins):
        return  # already paid for: nothing to save
    sys.modules.update(stand_ins)
    try:
        importlib.import_module("typer.rich_utils")
    except ImportError:
        pass  # a typer that needs more from them: imported as usual below
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    importlib.import_module("typer.rich_utils")
