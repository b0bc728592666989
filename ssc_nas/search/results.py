"""Reading a study: its Pareto front, summary rows and exported trials.

What ``report/``, ``progress`` and the CLI read; nothing here runs a trial.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..budget import Budget, within_limits
from ..errors import StudyError
from ..models import Architecture, InputShape, describe, layer_table, write_architecture_file
from .config import BASELINES_SUFFIX, is_claim
from .objectives import (
    SCORE_LABELS,
    objective_names,
    score_name,
    sort_key,
    trial_accuracy,
    trial_val_loss,
)
from .rungs import rung_of
from .storage import make_storage

__all__ = [
    "CAUSES",
    "DUPLICATE",
    "INTERRUPTED",
    "LEGACY_REFERENCE_NAMES",
    "OVER_BUDGET",
    "PRESCREENED_OUT",
    "PROMOTED",
    "STOPPED",
    "SURPLUS",
    "TRAINED",
    "AgainstReferences",
    "FrontRow",
    "accuracy_se",
    "against_references",
    "best_accuracy",
    "best_val_loss",
    "binomial_se",
    "count_complete",
    "count_trained",
    "count_trials",
    "is_trained",
    "promoted_numbers",
    "trial_counts",
    "trial_kind",
    "export_trial",
    "untrained_note",
    "front",
    "front_rows",
    "reference_name",
    "study_input_shape",
    "study_objectives",
    "study_rows",
    "trial_design",
]

#: Reference-design names of older studies (trial attribute ``reference``) -> today's name.
LEGACY_REFERENCE_NAMES = {"uniform-ssc": "ssc-uniform"}


@dataclass(frozen=True)
class FrontRow:
    """One Pareto-front trial, best score first: what ``ssc-nas front`` prints and the
    report's front table shows. ``values`` maps each objective to the trial's value;
    ``accuracy`` and ``val_loss`` are the proxy's, whichever the study optimised (None where
    an old study did not keep one)."""

    number: int
    values: dict[str, float]
    accuracy: float | None
    params: int
    macs: int
    design: str
    width: float | None
    reference: str | None
    latency_s: float | None = None
    architecture: dict[str, Any] | None = None
    val_loss: float | None = None  # mean validation cross-entropy (studies since 2026-11-26)

    def to_dict(self) -> dict[str, Any]:
        """``ssc-nas front --json``: trial, each objective, accuracy and val_loss, design,
        architecture."""
        return {"trial": self.number, "accuracy": self.accuracy, "val_loss": self.val_loss,
                **self.values,
                "design": self.design, "architecture": self.architecture}


def reference_name(trial: FrozenTrial) -> str | None:
    """The trial's reference-design name (old names read as today's), or ``None``."""
    name = trial.user_attrs.get("reference")
    return None if name is None else LEGACY_REFERENCE_NAMES.get(name, name)


def study_input_shape(study: optuna.Study) -> InputShape | None:
    """The input shape the study searched for (attribute ``input``, either vocabulary)."""
    try:
        return InputShape.from_dict(study.user_attrs["input"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def trial_design(trial: FrozenTrial, shape: InputShape | None = None) -> str:
    """A readable design: ``<reference>: <plain-English summary>`` for reference designs."""
    try:
        text = describe(Architecture.from_dict(trial.user_attrs["architecture"]), shape)
    except (KeyError, TypeError, ValueError):
        text = str(trial.user_attrs.get("summary") or "")
    ref = reference_name(trial)
    return f"{ref}: {text}" if ref and text else ref or text


# What became of a trial; each finished trial has exactly one kind (``trial_kind``).
TRAINED = "trained"                  # COMPLETE, within budget: trained and told its values
OVER_BUDGET = "over budget"          # costed over a limit, never trained (user attr "rejected")
PRESCREENED_OUT = "prescreened out"  # lost the zero-cost prescreen, never trained
SURPLUS = "surplus"                  # started after the target was taken, never sampled
DUPLICATE = "duplicate"              # a second run of a trial another worker had told first
INTERRUPTED = "interrupted"          # stopped by Ctrl-C; its candidate queued again to resume
STOPPED = "stopped at a lower rung"  # --strategy sh: PRUNED below the top rung, results kept,
#                                      and no later trial continues its candidate
PROMOTED = "promoted"  # --strategy sh: PRUNED below the top rung; a later trial continues it
FAILED = "failed"
RUNNING = "running"
WAITING = "waiting"
# The causes of an untrained trial, in the order the CLI and the report list them.
CAUSES = (STOPPED, OVER_BUDGET, PRESCREENED_OUT, SURPLUS, DUPLICATE, INTERRUPTED)
KINDS = (TRAINED, *CAUSES, PROMOTED, FAILED, RUNNING, WAITING)


def promoted_numbers(trials: Iterable[FrozenTrial]) -> frozenset[int]:
    """Numbers of the trials that a later trial continues (``--strategy sh``: the
    ``promoted_from`` of a promotion): their candidates went on to a higher rung."""
    return frozenset(t.user_attrs["promoted_from"] for t in trials
                     if "promoted_from" in t.user_attrs)


def trial_kind(trial: FrozenTrial, promoted: Collection[int] = frozenset()) -> str:
    """One of ``KINDS``: what became of ``trial``, the same everywhere (CLI, report, progress).

    The cause is read from the user attribute the runner sets (``duplicate``, ``surplus``,
    ``prescreened_out``, ``interrupted``, ``rejected``), so it holds whichever state the trial
    was stored in:
    over-budget candidates are COMPLETE and infeasible (so that samplers learn from them), the
    others FAIL; studies made before this rule stored them all as PRUNED. A lower-rung trial is
    ``PROMOTED`` if its number is in ``promoted`` (:func:`promoted_numbers` of the study's
    trials), else ``STOPPED``: pass the set wherever the two are told apart.
    """
    if trial.state == TrialState.RUNNING:
        return RUNNING
    if trial.state == TrialState.WAITING:
        return WAITING
    attrs = trial.user_attrs
    if "duplicate" in attrs:
        return DUPLICATE
    if "surplus" in attrs:
        return SURPLUS
    if "prescreened_out" in attrs:
        return PRESCREENED_OUT
    if "interrupted" in attrs and trial.state == TrialState.FAIL:
        return INTERRUPTED
    infeasible = trial.state == TrialState.COMPLETE and not within_limits(trial.constraints)
    if "rejected" in attrs or infeasible:
        return OVER_BUDGET
    if trial.state == TrialState.PRUNED and "rung" in attrs:
        return PROMOTED if trial.number in promoted else STOPPED
    if trial.state == TrialState.COMPLETE:
        return TRAINED
    return FAILED


def is_trained(trial: FrozenTrial) -> bool:
    """COMPLETE with a measured accuracy: what the target, front, counts and report count."""
    return trial_kind(trial) == TRAINED


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """How many trials of the study are of each kind (``KINDS``, all keys present). With
    ``--strategy sh`` the ``STOPPED`` ones are the candidates that ended below the top rung:
    the lower-rung trials of a candidate that went on are ``PROMOTED``."""
    counts = dict.fromkeys(KINDS, 0)
    trials = study.get_trials(deepcopy=False)
    promoted = promoted_numbers(trials)
    for t in trials:
        counts[trial_kind(t, promoted)] += 1
    return counts


def count_trials(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def count_trained(study: optuna.Study) -> int:
    """Trained trials: what ``--trials`` counts (over-budget COMPLETE trials do not)."""
    return sum(is_trained(t) for t in study.get_trials(deepcopy=False,
                                                       states=(TrialState.COMPLETE,)))


count_complete = count_trained  # the name callers used before over-budget trials were COMPLETE


def accuracy_se(study: optuna.Study, accuracy: float) -> float | None:
    """The binomial standard error of a proxy accuracy measured on the study's validation
    images (``val_images``, recorded by ``run_search``); None for a study without it.

    A lower bound of the noise: it counts only the finite validation split, not the
    seed-to-seed spread of training, which is larger.
    """
    n = study.user_attrs.get("val_images")
    return binomial_se(accuracy, n) if n else None


def binomial_se(accuracy: float, images: int) -> float:
    """The binomial standard error of an accuracy measured on ``images`` images."""
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / images)


def study_objectives(study: optuna.Study) -> list[str]:
    """The study's objectives (``objectives`` attribute; legacy order for old studies)."""
    return objective_names(study.user_attrs.get("objectives"), len(study.directions))


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front (Optuna's ``best_trials``: feasible, non-dominated), best score
    (lowest val loss, or highest accuracy in an accuracy study) first."""
    objectives = study_objectives(study)
    return sorted(study.best_trials, key=lambda t: sort_key(t, objectives))


def _trained(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if is_trained(t)]


def best_accuracy(study: optuna.Study) -> float | None:
    """The highest proxy validation accuracy of any trained trial."""
    objectives = study_objectives(study)
    values = [a for t in _trained(study) if (a := trial_accuracy(t, objectives)) is not None]
    return max(values) if values else None


def best_val_loss(study: optuna.Study) -> float | None:
    """The lowest proxy validation loss of any trained trial (None before val loss was kept)."""
    objectives = study_objectives(study)
    values = [v for t in _trained(study) if (v := trial_val_loss(t, objectives)) is not None]
    return min(values) if values else None


#: Two single-seed proxy scores of equally good designs differ by more than this many seed
#: stds about 5 % of the time (2 x sqrt(2): the std of a difference of two independent runs).
NOISE_STDS = 2 * math.sqrt(2)


@dataclass(frozen=True)
class AgainstReferences:
    """The best searched design against the best reference design, on the proxy's score."""

    score: str  # the study's score objective: "val_loss" or "accuracy"
    searched: int  # trial numbers
    searched_score: float
    reference: int
    reference_name: str
    reference_score: float
    seed_std: float | None  # the proxy's measured seed-to-seed std of the score, if any

    @property
    def lead(self) -> float:
        """How far the searched design is ahead, in the score's units (negative: behind)."""
        difference = self.searched_score - self.reference_score
        return -difference if self.score == "val_loss" else difference

    @property
    def verdict(self) -> str | None:
        """``ahead``, ``behind`` or ``a tie`` against the seed noise; None where the proxy's
        seed noise was never measured."""
        if not self.seed_std:
            return None
        stds = self.lead / self.seed_std
        return "ahead" if stds > NOISE_STDS else "behind" if stds < -NOISE_STDS else "a tie"

    def describe(self) -> str:
        """One sentence, as ``ssc-nas front`` and the report say it."""
        label = SCORE_LABELS[self.score]
        text = (f"trial {self.searched} at {self.searched_score:.4f}, {self.reference_name} "
                f"(trial {self.reference}) at {self.reference_score:.4f} (proxy {label}): "
                f"{'ahead' if self.lead >= 0 else 'behind'} by {abs(self.lead):.4f}")
        if self.verdict is None:
            text += " (this proxy's seed noise was never measured"
        else:
            text += (f", {abs(self.lead) / self.seed_std:.1f} seed stds: {self.verdict} "
                     f"(beyond the noise from {NOISE_STDS:.1f} seed stds")
        return text + "; ssc-nas compare retrains both and scores them on test folds)"


def against_references(study: optuna.Study) -> AgainstReferences | None:
    """The best trained searched design against the best trained reference design (their
    proxy scores; with ``--strategy sh`` top-rung trials only, as in :func:`front`); None
    unless the study has both."""
    objectives = study_objectives(study)
    score = score_name(objectives)
    best_first = sorted(_trained(study), key=lambda t: sort_key(t, objectives))
    searched = next((t for t in best_first if reference_name(t) is None), None)
    reference = next((t for t in best_first if reference_name(t)), None)
    if searched is None or reference is None:
        return None
    index = objectives.index(score)
    std = (study.user_attrs.get("seed_noise") or {}).get(score)
    return AgainstReferences(
        score=score, searched=searched.number, searched_score=float(searched.values[index]),
        reference=reference.number, reference_name=str(reference_name(reference)),
        reference_score=float(reference.values[index]),
        seed_std=None if std is None else float(std))


def study_rows(storage: str) -> list[dict[str, Any]]:
    """One summary row per study in ``storage`` (for ``ssc-nas studies``); ``counts`` holds
    every ``trial_kind``, ``complete`` the trained trials."""
    store = make_storage(storage, must_exist=True)  # reading never creates an empty database
    rows = []
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        if is_claim(summary.study_name):  # a promotion claim left by a killed worker
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        counts = trial_counts(study)
        budget = study.user_attrs.get("budget", {})
        rows.append({
            "study": summary.study_name,
            "complete": counts[TRAINED],
            "counts": counts,
            "failed": counts[FAILED],
            "running": counts[RUNNING],
            "dataset": study.user_attrs.get("dataset"),
            "space": "(compare baselines)" if summary.study_name.endswith(BASELINES_SUFFIX)
            else study.user_attrs.get("space", {}).get("name"),
            "budget_params": budget.get("params"),
            "budget_macs": budget.get("macs"),
            "best_accuracy": best_accuracy(study),
            "best_val_loss": best_val_loss(study),
        })
    return rows


def _cost(trial: FrozenTrial, key: str, values: dict[str, float]) -> int:
    value = trial.user_attrs.get(key, values.get(key))
    return 0 if value is None else int(value)


def front_rows(study: optuna.Study) -> list[FrontRow]:
    """The Pareto front (:func:`front`) as rows, best accuracy first."""
    objectives = study_objectives(study)
    shape = study_input_shape(study)
    rows = []
    for t in front(study):
        values = dict(zip(objectives, t.values, strict=True))
        arch = t.user_attrs.get("architecture")
        rows.append(FrontRow(
            number=t.number, values=values, accuracy=trial_accuracy(t, objectives),
            params=_cost(t, "params", values), macs=_cost(t, "macs", values),
            design=trial_design(t, shape), width=(arch or {}).get("width"),
            reference=reference_name(t), latency_s=values.get("latency"), architecture=arch,
            val_loss=trial_val_loss(t, objectives),
        ))
    return rows


def untrained_note(study: optuna.Study, number: int) -> str | None:
    """What trial ``number`` is when it has no whole-schedule proxy score (over budget, a lower
    rung, failed, ...), in words; None for a trained trial."""
    trials = study.get_trials(deepcopy=False)
    trial = next(t for t in trials if t.number == number)
    kind = trial_kind(trial, promoted_numbers(trials))
    if kind == TRAINED:
        return None
    if kind == OVER_BUDGET:
        budget = study.user_attrs.get("budget")
        limit = Budget(**budget).describe() if isinstance(budget, dict) else "its budget"
        return f"trial {number} is over the study's budget ({limit}) and was never trained"
    if kind in (STOPPED, PROMOTED):
        return (f"trial {number} is rung {rung_of(trial)} of successive halving ({kind}): its "
                "proxy scores are from part of the schedule")
    return f"trial {number} has no proxy score of the whole schedule (kind: {kind})"


def export_trial(study: optuna.Study, number: int, path: str | Path, storage: str) -> Path:
    """Write trial ``number``'s architecture file (see ``ssc_nas.models.io``)."""
    trials = study.get_trials(deepcopy=False)
    t = next((t for t in trials if t.number == number), None)
    if t is None or "architecture" not in t.user_attrs:
        numbers = [t.number for t in front(study)]
        raise StudyError(f"study {study.study_name!r} has no trial {number} with an "
                         f"architecture; its front is trials {numbers}")
    objectives = study_objectives(study)
    kind = trial_kind(t, promoted_numbers(trials))
    arch = Architecture.from_dict(t.user_attrs["architecture"])
    shape = study_input_shape(study)
    if shape is None:
        raise StudyError(f"study {study.study_name!r} has no input shape (attribute 'input')")
    return write_architecture_file(
        path, arch, shape,
        source={"study": study.study_name, "trial": number, "storage": storage,
                "dataset": study.user_attrs.get("dataset"), "state": t.state.name,
                "kind": kind},
        cost={"params": t.user_attrs.get("params"), "macs": t.user_attrs.get("macs")},
        # A whole-schedule proxy score only: not an over-budget trial's worst value.
        proxy_accuracy=trial_accuracy(t, objectives) if kind == TRAINED else None,
        summary=trial_design(t, shape), layer_table=layer_table(arch, shape),
    )
