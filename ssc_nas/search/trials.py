"""The trial runner: propose -> cost -> budget constraint -> (prescreen) -> train -> tell.

:class:`TrialRunner` is what one process needs to run trials of one study; ``run_search`` and
``ssc-nas worker`` both build one from the study's own description.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from ..baselines.proxies import score as proxy_score
from ..budget import Budget, format_count
from ..cost import measure_latency
from ..data import Splits
from ..errors import SearchInterrupted, StudyError
from ..models import Architecture, build
from ..spaces import BoundSpace
from ..train import TrainConfig, TrainResult, train_model
from .results import count_complete, count_trials
from .samplers import worker_id

__all__ = ["Interrupt", "TrialRunner", "fail_running"]


class Interrupt:
    """First Ctrl-C asks the run to stop at the next safe point; a second one is immediate."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupt]:
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
class TrialRunner:
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
    interrupt: Interrupt = field(default_factory=Interrupt)
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
        trial.set_user_attr("worker", worker_id())
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
                running = count_trials(study, TrialState.RUNNING)
                if self.target is not None and complete + running >= self.target:
                    # Another worker holds the last trials; wait in case one of them dies.
                    optuna.storages.fail_stale_trials(study)
                    time.sleep(self.poll)
                    continue
                try:
                    study.optimize(self.objective, n_trials=1, gc_after_trial=True)
                except KeyboardInterrupt:
                    self.interrupt.requested = True
                    fail_running(study)
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


def fail_running(study: optuna.Study) -> None:
    """Safety net: no trial of this process stays RUNNING after an interrupt."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == worker_id():
            with contextlib.suppress(Exception):
                study.tell(trial.number, state=TrialState.FAIL)

