"""The search: one multi-objective Optuna study per (dataset, space, budget).

Objectives: maximize proxy validation accuracy, minimize params, minimize MACs per image
(optionally minimize measured latency). Budgets are constraints, not objectives: a candidate is
costed analytically before training and, when over budget, recorded as PRUNED with its
constraint values and never trained; Optuna's ``constraints_func`` sees the same values.

A study is self-describing (space, budget, dataset, objectives, proxy schedule and toolkit
version are study user attributes) and resumable: running the same command again continues it
until ``trials`` candidates have completed. A study created with another space, budget,
dataset or objectives refuses to be mixed with this run.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from . import __version__
from .baselines.proxies import PROXIES
from .baselines.proxies import score as proxy_score
from .budget import Budget, format_count
from .cost import measure_latency
from .data import Splits, dataset_info, load_splits
from .errors import SSCNasError, StudyError
from .models import Architecture, build
from .spaces import (
    BoundSpace,
    ParamGroup,
    SearchSpace,
    check_budget,
    load_space,
    parse_space,
)
from .train import TrainConfig, TrainResult, resolve_device, train_model

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "SearchConfig",
    "SearchInterrupted",
    "SearchRun",
    "default_study_name",
    "front",
    "make_sampler",
    "open_study",
    "reference_designs",
    "run_search",
]

# Heartbeats, multivariate TPE and metric names are experimental in Optuna; we use them on purpose.
warnings.filterwarnings("ignore", category=ExperimentalWarning)

OBJECTIVES = ("accuracy", "params", "macs", "latency")
SAMPLERS = ("tpe", "nsga2", "random")
DEFAULT_STORAGE = "sqlite:///ssc-nas.db"
# Study attributes that must match for a run to join an existing study.
# ssc-nas compare stores its pruning-at-init baselines in "<study>-baselines".
BASELINES_SUFFIX = "-baselines"
COMPATIBLE_KEYS = ("space", "budget", "dataset", "objectives", "subset")


class SearchInterrupted(SSCNasError):
    """Ctrl-C: the running trial was marked FAIL; completed trials are safe; rerun to resume."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search run needs; the CLI flags and ``studies/*.yaml`` keys map onto it."""

    budget: Budget
    space: str = "resnet20-ssc"
    dataset: str = "mnist-5k"
    data_dir: str = "data"
    download: bool = False
    trials: int | None = 20
    timeout: float | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    subset: float = 1.0
    sampler: str = "tpe"
    study: str | None = None
    storage: str = DEFAULT_STORAGE
    seed: int = 0
    device: str = "auto"
    objectives: tuple[str, ...] = ("accuracy", "params", "macs")
    latency_batch: int = 32
    reference_designs: bool = True
    workers: int = 1
    heartbeat: float = 30.0
    prescreen: str | None = None
    prescreen_k: int = 10

    def __post_init__(self) -> None:
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or "accuracy" not in self.objectives or len(set(self.objectives)) != len(
            self.objectives
        ):
            raise StudyError(
                f"--objectives must be distinct names from {', '.join(OBJECTIVES)} including "
                f"accuracy, but got {','.join(self.objectives)}"
            )
        if self.sampler not in SAMPLERS:
            raise StudyError(f"--sampler must be one of {', '.join(SAMPLERS)}, "
                             f"but got {self.sampler!r}")
        if self.trials is not None and self.trials < 1:
            raise StudyError(f"--trials must be >= 1, but got {self.trials}")
        if self.prescreen is not None and self.prescreen not in PROXIES:
            raise StudyError(f"--prescreen must be one of {', '.join(PROXIES)}, "
                             f"but got {self.prescreen!r}")
        if self.prescreen_k < 1:
            raise StudyError(f"--prescreen-k must be >= 1, but got {self.prescreen_k}")
        check_heartbeat(self.heartbeat)
        if self.workers < 1:
            raise StudyError(f"--workers must be >= 1, but got {self.workers}")
        if self.trials is None and self.timeout is None:
            raise StudyError("give --trials N or --timeout (e.g. 30m): a search needs a limit")


