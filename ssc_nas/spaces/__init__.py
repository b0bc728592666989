"""Search spaces: declarative files, validation, per-layer choices and budget-aware sampling."""

from .sampling import BoundSpace, ParamGroup, resolve_setting, suggest_architecture
from .schema import KNOBS, Override, SearchSpace, load_space, parse_space, shipped_spaces
from .summary import SpaceSummary, check_budget, cost_front, feasible_share, summarize

__all__ = [
    "KNOBS",
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
    "suggest_architecture",
    "summarize",
]
