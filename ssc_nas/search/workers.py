"""Worker processes: ``ssc-nas worker`` joining a study from any machine, and the local
worker processes that ``--workers N`` starts."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna

from ..budget import Budget
from ..data import dataset_info, load_splits
from ..errors import SearchInterrupted, StudyError
from ..spaces import BoundSpace, parse_space
from ..train import TrainConfig, resolve_device
from .config import SearchConfig
from .halving import default_checkpoint_dir, study_progress_count
from .rungs import rungs_from_attr
from .samplers import make_sampler, resume_seed, worker_seed
from .storage import make_storage
from .trials import Interrupt, TrialRunner

__all__ = ["run_worker", "start_local_workers"]


def run_worker(
    study_name: str,
    storage: str,
    *,
    data_dir: str = "data",
    device: str = "auto",
    timeout: float | None = None,
    worker_index: int | None = None,
    heartbeat: float = 30.0,
    reporter: Any | None = None,
    checkpoint_dir: str | Path | None = None,
) -> int:
    """Join an existing study from any machine and run its trials until its target is met.

    Everything else (space, budget, dataset, objectives, proxy schedule) is read from the
    study itself. Returns the number of trials this worker completed.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    store = make_storage(storage, heartbeat, must_exist=True)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)]
    if study_name not in names:
        raise StudyError(f"no study {study_name!r} in {storage}; studies there: "
                         f"{', '.join(names) or 'none'}")
    probe = optuna.load_study(study_name=study_name, storage=store)
    attrs = probe.user_attrs
    if "space" not in attrs:
        raise StudyError(f"study {study_name!r} was not made by ssc-nas search")
    space_data = dict(attrs["space"])
    space = parse_space({k: v for k, v in space_data.items() if k != "name"},
                        source=f"study {study_name}", name=space_data["name"])
    seed = int(attrs["seed"])
    sampler = make_sampler(attrs["sampler"], resume_seed(worker_seed(seed, worker_index),
                                                         len(probe.get_trials(deepcopy=False))),
                           attrs.get("trials"),
                           halving=rungs_from_attr(attrs.get("strategy")) is not None)
    study = optuna.load_study(study_name=study_name, storage=store, sampler=sampler)
    info = dataset_info(attrs["dataset"])
    bound = BoundSpace(space, info.in_channels, info.num_classes, info.input_size)
    splits = load_splits(attrs["dataset"], data_dir, subset=attrs["subset"], split_seed=seed)
    train_config = TrainConfig(**attrs["train"]).for_dataset(info.augment)
    job = TrialRunner(study, bound, Budget(**attrs["budget"]), tuple(attrs["objectives"]),
               train_config, splits, seed, resolve_device(device),
               int(attrs.get("latency_batch", 32)), attrs.get("trials"), timeout, reporter,
               prescreen=attrs.get("prescreen"), prescreen_k=int(attrs.get("prescreen_k", 10)),
               storage=store, rungs=rungs_from_attr(attrs.get("strategy")),
               checkpoint_dir=Path(checkpoint_dir or default_checkpoint_dir(storage)))
    if reporter is not None:
        reporter.start(study, attrs.get("trials"), job.progress_count())
    return job.run()


def start_local_workers(study: optuna.Study, config: SearchConfig, reporter: Any,
                        checkpoint_dir: Path | None = None) -> None:
    """Start ``config.workers`` worker processes on this machine and wait for them."""
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    procs = []
    for i in range(config.workers):
        cmd = [sys.executable, "-m", "ssc_nas", "worker", "--study", study.study_name,
               "--storage", config.storage, "--data-dir", config.data_dir,
               "--device", config.device, "--worker-index", str(i), "--quiet",
               "--heartbeat", str(config.heartbeat)]
        if config.timeout is not None:
            cmd += ["--timeout", str(config.timeout)]
        if checkpoint_dir is not None:
            cmd += ["--checkpoint-dir", str(checkpoint_dir)]
        procs.append(subprocess.Popen(cmd, env=env))
    interrupt = Interrupt()
    with interrupt.installed():
        while running := [p for p in procs if p.poll() is None]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].wait(timeout=1.0)  # ends as soon as the last worker does
            if reporter is not None:
                reporter.study_progress(study, study_progress_count(study))
    codes = [p.returncode for p in procs]
    if interrupt.requested or any(c == 130 for c in codes):
        raise SearchInterrupted(
            f"interrupted: {study_progress_count(study)} trials complete in study "
            f"{study.study_name!r}; run the same command to resume"
        )
    failed = [i for i, c in enumerate(codes) if c != 0]
    reached = config.trials is not None and study_progress_count(study) >= config.trials
    if failed and not reached:
        raise StudyError(f"worker(s) {failed} exited with codes {[codes[i] for i in failed]} "
                         "(negative: killed by that signal) before the study reached its "
                         "trials; run the same command to resume")


