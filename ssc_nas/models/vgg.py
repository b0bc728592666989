"""CIFAR VGG with BatchNorm (Simonyan & Zisserman), built from a plan of
:func:`.planners.plan_vgg`: conv-BN-ReLU stacks with max-pools, a global average pool and one
linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .architecture import Architecture
from .plan import Plan, ssc_conv

__all__ = ["VGG"]


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
