"""What ``run_compare`` tells about its progress, to any object with some of these methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .store import Run

__all__ = ["Reporter", "notify"]


class Reporter(Protocol):
    """What :func:`run_compare` tells about its progress (every method is optional)."""

    def message(self, text: str) -> None: ...
    def run_started(self, method: str, seed: int, design: str) -> None: ...
    def batch(self, done: int, total: int) -> None: ...
    def run_finished(self, run: Run) -> None: ...


def notify(reporter: Any, name: str, *args: Any) -> None:
    """Call ``reporter.<name>(*args)`` if the reporter has that method."""
    fn = getattr(reporter, name, None) if reporter is not None else None
    if fn is not None:
        fn(*args)
