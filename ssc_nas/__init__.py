"""ssc-nas: neural architecture search for structured sparse convolutions (SSC).

The public surface; everything else is an implementation detail of its module. The names are
imported when first used (PEP 562), so that ``import ssc_nas.cli`` does not import torch:
``ssc-nas --help`` starts in a fraction of a second.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from ._lazy import lazy_exports

try:
    __version__ = version("ssc-nas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

# Public name -> the module that defines it.
_HOMES = {
    "PATTERNS": "layers",
    "Architecture": "models",
    "Cost": "cost",
    "LayerSetting": "models",
    "SSCConv2d": "layers",
    "SSCNasError": "errors",
    "SSCSpec": "layers",
    "architecture_cost": "models",
    "build": "models",
    "convert": "conversion",
    "count": "cost",
    "layer_cost": "cost",
    "load": "models",
    "measure_latency": "cost",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .conversion import convert
    from .cost import Cost, count, layer_cost, measure_latency
    from .errors import SSCNasError
    from .layers import PATTERNS, SSCConv2d, SSCSpec
    from .models import Architecture, LayerSetting, architecture_cost, build, load
