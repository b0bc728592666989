"""One row per method over its folds, and the table's text forms."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..budget import format_count
from .stats import CONFIDENCE, Interval, Verdict, t_interval, verdict
from .store import Run

__all__ = ["Row", "format_accuracy", "format_equal_time", "format_interval", "markdown_table",
           "table_note", "verdict_lines", "verdicts"]


@dataclass(frozen=True)
class Row:
    """One method over its folds: what a line of the table shows.

    ``runs`` are trained under the common schedule (fold ``i`` with seed ``i``);
    ``equal_runs`` under the equal-time schedule (empty when not run; a pruned method's are its
    ``runs``, since their training time is the target), ``equal_time_s`` being that target.
    """

    method: str
    design: str
    runs: tuple[Run, ...]
    notes: tuple[str, ...] = field(default=())
    equal_runs: tuple[Run, ...] = ()
    equal_time_s: float | None = None

    @property
    def params(self) -> int:
        return round(statistics.fmean(r.params for r in self.runs))

    @property
    def macs(self) -> int:
        return round(statistics.fmean(r.macs for r in self.runs))

    @property
    def dense_macs(self) -> int | None:
        values = [r.dense_macs for r in self.runs if r.dense_macs is not None]
        return round(statistics.fmean(values)) if values else None

    @property
    def accuracy(self) -> float:
        return statistics.fmean(r.accuracy for r in self.runs)

    @property
    def accuracy_std(self) -> float | None:
        """Sample standard deviation over folds; None with one fold."""
        if len(self.runs) < 2:
            return None
        return statistics.stdev(r.accuracy for r in self.runs)

    @property
    def accuracy_ci(self) -> Interval:
        """Mean test accuracy with its t interval over folds."""
        return t_interval([r.accuracy for r in self.runs])

    @property
    def equal_accuracy_ci(self) -> Interval | None:
        """Mean test accuracy at equal training time, or None when not run."""
        return t_interval([r.accuracy for r in self.equal_runs]) if self.equal_runs else None

    @property
    def equal_epochs(self) -> int | None:
        return self.equal_runs[0].epochs if self.equal_runs else None

    @property
    def train_time_s(self) -> float:
        return statistics.fmean(r.train_time_s for r in self.runs)

    @property
    def seconds_per_epoch(self) -> float:
        """Mean training seconds per epoch (validation and BatchNorm re-estimation included)."""
        return statistics.fmean(r.train_time_s / r.epochs for r in self.runs)


def format_interval(ci: Interval) -> str:
    """``mean ± half-width`` of the 95 % interval (just the mean with one fold)."""
    half = ci.half_width
    return f"{ci.mean:.4f}" if half is None else f"{ci.mean:.4f} ± {half:.4f}"


def format_accuracy(row: Row) -> str:
    return format_interval(row.accuracy_ci)


def format_equal_time(row: Row) -> str:
    """Accuracy at equal training time and its epochs, or "-"."""
    ci = row.equal_accuracy_ci
    if ci is None:
        return "-"
    seconds = statistics.fmean(r.train_time_s for r in row.equal_runs)
    return f"{format_interval(ci)} ({row.equal_epochs} ep, {seconds:.1f} s)"


def verdicts(rows: Sequence[Row]) -> list[Verdict]:
    """The verdict on accuracy, then the verdict at equal training time (when some method was
    trained for other epochs to match it; otherwise it would repeat the first)."""
    out = []
    plain = verdict({r.method: {x.seed: x.accuracy for x in r.runs} for r in rows})
    if plain is not None:
        out.append(plain)
    retrained = any(r.equal_runs != r.runs for r in rows)
    if rows and all(r.equal_runs for r in rows) and retrained:
        equal = verdict({r.method: {x.seed: x.accuracy for x in r.equal_runs} for r in rows})
        if equal is not None:
            out.append(equal)
    return out


def verdict_lines(rows: Sequence[Row]) -> list[str]:
    """The verdicts as text lines."""
    found = verdicts(rows)
    whats = ["test accuracy", "test accuracy at equal training time"]
    return [v.text(what) for v, what in zip(found, whats, strict=False)]


def table_note(rows: Sequence[Row]) -> str:
    """The footnote on accuracy, equal time and MACs under a table."""
    pruned = [r for r in rows if r.dense_macs is not None]
    folds = max((len(r.runs) for r in rows), default=0)
    note = (f"accuracy: held-out test fold, mean ± half-width of the {CONFIDENCE:.0%} "
            f"t interval over {folds} folds (fold i: same images and seed i for every method)"
            if folds > 1 else "accuracy: test split, 1 fold")
    target = next((r.equal_time_s for r in rows if r.equal_time_s is not None), None)
    if target is not None:
        note += (f"; equal time: target {target:.1f} s (by default the mean training time of "
                 "the pruned runs); the SSC methods (with --equal-time-s every method) get the "
                 "most whole epochs (at least 1) whose measured time fits, each a complete "
                 "one-cycle schedule (epochs and mean seconds shown)")
    if pruned:
        dense = ", ".join(sorted({format_count(r.dense_macs or 0) for r in pruned}))
        note += ("; MACs of pruned networks are sparse MACs (nonzero weights x output "
                 f"pixels); as masked dense networks they run {dense} MACs per image")
    return note


def markdown_table(rows: Sequence[Row]) -> str:
    """The table as GitHub markdown, with the note underneath."""
    equal = any(r.equal_runs for r in rows)
    lines = ["| method | design | params | MACs | accuracy | train time |"
             + (" accuracy at equal time |" if equal else ""),
             "|---|---|---:|---:|---:|---:|" + ("---:|" if equal else "")]
    for r in rows:
        lines.append(f"| {r.method} | {r.design} | {format_count(r.params)} | "
                     f"{format_count(r.macs)} | {format_accuracy(r)} | {r.train_time_s:.1f} s |"
                     + (f" {format_equal_time(r)} |" if equal else ""))
    verdict_text = "".join(f"\n\n{line}" for line in verdict_lines(rows))
    return "\n".join(lines) + "\n\n" + table_note(rows) + verdict_text
