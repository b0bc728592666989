"""Optuna samplers by name, and the sampler seed of each worker."""

from __future__ import annotations

import math
import os
import socket
import warnings
import zlib
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ..budget import within_limits
from ..errors import StudyError
from .config import SAMPLERS

__all__ = ["BudgetTPESampler", "make_sampler", "resume_seed", "worker_id", "worker_seed"]


class BudgetTPESampler(optuna.samplers.TPESampler):
    """Multivariate TPE whose good group is the best 10 % of the *trained* trials.

    Optuna's multi-objective TPE puts the best ``ceil(0.1 n)`` trials in its good group, where
    ``n`` counts every COMPLETE and PRUNED trial. Over-budget candidates are stored COMPLETE
    and infeasible (so that TPE and NSGA-II learn where the budget ends); when they outnumber
    trained trials 9:1, ``ceil(0.1 n)`` would put every trained trial in the good group and
    only untrained ones in the bad group, and TPE would stop learning from accuracy. Here
    ``n`` is the number of trained (COMPLETE, feasible) trials instead, so the good/bad split is
    decided among trained trials; infeasible ones still go to the bad group, ranked by their
    constraint violation. (Optuna deprecates ``gamma`` from 4.9, with removal planned for 6.0.)
    """

    def __init__(self, **kwargs: Any) -> None:
        self._ssc_study: optuna.Study | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(gamma=self.good_group_size, **kwargs)

    def good_group_size(self, n: int) -> int:
        """TPE's ``gamma``: ``ceil(0.1 * trained trials)``, whatever ``n`` TPE counted."""
        if self._ssc_study is None:
            return math.ceil(0.1 * n)
        trained = sum(within_limits(t.constraints)
                      for t in self._ssc_study.get_trials(deepcopy=False,
                                                          states=(TrialState.COMPLETE,)))
        return math.ceil(0.1 * trained)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        self._ssc_study = study
        return super().sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        self._ssc_study = study
        return super().sample_independent(study, trial, param_name, param_distribution)


def make_sampler(name: str, seed: int, trials: int | None = None) -> optuna.samplers.BaseSampler:
    """Optuna's samplers; each trial's budget constraints reach them via ``trial.set_constraint``
    (Optuna 5 reads those; we pass no ``constraints_func``).

    Over-budget candidates are told COMPLETE with constraint values > 0, so NSGA-II's
    constrained domination ranks them below every trained trial and TPE puts them in its bad
    group. ``tpe`` (default, :class:`BudgetTPESampler`) starts modelling after 10 trials, which
    suits short searches; ``nsga2`` uses generations of ``min(50, max(8, trials // 3))``.
    """
    if name == "tpe":
        return BudgetTPESampler(seed=seed, multivariate=True, n_startup_trials=10)
    if name == "nsga2":
        population = min(50, max(8, (trials or 60) // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyError(f"--sampler must be one of {', '.join(SAMPLERS)}, but got {name!r}")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_seed(seed: int, worker_index: int | None = None) -> int:
    """The sampler seed of one worker: fixed for a given ``--worker-index``; otherwise drawn
    from host and pid, so workers started by hand on many machines sample different candidates.
    """
    key = worker_id() if worker_index is None else f"index {worker_index}"
    return zlib.crc32(f"{seed}/{key}".encode())



def resume_seed(seed: int, trials_so_far: int) -> int:
    """The sampler seed of a run that joins a study holding ``trials_so_far`` trials: ``seed``
    for a new study (so a fresh search is reproducible), a seed drawn from both otherwise.

    A resumed search that seeded its sampler with ``seed`` again would replay the same random
    draws: ``--sampler random`` repeated the study's first candidates (found on digits: 5 of 10
    trials were repeats after ``--trials 4`` then ``--trials 8``), as would TPE's and NSGA-II's
    random start.
    """
    if trials_so_far == 0:
        return seed
    return zlib.crc32(f"{seed}/after {trials_so_far} trials".encode())
