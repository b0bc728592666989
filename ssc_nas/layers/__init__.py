"""Layers: the SSC convolution and its spatial patterns."""

from .layout import dense_layout, dense_layout_layers
from .patterns import PATTERNS, num_positions, pattern_mask, pattern_pieces, pattern_positions
from .ssc import FastPathPlan, SSCConv2d, SSCSpec, executed_macs, fast_path_plan

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
