"""One row per method over its seeds, and the table's text forms."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..budget import format_count
from .store import Run

__all__ = ["Row", "format_accuracy", "markdown_table", "table_note"]


@dataclass(frozen=True)
class Row:
    """One method over its seeds: what a line of the table shows."""

    method: str
    design: str
    runs: tuple[Run, ...]
    notes: tuple[str, ...] = field(default=())

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
        """Sample standard deviation over seeds; None with one seed."""
        if len(self.runs) < 2:
            return None
        return statistics.stdev(r.accuracy for r in self.runs)

    @property
    def train_time_s(self) -> float:
        return statistics.fmean(r.train_time_s for r in self.runs)



def format_accuracy(row: Row) -> str:
    std = row.accuracy_std
    return f"{row.accuracy:.4f}" if std is None else f"{row.accuracy:.4f} ± {std:.4f}"


def table_note(rows: Sequence[Row]) -> str:
    """The footnote on MACs (and seeds) under a table."""
    pruned = [r for r in rows if r.dense_macs is not None]
    seeds = max((len(r.runs) for r in rows), default=0)
    note = (f"accuracy: test split, mean ± sample std over {seeds} seeds"
            if seeds > 1 else "accuracy: test split, 1 seed")
    if pruned:
        dense = ", ".join(sorted({format_count(r.dense_macs or 0) for r in pruned}))
        note += ("; MACs of pruned networks are sparse MACs (nonzero weights x output "
                 f"pixels); as masked dense networks they run {dense} MACs per image")
    return note


def markdown_table(rows: Sequence[Row]) -> str:
    """The table as GitHub markdown, with the note underneath."""
    lines = ["| method | design | params | MACs | accuracy | train time |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.design} | {format_count(r.params)} | "
                     f"{format_count(r.macs)} | {format_accuracy(r)} | {r.train_time_s:.1f} s |")
    return "\n".join(lines) + "\n\n" + table_note(rows)
