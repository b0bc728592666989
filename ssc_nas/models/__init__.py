"""Model families as data: architectures, plans, and builders."""

from .architecture import (
    DEPTHWISE,
    Architecture,
    ConvSlot,
    InputShape,
    LayerSetting,
    make_divisible,
)
from .describe import describe, layer_table
from .io import (
    load,
    read_architecture_file,
    save_atomically,
    save_model,
    write_architecture_file,
)
from .plan import Family, Plan, slot_spec, ssc_conv
from .registry import FAMILIES, architecture_cost, build, get_family, plan

__all__ = [
    "DEPTHWISE",
    "FAMILIES",
    "Architecture",
    "ConvSlot",
    "Family",
    "InputShape",
    "LayerSetting",
    "Plan",
    "architecture_cost",
    "build",
    "describe",
    "get_family",
    "layer_table",
    "load",
    "make_divisible",
    "plan",
    "read_architecture_file",
    "save_atomically",
    "save_model",
    "slot_spec",
    "ssc_conv",
    "write_architecture_file",
]