def default_study_name(config: SearchConfig, space: SearchSpace) -> str:
    """``<dataset>-<space>-<budget>``, so the same command resumes the same study."""
    parts = [config.dataset, space.name]
    if config.budget.params is not None:
        parts.append(format_count(config.budget.params))
    if config.budget.macs is not None:
        parts.append(f"{format_count(config.budget.macs)}macs")
    return "-".join(parts)


# -- study ------------------------------------------------------------------------------------


def make_sampler(name: str, seed: int, trials: int | None = None) -> optuna.samplers.BaseSampler:
    """Optuna's samplers; each trial's budget constraints reach them via ``set_constraint``.

    ``tpe`` (default) starts modelling after 10 trials, which suits short searches; ``nsga2``
    uses generations of ``min(50, max(8, trials // 3))``.
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)
    if name == "nsga2":
        population = min(50, max(8, (trials or 60) // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyError(f"--sampler must be one of {', '.join(SAMPLERS)}, but got {name!r}")


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (plain or ``file:...?uri=true``); None otherwise."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: RDBStorage will say so
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    database = parsed.database
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database).expanduser()


def check_heartbeat(heartbeat: float) -> None:
    if not (isinstance(heartbeat, int | float) and math.isfinite(heartbeat) and heartbeat >= 1):
        raise StudyError(f"--heartbeat must be a number of seconds >= 1, but got {heartbeat!r}")


SCHEMA_RACE_RETRIES = 5  # opening a fresh database that another process is creating


def make_storage(url: str, heartbeat: float = 30.0, must_exist: bool = False) -> RDBStorage:
    """An RDB storage with heartbeats, so a trial whose worker dies is failed, not left RUNNING.

    ``must_exist``: a SQLite file that is not there is an error (never create an empty one).
    """
    check_heartbeat(heartbeat)
    kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        if must_exist and not path.exists():
            raise StudyError(f"{url}: no such database file (run ssc-nas search first, or "
                             "pass --storage)")
        if not path.resolve().parent.is_dir():
            raise StudyError(f"--storage {url}: folder {path.resolve().parent} does not exist")
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    retry = RetryHeartbeatStaleTrialCallback(max_retry=2)
    attempt = 0
    while True:
        try:
            return RDBStorage(url, heartbeat_interval=round(heartbeat),
                              heartbeat_stale_trial_callback=retry, **kwargs)
        except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use this URL"
            if attempt < SCHEMA_RACE_RETRIES and _lost_schema_race(exc):
                attempt += 1
                time.sleep(0.2 * attempt)  # another process is creating the tables
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StudyError(f"cannot open storage {url}: {reason}") from None


def _lost_schema_race(exc: Exception) -> bool:
    """Two processes opening a fresh database at once both try to create Optuna's tables.

    The loser sees a duplicate alembic version row or an existing table; the tables are fine,
    so opening again succeeds.
    """
    text = str(exc)
    return any(s in text for s in ("alembic_version", "already exists", "duplicate key"))


def open_study(config: SearchConfig, space: SearchSpace, study_name: str,
               attrs: dict[str, Any]) -> optuna.Study:
    """Create the study, or load it after checking it was made for the same search."""
    storage = make_storage(config.storage, config.heartbeat)
    directions = ["maximize" if o == "accuracy" else "minimize" for o in config.objectives]
    sampler = make_sampler(config.sampler, config.seed, config.trials)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if study_name in existing:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        mismatched = [k for k in COMPATIBLE_KEYS if study.user_attrs.get(k) != attrs[k]]
        if mismatched:
            were = "; ".join(f"{k}: {study.user_attrs.get(k)!r}" for k in mismatched)
            raise StudyError(
                f"study {study_name!r} in {config.storage} was created for another search "
                f"({were}); pass --study NEW_NAME to start a new one"
            )
        return study
    try:
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    directions=directions, sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyError(f"another process created study {study_name!r} in {config.storage} "
                         "just now; run the same command again to join it") from None
    study.set_metric_names(list(config.objectives))  # names in optuna-dashboard
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


# -- reference designs ------------------------------------------------------------------------


def _alternate(first: dict[str, Any], second: dict[str, Any]) -> Callable[[int, ParamGroup], dict]:
    return lambda i, _group: first if i % 2 == 0 else second


def reference_designs(bound: BoundSpace) -> dict[str, Any]:
    """The classic special cases, as knob values for every layer (or a per-layer rule)."""
    first = bound.groups[0].choices["groups"] if bound.groups else (1,)
    groups = [g for g in first if isinstance(g, int)] or [1]
    dense = {"groups": 1, "pattern": "full", "spatial_fraction": 1.0, "pointwise_fraction": 0.0,
             "phases": "cover"}
    return {
        "standard": dense,
        "groupwise": {**dense, "groups": max(groups)},
        "depthwise-separable": _alternate({**dense, "groups": "depthwise"},
                                          {**dense, "pattern": "center"}),
        "hetconv-p4": {**dense, "spatial_fraction": 0.25, "pointwise_fraction": 1.0},
        "uniform-ssc": {**dense, "groups": 2, "pattern": "plus", "spatial_fraction": 0.5,
                        "pointwise_fraction": 0.5},
    }


def enqueue_reference_designs(study: optuna.Study, bound: BoundSpace,
                              budget: Budget) -> list[tuple[str, float]]:
    """Enqueue each classic design at the widest width that fits; returns (name, width)."""
    done = []
    for name, knobs in reference_designs(bound).items():
        for width in sorted(bound.space.width, reverse=True):
            params = bound.params_for(width, knobs)
            if params is None:
                break
            if budget.fits(bound.cost(bound.from_params(params))):
                study.enqueue_trial(params, user_attrs={"reference": name},
                                    skip_if_exists=True)
                done.append((name, width))
                break
    return done


# -- running ----------------------------------------------------------------------------------


class _Interrupt:
    """First Ctrl-C asks the run to stop at the next safe point; a second one is immediate."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Interrupt]:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class SearchRun:
    """The outcome of :func:`run_search`."""

    study: optuna.Study
    study_name: str
    storage: str
    completed: int
    new_trials: int
    rejected: int
    references: list[tuple[str, float]]


