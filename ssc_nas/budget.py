"""Budgets: human counts like ``0.5M`` and the params/MACs limits a candidate must fit."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from .errors import BudgetError

if TYPE_CHECKING:  # torch-free at run time: the command line parses budgets (choices.py)
    from .cost import Cost

__all__ = ["Budget", "exact_count", "format_count", "parse_count", "within_limits"]

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgb]?)\s*$", re.IGNORECASE)


def parse_count(text: str | float | int, knob: str = "budget") -> int:
    """``"0.5M"``, ``"500k"``, ``"500000"``, ``"5e5"`` -> 500000; anything else -> BudgetError.

    A count is a whole number: ``"2.5"`` or ``"0.0005k"`` is refused rather than rounded, and
    a number takes an exponent *or* a suffix, not both (``"1e6k"`` is refused).
    """
    if isinstance(text, bool):
        raise BudgetError(f"{knob} must be a count like 0.5M, 500k or 5e5, but got {text!r}")
    if isinstance(text, int | float):
        value = Fraction(text) if math.isfinite(text) else math.nan
    else:
        match = _COUNT.match(str(text))
        if not match:
            raise BudgetError(
                f"{knob} must be a positive count like 0.5M, 500k, 500000 or 5e5, "
                f"but got {text!r}"
            )
        number, suffix = match.group(1), match.group(2).lower()
        if suffix and "e" in number.lower():
            raise BudgetError(f"{knob} takes one suffix or one exponent (500k or 5e5), not "
                              f"both, but got {text!r}")
        value = Fraction(number) * _SUFFIX[suffix]
    if not (isinstance(value, Fraction) and value >= 1):
        raise BudgetError(f"{knob} must be a positive count (at least 1), but got {text!r}")
    if value.denominator != 1:
        raise BudgetError(f"{knob} must be a whole number of parameters or MACs, but got "
                          f"{text!r} = {float(value):g}")
    return int(value)


def format_count(n: float) -> str:
    """500000 -> ``"500k"``, 1_234_567 -> ``"1.23M"``: what a person reads in a table."""
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) and not float(n).is_integer() else str(int(n))


def exact_count(n: int) -> str:
    """``format_count(n)`` when it reads back as exactly ``n`` (500000 -> ``"500k"``), else the
    integer (1234567 -> ``"1234567"``): a name that two different counts never share."""
    short = format_count(n)
    try:
        return short if parse_count(short) == n else str(int(n))
    except BudgetError:
        return str(int(n))


@dataclass(frozen=True)
class Budget:
    """Upper limits on parameters and on MACs per image; ``None`` means no limit."""

    params: int | None = None
    macs: int | None = None

    @classmethod
    def parse(cls, params: str | int | None = None, macs: str | int | None = None) -> Budget:
        return cls(
            None if params is None else parse_count(params, "--budget"),
            None if macs is None else parse_count(macs, "--macs"),
        )

    def fits(self, cost: Cost) -> bool:
        return within_limits(self.violations(cost))

    def violations(self, cost: Cost) -> dict[str, float]:
        """Optuna constraint values: relative excess per limit, feasible where all are <= 0."""
        out: dict[str, float] = {}
        if self.params is not None:
            out["params"] = cost.params / self.params - 1.0
        if self.macs is not None:
            out["macs"] = cost.macs / self.macs - 1.0
        return out

    def describe(self) -> str:
        parts = []
        if self.params is not None:
            parts.append(f"{format_count(self.params)} params")
        if self.macs is not None:
            parts.append(f"{format_count(self.macs)} MACs")
        return " and ".join(parts) or "no budget"

    def to_dict(self) -> dict[str, int | None]:
        return {"params": self.params, "macs": self.macs}


def within_limits(violations: Mapping[str, float]) -> bool:
    """Feasible: every constraint value (:meth:`Budget.violations`, or a trial's stored
    ``constraints``) is <= 0. The one rule the search, its samplers and the report share."""
    return all(v <= 0 for v in violations.values())
