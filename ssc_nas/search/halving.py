"""Multi-objective asynchronous successive halving (``--strategy sh``), its state in the study.

Every candidate starts at rung 0 and trains for a fraction ``eta ** -(rungs - 1 - r)`` of the
proxy schedule at rung ``r``; the top rung is the whole schedule, so a design that reaches it
has exactly the result the ``full`` strategy would give it. A trial whose result is in the top
``1 / eta`` of its rung, by non-dominated sorting of the score and the study's cost objectives
(params and MACs by default; the score alone for ``--objectives val_loss``) with hypervolume
contribution breaking ties within a front, is promoted (``--score-share``: that share of the
top chosen by the score alone first, the rest in that order): a new trial with the same parameters
(``promoted_from``, ``rung`` + 1) continues from its parent's checkpoint, not from scratch
(asynchronous: as soon as a rung has ``eta`` results, as in ASHA, Li et al. 2020; multi-objective
as in MO-ASHA, Schmucker et al. 2021).

Everything a decision needs is in the Optuna storage, so workers on many machines share it:

* a trial below the top rung ends PRUNED (stopped early, in Optuna's words) with its rung's
  results in user attributes (``rung``, ``val_loss``, ``val_accuracy``, ``rung_results``: every
  rung it and its ancestors reached); only top-rung trials are COMPLETE, so ``best_trials``,
  the front and the report never mix a partial result with a whole-schedule one;
* a promotion is claimed by creating an Optuna study named :func:`claim_name`: study names are
  unique in every RDB storage (SQLite, PostgreSQL), so of two workers that want to promote the
  same trial, one creation fails and that worker moves on. The winner enqueues the child and
  deletes the claim;
* a killed worker's trial is failed by its heartbeat and retried with the same attributes (the
  runner's retry callback), so a killed rung is re-run from the same parent checkpoint.

Checkpoints are files (:func:`checkpoint_path`) in ``--checkpoint-dir`` (default: beside the
SQLite file); workers on several machines need a shared folder, or a promoted trial whose
parent checkpoint is missing retrains from the start with the same seed (recorded as
``resumed: false``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from .config import CLAIM_MARK
from .results import count_trained, promoted_numbers
from .rungs import (
    Rungs,
    cost_objectives,
    is_rung_result,
    pareto_order,
    rung_of,
    rungs_from_attr,
    score_objective,
)
from .storage import claim, release, sqlite_path

__all__ = [
    "CHECKPOINT_DIR",
    "LOW_RUNG_BN_IMAGES",
    "checkpoint_path",
    "claim_name",
    "count_candidates",
    "finished",
    "default_checkpoint_dir",
    "promotable",
    "promote",
    "promotion_order",
    "promotion_ranking",
    "study_progress_count",
]

# BatchNorm re-estimation images below the top rung (the top rung uses train.BN_IMAGES, as the
# full strategy does): at 1024 images it took 1.0 s of a 2.2 s rung 0 (mnist-5k, ResNet-20,
# one 2-core CPU thread); 256 images still give every channel's statistics >= 12k pixels.
LOW_RUNG_BN_IMAGES = 256
CHECKPOINT_DIR = Path("ssc-nas-checkpoints")  # storages without a folder of their own
# What a promoted trial carries from its parent, besides the parameters.
_CARRIED = ("architecture", "summary", "params", "macs", "reference", "candidate",
            "rung_results")


def promotion_order(results: Sequence[FrozenTrial], score: str, eta: int,
                    costs: Sequence[str] = ("params", "macs"),
                    score_share: float = 0.0) -> list[FrozenTrial]:
    """The top ``k = len(results) // eta`` results of one rung: the best ``ceil(k *
    score_share)`` by the score alone, then the rest in :func:`~.rungs.pareto_order` by the
    score and ``costs`` (skipping those already chosen)."""
    k = len(results) // eta
    return promotion_ranking(results, score, k, costs, score_share)[:k]


def promotion_ranking(results: Sequence[FrozenTrial], score: str, k: int,
                      costs: Sequence[str] = ("params", "macs"),
                      score_share: float = 0.0) -> list[FrozenTrial]:
    """All ``results`` of one rung in the order :func:`promotion_order` takes its top ``k``
    from: the best ``ceil(k * score_share)`` by the score alone, then the others in
    :func:`~.rungs.pareto_order`."""
    n_score = math.ceil(k * score_share - 1e-9) if costs else 0
    chosen = pareto_order(results, score, ())[:n_score]
    numbers = {t.number for t in chosen}
    return chosen + [t for t in pareto_order(results, score, costs) if t.number not in numbers]


def promotable(trials: Sequence[FrozenTrial], objectives: Sequence[str],
               rungs: Rungs) -> list[FrozenTrial]:
    """Trials in the top ``1 / eta`` of their rung, and the reference designs (always
    promoted, so the front keeps its yardsticks at the whole schedule), not yet promoted;
    highest rung first."""
    score, costs = score_objective(objectives), cost_objectives(objectives)
    promoted = promoted_numbers(trials)
    out: list[FrozenTrial] = []
    for rung in reversed(range(rungs.top)):
        results = [t for t in trials if is_rung_result(t, rung, rungs.top)]
        top = promotion_order(results, score, rungs.eta, costs, rungs.score_share)
        chosen = {t.number for t in top}
        top += [t for t in results if "reference" in t.user_attrs and t.number not in chosen]
        out += [t for t in top if t.number not in promoted]
    return out


def count_candidates(trials: Sequence[FrozenTrial], rungs: Rungs) -> int:
    """Candidates with a finished rung-0 result: what ``--trials`` counts under ``sh``."""
    return sum(is_rung_result(t, 0, rungs.top) for t in trials)


def finished(trials: Sequence[FrozenTrial], objectives: Sequence[str], rungs: Rungs,
             target: int | None) -> bool:
    """All ``target`` candidates trained and every promotion they earned run: nothing
    running, waiting or promotable (then the checkpoints are no longer needed)."""
    if any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials):
        return False
    if target is not None and count_candidates(trials, rungs) < target:
        return False
    return not promotable(trials, objectives, rungs)


def study_progress_count(study: optuna.Study) -> int:
    """What the study's ``trials`` target counts: trained trials, or (``sh``) candidates."""
    trials = study.get_trials(deepcopy=False)
    rungs = rungs_from_attr(study.user_attrs.get("strategy"))
    return count_trained(study) if rungs is None else count_candidates(trials, rungs)


