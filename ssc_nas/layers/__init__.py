"""Layers: the SSC convolution and its spatial patterns.

The knobs (:class:`SSCSpec`) and the patterns are pure Python and imported at once; the torch
modules (the layer, its fast path, the dense layout) when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .patterns import PATTERNS, num_positions, pattern_mask, pattern_pieces, pattern_positions
from .spec import SSCSpec

_HOMES = {
    "FastPathPlan": "ssc",
    "SSCConv2d": "ssc",
    "dense_layout": "layout",
    "dense_layout_layers": "layout",
    "executed_macs": "ssc",
    "fast_path_plan": "ssc",
}

__all__ = [
    "PATTERNS",
    "FastPathPlan",
    "SSCConv2d",
    "SSCSpec",
    "dense_layout",
    "dense_layout_layers",
    "executed_macs",
    "fast_path_plan",
    "num_positions",
    "pattern_mask",
    "pattern_pieces",
    "pattern_positions",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .layout import dense_layout, dense_layout_layers
    from .ssc import FastPathPlan, SSCConv2d, executed_macs, fast_path_plan
