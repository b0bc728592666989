"""The classic designs every study starts with, as knob values, enqueued at the widest width
that fits the budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from ..budget import Budget
from ..choices import REFERENCE_DESIGNS
from ..models import Architecture
from ..spaces import BoundSpace, ParamGroup

__all__ = ["REFERENCE_DESIGNS", "enqueue_reference_designs", "reference_architectures",
           "reference_designs"]



def _alternate(first: dict[str, Any], second: dict[str, Any]) -> Callable[[int, ParamGroup], dict]:
    return lambda i, _group: first if i % 2 == 0 else second


def reference_designs(bound: BoundSpace) -> dict[str, Any]:
    """The classic special cases, as knob values for every layer (or a per-layer rule)."""
    first = bound.param_groups[0].choices["groups"] if bound.param_groups else (1,)
    groups = [g for g in first if isinstance(g, int)] or [1]
    dense = {"groups": 1, "pattern": "full", "spatial_fraction": 1.0, "pointwise_fraction": 0.0,
             "phases": "cover"}
    return {
        "standard": dense,
        "groupwise": {**dense, "groups": max(groups)},
        "depthwise-separable": _alternate({**dense, "groups": "depthwise"},
                                          {**dense, "pattern": "center"}),
        "hetconv-p4": {**dense, "spatial_fraction": 0.25, "pointwise_fraction": 1.0},
        "ssc-uniform": {**dense, "groups": 2, "pattern": "plus", "spatial_fraction": 0.5,
                        "pointwise_fraction": 0.5},
    }


def reference_architectures(bound: BoundSpace, budget: Budget
                            ) -> dict[str, tuple[dict[str, Any], Architecture]]:
    """Each classic design that fits ``budget`` as (Optuna parameters, architecture): at the
    widest of the space's widths that fits, which with ``width: fill`` is the width that fills
    the budget. With ``width: fill`` a width where the design's groups do not divide its
    channels is skipped (channel counts round to multiples of 8, so depthwise layers are
    valid at some widths only), as ``BoundSpace.fill_width`` skips it for sampled designs."""
    out = {}
    for name, knobs in reference_designs(bound).items():
        for width in sorted(bound.widths, reverse=True):
            params = bound.params_for(width, knobs)
            if params is None:
                break
            values = bound.values_of(params)
            if not bound.valid_at(width, values):
                continue
            arch = bound.architecture(width, values)
            if budget.fits(bound.cost(arch)):
                out[name] = (params, arch)
                break
    return out


def enqueue_reference_designs(study: optuna.Study, bound: BoundSpace,
                              budget: Budget) -> list[tuple[str, float]]:
    """Enqueue each classic design at the widest width that fits; returns (name, width)."""
    done = []
    for name, (params, arch) in reference_architectures(bound, budget).items():
        study.enqueue_trial(params, user_attrs={"reference": name}, skip_if_exists=True)
        done.append((name, arch.width))
    return done
