"""Search spaces: declarative files, validation, per-layer choices and budget-aware sampling."""

from .sampling import BoundSpace, ParamGroup, resolve_setting
from .schema import SPACE_KNOBS, Override, SearchSpace, load_space, parse_space, shipped_spaces
from .summary import SpaceSummary, check_budget, cost_front, feasible_share, summarize

__all__ = [
    "SPACE_KNOBS",
    "BoundSpace",
    "Override",
    "ParamGroup",
    "SearchSpace",
    "SpaceSummary",
    "check_budget",
    "cost_front",
    "feasible_share",
    "load_space",
    "parse_space",
    "resolve_setting",
    "shipped_spaces",
    "summarize",
]
