"""A network plan: every convolution's shape and place, computed without building a module.

A family's planner turns (width, in_channels, num_classes, input_size) into a :class:`Plan`;
its module class builds from that same plan, so the analytic cost and the built model cannot
drift apart. Stems and classifiers stay dense; every other convolution is an ``SSCConv2d``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..cost import Cost, conv_cost, linear_cost
from ..layers import SSCSpec
from .architecture import Architecture, ConvSlot, LayerSetting

if TYPE_CHECKING:
    from torch import nn

    from ..layers import SSCConv2d

__all__ = ["Plan", "Family", "ssc_conv", "slot_spec", "conv_output_size"]


def conv_output_size(size: tuple[int, int], kernel: int, stride: int) -> tuple[int, int]:
    """Output (H, W) of a "same"-padded convolution."""
    pad = kernel // 2
    return tuple((s + 2 * pad - kernel) // stride + 1 for s in size)  # type: ignore[return-value]


def slot_spec(slot: ConvSlot, setting: LayerSetting) -> SSCSpec:
    """The SSC layer a slot becomes under ``setting``."""
    return SSCSpec(slot.in_channels, slot.out_channels, slot.kernel_size, slot.stride,
                   **setting.knobs(slot.in_channels))


def ssc_conv(slot: ConvSlot, arch: Architecture) -> SSCConv2d:
    """The one factory through which models get their convolutions."""
    from ..layers import SSCConv2d

    return SSCConv2d.from_spec(slot_spec(slot, arch.setting(slot)))


@dataclass(frozen=True)
class Plan:
    """Shapes of one network: the SSC slots plus the dense parts (stem, BatchNorms, classifier)."""

    family: str
    width: float
    in_channels: int
    num_classes: int
    input_size: tuple[int, int]
    stem: ConvSlot
    slots: tuple[ConvSlot, ...]
    norm_channels: tuple[int, ...]
    classifier_in: int
    layout: Any = field(compare=False)

    @property
    def searchable(self) -> tuple[ConvSlot, ...]:
        return tuple(s for s in self.slots if s.searchable)

    def fixed_cost(self) -> Cost:
        """Everything but the SSC slots: dense stem, BatchNorm affine weights, classifier."""
        stem = self.stem
        out = conv_output_size(stem.input_size, stem.kernel_size, stem.stride)
        cost = conv_cost(stem.in_channels, stem.out_channels, stem.kernel_size, out)
        cost += Cost(2 * sum(self.norm_channels), 0)
        return cost + linear_cost(self.classifier_in, self.num_classes)

    def slot_cost(self, slot: ConvSlot, setting: LayerSetting) -> Cost:
        spec = slot_spec(slot, setting)
        return Cost(spec.params, spec.macs(slot.input_size))

    def cost(self, arch: Architecture) -> Cost:
        """Analytic params and MACs per image of ``arch`` on this plan."""
        total = self.fixed_cost()
        for slot in self.slots:
            total += self.slot_cost(slot, arch.setting(slot))
        return total


@dataclass(frozen=True)
class Family:
    """A model family: its display title, a planner and the module class that builds from its
    plans, named ``"module.Class"`` inside this package and imported (with torch) only to build.
    """

    name: str
    title: str
    planner: Callable[[float, int, int, tuple[int, int]], Plan]
    module: str

    def build(self, plan: Plan, arch: Architecture) -> nn.Module:
        """The ``nn.Module`` of ``arch`` on ``plan``."""
        module, cls = self.module.rsplit(".", 1)
        return getattr(importlib.import_module(f".{module}", __package__), cls)(plan, arch)
