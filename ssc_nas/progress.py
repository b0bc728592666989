"""Progress display of a search: one bar for the study, one for the running trial (rich)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .budget import format_count
from .cost import Cost
from .models import Architecture
from .search.results import CAUSES, best_accuracy, best_val_loss, trial_counts
from .train import TrainResult

__all__ = ["SearchProgress"]


class SearchProgress:
    """Receives :func:`ssc_nas.search.run_search` events and draws them."""

    def __init__(self, console: Console | None = None, enabled: bool = True,
                 on_start: Callable[[], None] | None = None) -> None:
        """``on_start`` runs once the study is open, before any bar is drawn."""
        self.console = console or Console(stderr=True)
        self.on_start = on_start
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, disable=not enabled,
            transient=False,
        )
        self._study_task: Any = None
        self._trial_task: Any = None
        self._front = 0

    def __enter__(self) -> SearchProgress:
        return self  # the bars start with the study (start), so an early error is its line only

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def note(self, text: str) -> None:
        """A one-off line about how the search runs (printed above the bars)."""
        self.progress.console.print(text)

    def start(self, study: optuna.Study, total: int | None, done: int) -> None:
        """A study with ``done`` of ``total`` complete trials (None: no trial target)."""
        if self.on_start is not None:
            self.on_start()
        self.progress.start()
        self._study_task = self.progress.add_task(self._study_text(study, done), total=total,
                                                  completed=done)
        self._trial_task = self.progress.add_task("trial", total=1, visible=False)

    def _study_text(self, study: optuna.Study, done: int) -> str:
        best = best_accuracy(study)
        loss = best_val_loss(study)
        best_txt = (f"{best:.3f}" if best is not None else "-") + (
            f"  best loss {loss:.3f}" if loss is not None else "")
        counts = trial_counts(study)
        untrained = ", ".join(f"{counts[c]} {c}" for c in CAUSES if counts[c])
        return (f"study  front {self._front:>2}  best acc {best_txt}"
                + (f"  not trained: {untrained}" if untrained else ""))

    def trial_started(self, number: int, arch: Architecture, cost: Cost) -> None:
        self.progress.reset(self._trial_task, total=1, completed=0, visible=True,
                            description=f"trial {number:>3} {format_count(cost.params):>6} "
                                        f"params {arch.summary()[:40]}")

    def batch(self, done: int, total: int) -> None:
        self.progress.update(self._trial_task, completed=done, total=total)

    def trial_finished(self, number: int, result: TrainResult, cost: Cost) -> None:
        note = f" (stopped: {result.stopped_early})" if result.stopped_early else ""
        self.progress.console.print(
            f"trial {number:>3}  acc {result.final_accuracy:.4f}  "
            + ("" if result.final_loss is None else f"loss {result.final_loss:.4f}  ") +
            f"params {format_count(cost.params):>6}  MACs {format_count(cost.macs):>6}  "
            f"{result.seconds:5.1f}s{note}", highlight=False,
        )

    def study_progress(self, study: optuna.Study, done: int) -> None:
        self._front = len(study.best_trials)
        self.progress.update(self._study_task, completed=done,
                             description=self._study_text(study, done))
        self.progress.update(self._trial_task, visible=False)
