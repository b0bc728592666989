"""The model families, by name, and the two functions everything else uses: plan and build."""

from __future__ import annotations

from functools import partial

from torch import nn

from ..cost import Cost
from .architecture import Architecture
from .mobilenet import MobileNetV2, plan_mobilenetv2
from .plan import Family, Plan
from .resnet import ResNet, plan_resnet
from .vgg import VGG, plan_vgg

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
        Family("vgg16", "CIFAR VGG-16 with BatchNorm", partial(plan_vgg, "vgg16"), VGG,
               "Simonyan & Zisserman 2015; CIFAR variant of SNIP/GraSP/SynFlow"),
        Family("vgg11", "CIFAR VGG-11 with BatchNorm", partial(plan_vgg, "vgg11"), VGG),
        Family("resnet20", "CIFAR ResNet-20", partial(plan_resnet, "resnet20"), ResNet,
               "He et al. 2016, Sec. 4.2"),
        Family("resnet56", "CIFAR ResNet-56", partial(plan_resnet, "resnet56"), ResNet,
               "He et al. 2016, Sec. 4.2"),
        Family("resnet18", "ResNet-18, CIFAR/Tiny-ImageNet variant (3x3 stem, no max-pool)",
               partial(plan_resnet, "resnet18"), ResNet, "He et al. 2016"),
        Family("mobilenetv2", "MobileNetV2-style inverted residuals, CIFAR strides",
               partial(plan_mobilenetv2, "mobilenetv2"), MobileNetV2, "Sandler et al. 2018"),
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
    return get_family(arch.family).module(p, arch)


def architecture_cost(arch: Architecture, in_channels: int, num_classes: int,
                      input_size: tuple[int, int]) -> Cost:
    """Analytic params and MACs per image of ``arch``, with no module built."""
    return plan(arch.family, arch.width, in_channels, num_classes, input_size).cost(arch)
