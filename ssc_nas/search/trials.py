"""The trial runner: propose -> cost -> budget constraint -> (prescreen) -> train -> tell.

:class:`TrialRunner` is what one process needs to run trials of one study; ``run_search`` and
``ssc-nas worker`` both build one from the study's own description.

Every trial is made with ``study.ask()`` and ended with ``study.tell()``, and holds a heartbeat
from ask to tell (:class:`~.storage.Heartbeats`), so a killed worker's trials are failed and
retried whichever way they were made. What becomes of a trial, and how it is stored:

* trained: COMPLETE with its measured values;
* over budget: COMPLETE with the worst score (``objectives.untrained_value``: val loss ``inf``
  or accuracy 0), its analytic params and MACs (latency ``inf``) and constraint values > 0:
  infeasible, so Optuna's samplers learn
  from it (NSGA-II's constrained domination ranks it below every trained trial; TPE puts it in
  its bad group) while ``study.best_trials`` and every count of trained trials leave it out;
* stopped at a lower rung or promoted (``--strategy sh``, :mod:`.halving`): PRUNED, its rung's
  results in user attributes; a promotion is a new trial that continues from the checkpoint
  (``promoted_from``), which makes its parent "promoted" rather than "stopped";
* prescreened out, surplus, duplicate: FAIL with the user attribute that names the cause.
  Samplers and Optuna's intersection search space ignore FAIL trials, so these neither count
  in TPE's good/bad split nor take knobs out of the multivariate search space;
* interrupted (Ctrl-C): FAIL with ``interrupted``. The candidate it was training, and any
  trial it had popped from the queue (a reference design, a promotion, a retry), is queued
  again with the attributes it was queued with, so the same command resumes it rather than
  lose it (a reference design would otherwise never be enqueued again).

``results.trial_kind`` reads the cause back.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial

from ..baselines.proxies import score as proxy_score
from ..budget import Budget, format_count
from ..cost import measure_latency
from ..data import Splits
from ..errors import SearchInterrupted, StudyError
from ..models import Architecture, build, save_atomically
from ..spaces import BoundSpace
from ..train import BN_IMAGES, TrainConfig, Trainer, TrainResult, train_model
from .config import RUN_CLAIM_MARK
from .halving import (
    CHECKPOINT_DIR,
    LOW_RUNG_BN_IMAGES,
    checkpoint_path,
    count_candidates,
    promotable,
    promote,
)
from .objectives import untrained_value
from .results import count_trained, count_trials, is_trained
from .rungs import Rungs, is_rung_result, rung_of
from .samplers import worker_id
from .storage import Heartbeats, claim, release

__all__ = ["Interrupt", "TrialRunner", "fail_running"]

Candidate = tuple[optuna.Trial, Architecture, Any]


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
    """What one process needs to run trials of one study: the study's own description.

    ``storage`` is the study's storage; with it every trial this runner holds gets heartbeats.
    """

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
    storage: RDBStorage | None = None
    #: ``--strategy sh``: successive halving over these rungs (None: ``full``, every candidate
    #: trains the whole schedule); checkpoints between rungs go to ``checkpoint_dir``.
    rungs: Rungs | None = None
    checkpoint_dir: Path | None = None
    rejected: int = 0
    duplicates: int = 0
    completed_here: int = 0
    # Per open trial: the user attributes it was popped from the queue with (absent: a fresh
    # trial), the parameters of its proposed candidate, and the one in training.
    _queued: dict[int, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _proposed: dict[int, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _training: int | None = field(default=None, init=False, repr=False)
    poll: float = 1.0
    _open: dict[int, optuna.Trial] = field(default_factory=dict, init=False, repr=False)
    _beats: Heartbeats | None = field(default=None, init=False, repr=False)
    _claimed: set[int] = field(default_factory=set, init=False, repr=False)

    # -- asking and telling ------------------------------------------------------------------

    def _ask(self) -> optuna.Trial:
        while True:
            with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with optimize":
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = self.study.ask()  # we record the heartbeats ourselves (Heartbeats)
            # Popped from the queue: queued trials all come with user attributes (a reference
            # design's ``reference``; ``promoted_from``; a retried trial's own;
            # ``interrupted_trial``), a trial that ``ask()`` samples afresh has none.
            attrs = trial.user_attrs  # (one read of the storage)
            if not attrs or self._claim(trial.number):
                break
            # Another worker popped the same queued trial and trains it: Optuna pops a queued
            # trial by reading it WAITING, then writing RUNNING, and on SQLite (pysqlite) the
            # read is not in the write's transaction, so two workers can both pop it. Seen in
            # CI: both trained reference trial 2, and the slower one failed on telling it.
        self._open[trial.number] = trial
        if attrs:
            self._queued[trial.number] = dict(attrs)
        if self._beats is not None:
            self._beats.hold(trial.number)
        return trial

    def _tell(self, trial: optuna.Trial, values: Sequence[float] | None = None,
              state: TrialState | None = None) -> None:
        try:
            self.study.tell(trial, values, state=state)
        finally:
            self._open.pop(trial.number, None)
            self._queued.pop(trial.number, None)
            self._proposed.pop(trial.number, None)
            if self._training == trial.number:
                self._training = None
            if self._beats is not None:
                self._beats.release(trial.number)
            if trial.number in self._claimed:
                self._unclaim(trial.number)

    def _run_claim(self, number: int) -> str:
        return f"{self.study.study_name}{RUN_CLAIM_MARK}{number}"

    def _claim(self, number: int) -> bool:
        """Claim a popped queued trial (the creation of a uniquely named study, as
        ``halving.promote`` claims a promotion); False if another worker holds it."""
        if self.storage is None:
            return True
        if not claim(self.storage, self._run_claim(number)):
            return False
        self._claimed.add(number)
        return True

    def _unclaim(self, number: int) -> None:
        self._claimed.discard(number)
        release(self.storage, self._run_claim(number))

    def _fail_open(self, interrupted: bool = False) -> None:
        """No trial of this runner stays RUNNING after an error or an interrupt; after an
        interrupt, each is marked ``interrupted`` and what it held is queued again."""
        for trial in list(self._open.values()):
            if interrupted:
                with contextlib.suppress(Exception):  # the trial is failed all the same
                    self._requeue(trial)
            with contextlib.suppress(Exception):
                self._tell(trial, state=TrialState.FAIL)

    def _requeue(self, trial: optuna.Trial) -> None:
        """Queue the candidate of an interrupted ``trial`` again, so that the same command
        resumes it: the one in training (as the same candidate: its seed and, under ``sh``, its
        rung), or one popped from the queue with the attributes it was queued with. Fresh
        candidates not yet training (prescreen entrants) are dropped: the sampler proposes
        anew. A trial interrupted before its candidate was drawn (a second Ctrl-C) has no
        parameters to queue."""
        queued, params = self._queued.get(trial.number), self._proposed.get(trial.number)
        training = trial.number == self._training
        if params is None or not (training or queued is not None):
            trial.set_user_attr("interrupted",
                                "stopped by Ctrl-C before training; not queued again")
            return
        attrs = {k: v for k, v in (queued or {}).items() if k != "interrupted"}
        attrs.setdefault("candidate", trial.number)
        attrs["interrupted_trial"] = trial.number
        self.study.enqueue_trial(params, user_attrs=attrs)
        trial.set_user_attr("interrupted", "stopped by Ctrl-C; its candidate was queued again")

    def from_queue(self, trial: optuna.Trial) -> bool:
        """Popped from the queue (a reference design, a promotion, a retried or an interrupted
        trial queued again), as :meth:`_ask` found it; False once the trial is told."""
        return trial.number in self._queued

    # -- one candidate -----------------------------------------------------------------------

    def _propose(self, trial: optuna.Trial) -> Candidate | None:
        """Sample, cost and record a candidate; None (and the trial told) when over budget."""
        arch = self.bound.suggest(trial, self.budget)
        self._proposed[trial.number] = dict(trial.params)
        cost = self.bound.cost(arch)
        trial.set_user_attr("architecture", arch.to_dict())
        trial.set_user_attr("summary", arch.summary())
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("macs", cost.macs)
        with warnings.catch_warnings():  # a retried trial comes with its (equal) constraints
            warnings.filterwarnings("ignore", "The constraint value is ignored", UserWarning)
            for key, value in self.budget.violations(cost).items():
                trial.set_constraint(key, value)
        if self.budget.fits(cost):
            return trial, arch, cost
        self.rejected += 1
        trial.set_user_attr("rejected", f"over budget ({format_count(cost.params)} params, "
                                        f"{format_count(cost.macs)} MACs; not trained)")
        values = {"params": float(cost.params), "macs": float(cost.macs)}
        self._tell(trial, [values[o] if o in values else untrained_value(o)
                           for o in self.objectives])
        return None

    def _prescreened(self, first: Candidate) -> tuple[Candidate, list[Candidate]]:
        """Ask the sampler for ``prescreen_k - 1`` more candidates, score all with the
        zero-cost proxy and keep the best; the others end FAIL (``prescreened_out``), never
        trained. Returns the winner and any queued trial an ask popped meanwhile (a retry
        enqueued by another process): those are trained as they are, never prescreened."""
        info = self.splits.info
        x, y = (t[:64] for t in self.splits.train.tensors)
        candidates = [first]
        queued: list[Candidate] = []
        for _ in range(self.prescreen_k - 1):
            extra = self._ask()
            from_queue = self.from_queue(extra)
            proposed = self._propose(extra)
            if proposed is not None:
                (queued if from_queue else candidates).append(proposed)
        scored = []
        for cand, a, _ in candidates:
            torch.manual_seed(self.seed * 100_003 + cand.number)
            model = build(a, info.in_channels, info.num_classes, info.input_size)
            value = proxy_score(model, self.prescreen, x, y)
            cand.set_user_attr(f"proxy_{self.prescreen}", value)
            scored.append(value)
        best = max(range(len(candidates)), key=lambda i: (scored[i], -candidates[i][0].number))
        for i, (cand, _, _) in enumerate(candidates):
            if i != best:
                cand.set_user_attr("prescreened_out", f"{self.prescreen} below trial "
                                                      f"{candidates[best][0].number}")
                self._tell(cand, state=TrialState.FAIL)
        return candidates[best], queued

    def _surplus(self, trial: optuna.Trial) -> bool:
        """With many workers, a fresh trial started once the target is taken is not run.

        It is told FAIL with ``surplus`` before any parameter is sampled, so it leaves the
        intersection search space (which reads COMPLETE and PRUNED trials) alone. A trial
        popped from the queue (a reference design, a retry) is never surplus: the study may end
        one such trial over its target rather than lose it.
        """
        if self.target is None or self.from_queue(trial):
            return False
        others = self.study.get_trials(deepcopy=False)
        ahead = sum(self._counts(t) or (t.state == TrialState.RUNNING and t.number < trial.number
                                        and "promoted_from" not in t.user_attrs)
                    for t in others)
        if ahead < self.target:
            return False
        trial.set_user_attr("surplus", f"the study already has {self.target} trials")
        self._tell(trial, state=TrialState.FAIL)
        return True

    def step(self) -> None:
        """Ask for one trial and take it to the end: surplus, over budget, or trained (after
        the prescreen, when there is one). Trials popped from the queue (the reference designs)
        are trained as they are: never prescreened, and prescreen candidates never pop them."""
        try:
            trial = self._ask()
            from_queue = self.from_queue(trial)  # before the trial is told
            if self._surplus(trial):
                return
            first = self._propose(trial)
            if first is None:
                return
            queued: list[Candidate] = []
            if self.prescreen is not None and self.prescreen_k > 1 and not from_queue:
                first, queued = self._prescreened(first)
            for candidate in (first, *queued):
                self._train_and_tell(*candidate)
        except BaseException as exc:  # an interrupt or error never leaves a trial RUNNING
            self._fail_open(interrupted=isinstance(exc, KeyboardInterrupt))
            raise

    def _train_and_tell(self, trial: optuna.Trial, arch: Architecture, cost: Any) -> None:
        values = self._evaluate(trial, arch, cost)
        below_top = self.rungs is not None and rung_of(trial) < self.rungs.top
        try:
            if below_top:  # stopped at this rung, maybe promoted later: results in attributes
                self._tell(trial, state=TrialState.PRUNED)
            else:
                self._tell(trial, values)
        except ValueError as exc:
            if "Cannot tell a" not in str(exc):
                raise
            self._record_duplicate(trial, values)
            return
        self.completed_here += 1
        parent = trial.user_attrs.get("promoted_from")
        if self.rungs is not None and parent is not None:  # its child has told: not needed
            checkpoint_path(self._checkpoints, self.study.study_name, parent).unlink(
                missing_ok=True)

    def _counts(self, trial: optuna.FrozenTrial) -> bool:
        """Whether ``trial`` counts towards ``target``: trained (``full``), or a finished
        rung-0 result (``sh``: the target counts candidates, not promotions)."""
        if self.rungs is None:
            return is_trained(trial)
        return is_rung_result(trial, 0, self.rungs.top)

    @property
    def _checkpoints(self) -> Path:
        return self.checkpoint_dir or CHECKPOINT_DIR

    def _record_duplicate(self, trial: optuna.Trial, values: list[float]) -> None:
        """SQLite has no row locks, so two workers can pop the same enqueued trial; the first
        result stands. The second is kept visible as a FAIL trial with ``duplicate`` (and its
        values), so it is counted and printed, never silently dropped."""
        self.duplicates += 1
        attrs = {**trial.user_attrs, "duplicate": (
            f"trial {trial.number} was also run here by {worker_id()}; another worker told it "
            f"first, so these values {[round(v, 6) for v in values]} were not told")}
        self.study.add_trial(create_trial(
            state=TrialState.FAIL, params=trial.params, distributions=trial.distributions,
            user_attrs=attrs))

    def _evaluate(self, trial: optuna.Trial, arch: Architecture, cost: Any) -> list[float]:
        """Train ``arch`` as ``trial`` and return its objective values."""
        if self.reporter is not None:
            self.reporter.trial_started(trial.number, arch, cost)
        self._training = trial.number  # until it is told (an interrupt queues it again)
        result = self._train(trial, arch)
        loss = result.final_loss
        values: dict[str, float] = {"accuracy": result.final_accuracy,
                                    # a diverged run (NaN) ranks last rather than failing
                                    "val_loss": loss if loss is not None and math.isfinite(loss)
                                    else math.inf,
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
        return [values[o] for o in self.objectives]

    def _train(self, trial: optuna.Trial, arch: Architecture) -> TrainResult:
        info = self.splits.info
        trial.set_user_attr("worker", worker_id())
        # Weights start from the trial's seed (a promotion's: its candidate's), so a trial
        # trained again, a retry or a promotion retrained from scratch, starts the same.
        torch.manual_seed(self._seed(trial))
        model = build(arch, info.in_channels, info.num_classes, info.input_size)
        reporter = self.reporter
        on_batch = (lambda d, t: reporter.batch(d, t)) if reporter is not None else None
        if self.rungs is not None:
            result = self._train_rung(trial, model, on_batch)
        else:
            result = train_model(
                model, self.splits.train, self.splits.val, self.train,
                num_classes=info.num_classes, seed=self._seed(trial),
                device=self.device, on_batch=on_batch,
                should_stop=lambda: self.interrupt.requested,
            )
        trial.set_user_attr("val_accuracy", round(result.final_accuracy, 5))
        trial.set_user_attr("val_accuracy_curve", [round(a, 5) for a in result.val_accuracy])
        trial.set_user_attr("train_loss_curve", [round(x, 5) for x in result.train_loss])
        if result.final_loss is not None:  # the continuous proxy score: less seed noise
            trial.set_user_attr("val_loss", round(result.final_loss, 5))
            trial.set_user_attr("val_loss_curve", [round(x, 5) for x in result.val_loss])
        trial.set_user_attr("epochs", trial.user_attrs["rung_results"][-1]["epochs"]
                            if self.rungs is not None else result.epochs_run)
        trial.set_user_attr("wall_time_s", round(result.seconds, 3))
        if result.stopped_early:
            trial.set_user_attr("stopped_early", result.stopped_early)
        return result

    def _seed(self, trial: optuna.Trial) -> int:
        """The training seed: one per candidate (a promotion keeps its candidate's)."""
        return self.seed * 100_003 + int(trial.user_attrs.get("candidate", trial.number))

    def _train_rung(self, trial: optuna.Trial, model: torch.nn.Module,
                    on_batch: Any) -> TrainResult:
        """Train ``trial`` to the end of its rung: a fresh candidate from the start, a promoted
        one from its parent's checkpoint; its own checkpoint is kept below the top rung."""
        assert self.rungs is not None
        rung, parent = rung_of(trial), trial.user_attrs.get("promoted_from")
        trial.set_user_attr("rung", rung)
        trial.set_user_attr("candidate", int(trial.user_attrs.get("candidate", trial.number)))
        # One seed per candidate: a promotion retrained from scratch follows its parent's path.
        trainer = Trainer(model, self.splits.train, self.train, seed=self._seed(trial),
                          device=self.device)
        if parent is not None:
            source = checkpoint_path(self._checkpoints, self.study.study_name, parent)
            resumed = source.exists()
            if resumed:
                trainer.load_state_dict(torch.load(source, map_location=trainer.device,
                                                   weights_only=False))
            trial.set_user_attr("resumed", resumed)
        start = time.perf_counter()
        train_loss = trainer.train_steps(self.rungs.steps(rung, trainer.total_steps), on_batch,
                                         lambda: self.interrupt.requested)
        trainer.recalibrate_batchnorm(BN_IMAGES if rung == self.rungs.top
                                      else LOW_RUNG_BN_IMAGES)
        accuracy, loss = trainer.scores(self.splits.val)
        result = trainer.result
        result.train_loss.append(train_loss)
        result.val_accuracy.append(accuracy)
        result.val_loss.append(loss)
        result.epochs_run = trainer.epoch
        result.seconds = time.perf_counter() - start  # this rung's time
        if rung < self.rungs.top:
            target = checkpoint_path(self._checkpoints, self.study.study_name, trial.number)
            target.parent.mkdir(parents=True, exist_ok=True)
            save_atomically(trainer.state_dict(), target)  # a kill never leaves half of it
        history = list(trial.user_attrs.get("rung_results", []))
        history.append({"rung": rung, "steps": trainer.step,
                        "epochs": round(trainer.step / trainer.steps_per_epoch, 4),
                        "val_loss": round(loss, 5), "val_accuracy": round(accuracy, 5),
                        "seconds": round(result.seconds, 3)})
        trial.set_user_attr("rung_results", history)
        return result

    def _promote(self) -> None:
        """Enqueue the first promotion no other worker has claimed (``--strategy sh``)."""
        assert self.rungs is not None and self.storage is not None
        trials = self.study.get_trials(deepcopy=False)
        for parent in promotable(trials, self.objectives, self.rungs):
            if promote(self.study, self.storage, parent):
                return

    def _halving_action(self) -> str:
        """``train`` (a promotion waits, or candidates are still to start), ``wait`` (all
        candidates started; running trials may still promote) or ``done``."""
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return "train"
        started = sum(self._counts(t) or (t.state == TrialState.RUNNING
                                          and "promoted_from" not in t.user_attrs)
                      for t in trials)
        if self.target is None or started < self.target:
            return "train"
        if any(t.state == TrialState.RUNNING for t in trials):
            return "wait"
        return "done"

    def progress_count(self) -> int:
        """What ``target`` counts: trained trials, or (``sh``) candidates with a rung-0
        result."""
        if self.rungs is None:
            return count_trained(self.study)
        return count_candidates(self.study.get_trials(deepcopy=False), self.rungs)

    def _next_action(self) -> str:
        """``train`` one more trial, ``wait`` for other workers' trials, or ``done``."""
        if self.rungs is not None:
            self._promote()
            return self._halving_action()
        complete = count_trained(self.study)
        if self.target is not None and complete >= self.target:
            # A retry enqueued after the target was taken still runs (one over rather than a
            # lost candidate): a worker can start a fresh trial between the stale trial's FAIL
            # and its retry's enqueue, which fail_stale_trials does in that order.
            return "train" if waiting_retry(self.study) else "done"
        running = count_trials(self.study, TrialState.RUNNING)
        if self.target is not None and complete + running >= self.target:
            return "wait"  # another worker holds the last trials, in case one of them dies
        return "train"

    def run(self) -> int:
        """Run trials until the study has ``target`` trained ones (``sh``: candidates, and
        every promotion they earn), or time runs out."""
        study = self.study
        optuna.storages.fail_stale_trials(study)  # trials of workers that died before we came
        started = self.progress_count()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._beats = Heartbeats(self.storage, study)
        with self.interrupt.installed(), self._beats.running():
            while not self.interrupt.requested:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                action = self._next_action()
                if action == "done":
                    break
                if action == "wait":
                    optuna.storages.fail_stale_trials(study)
                    time.sleep(self.poll)
                    continue
                try:
                    self.step()
                except KeyboardInterrupt:
                    self.interrupt.requested = True
                    fail_running(study)
                done = self.progress_count()
                if self.reporter is not None:
                    self.reporter.study_progress(study, done)
                if self.rejected > 1000 * max(1, done - started + 1):
                    raise StudyError(
                        "the sampler keeps proposing over-budget candidates "
                        f"({self.rejected} rejected); raise the budget or use --sampler random"
                    )
        self._beats = None
        if self.interrupt.requested:
            raise SearchInterrupted(
                f"interrupted: {self.progress_count()} trials complete in study "
                f"{study.study_name!r}; run the same command to resume"
            )
        return self.completed_here


def waiting_retry(study: optuna.Study) -> bool:
    """A heartbeat retry (``failed_trial`` system attr) waits in the queue."""
    return any("failed_trial" in t.system_attrs
               for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def fail_running(study: optuna.Study) -> None:
    """Safety net: no trial of this process stays RUNNING after an interrupt."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == worker_id():
            with contextlib.suppress(Exception):
                study.tell(trial.number, state=TrialState.FAIL)

