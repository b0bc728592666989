"""ssc-nas: neural architecture search for structured sparse convolutions (SSC).

The public surface; everything else is an implementation detail of its module.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .convert import convert
from .cost import Cost, count, layer_cost, measure_latency
from .errors import SSCNasError
from .layers import PATTERNS, SSCConv2d, SSCSpec
from .models import Architecture, LayerSetting, architecture_cost, build, load

try:
    __version__ = version("ssc-nas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "PATTERNS",
    "Architecture",
    "Cost",
    "LayerSetting",
    "SSCConv2d",
    "SSCNasError",
    "SSCSpec",
    "__version__",
    "architecture_cost",
    "build",
    "convert",
    "count",
    "layer_cost",
    "load",
    "measure_latency",
]
