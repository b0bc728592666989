"""ResNets of basic blocks: CIFAR ResNet-20/56 (He et al. 2016) and the CIFAR ResNet-18.

A family is a :class:`ResNetConfig`; ``resnet18`` is the variant pruning-at-init papers use on
CIFAR and Tiny-ImageNet (3 x 3 stem, stride 1, no max-pool). Down-sampling shortcuts are 1 x 1
SSC layers kept standard (not searched); every block's two 3 x 3 convolutions are searched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture, ConvSlot, make_divisible
from .plan import Plan, conv_output_size, ssc_conv

__all__ = [
    "CONFIGS",
    "BasicBlock",
    "BlockPlan",
    "ResNet",
    "ResNetConfig",
    "plan_resnet",
]


@dataclass(frozen=True)
class ResNetConfig:
    stem_channels: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    strides: tuple[int, ...]


CONFIGS = {
    "resnet20": ResNetConfig(16, (16, 32, 64), (3, 3, 3), (1, 2, 2)),
    "resnet56": ResNetConfig(16, (16, 32, 64), (9, 9, 9), (1, 2, 2)),
    "resnet18": ResNetConfig(64, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2)),
}


@dataclass(frozen=True)
class BlockPlan:
    conv1: ConvSlot
    conv2: ConvSlot
    shortcut: ConvSlot | None


def plan_resnet(name: str, width: float, in_channels: int, num_classes: int,
                input_size: tuple[int, int]) -> Plan:
    cfg = CONFIGS[name]
    stem_out = make_divisible(cfg.stem_channels * width)
    stem = ConvSlot("stem", "stem", in_channels, stem_out, 3, 1, input_size, searchable=False)
    size, channels = input_size, stem_out
    norms = [stem_out]
    blocks: list[BlockPlan] = []
    for s, (w, n, stride) in enumerate(zip(cfg.widths, cfg.blocks, cfg.strides, strict=True)):
        out = make_divisible(w * width)
        stage = f"stage{s + 1}"
        for b in range(n):
            st = stride if b == 0 and min(size) >= 2 else 1
            prefix = f"{stage}.block{b}"
            conv1 = ConvSlot(f"{prefix}.conv1", stage, channels, out, 3, st, size)
            mid = conv_output_size(size, 3, st)
            conv2 = ConvSlot(f"{prefix}.conv2", stage, out, out, 3, 1, mid)
            shortcut = None
            if st != 1 or channels != out:
                shortcut = ConvSlot(f"{prefix}.shortcut", stage, channels, out, 1, st, size,
                                    searchable=False)
                norms.append(out)
            norms += [out, out]
            blocks.append(BlockPlan(conv1, conv2, shortcut))
            size, channels = mid, out
    slots = [s for blk in blocks for s in (blk.conv1, blk.conv2, blk.shortcut) if s is not None]
    return Plan(name, width, in_channels, num_classes, input_size, stem, tuple(slots),
                tuple(norms), channels, tuple(blocks))


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