def _study_attrs(config: SearchConfig, space: SearchSpace, shape: dict[str, Any]) -> dict:
    return {
        "ssc_nas_version": __version__,
        "space": space.to_dict(),
        "budget": config.budget.to_dict(),
        "dataset": config.dataset,
        "input": shape,
        "objectives": list(config.objectives),
        "subset": config.subset,
        "train": config.train.to_dict(),
        "sampler": config.sampler,
        "seed": config.seed,
        "latency_batch": config.latency_batch,
        "prescreen": config.prescreen,
        "prescreen_k": config.prescreen_k,
    }


def _count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def count_complete(study: optuna.Study) -> int:
    return _count(study, TrialState.COMPLETE)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_seed(seed: int, worker_index: int | None = None) -> int:
    """The sampler seed of one worker: fixed for a given ``--worker-index``; otherwise drawn
    from host and pid, so workers started by hand on many machines sample different candidates.
    """
    key = _worker_id() if worker_index is None else f"index {worker_index}"
    return zlib.crc32(f"{seed}/{key}".encode())


@dataclass
class _Job:
    """What one process needs to run trials of one study: the study's own description."""

    study: optuna.Study
    bound: BoundSpace
    budget: Budget
    objectives: tuple[str, ...]
    train: TrainConfig
    splits: Splits
    seed: int
    device: torch.device
    latency_batch: int
    target: int | None
    timeout: float | None
    reporter: Any
    interrupt: _Interrupt = field(default_factory=_Interrupt)
    prescreen: str | None = None
    prescreen_k: int = 10
    rejected: int = 0
    completed_here: int = 0
    poll: float = 1.0

    def _propose(self, trial: optuna.Trial) -> tuple[Architecture, Any] | None:
        """Sample, cost and record a candidate; None (trial PRUNED) when over budget."""
        arch = self.bound.suggest(trial)
        cost = self.bound.cost(arch)
        trial.set_user_attr("architecture", arch.to_dict())
        trial.set_user_attr("summary", arch.summary())
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("macs", cost.macs)
        for key, value in self.budget.violations(cost).items():
            trial.set_constraint(key, value)
        if self.budget.fits(cost):
            return arch, cost
        self.rejected += 1
        trial.set_user_attr("rejected", f"over budget ({format_count(cost.params)} params, "
                                        f"{format_count(cost.macs)} MACs; not trained)")
        return None

    def _prescreened(self, trial: optuna.Trial, arch: Architecture,
                     cost: Any) -> tuple[optuna.Trial, Architecture, Any]:
        """Ask the sampler for ``prescreen_k - 1`` more candidates, score all with the
        zero-cost proxy and keep the best; the others end PRUNED, never trained."""
        info = self.splits.info
        x, y = (t[:64] for t in self.splits.train.tensors)
        candidates = [(trial, arch, cost)]
        for _ in range(self.prescreen_k - 1):
            extra = self.study.ask()
            proposed = self._propose(extra)
            if proposed is None:
                self.study.tell(extra, state=TrialState.PRUNED)
                continue
            candidates.append((extra, *proposed))
        scored = []
        for cand, a, _ in candidates:
            torch.manual_seed(self.seed * 100_003 + cand.number)
            model = build(a, info.in_channels, info.num_classes, info.input_size)
            value = proxy_score(model, self.prescreen, x, y)
            cand.set_user_attr(f"proxy_{self.prescreen}", value)
            scored.append(value)
        best = max(range(len(candidates)), key=lambda i: (scored[i], -candidates[i][0].number))
        for i, (cand, _, _) in enumerate(candidates):
            if i != best and cand is not trial:
                cand.set_user_attr("prescreened_out", f"{self.prescreen} below trial "
                                                      f"{candidates[best][0].number}")
                self.study.tell(cand, state=TrialState.PRUNED)
        return candidates[best]

    def objective(self, trial: optuna.Trial) -> Sequence[float]:
        self._refuse_surplus(trial)
        proposed = self._propose(trial)
        if proposed is None:
            raise optuna.TrialPruned(trial.user_attrs["rejected"])
        arch, cost = proposed
        if self.prescreen is not None and self.prescreen_k > 1:
            winner, arch, cost = self._prescreened(trial, arch, cost)
            if winner is not trial:
                try:
                    values = self._evaluate(winner, arch, cost)
                except BaseException:  # an interrupt or error never leaves it RUNNING
                    self.study.tell(winner, state=TrialState.FAIL)
                    raise
                self.study.tell(winner, values)
                trial.set_user_attr("prescreened_out", f"{self.prescreen} below trial "
                                                       f"{winner.number}")
                raise optuna.TrialPruned("prescreened out")
        return self._evaluate(trial, arch, cost)

    def _evaluate(self, trial: optuna.Trial, arch: Architecture, cost: Any) -> list[float]:
        """Train ``arch`` as ``trial`` and return its objective values."""
        if self.reporter is not None:
            self.reporter.trial_started(trial.number, arch, cost)
        result = self._train(trial, arch)
        values: dict[str, float] = {"accuracy": result.final_accuracy,
                                    "params": float(cost.params), "macs": float(cost.macs)}
        if "latency" in self.objectives:
            info = self.splits.info
            shape = (info.in_channels, *info.input_size)
            model = build(arch, info.in_channels, info.num_classes, info.input_size)
            values["latency"] = measure_latency(model, shape, 1, self.device)
            batch = measure_latency(model, shape, self.latency_batch, self.device, repeats=5)
            trial.set_user_attr("latency_batch1_s", values["latency"])
            trial.set_user_attr(f"latency_batch{self.latency_batch}_s", batch)
        if self.reporter is not None:
            self.reporter.trial_finished(trial.number, result, cost)
        self.completed_here += 1
        return [values[o] for o in self.objectives]

    def _refuse_surplus(self, trial: optuna.Trial) -> None:
        """With many workers, a trial started once the target is taken is not run."""
        if self.target is None:
            return
        others = self.study.get_trials(deepcopy=False,
                                       states=(TrialState.COMPLETE, TrialState.RUNNING))
        ahead = sum(t.state == TrialState.COMPLETE or t.number < trial.number for t in others)
        if ahead >= self.target:
            trial.set_user_attr("surplus", f"the study already has {self.target} trials")
            raise optuna.TrialPruned("surplus")

    def _train(self, trial: optuna.Trial, arch: Architecture) -> TrainResult:
        info = self.splits.info
        trial.set_user_attr("worker", _worker_id())
        model = build(arch, info.in_channels, info.num_classes, info.input_size)
        reporter = self.reporter
        result = train_model(
            model, self.splits.train, self.splits.val, self.train,
            num_classes=info.num_classes, seed=self.seed * 100_003 + trial.number,
            device=self.device,
            on_batch=(lambda d, t: reporter.batch(d, t)) if reporter is not None else None,
            should_stop=lambda: self.interrupt.requested,
        )
        trial.set_user_attr("val_accuracy_curve", [round(a, 5) for a in result.val_accuracy])
        trial.set_user_attr("train_loss_curve", [round(x, 5) for x in result.train_loss])
        trial.set_user_attr("epochs", result.epochs_run)
        trial.set_user_attr("wall_time_s", round(result.seconds, 3))
        if result.stopped_early:
            trial.set_user_attr("stopped_early", result.stopped_early)
        return result

    def run(self) -> int:
        """Run trials until the study has ``target`` complete ones (or time runs out)."""
        study = self.study
        optuna.storages.fail_stale_trials(study)  # trials of workers that died before we came
        started = count_complete(study)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self.interrupt.installed():
            while not self.interrupt.requested:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                complete = count_complete(study)
                if self.target is not None and complete >= self.target:
                    break
                running = _count(study, TrialState.RUNNING)
                if self.target is not None and complete + running >= self.target:
                    # Another worker holds the last trials; wait in case one of them dies.
                    optuna.storages.fail_stale_trials(study)
                    time.sleep(self.poll)
                    continue
                try:
                    study.optimize(self.objective, n_trials=1, gc_after_trial=True)
                except KeyboardInterrupt:
                    self.interrupt.requested = True
                    _fail_running(study)
                except ValueError as exc:
                    # SQLite has no row locks, so two workers can pop the same enqueued trial;
                    # the first result stands and the second worker just goes on.
                    if "Cannot tell a COMPLETE trial" not in str(exc):
                        raise
                done = count_complete(study)
                if self.reporter is not None:
                    self.reporter.study_progress(study, done)
                if self.rejected > 1000 * max(1, done - started + 1):
                    raise StudyError(
                        "the sampler keeps proposing over-budget candidates "
                        f"({self.rejected} rejected); raise the budget or use --sampler random"
                    )
        if self.interrupt.requested:
            raise SearchInterrupted(
                f"interrupted: {count_complete(study)} trials complete in study "
                f"{study.study_name!r}; run the same command to resume"
            )
        return self.completed_here


