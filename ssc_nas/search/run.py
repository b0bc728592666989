"""``run_search``: create or resume the study, enqueue the reference designs and run trials in
this process or in local worker processes."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from .. import __version__
from ..data import Splits, dataset_info, load_splits
from ..models import Architecture, InputShape, build
from ..spaces import BoundSpace, SearchSpace, check_budget, load_space
from ..train import autocast_speedup, resolve_amp, resolve_device
from .config import SearchConfig, default_study_name
from .halving import (
    checkpoint_path,
    count_candidates,
    default_checkpoint_dir,
    finished,
)
from .objectives import seed_noise
from .references import enqueue_reference_designs
from .results import OVER_BUDGET, count_trained, trial_counts
from .rungs import rungs_from_attr
from .storage import make_storage, open_study, stored_settings
from .trials import TrialRunner
from .workers import start_local_workers

__all__ = ["SearchRun", "run_search"]


@dataclass
class SearchRun:
    """The outcome of :func:`run_search`."""

    study: optuna.Study
    study_name: str
    storage: str
    completed: int
    new_trials: int
    counts: dict[str, int]
    references: list[tuple[str, float]]

    @property
    def rejected(self) -> int:
        """Over-budget candidates in the study (``counts`` has every ``trial_kind``)."""
        return self.counts[OVER_BUDGET]


def _study_attrs(config: SearchConfig, space: SearchSpace, shape: dict[str, Any]) -> dict:
    return {
        "ssc_nas_version": __version__,
        "space": space.to_dict(),
        "budget": config.budget.to_dict(),
        "dataset": config.dataset,
        "input": shape,
        "objectives": list(config.objectives or ()),
        "subset": config.subset,
        "train": config.train.to_dict(),
        "sampler": config.sampler,
        "seed": config.seed,
        "latency_batch": config.latency_batch,
        "prescreen": config.prescreen,
        "prescreen_k": config.prescreen_k,
        "strategy": config.strategy_attr,
    }



def run_search(
    config: SearchConfig,
    *,
    reporter: Any | None = None,
    splits: Splits | None = None,
) -> SearchRun:
    """Run (or resume) the search described by ``config``.

    With ``config.workers > 1`` the trials run in that many ``ssc-nas worker`` processes
    against the same storage. ``reporter`` receives progress events (see
    ``ssc_nas.progress.SearchProgress``); ``splits`` lets tests reuse loaded data.
    """
    space = load_space(config.space)
    info = dataset_info(config.dataset)
    bound = BoundSpace(space, info.in_channels, info.num_classes, info.input_size)
    check_budget(bound, config.budget)
    device = resolve_device(config.device)
    study_name = config.study or default_study_name(config, space)
    shape = InputShape(info.in_channels, tuple(info.input_size), info.num_classes).to_dict()
    if splits is None:  # before the study exists, so missing data leave no empty study behind
        splits = load_splits(config.dataset, config.data_dir, subset=config.subset,
                             split_seed=config.seed, download=config.download)
    # Our own lines report trials; a failing trial re-raises its error with its traceback anyway.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = make_storage(config.storage, config.heartbeat)
    stored = stored_settings(storage, study_name)
    config = (config.resolved(None) if stored is None
              else config.resolved(stored.objectives, stored.score_share))
    measured: list[float] = []

    def probe() -> float:  # --amp auto, new study, CPU with bf16: time the family network
        model = build(Architecture(space.family, 1.0, {}), info.in_channels, info.num_classes,
                      info.input_size)
        measured.append(autocast_speedup(model, (info.in_channels, *info.input_size),
                                         info.num_classes, config.train.batch_size))
        return measured[-1]

    amp = resolve_amp(config.amp, device, None if stored is None else stored.amp, probe)
    config = replace(config, amp=amp, train=replace(config.train, amp=amp))
    attrs = _study_attrs(config, space, shape)
    study = open_study(config, space, study_name, attrs, storage=storage)
    if measured:
        study.set_user_attr("amp_speedup", round(measured[-1], 3))
        note = getattr(reporter, "note", None)
        if note is not None:
            note(f"--amp auto: a bf16 train step of the {space.family} network ran "
                 f"{measured[-1]:.2f}x as fast as float32 on this CPU, so the proxy trains "
                 + ("under bf16 autocast" if amp == "bf16" else "in float32"))
    if "val_images" not in study.user_attrs:  # what the proxy scores are measured on
        study.set_user_attr("val_images", len(splits.val))
    noise = seed_noise(config.dataset, space.name, config.train.epochs, config.subset,
                       config.train.amp)
    if noise is not None and "seed_noise" not in study.user_attrs:
        study.set_user_attr("seed_noise", noise)
    if config.trials is not None:
        study.set_user_attr("trials", config.trials)
    references: list[tuple[str, float]] = []
    if config.reference_designs:
        references = enqueue_reference_designs(study, bound, config.budget)
    rungs = rungs_from_attr(config.strategy_attr)
    started = count_trained(study)
    if reporter is not None:
        reporter.start(study, config.trials, started if rungs is None else
                       count_candidates(study.get_trials(deepcopy=False), rungs))
    checkpoints = Path(config.checkpoint_dir or default_checkpoint_dir(config.storage))
    if config.workers > 1:
        start_local_workers(study, config, reporter, checkpoints)
    else:
        train_config = config.train.for_dataset(info.augment)
        job = TrialRunner(study, bound, config.budget, config.objectives, train_config, splits,
                   config.seed, device, config.latency_batch, config.trials, config.timeout,
                   reporter, prescreen=config.prescreen, prescreen_k=config.prescreen_k,
                   storage=storage, rungs=rungs, checkpoint_dir=checkpoints)
        job.run()
    if rungs is not None and finished(study.get_trials(deepcopy=False), config.objectives, rungs,
                                      config.trials):
        shutil.rmtree(checkpoint_path(checkpoints, study_name, 0).parent, ignore_errors=True)
        with contextlib.suppress(OSError):  # the folder, once no study has checkpoints there
            checkpoints.rmdir()
    done = count_trained(study)
    return SearchRun(study, study_name, config.storage, done, done - started,
                     trial_counts(study), references)


