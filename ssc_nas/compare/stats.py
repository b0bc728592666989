"""Confidence intervals over folds and the verdict of a comparison.

Every method is trained once per fold, and fold ``i`` (its held-out images, its training
images and its seed ``i``) is the same for every method, so methods are compared *paired* by
fold: the margin of the winner over another method is the mean of the per-fold differences,
with a Student-t 95 % interval over the folds (``mean +- t(0.975, n - 1) * sd / sqrt(n)``).
Pairing removes the fold-to-fold variation both methods share (some held-out folds are easier
than others), which is most of it.

A method's own interval is the same t interval over its per-fold accuracies. The folds'
training sets overlap, so the per-fold results are not fully independent and the t interval
is somewhat too narrow (Nadeau & Bengio, 2003); with a handful of folds it is still the usual
and readable choice. With one fold there is no interval: nothing is then called
distinguishable.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CONFIDENCE", "Interval", "Margin", "Verdict", "paired_difference", "t_interval",
           "verdict"]

#: Two-sided confidence of every interval.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values and its two-sided t interval (None with fewer than 2 values)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.high is None else self.high - self.mean

    @property
    def covers_zero(self) -> bool:
        """True when the interval holds 0, or when there is no interval."""
        return self.low is None or self.high is None or self.low <= 0.0 <= self.high


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` +- the Student-t critical value x the standard error."""
    from scipy.stats import t

    if not values:
        raise ValueError("t_interval needs at least one value")
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      confidence: float = CONFIDENCE) -> Interval:
    """``a - b`` paired by fold (the folds both have), with its t interval."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("no fold in common")
    return t_interval([a[f] - b[f] for f in common], confidence)


@dataclass(frozen=True)
class Margin:
    """The winner minus one other method, paired by fold."""

    method: str
    difference: Interval

    @property
    def distinguishable(self) -> bool:
        return not self.difference.covers_zero


@dataclass(frozen=True)
class Verdict:
    """The most accurate method and its paired margin over every other one."""

    winner: str
    accuracy: Interval
    margins: tuple[Margin, ...]

    def text(self, what: str = "accuracy") -> str:
        """One line: winner, then each margin with its interval or "not distinguishable"."""
        n = self.accuracy.n
        head = (f"verdict ({what}): {self.winner} is most accurate "
                f"({self.accuracy.mean:.4f}, mean over {n} fold{'' if n == 1 else 's'})")
        if not self.margins:
            return head
        parts = []
        for m in self.margins:
            d = m.difference
            text = f"{m.method} {d.mean:+.4f}"
            if d.low is not None and d.high is not None:
                text += f" [{d.low:+.4f}, {d.high:+.4f}]"
            parts.append(text + ("" if m.distinguishable else " not distinguishable"))
        how = (f"paired by fold, {CONFIDENCE:.0%} t interval over folds" if n > 1
               else "1 fold: no interval")
        return f"{head}; margin over each other method ({how}): " + "; ".join(parts)


def verdict(results: Mapping[str, Mapping[int, float]],
            confidence: float = CONFIDENCE) -> Verdict | None:
    """The verdict over ``{method: {fold: accuracy}}``; None without any method.

    The winner has the highest mean accuracy (ties: the first method given). Margins are
    listed from the closest method to the farthest.
    """
    means = {m: statistics.fmean(v.values()) for m, v in results.items() if v}
    if not means:
        return None
    winner = max(means, key=lambda m: means[m])
    margins = [Margin(m, paired_difference(results[winner], results[m], confidence))
               for m in means if m != winner]
    margins.sort(key=lambda m: m.difference.mean)
    return Verdict(winner, t_interval(list(results[winner].values()), confidence),
                   tuple(margins))
