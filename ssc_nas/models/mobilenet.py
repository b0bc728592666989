"""MobileNetV2-style inverted residuals (Sandler et al. 2018), CIFAR variant (stride-1 stem).

Each block: 1 x 1 expansion, 3 x 3 depthwise, 1 x 1 projection, all SSC layers. The depthwise
convolutions default to ``groups="depthwise"``; a search space may search their pattern or
override their groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .architecture import Architecture, ConvSlot, LayerSetting, make_divisible
from .plan import Plan, conv_output_size, ssc_conv

__all__ = [
    "CONFIG",
    "DEPTHWISE",
    "InvertedResidual",
    "InvertedResidualPlan",
    "MobileNetV2",
    "plan_mobilenetv2",
]

# (expansion t, output channels c, blocks n, first stride s), as in the paper's Table 2, with
# the CIFAR strides (the first two down-samplings removed).
CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
STEM, LAST = 32, 1280
DEPTHWISE = LayerSetting(groups="depthwise")


@dataclass(frozen=True)
class InvertedResidualPlan:
    expand: ConvSlot | None
    depthwise: ConvSlot
    project: ConvSlot
    residual: bool


def plan_mobilenetv2(name: str, width: float, in_channels: int, num_classes: int,
                     input_size: tuple[int, int]) -> Plan:
    stem_out = make_divisible(STEM * width)
    stem = ConvSlot("stem", "stem", in_channels, stem_out, 3, 1, input_size, searchable=False)
    size, channels = input_size, stem_out
    norms = [stem_out]
    blocks: list[InvertedResidualPlan] = []
    for s, (t, c, n, stride) in enumerate(CONFIG):
        out = make_divisible(c * width)
        stage = f"stage{s + 1}"
        for b in range(n):
            st = stride if b == 0 and min(size) >= 2 else 1
            hidden = channels * t
            prefix = f"{stage}.block{b}"
            expand = None
            if t != 1:
                expand = ConvSlot(f"{prefix}.expand", stage, channels, hidden, 1, 1, size)
                norms.append(hidden)
            dw = ConvSlot(f"{prefix}.depthwise", stage, hidden, hidden, 3, st, size,
                          default=DEPTHWISE)
            mid = conv_output_size(size, 3, st)
            project = ConvSlot(f"{prefix}.project", stage, hidden, out, 1, 1, mid)
            norms += [hidden, out]
            blocks.append(InvertedResidualPlan(expand, dw, project, st == 1 and channels == out))
            size, channels = mid, out
    last_out = make_divisible(LAST * max(1.0, width))
    last = ConvSlot("head.conv", "head", channels, last_out, 1, 1, size)
    norms.append(last_out)
    slots = [x for blk in blocks for x in (blk.expand, blk.depthwise, blk.project) if x]
    return Plan(name, width, in_channels, num_classes, input_size, stem, (*slots, last),
                tuple(norms), last_out, (tuple(blocks), last))


def _conv_bn(slot: ConvSlot, arch: Architecture, act: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [ssc_conv(slot, arch), nn.BatchNorm2d(slot.out_channels)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    def __init__(self, block: InvertedResidualPlan, arch: Architecture) -> None:
        super().__init__()
        layers = _conv_bn(block.expand, arch, True) if block.expand else []
        layers += _conv_bn(block.depthwise, arch, True) + _conv_bn(block.project, arch, False)
        self.body = nn.Sequential(*layers)
        self.residual = block.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(self, plan: Plan, arch: Architecture) -> None:
        super().__init__()
        blocks, last = plan.layout
        stem = plan.stem
        self.stem = nn.Sequential(
            nn.Conv2d(stem.in_channels, stem.out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem.out_channels),
            nn.ReLU6(inplace=True),
        )
        self.blocks = nn.Sequential(*(InvertedResidual(b, arch) for b in blocks))
        self.head = nn.Sequential(*_conv_bn(last, arch, True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan.classifier_in, plan.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(out), 1))