def _fail_running(study: optuna.Study) -> None:
    """Safety net: no trial of this process stays RUNNING after an interrupt."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == _worker_id():
            with contextlib.suppress(Exception):
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


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
    shape = {"channels": info.in_channels, "size": list(info.input_size),
             "classes": info.num_classes}
    attrs = _study_attrs(config, space, shape)
    if splits is None:  # before the study exists, so missing data leave no empty study behind
        splits = load_splits(config.dataset, config.data_dir, subset=config.subset,
                             split_seed=config.seed, download=config.download)
    # Our own lines report trials; a failing trial re-raises its error with its traceback anyway.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(config, space, study_name, attrs)
    if config.trials is not None:
        study.set_user_attr("trials", config.trials)
    references: list[tuple[str, float]] = []
    if config.reference_designs:
        references = enqueue_reference_designs(study, bound, config.budget)
    started = count_complete(study)
    if reporter is not None:
        reporter.start(study, config.trials, started)
    if config.workers > 1:
        rejected = _run_workers(study, config, reporter)
    else:
        train_config = config.train.for_dataset(info.augment)
        job = _Job(study, bound, config.budget, config.objectives, train_config, splits,
                   config.seed, device, config.latency_batch, config.trials, config.timeout,
                   reporter, prescreen=config.prescreen, prescreen_k=config.prescreen_k)
        job.run()
        rejected = job.rejected
    done = count_complete(study)
    return SearchRun(study, study_name, config.storage, done, done - started, rejected,
                     references)


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
    sampler = make_sampler(attrs["sampler"], worker_seed(seed, worker_index), attrs.get("trials"))
    study = optuna.load_study(study_name=study_name, storage=store, sampler=sampler)
    info = dataset_info(attrs["dataset"])
    bound = BoundSpace(space, info.in_channels, info.num_classes, info.input_size)
    splits = load_splits(attrs["dataset"], data_dir, subset=attrs["subset"], split_seed=seed)
    train_config = TrainConfig(**attrs["train"]).for_dataset(info.augment)
    job = _Job(study, bound, Budget(**attrs["budget"]), tuple(attrs["objectives"]),
               train_config, splits, seed, resolve_device(device),
               int(attrs.get("latency_batch", 32)), attrs.get("trials"), timeout, reporter,
               prescreen=attrs.get("prescreen"), prescreen_k=int(attrs.get("prescreen_k", 10)))
    if reporter is not None:
        reporter.start(study, attrs.get("trials"), count_complete(study))
    return job.run()


def _run_workers(study: optuna.Study, config: SearchConfig, reporter: Any) -> int:
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
        procs.append(subprocess.Popen(cmd, env=env))
    interrupt = _Interrupt()
    with interrupt.installed():
        while any(p.poll() is None for p in procs):
            time.sleep(1.0)
            if reporter is not None:
                reporter.study_progress(study, count_complete(study))
    codes = [p.returncode for p in procs]
    if interrupt.requested or any(c == 130 for c in codes):
        raise SearchInterrupted(
            f"interrupted: {count_complete(study)} trials complete in study "
            f"{study.study_name!r}; run the same command to resume"
        )
    failed = [i for i, c in enumerate(codes) if c != 0]
    reached = config.trials is not None and count_complete(study) >= config.trials
    if failed and not reached:
        raise StudyError(f"worker(s) {failed} exited with codes {[codes[i] for i in failed]} "
                         "(negative: killed by that signal) before the study reached its "
                         "trials; run the same command to resume")
    return _count(study, TrialState.PRUNED)


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


def parse_duration(text: str | float | int | None) -> float | None:
    """``90``, ``90s``, ``30m``, ``2h`` -> seconds."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    units = {"s": 1, "m": 60, "h": 3600}
    t = str(text).strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise StudyError(f"--timeout must be a duration like 90s, 30m or 2h, but got {text!r}")
    return value


