"""CIFAR VGG with BatchNorm (Simonyan & Zisserman; the CIFAR variant of pruning-at-init papers).

Configs are plans like ``[64, 64, "M", 128, ...]``; a global average pool and one linear layer
classify. Max-pools that would shrink a map below 1 x 1 are skipped, so 8 x 8 inputs work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .architecture import Architecture, ConvSlot, make_divisible
from .plan import Plan, ssc_conv

__all__ = [
    "CONFIGS",
    "VGG",
    "plan_vgg",
]

CONFIGS: dict[str, Sequence[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


def plan_vgg(name: str, width: float, in_channels: int, num_classes: int,
             input_size: tuple[int, int]) -> Plan:
    cfg = CONFIGS[name]
    size = input_size
    layout: list[ConvSlot | str] = []
    slots: list[ConvSlot] = []
    stem: ConvSlot | None = None
    channels = in_channels
    stage, index = 1, 0
    norms: list[int] = []
    for item in cfg:
        if item == "M":
            if min(size) >= 2:
                layout.append("M")
                size = (size[0] // 2, size[1] // 2)
            stage += 1
            continue
        out = make_divisible(int(item) * width)
        name_ = f"stage{stage}.conv{index}"
        slot = ConvSlot(name_, f"stage{stage}", channels, out, 3, 1, size,
                        searchable=stem is not None)
        if stem is None:
            stem = slot
        else:
            slots.append(slot)
        layout.append(slot)
        norms.append(out)
        channels, index = out, index + 1
    assert stem is not None
    return Plan(name, width, in_channels, num_classes, input_size, stem, tuple(slots),
                tuple(norms), channels, tuple(layout))


class VGG(nn.Module):
    """Conv-BN-ReLU stacks with max-pools, global average pool, linear classifier."""

    def __init__(self, plan: Plan, arch: Architecture) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for item in plan.layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if item is plan.stem:
                conv: nn.Module = nn.Conv2d(item.in_channels, item.out_channels, 3, padding=1,
                                            bias=False)
            else:
                conv = ssc_conv(item, arch)
            layers += [conv, nn.BatchNorm2d(item.out_channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan.classifier_in, plan.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
