"""Model families as data: architectures, plans, and builders."""

from .architecture import Architecture, ConvSlot, LayerSetting, make_divisible
from .io import load, read_architecture_file, save_model, write_architecture_file
from .plan import Family, Plan, slot_spec, ssc_conv
from .registry import FAMILIES, architecture_cost, build, get_family, plan

__all__ = [
    "FAMILIES",
    "Architecture",
    "ConvSlot",
    "Family",
    "LayerSetting",
    "Plan",
    "architecture_cost",
    "build",
    "get_family",
    "load",
    "make_divisible",
    "plan",
    "read_architecture_file",
    "save_model",
    "slot_spec",
    "ssc_conv",
    "write_architecture_file",
]
