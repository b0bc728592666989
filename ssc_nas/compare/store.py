"""Trained runs kept as trials of the study ``<ssc study>-baselines`` and reused by key."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState, create_trial

from ..search import BASELINES_SUFFIX, make_storage
from ..train import BN_IMAGES, TrainConfig
from .config import CompareConfig

__all__ = ["Run", "baselines_study", "run_key", "store_run", "stored_run"]


@dataclass(frozen=True)
class Run:
    """One trained (method, seed)."""

    method: str
    seed: int
    design: str
    params: int
    macs: int
    dense_macs: int | None
    accuracy: float
    val_accuracy: float
    train_time_s: float
    epochs: int
    reused: bool = False



def baselines_study(config: CompareConfig, ssc_study: str) -> optuna.Study:
    storage = make_storage(config.storage)
    name = ssc_study + BASELINES_SUFFIX
    if name in optuna.get_all_study_names(storage):
        return optuna.load_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    if "kind" not in study.user_attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["accuracy"])
        study.set_user_attr("kind", "ssc-nas compare")
        study.set_user_attr("ssc_study", ssc_study)
        study.set_user_attr("objectives", ["accuracy"])
        study.set_user_attr("dataset", config.dataset)
        study.set_user_attr("budget", config.budget.to_dict())
    return study


def run_key(method: str, seed: int, train: TrainConfig, setup: dict[str, Any],
            design: dict[str, Any]) -> str:
    """The identity of a stored run: every setting that changes its result.

    The toolkit version, the whole :class:`~ssc_nas.train.TrainConfig` actually used (epochs,
    batch size, optimizer, learning rate, momentum, weight decay, label smoothing,
    augmentation, early stop, memory format), the BatchNorm handling (statistics re-estimated
    on the first ``BN_IMAGES`` training images), the ``setup`` (dataset, split, fold, budget,
    family, and the device type, since CPU and GPU runs are not bit-identical) and the
    ``design``. A run is reused only when all of them match.
    """
    import ssc_nas  # read at call time: the version of the code that trains

    ident = {"method": method, "seed": seed, "version": ssc_nas.__version__,
             "train": train.to_dict(), "batchnorm": {"recalibrate_images": BN_IMAGES},
             **setup, "design": design}
    return json.dumps(ident, sort_keys=True)


def stored_run(study: optuna.Study, key: str) -> Run | None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if a.get("run_key") == key:
            return Run(a["method"], int(a["seed"]), a.get("design", ""), int(a["params"]),
                       int(a["macs"]), a.get("dense_macs"), float(a["accuracy"]),
                       float(a.get("val_accuracy", math.nan)), float(a["train_time_s"]),
                       int(a["epochs"]), reused=True)
    return None


def store_run(study: optuna.Study, run: Run, key: str, extra: dict[str, Any]) -> None:
    attrs = {
        "method": run.method, "seed": run.seed, "design": run.design, "params": run.params,
        "macs": run.macs, "dense_macs": run.dense_macs, "accuracy": run.accuracy,
        "val_accuracy": run.val_accuracy, "train_time_s": round(run.train_time_s, 3),
        "epochs": run.epochs, "run_key": key, **extra,
    }
    study.add_trial(create_trial(value=run.accuracy, user_attrs=attrs,
                                 state=TrialState.COMPLETE))


