"""Rung results of a successive-halving study (``--strategy sh``), read back and ranked.

Pure functions of a study's trials: which trial holds a result of which rung, which candidate
(design) a trial belongs to, and the ranking both the promotion rule (:mod:`.halving`) and the
sampler (:class:`~.samplers.HalvingTPESampler`) use: non-dominated sorting of (score, params,
MACs), hypervolume contribution breaking ties within a front, and the sampler's mix of that
order with the score alone (the study's score share).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np
from optuna.trial import FrozenTrial, TrialState

from .config import check_rungs
from .objectives import SCORES

__all__ = [
    "Rungs",
    "candidate_of",
    "candidate_ranking",
    "cost_objectives",
    "is_rung_result",
    "mixed_order",
    "pareto_order",
    "rung_of",
    "rungs_from_attr",
    "score_objective",
]


@dataclass(frozen=True)
class Rungs:
    """``count`` rungs, each ``eta`` times the training of the one below; the top rung is the
    whole proxy schedule (``--epochs``)."""

    eta: int = 3
    count: int = 3
    #: the share of each rung's promotions chosen by the score alone (``--score-share``)
    score_share: float = 0.0

    def __post_init__(self) -> None:
        check_rungs(self.eta, self.count, self.score_share)

    @property
    def top(self) -> int:
        return self.count - 1

    def fraction(self, rung: int) -> float:
        """The share of the proxy schedule trained by the end of ``rung``."""
        return float(self.eta) ** -(self.top - rung)

    def steps(self, rung: int, total_steps: int) -> int:
        """Training steps done by the end of ``rung`` (at least one)."""
        return max(1, math.ceil(total_steps * self.fraction(rung)))


def rungs_from_attr(attr: Any) -> Rungs | None:
    """The study attribute ``strategy`` -> :class:`Rungs` (None for ``full`` or a study made
    before strategies existed)."""
    if not isinstance(attr, dict) or attr.get("name") != "sh":
        return None
    return Rungs(int(attr["eta"]), int(attr["rungs"]), float(attr.get("score_share", 0.0)))


def rung_of(trial: FrozenTrial) -> int:
    """The rung ``trial`` trains to (0 for a fresh candidate)."""
    return int(trial.user_attrs.get("rung", 0))


def candidate_of(trial: FrozenTrial) -> int:
    """The candidate (design) ``trial`` trains: the number of its rung-0 trial; a promotion
    carries it (``candidate``), a fresh candidate is its own."""
    return int(trial.user_attrs.get("candidate", trial.number))


def score_objective(objectives: Sequence[str]) -> str:
    """The score among a study's objectives (``val_loss`` or ``accuracy``)."""
    return next(o for o in objectives if o in SCORES)


def cost_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    """The study's objectives that a rung ranks by besides the score: ``params`` and ``macs``
    where they are objectives (``latency`` is not measured below the top rung), so a study of
    the score alone (``--objectives val_loss``) promotes by the score alone."""
    return tuple(o for o in ("params", "macs") if o in objectives)


def is_rung_result(trial: FrozenTrial, rung: int, top: int) -> bool:
    """Whether ``trial`` holds a finished result of ``rung``: stopped there (PRUNED, below the
    top) or trained through the top rung (COMPLETE, within budget)."""
    attrs = trial.user_attrs
    if rung_of(trial) != rung or not ("val_loss" in attrs or "val_accuracy" in attrs):
        return False
    if rung < top:
        return trial.state == TrialState.PRUNED
    return trial.state == TrialState.COMPLETE and "rejected" not in trial.user_attrs


def _points(trials: Sequence[FrozenTrial], score: str, costs: Sequence[str]) -> np.ndarray:
    """(score, *costs) to minimise; a diverged score ranks last."""
    rows = []
    for t in trials:
        if score == "accuracy":
            first = -float(t.user_attrs.get("val_accuracy", 0.0))
        else:
            first = float(t.user_attrs.get("val_loss", math.inf))
        rows.append([first, *(float(t.user_attrs.get(c, 0)) for c in costs)])
    points = np.array(rows, dtype=float).reshape(-1, 1 + len(costs))
    finite = np.isfinite(points[:, 0])
    worst = points[finite, 0].max() + 1.0 if finite.any() else 1.0
    points[~finite, 0] = worst
    return points


def pareto_order(results: Sequence[FrozenTrial], score: str,
                 costs: Sequence[str] = ("params", "macs")) -> list[FrozenTrial]:
    """``results`` of one rung, best first: by Pareto rank of (score, *costs), then by
    hypervolume contribution within a rank (objectives scaled to [0, 1] over ``results``,
    reference point 1.1), then by trial number. With no ``costs``: by the score alone."""
    if not results:
        return []
    points = _points(results, score, costs)
    low, high = points.min(axis=0), points.max(axis=0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    ranks = np.asarray(moocore.pareto_rank(scaled))
    order: list[int] = []
    for rank in sorted(set(ranks.tolist())):
        members = np.flatnonzero(ranks == rank)
        if scaled.shape[1] == 1:  # one objective: a rank's members tie on it
            contrib = np.zeros(len(members))
        else:
            contrib = np.asarray(moocore.hv_contributions(scaled[members],
                                                          ref=[1.1] * scaled.shape[1]))
        by_member = dict(zip(members.tolist(), contrib.tolist(), strict=True))
        order += sorted(by_member, key=lambda i: (-by_member[i], results[i].number))
    return [results[i] for i in order]


def mixed_order(results: Sequence[FrozenTrial], score: str,
                costs: Sequence[str] = ("params", "macs"),
                score_share: float = 0.0) -> list[FrozenTrial]:
    """``results`` of one rung, best first, the score alone and :func:`pareto_order` taking
    turns: every first ``i`` hold ``ceil(i * score_share)`` taken by the score (each the best
    score not yet taken), the rest in Pareto order. ``0``: Pareto order; ``1``: by the score."""
    by_score = pareto_order(results, score, ())
    by_pareto = pareto_order(results, score, costs) if score_share < 1 else by_score
    order: list[FrozenTrial] = []
    taken: set[int] = set()
    from_score = 0
    while len(order) < len(results):
        turn = from_score < math.ceil((len(order) + 1) * score_share - 1e-9)
        pick = next(t for t in (by_score if turn else by_pareto) if t.number not in taken)
        from_score += int(turn)
        order.append(pick)
        taken.add(pick.number)
    return order


def candidate_ranking(trials: Sequence[FrozenTrial], objectives: Sequence[str],
                      rungs: Rungs) -> list[FrozenTrial]:
    """One result per candidate, best first: its furthest finished rung result; a candidate
    that got further ranks above every one that stopped below it, and candidates that stopped
    at the same rung rank by :func:`mixed_order` there, at the study's score share (so TPE's
    good group holds that share of the best scores, as the promotions do).

    What the ``sh`` strategy's sampler models: each design once, judged by how far successive
    halving took it, so a promoted design is not also counted by its lower-rung results, and a
    design stopped at rung 0 still says how good it was there.
    """
    furthest: dict[int, FrozenTrial] = {}
    for rung in range(rungs.count):
        for trial in trials:
            if is_rung_result(trial, rung, rungs.top):
                furthest[candidate_of(trial)] = trial
    score, costs = score_objective(objectives), cost_objectives(objectives)
    ranked: list[FrozenTrial] = []
    for rung in reversed(range(rungs.count)):
        ranked += mixed_order([t for t in furthest.values() if rung_of(t) == rung], score,
                              costs, rungs.score_share)
    return ranked
