"""Optuna samplers by name, and the sampler seed of each worker."""

from __future__ import annotations

import math
import os
import socket
import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from ..budget import within_limits
from ..errors import StudyError
from .config import SAMPLERS
from .rungs import candidate_of, candidate_ranking, rungs_from_attr

__all__ = ["BudgetTPESampler", "HalvingTPESampler", "make_sampler", "resume_seed", "worker_id",
           "worker_seed"]


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


class HalvingTPESampler(optuna.samplers.BaseSampler):
    """TPE for successive-halving studies (``--strategy sh``): it models each candidate once,
    ranked by how far successive halving took it and, within a rung, by the score and the
    Pareto order in turns at the study's score share (:func:`~.rungs.candidate_ranking`).

    Below the top rung a trial ends PRUNED without values (Optuna's ``report`` is
    single-objective), so plain multi-objective TPE would put every stopped candidate in its bad
    group unranked, and put a promoted design there too, once per lower-rung result, beside its
    single top-rung result in the good group. This sampler hands :class:`BudgetTPESampler` an
    in-memory single-objective study instead, rebuilt from the shared storage for each trial
    (so workers agree): one trial per ranked candidate, valued by its rank; over-budget
    candidates as they are (infeasible); candidates still training at rung 0 as PRUNED
    without a result, in the bad group, as TPE's constant liar does.
    """

    def __init__(self, seed: int | None = None, n_startup_trials: int = 10) -> None:
        self._tpe = BudgetTPESampler(seed=seed, multivariate=True,
                                     n_startup_trials=n_startup_trials, constant_liar=False)
        self._view: tuple[int, optuna.Study] | None = None
        # The last view built and the rows it holds, which the next view extends when its rows
        # start with them (new trials only, as while candidates are rejected over budget).
        self._built: tuple[optuna.storages.BaseStorage, str, list[tuple]] | None = None

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._tpe.sample_relative(self.view(study, trial), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(self.view(study, trial), trial, param_name,
                                            param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._view = None
        self._tpe.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def view(self, study: optuna.Study, trial: FrozenTrial) -> optuna.Study:
        """The study TPE models when sampling ``trial`` (built once per trial; the last one built
        is extended when it holds the first rows of this one)."""
        if self._view is not None and self._view[0] == trial.number:
            return self._view[1]
        rungs = rungs_from_attr(study.user_attrs.get("strategy"))
        if rungs is None:
            raise ValueError(f"HalvingTPESampler needs a study with --strategy sh; study "
                             f"{study.study_name!r} has none")
        trials = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        ranked = candidate_ranking(trials, study.user_attrs["objectives"], rungs)
        rank = {t.number: i for i, t in enumerate(ranked)}
        seen = {candidate_of(t) for t in ranked}
        rows: list[tuple] = []  # (trial, state, value or None, with constraints)
        for t in trials:  # in trial order, so TPE's weights by age still mean age
            if t.number in rank:
                rows.append((t, TrialState.COMPLETE, float(rank[t.number]), False))
            elif t.state == TrialState.COMPLETE and not within_limits(t.constraints):
                rows.append((t, TrialState.COMPLETE, float(len(ranked)), True))
            elif t.state == TrialState.RUNNING and t.params and candidate_of(t) not in seen:
                rows.append((t, TrialState.PRUNED, None, False))
        # Rows are the same when their trials' numbers, states, values and numbers of params are
        # (a worker's RUNNING trial gains its params one by one).
        keys = [(t.number, state, value, len(t.params)) for t, state, value, _ in rows]
        if self._built is not None and keys[:len(self._built[2])] == self._built[2]:
            # A new Study object on the last view's storage: a Study caches the trials it
            # gave its sampler, so the last one would not show TPE the rows added here.
            storage, name, done = self._built[0], self._built[1], len(self._built[2])
            view = optuna.load_study(study_name=name, storage=storage,
                                     sampler=optuna.samplers.RandomSampler())
        else:
            storage, done = optuna.storages.InMemoryStorage(), 0
            view = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler())
        view.add_trials([
            create_trial(state=state, values=None if value is None else [value],
                         params=t.params, distributions=t.distributions,
                         constraints=t.constraints if constrained else None)
            for t, state, value, constrained in rows[done:]])
        self._built = (storage, view.study_name, keys)
        self._view = (trial.number, view)
        return view


def make_sampler(name: str, seed: int, trials: int | None = None,
                 halving: bool = False) -> optuna.samplers.BaseSampler:
    """Optuna's samplers; each trial's budget constraints reach them via ``trial.set_constraint``
    (Optuna 5 reads those; we pass no ``constraints_func``).

    Over-budget candidates are told COMPLETE with constraint values > 0, so NSGA-II's
    constrained domination ranks them below every trained trial and TPE puts them in its bad
    group. ``tpe`` (default, :class:`BudgetTPESampler`; :class:`HalvingTPESampler` for a
    ``halving`` study, ``--strategy sh``) starts modelling after 10 trials, which suits short
    searches; ``nsga2`` uses generations of ``min(50, max(8, trials // 3))``.
    """
    if name == "tpe" and halving:
        return HalvingTPESampler(seed=seed, n_startup_trials=10)
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
