"""The search: one multi-objective Optuna study per (dataset, space, budget).

Objectives (``objectives``): minimize the proxy's validation loss (or maximize its validation
accuracy), minimize params, minimize MACs per image (optionally minimize measured latency).
Budgets are constraints, not objectives: a candidate is costed analytically before training
and, when over budget, never trained: it is told COMPLETE with the worst score (loss ``inf``,
accuracy 0) and its constraint values (``trial.set_constraint``) > 0, so the samplers learn
where the budget ends while the front and every count of trained trials leave it out
(``results.trial_kind``).

A study is self-describing (space, budget, dataset, objectives, proxy schedule and toolkit
version are study user attributes) and resumable: running the same command again continues it
until ``trials`` candidates have completed. A study created with another space, budget,
dataset or objectives refuses to be mixed with this run.

One concept per module (``docs/architecture.md``): ``config`` (what a search is asked to do),
``objectives`` (score and cost objectives, read back from trials), ``samplers``, ``storage``,
``references`` (the classic designs), ``results`` (reading a study), ``halving`` (successive
halving over rungs, ``--strategy sh``), ``trials`` (the trial runner), ``workers`` and ``run``
(``run_search``). The loop that trains (``run``, ``workers``: ``run_search``, ``SearchRun``,
``run_worker``) is imported when first used, so reading a study does not import torch.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from optuna.exceptions import ExperimentalWarning

from .._lazy import lazy_exports
from ..errors import SearchInterrupted
from .config import (
    AMP_CHOICES,
    BASELINES_SUFFIX,
    CLI_DEFAULTS,
    DEFAULT_SCORE_SHARE,
    DEFAULT_STORAGE,
    DEFAULT_TRIALS,
    OBJECTIVES,
    SAMPLERS,
    STRATEGIES,
    SearchConfig,
    default_study_name,
    load_study_config,
    parse_duration,
    shipped_study_configs,
)
from .objectives import DEFAULT_OBJECTIVES, SCORES, score_name, trial_accuracy, trial_val_loss
from .references import enqueue_reference_designs, reference_designs
from .results import (
    AgainstReferences,
    FrontRow,
    accuracy_se,
    against_references,
    best_accuracy,
    best_val_loss,
    binomial_se,
    count_complete,
    export_trial,
    front,
    front_rows,
    study_objectives,
    study_rows,
)
from .rungs import Rungs
from .samplers import make_sampler, worker_seed
from .storage import load_existing_study, make_storage, open_study, sqlite_path

# Heartbeats, multivariate TPE and metric names are experimental in Optuna; we use them on purpose.
warnings.filterwarnings("ignore", category=ExperimentalWarning)

__all__ = [
    "AMP_CHOICES",
    "BASELINES_SUFFIX",
    "CLI_DEFAULTS",
    "DEFAULT_OBJECTIVES",
    "DEFAULT_STORAGE",
    "DEFAULT_SCORE_SHARE",
    "DEFAULT_TRIALS",
    "OBJECTIVES",
    "SAMPLERS",
    "SCORES",
    "STRATEGIES",
    "AgainstReferences",
    "Rungs",
    "SearchConfig",
    "SearchInterrupted",
    "SearchRun",
    "accuracy_se",
    "against_references",
    "binomial_se",
    "best_accuracy",
    "best_val_loss",
    "count_complete",
    "default_study_name",
    "enqueue_reference_designs",
    "export_trial",
    "front",
    "front_rows",
    "FrontRow",
    "load_existing_study",
    "load_study_config",
    "make_sampler",
    "make_storage",
    "open_study",
    "parse_duration",
    "reference_designs",
    "run_search",
    "run_worker",
    "score_name",
    "shipped_study_configs",
    "sqlite_path",
    "study_objectives",
    "study_rows",
    "trial_accuracy",
    "trial_val_loss",
    "worker_seed",
]

__getattr__, __dir__ = lazy_exports(
    __name__, {"SearchRun": "run", "run_search": "run", "run_worker": "workers"}, globals())

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .run import SearchRun, run_search
    from .workers import run_worker
