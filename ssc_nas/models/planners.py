"""The model families' configurations and planners: every convolution's shape, in pure Python.

A planner turns (width, in_channels, num_classes, input_size) into a :class:`~.plan.Plan`; the
family's module class (``vgg.py``, ``resnet.py``, ``mobilenet.py``) builds from that same plan.
Nothing here imports torch, so the analytic costs and the commands that only read a study plan
networks without it.

* VGG with BatchNorm (Simonyan & Zisserman; the CIFAR variant of pruning-at-init papers):
  configs like ``[64, 64, "M", 128, ...]``; max-pools that would shrink a map below 1 x 1 are
  skipped, so 8 x 8 inputs work.
* ResNets of basic blocks: CIFAR ResNet-20/56 (He et al. 2016) and the CIFAR ResNet-18 of
  pruning-at-init papers (3 x 3 stem, stride 1, no max-pool). Down-sampling shortcuts are
  1 x 1 SSC layers kept standard (not searched); every block's two 3 x 3 convolutions are
  searched.
* MobileNetV2-style inverted residuals (Sandler et al. 2018), CIFAR variant (stride-1 stem):
  1 x 1 expansion, 3 x 3 depthwise (``groups="depthwise"`` by default), 1 x 1 projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .architecture import DEPTHWISE, ConvSlot, LayerSetting, make_divisible
from .plan import Plan, conv_output_size

__all__ = [
    "MOBILENETV2_CONFIG",
    "RESNET_CONFIGS",
    "VGG_CONFIGS",
    "BlockPlan",
    "InvertedResidualPlan",
    "ResNetConfig",
    "plan_mobilenetv2",
    "plan_resnet",
    "plan_vgg",
]

# -- VGG ---------------------------------------------------------------------------------------

VGG_CONFIGS: dict[str, Sequence[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


def plan_vgg(name: str, width: float, in_channels: int, num_classes: int,
             input_size: tuple[int, int]) -> Plan:
    cfg = VGG_CONFIGS[name]
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


# -- ResNet ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResNetConfig:
    stem_channels: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    strides: tuple[int, ...]


RESNET_CONFIGS = {
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
    cfg = RESNET_CONFIGS[name]
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


# -- MobileNetV2 -------------------------------------------------------------------------------

# (expansion t, output channels c, blocks n, first stride s), as in the paper's Table 2, with
# the CIFAR strides (the first two down-samplings removed).
MOBILENETV2_CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
STEM, LAST = 32, 1280
_DEPTHWISE = LayerSetting(groups=DEPTHWISE)  # the default of depthwise slots


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
    for s, (t, c, n, stride) in enumerate(MOBILENETV2_CONFIG):
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
                          default=_DEPTHWISE)
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