# -- study configs (studies/*.yaml) -----------------------------------------------------------

CONFIG_KEYS = ("budget", "flops", "space", "dataset", "data_dir", "download", "trials",
               "timeout", "epochs", "subset", "batch_size", "optimizer", "lr", "sampler", "study",
               "storage", "seed", "device", "objectives", "latency_batch", "reference_designs",
               "workers", "heartbeat", "prescreen", "prescreen_k", "description")


def shipped_study_configs() -> dict[str, Path]:
    """Ready study configs that ship with ssc-nas, by name (``default``, ``cifar10-vgg16``...)."""
    from importlib import resources

    root = resources.files("ssc_nas") / "studies"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def load_study_config(path_or_name: str | Path) -> dict[str, Any]:
    """Read a study config: keys are the ``ssc-nas search`` flags with ``_`` for ``-``."""
    import yaml

    path = Path(path_or_name)
    if not path.exists():
        shipped = shipped_study_configs()
        key = path.stem if path.suffix == ".yaml" else str(path_or_name)
        key = Path(key).name
        if key not in shipped:
            raise StudyError(f"study config {str(path_or_name)!r} not found: give a YAML file or "
                             f"one of: {', '.join(sorted(shipped))}")
        path = shipped[key]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, OSError) as exc:
        raise StudyError(f"{path}: cannot read study config: "
                         f"{getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: a study config must be a YAML mapping of flag -> value")
    unknown = [k for k in data if k not in CONFIG_KEYS]
    if unknown:
        raise StudyError(f"{path}: unknown key {unknown[0]!r}; valid keys: "
                         f"{', '.join(CONFIG_KEYS)}")
    return data


# -- using a study ----------------------------------------------------------------------------


def load_existing_study(name: str | None, storage: str) -> optuna.Study:
    """Load a study by name; with no name, the only study in the storage."""
    store = make_storage(storage, must_exist=True)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)
             if not s.study_name.endswith(BASELINES_SUFFIX)]
    if name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StudyError(f"{storage} holds {len(names)} studies ({listing}); pass --study NAME")
        name = names[0]
    if name not in names and not name.endswith(BASELINES_SUFFIX):
        raise StudyError(f"no study {name!r} in {storage}; studies there: "
                         f"{', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=store)


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
