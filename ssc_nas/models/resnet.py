"""ResNets of basic blocks (He et al. 2016), built from a plan of :func:`.planners.plan_resnet`.

CIFAR ResNet-20/56 and the CIFAR ResNet-18 of pruning-at-init papers; the configurations and
what is searched are in ``planners.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture
from .plan import Plan, ssc_conv
from .planners import BlockPlan

__all__ = ["BasicBlock", "ResNet"]


class BasicBlock(nn.Module):
    def __init__(self, block: BlockPlan, arch: Architecture) -> None:
        super().__init__()
        self.conv1 = ssc_conv(block.conv1, arch)
        self.bn1 = nn.BatchNorm2d(block.conv1.out_channels)
        self.conv2 = ssc_conv(block.conv2, arch)
        self.bn2 = nn.BatchNorm2d(block.conv2.out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if block.shortcut is not None:
            self.shortcut = nn.Sequential(ssc_conv(block.shortcut, arch),
                                          nn.BatchNorm2d(block.shortcut.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place, as torchvision's block: BatchNorm's backward keeps its input, not its
        # output, so the ReLU and the residual add may overwrite it (the same function, one
        # activation-sized buffer less per op; train steps 2-4 % faster on a 2-core CPU).
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out, inplace=True)


class ResNet(nn.Module):
    """3 x 3 stem, stages of basic blocks, global average pool, linear classifier."""

    def __init__(self, plan: Plan, arch: Architecture) -> None:
        super().__init__()
        stem = plan.stem
        self.stem = nn.Sequential(
            nn.Conv2d(stem.in_channels, stem.out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem.out_channels),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*(BasicBlock(b, arch) for b in plan.layout))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan.classifier_in, plan.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))
