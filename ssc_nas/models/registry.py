"""The model families, by name, and the two functions everything else uses: plan and build."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ..cost import Cost
from .architecture import Architecture
from .plan import Family, Plan
from .planners import plan_mobilenetv2, plan_resnet, plan_vgg

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FAMILIES",
    "architecture_cost",
    "build",
    "get_family",
    "plan",
]

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("vgg16", "VGG-16", partial(plan_vgg, "vgg16"), "vgg.VGG"),
        Family("vgg11", "VGG-11", partial(plan_vgg, "vgg11"), "vgg.VGG"),
        Family("resnet20", "ResNet-20", partial(plan_resnet, "resnet20"), "resnet.ResNet"),
        Family("resnet56", "ResNet-56", partial(plan_resnet, "resnet56"), "resnet.ResNet"),
        Family("resnet18", "ResNet-18", partial(plan_resnet, "resnet18"), "resnet.ResNet"),
        Family("mobilenetv2", "MobileNetV2", partial(plan_mobilenetv2, "mobilenetv2"),
               "mobilenet.MobileNetV2"),
    )
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown family {name!r}; valid families: {', '.join(FAMILIES)}"
        ) from None


def plan(family: str, width: float, in_channels: int, num_classes: int,
         input_size: tuple[int, int]) -> Plan:
    """Shapes of every convolution of ``family`` at ``width`` for (C, H, W) inputs."""
    if not width > 0:
        raise ValueError(f"width must be > 0, but got {width!r}")
    return get_family(family).planner(width, in_channels, num_classes, tuple(input_size))


def build(arch: Architecture, in_channels: int, num_classes: int,
          input_size: tuple[int, int]) -> nn.Module:
    """The ``nn.Module`` of ``arch`` for ``in_channels`` x ``input_size`` images."""
    p = plan(arch.family, arch.width, in_channels, num_classes, input_size)
    unknown = set(arch.layers) - {s.name for s in p.slots}
    if unknown:
        raise ValueError(f"architecture names layers that {arch.family} does not have: "
                         f"{sorted(unknown)[:5]}")
    return get_family(arch.family).build(p, arch)


def architecture_cost(arch: Architecture, in_channels: int, num_classes: int,
                      input_size: tuple[int, int]) -> Cost:
    """Analytic params and MACs per image of ``arch``, with no module built."""
    return plan(arch.family, arch.width, in_channels, num_classes, input_size).cost(arch)