def claim_name(study_name: str, number: int) -> str:
    return f"{study_name}{CLAIM_MARK}{number}"


def promote(study: optuna.Study, storage: BaseStorage, parent: FrozenTrial) -> bool:
    """Enqueue ``parent``'s promotion unless another worker claims it first; True if enqueued.

    The claim is the creation of a study named :func:`claim_name` (unique in the storage); the
    winner checks that no child exists yet, enqueues one and deletes the claim.
    """
    name = claim_name(study.study_name, parent.number)
    if not claim(storage, name):
        return False  # another worker is promoting it
    try:
        if any(t.user_attrs.get("promoted_from") == parent.number
               for t in study.get_trials(deepcopy=False)):
            return False  # promoted meanwhile by a worker that has released its claim
        attrs = {k: parent.user_attrs[k] for k in _CARRIED if k in parent.user_attrs}
        attrs.update(rung=rung_of(parent) + 1, promoted_from=parent.number)
        attrs.setdefault("candidate", parent.number)
        study.enqueue_trial(parent.params, user_attrs=attrs)
        return True
    finally:
        release(storage, name)


def default_checkpoint_dir(storage_url: str) -> Path:
    """``ssc-nas.db`` -> ``ssc-nas.checkpoints`` beside it; other storages:
    ``ssc-nas-checkpoints`` in the working folder."""
    path = sqlite_path(storage_url)
    return path.with_suffix(".checkpoints") if path is not None else CHECKPOINT_DIR


def checkpoint_path(folder: str | Path, study_name: str, number: int) -> Path:
    """Where trial ``number``'s training state is kept between rungs."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name)
    return Path(folder) / safe / f"trial-{number}.pt"
