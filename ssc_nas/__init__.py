"""ssc-nas: neural architecture search for structured sparse convolutions (SSC).

The public surface; everything else is an implementation detail of its module.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .convert import convert
from .cost import Cost, count, layer_cost, measure_latency
from .errors import SSCNasError
from .layers import PATTERNS, SSCConv2d, SSCSpec

try:
    __version__ = version("ssc-nas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "PATTERNS",
    "Cost",
    "SSCConv2d",
    "SSCNasError",
    "SSCSpec",
    "__version__",
    "convert",
    "count",
    "layer_cost",
    "measure_latency",
]
