"""Model families as data: architectures, plans, and builders."""

from .architecture import Architecture, ConvSlot, LayerSetting, make_divisible
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
    "make_divisible",
    "plan",
    "slot_spec",
    "ssc_conv",
]
