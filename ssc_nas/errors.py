"""One base error for user mistakes.

Anything raised as :class:`SSCNasError` (or a subclass) is the user's to fix: the CLI prints its
message on one line and exits with code 2, with no traceback. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import os

__all__ = [
    "BudgetError",
    "CheckpointError",
    "DataError",
    "SSCNasError",
    "SearchInterrupted",
    "SpaceError",
    "StudyError",
    "cannot_write",
]


class SSCNasError(Exception):
    """A user mistake: bad input, missing data, an unreachable budget, a broken config."""


class BudgetError(SSCNasError, ValueError):
    """A budget string that cannot be parsed, or a budget no candidate can meet."""


class SpaceError(SSCNasError, ValueError):
    """A search-space file that does not follow the schema."""


class DataError(SSCNasError):
    """A dataset that is unknown or whose files are missing."""


class StudyError(SSCNasError):
    """A study or storage that cannot be used as asked."""


class CheckpointError(SSCNasError):
    """A run folder whose checkpoint belongs to another training run than the one asked for."""


class SearchInterrupted(SSCNasError):
    """Ctrl-C: the running trial was marked FAIL and its candidate queued again; completed
    trials are safe; rerun to resume."""


def cannot_write(path: str | os.PathLike, exc: OSError, *ours: str | os.PathLike
                 ) -> SSCNasError:
    """``cannot write PATH: REASON`` for a write the system refused (a full disk, a read-only
    folder); the file at fault is named too when it is neither ``path`` nor one of ``ours``
    (the writer's own temporary files): a file where a folder must be, say."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None and os.fspath(exc.filename) not in {
            os.fspath(p) for p in (path, *ours)}:
        reason += f" ({exc.filename})"
    return SSCNasError(f"cannot write {path}: {reason}")
