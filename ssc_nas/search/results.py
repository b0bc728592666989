"""Reading a study: its Pareto front, summary rows and exported trials.

What ``report/``, ``progress`` and the CLI read; nothing here runs a trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import StudyError
from ..models import Architecture
from .config import BASELINES_SUFFIX
from .storage import make_storage

__all__ = [
    "best_accuracy",
    "count_complete",
    "count_trials",
    "export_trial",
    "front",
    "front_rows",
    "study_rows",
]


def count_trials(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def count_complete(study: optuna.Study) -> int:
    return count_trials(study, TrialState.COMPLETE)



def front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front (Optuna's ``best_trials``: feasible, non-dominated), best accuracy first."""
    objectives = study.user_attrs.get("objectives", ["accuracy", "params", "macs"])
    acc = objectives.index("accuracy")
    return sorted(study.best_trials, key=lambda t: (-t.values[acc], t.number))


def best_accuracy(study: optuna.Study) -> float | None:
    objectives = study.user_attrs.get("objectives", ["accuracy"])
    acc = objectives.index("accuracy")
    values = [t.values[acc] for t in study.get_trials(deepcopy=False,
                                                      states=(TrialState.COMPLETE,))]
    return max(values) if values else None



def study_rows(storage: str) -> list[dict[str, Any]]:
    """One summary row per study in ``storage`` (for ``ssc-nas studies``)."""
    store = make_storage(storage)
    rows = []
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        budget = study.user_attrs.get("budget", {})
        rows.append({
            "study": summary.study_name,
            "complete": states.count(TrialState.COMPLETE),
            "rejected": states.count(TrialState.PRUNED),
            "failed": states.count(TrialState.FAIL),
            "running": states.count(TrialState.RUNNING),
            "dataset": study.user_attrs.get("dataset"),
            "space": "(compare baselines)" if summary.study_name.endswith(BASELINES_SUFFIX)
            else study.user_attrs.get("space", {}).get("name"),
            "budget_params": budget.get("params"),
            "budget_macs": budget.get("macs"),
            "best_accuracy": best_accuracy(study),
        })
    return rows


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The Pareto front as plain rows: trial, each objective, design, architecture."""
    objectives = study.user_attrs.get("objectives", ["accuracy", "params", "macs"])
    rows = []
    for t in front(study):
        row: dict[str, Any] = {"trial": t.number}
        row.update(dict(zip(objectives, t.values, strict=True)))
        row["design"] = t.user_attrs.get("reference") or t.user_attrs.get("summary", "")
        row["architecture"] = t.user_attrs.get("architecture")
        rows.append(row)
    return rows


def export_trial(study: optuna.Study, number: int, path: str | Path, storage: str) -> Path:
    """Write trial ``number``'s architecture file (see ``ssc_nas.models.io``)."""
    from .models import write_architecture_file

    trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not trials or "architecture" not in trials[0].user_attrs:
        numbers = [t.number for t in front(study)]
        raise StudyError(f"study {study.study_name!r} has no trial {number} with an "
                         f"architecture; its front is trials {numbers}")
    t = trials[0]
    objectives = study.user_attrs.get("objectives", ["accuracy", "params", "macs"])
    values = dict(zip(objectives, t.values, strict=True)) if t.values else {}
    return write_architecture_file(
        path, Architecture.from_dict(t.user_attrs["architecture"]), study.user_attrs["input"],
        source={"study": study.study_name, "trial": number, "storage": storage,
                "dataset": study.user_attrs.get("dataset"), "state": t.state.name},
        cost={"params": t.user_attrs.get("params"), "macs": t.user_attrs.get("macs")},
        proxy_accuracy=values.get("accuracy"),
    )
