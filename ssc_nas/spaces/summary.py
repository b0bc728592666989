"""What a bound space can reach: cost bounds, budget feasibility, share of samples that fit."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..budget import Budget, format_count
from ..cost import Cost
from ..errors import BudgetError
from .sampling import BoundSpace

__all__ = ["SpaceSummary", "check_budget", "feasible_share", "summarize"]


def check_budget(bound: BoundSpace, budget: Budget) -> tuple[Cost, Cost]:
    """Raise BudgetError, stating the smallest reachable cost, when nothing in the space fits."""
    low, high = bound.cost_bounds()
    name = bound.space.name
    if budget.params is not None and low.params > budget.params:
        raise BudgetError(
            f"no architecture in {name} fits {format_count(budget.params)} params: the smallest "
            f"reachable is {format_count(low.params)} params ({low.params}); raise --budget or "
            "use a space with smaller widths"
        )
    if budget.macs is not None and low.macs > budget.macs:
        raise BudgetError(
            f"no architecture in {name} fits {format_count(budget.macs)} MACs per image: the "
            f"smallest reachable is {format_count(low.macs)} MACs ({low.macs}); raise --macs "
            "or use a space with smaller widths"
        )
    return low, high


def feasible_share(bound: BoundSpace, budget: Budget, samples: int = 1000, seed: int = 0) -> float:
    """Share of uniformly random architectures of the space that fit ``budget``."""
    rng = random.Random(seed)
    fits = sum(budget.fits(bound.cost(bound.sample(rng))) for _ in range(samples))
    return fits / samples


@dataclass(frozen=True)
class SpaceSummary:
    bound: BoundSpace
    low: Cost
    high: Cost
    size: int
    budget: Budget
    share: float | None
    samples: int


def summarize(
    bound: BoundSpace, budget: Budget, samples: int = 1000, seed: int = 0
) -> SpaceSummary:
    """Everything ``ssc-nas space show`` prints, as data."""
    low, high = check_budget(bound, budget)
    share = None
    if budget.params is not None or budget.macs is not None:
        share = feasible_share(bound, budget, samples, seed)
    return SpaceSummary(bound, low, high, bound.size(), budget, share, samples)
