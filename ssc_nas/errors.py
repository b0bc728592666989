"""One base error for user mistakes.

Anything raised as :class:`SSCNasError` (or a subclass) is the user's to fix: the CLI prints its
message on one line and exits with code 2, with no traceback. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "CheckpointError",
    "DataError",
    "SSCNasError",
    "SearchInterrupted",
    "SpaceError",
    "StudyError",
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
    """Ctrl-C: the running trial was marked FAIL; completed trials are safe; rerun to resume."""
