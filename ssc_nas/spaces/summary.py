"""What a bound space can reach: cost bounds, budget feasibility, share of samples that fit."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..budget import Budget, format_count
from ..cost import Cost
from ..errors import BudgetError
from .sampling import BoundSpace

__all__ = ["SpaceSummary", "check_budget", "cost_front", "feasible_share", "summarize"]


def _pareto(points: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (params, MACs) pairs that no other pair beats on both, by params."""
    front: list[tuple[int, int]] = []
    for p, m in sorted(points):
        if not front or m < front[-1][1]:
            front.append((p, m))
    return front


def cost_front(bound: BoundSpace, budget: Budget | None = None) -> list[tuple[int, int]]:
    """Every Pareto-optimal (params, MACs) pair that a design of the space reaches, exactly.

    Per width, each parameter group's own Pareto set is added to the running one (the cost of a
    design is the sum over its groups); pairs above a limit of ``budget`` are dropped on the way,
    since costs only grow. One design need not minimize params and MACs together, so a budget
    fits the space only if one of these pairs fits both limits.
    """
    limit_p = budget.params if budget is not None and budget.params is not None else None
    limit_m = budget.macs if budget is not None and budget.macs is not None else None
    out: set[tuple[int, int]] = set()
    for width in bound.widths:
        found = bound.group_costs(width)
        if found is None:
            continue
        base, groups = found
        front = {(int(base.params), int(base.macs))}
        for costs in groups:
            group_front = _pareto({(int(c.params), int(c.macs)) for c in costs})
            front = {(a + c, b + d) for a, b in front for c, d in group_front
                     if (limit_p is None or a + c <= limit_p)
                     and (limit_m is None or b + d <= limit_m)}
            front = set(_pareto(front))
        out |= front
    return _pareto(out)


def check_budget(bound: BoundSpace, budget: Budget) -> tuple[Cost, Cost]:
    """Raise BudgetError, stating the smallest reachable design, when nothing in the space fits.

    Both limits are checked together on the exact (params, MACs) front (``cost_front``), so a
    pair of limits that no single design meets fails here, before any trial is sampled.
    """
    low, high = bound.cost_bounds()
    name = bound.space.name
    smallest = (f"the smallest reachable design has {format_count(low.params)} params "
                f"({low.params}) and {format_count(low.macs)} MACs ({low.macs})")
    if budget.params is not None and low.params > budget.params:
        raise BudgetError(
            f"no architecture in {name} fits {format_count(budget.params)} params: the smallest "
            f"reachable is {format_count(low.params)} params ({low.params}); {smallest}; raise "
            "--budget or use a space with smaller widths"
        )
    if budget.macs is not None and low.macs > budget.macs:
        raise BudgetError(
            f"no architecture in {name} fits {format_count(budget.macs)} MACs per image: the "
            f"smallest reachable is {format_count(low.macs)} MACs ({low.macs}); {smallest}; "
            "raise --macs or use a space with smaller widths"
        )
    if budget.params is not None and budget.macs is not None and not cost_front(bound, budget):
        front = cost_front(bound, Budget(params=budget.params))
        fewest = min(m for _, m in front)
        raise BudgetError(
            f"no architecture in {name} fits {format_count(budget.params)} params and "
            f"{format_count(budget.macs)} MACs together: within the params limit the fewest "
            f"MACs reachable are {format_count(fewest)} ({fewest}); {smallest}; raise --macs "
            "or --budget"
        )
    return low, high


def feasible_share(bound: BoundSpace, budget: Budget, samples: int = 1000, seed: int = 0) -> float:
    """Share of uniformly random architectures of the space that fit ``budget`` (with
    ``width: fill``, each at the width that fills it)."""
    rng = random.Random(seed)
    fits = sum(budget.fits(bound.cost(bound.sample(rng, budget))) for _ in range(samples))
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
