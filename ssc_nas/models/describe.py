"""Plain-English descriptions of an architecture: one line for tables, one row per layer for files.

The line names the family, the width and the dominant value of each per-layer aspect (grouping,
spatial kernels, 1 x 1 kernels, phases), e.g. ``ResNet-20 x1, mostly 4 groups, plus-pattern 3x3 on
1/4 of channels, 1x1 on the rest, 4 phases``: an aspect all layers share is stated, "mostly" marks a
value most layers (more than half) have; without such a majority the most common value is given
with its count (``plus-pattern 3x3 on 1/2 of channels in 7/18 layers``).
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

from .architecture import Architecture, InputShape, LayerSetting
from .plan import slot_spec
from .registry import FAMILIES, plan

__all__ = ["ASPECTS", "describe", "layer_table"]

#: What :func:`describe` says about the searched layers, in order.
ASPECTS = ("grouping", "spatial kernels", "1x1 kernels", "phases")


def _share(part: int, whole: int | None) -> str:
    """``1/4 of channels``, ``all channels``, ``37% of channels`` (or ``16 channels``)."""
    if whole is None:
        return f"{part} channel{'' if part == 1 else 's'}"
    if part >= whole:
        return "all channels"
    f = Fraction(part, whole)
    text = f"{f.numerator}/{f.denominator}" if f.denominator <= 16 else f"{part / whole:.0%}"
    return f"{text} of channels"


def _aspects(setting: LayerSetting, kernel: int | None = None,
             block: int | None = None) -> tuple[str | None, ...]:
    """Grouping, spatial, 1 x 1 and phases phrases of one layer (``None``: nothing to say).

    ``kernel`` and ``block`` (in_channels / groups) come from the layer's plan; without them
    the phrases give channel counts instead of shares.
    """
    n_k, n_1 = setting.spatial_channels, setting.pointwise_channels
    if n_k is None:
        n_k = block
    grouping = ("depthwise" if setting.depthwise else "ungrouped" if setting.groups == 1
                else f"{setting.groups} groups")
    shape = "kernels" if kernel is None else f"{kernel}x{kernel}"
    pattern = "full" if setting.pattern == "full" else f"{setting.pattern}-pattern"
    kind = shape if kernel == 1 else f"{pattern} {shape}"  # a 1 x 1 has no pattern
    if n_k == 0:
        spatial = f"no {shape}" if kernel is not None else "no spatial kernels"
    else:
        spatial = f"{kind} on {'all channels' if n_k is None else _share(n_k, block)}"
    pointwise = None
    if n_1:
        rest = block is not None and n_k is not None and n_k + n_1 == block
        pointwise = "1x1 on the rest" if rest else f"1x1 on {_share(n_1, block)}"
    phases = f"{setting.phases} phases" if setting.phases > 1 else None
    return grouping, spatial, pointwise, phases


def _title(arch: Architecture) -> str:
    family = FAMILIES.get(arch.family)
    return f"{family.title if family else arch.family} x{arch.width:g}"


def describe(arch: Architecture, shape: InputShape | None = None) -> str:
    """One line: family, width and the dominant per-layer settings of the searched layers.

    Without ``shape`` (or when the network cannot be planned for it) the line gives channel
    counts where it would give shares of channels, which need each layer's channel count.
    """
    rows: list[tuple[str | None, ...]] = []
    try:
        if shape is None:
            raise ValueError("no input shape")
        p = plan(arch.family, arch.width, shape.in_channels, shape.num_classes,
                 shape.input_size)
        for slot in p.searchable:
            setting = arch.setting(slot)
            block = slot.in_channels // slot_spec(slot, setting).groups
            rows.append(_aspects(setting, slot.kernel_size, block))
    except (KeyError, TypeError, ValueError):
        rows = [_aspects(s) for s in arch.layers.values()]
    if not rows:
        return f"{_title(arch)}, standard"
    parts = [_title(arch)]
    for aspect, column in zip(ASPECTS, zip(*rows, strict=True), strict=True):
        ((value, n),) = Counter(column).most_common(1)
        if n == len(column):
            parts.append(value)
        elif 2 * n > len(column):
            parts.append(None if value is None else f"mostly {value}")
        elif value is not None:
            parts.append(f"{value} in {n}/{len(column)} layers")
        else:
            parts.append(f"mixed {aspect}")
    return ", ".join(p for p in parts if p is not None)


def layer_table(arch: Architecture, shape: InputShape) -> list[dict[str, Any]]:
    """Every searched layer's shape, knobs (as ``LayerSetting`` spells them) and cost."""
    p = plan(arch.family, arch.width, shape.in_channels, shape.num_classes, shape.input_size)
    rows = []
    for slot in p.searchable:
        setting = arch.setting(slot)
        spec = slot_spec(slot, setting)
        rows.append({
            "layer": slot.name, "in_channels": slot.in_channels,
            "out_channels": slot.out_channels, "kernel_size": slot.kernel_size,
            "stride": slot.stride, "groups": setting.groups,
            "spatial_channels": spec.spatial_channels,
            "pointwise_channels": spec.pointwise_channels, "pattern": spec.pattern,
            "phases": spec.phases, "params": spec.params, "macs": spec.macs(slot.input_size),
        })
    return rows
