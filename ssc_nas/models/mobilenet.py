"""MobileNetV2-style inverted residuals (Sandler et al. 2018), CIFAR variant, built from a plan of
:func:`.planners.plan_mobilenetv2`: 1 x 1 expansion, 3 x 3 depthwise, 1 x 1 projection, all SSC
layers.
"""

from __future__ import annotations

import torch
from torch import nn

from .architecture import Architecture, ConvSlot
from .plan import Plan, ssc_conv
from .planners import InvertedResidualPlan

__all__ = ["InvertedResidual", "MobileNetV2"]


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
