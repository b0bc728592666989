"""Names a package re-exports but imports only when first used (PEP 562).

A package lists, for each such name, the submodule that defines it; reading the name imports
that submodule. This keeps torch out of the processes that never train: ``ssc-nas --help``
and the commands that only read a study (``front``, ``studies``, ``export``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A ``__getattr__`` and a ``__dir__`` for ``package`` whose ``homes`` map each lazy name
    to its submodule (relative to ``package``, e.g. ``"ssc"``); ``namespace`` is the package's
    ``globals()``, where a name is kept once imported."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{home}", package), name)
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
