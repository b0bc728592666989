"""The knobs of one SSC layer (:class:`SSCSpec`) and the rule that connects its channels.

Pure Python: nothing here imports torch at import time, so the analytic costs, the model
plans and the commands that only read a study (``ssc-nas front``) run without it. The layer
itself is :class:`ssc_nas.layers.SSCConv2d` (``ssc.py``); the definition is in
``docs/ssc-layer.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .patterns import num_positions, validate_pattern

if TYPE_CHECKING:
    import torch

__all__ = ["SSCSpec"]


def _check_int(name: str, value: Any, low: int, high: int | None = None, why: str = "") -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    if not ok:
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer in {rng}{why}, but got {value!r}")


@dataclass(frozen=True)
class SSCSpec:
    """The knobs of one SSC layer, validated; ``None`` defaults are resolved on construction.

    ``padding=None`` means K // 2 ("same" at stride 1); ``spatial_channels=None`` means all of
    the group's ``in_channels / groups`` channels.
    """

    in_channels: int
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int | None = None
    groups: int = 1
    spatial_channels: int | None = None
    pointwise_channels: int = 0
    pattern: str = "full"
    phases: int = 1
    bias: bool = False

    def __post_init__(self) -> None:
        _check_int("in_channels", self.in_channels, 1)
        _check_int("out_channels", self.out_channels, 1)
        _check_int("kernel_size", self.kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, but got {self.kernel_size}")
        _check_int("stride", self.stride, 1)
        if self.padding is None:
            object.__setattr__(self, "padding", self.kernel_size // 2)
        _check_int("padding", self.padding, 0)
        _check_int("groups", self.groups, 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                "groups must divide in_channels and out_channels, but got "
                f"groups={self.groups} for in_channels={self.in_channels}, "
                f"out_channels={self.out_channels}"
            )
        block = self.in_channels // self.groups
        if self.spatial_channels is None:
            object.__setattr__(self, "spatial_channels", block)
        why = f" (in_channels / groups = {block})"
        _check_int("spatial_channels", self.spatial_channels, 0, block, why)
        rest = block - self.spatial_channels
        why = f" (in_channels / groups - spatial_channels = {rest})"
        _check_int("pointwise_channels", self.pointwise_channels, 0, rest, why)
        if self.spatial_channels + self.pointwise_channels == 0:
            raise ValueError(
                "spatial_channels + pointwise_channels must be >= 1 (a filter needs an input), "
                "but both are 0"
            )
        validate_pattern(self.pattern)
        _check_int("phases", self.phases, 1, block, f" (in_channels / groups = {block})")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be True or False, but got {self.bias!r}")

    @property
    def block(self) -> int:
        """Input channels each filter can see: ``in_channels / groups``."""
        return self.in_channels // self.groups

    @property
    def filters_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def taps(self) -> int:
        """Positions each spatial kernel keeps (0 when there are no spatial channels)."""
        return num_positions(self.pattern, self.kernel_size) if self.spatial_channels else 0

    @property
    def weights_per_filter(self) -> int:
        return self.spatial_channels * self.taps + self.pointwise_channels

    @property
    def fills_dense_weight(self) -> bool:
        """Whether every entry of the dense (C_out, block, K, K) weight is a stored weight (full
        K x K kernels on every channel of each group: standard, groupwise, depthwise layers),
        so the structure masks nothing."""
        return self.weights_per_filter == self.block * self.kernel_size**2

    @property
    def params(self) -> int:
        """Stored parameters: compact weights plus bias."""
        return self.out_channels * self.weights_per_filter + (self.out_channels if self.bias else 0)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(H_out, W_out) for an (H, W) input."""
        k, s, p = self.kernel_size, self.stride, self.padding
        h, w = input_size
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def macs(self, input_size: tuple[int, int]) -> int:
        """Structural multiply-accumulates per image: one per kept weight per output pixel."""
        h, w = self.output_size(input_size)
        return h * w * self.out_channels * self.weights_per_filter

    def channel_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Block-relative (spatial, pointwise) channels of every filter: (C_out, n_k), (C_out, n_1).

        The one place the connectivity rule is written; everything else derives from it.
        """
        import torch  # here, not at the top: the knobs and costs need no torch

        j = torch.arange(self.out_channels) % self.filters_per_group
        start = (j % self.phases) * math.ceil(self.block / self.phases)
        n_k, n_1 = self.spatial_channels, self.pointwise_channels
        spatial = (start.view(-1, 1) + torch.arange(n_k).view(1, -1)) % self.block
        pointwise = (start.view(-1, 1) + n_k + torch.arange(n_1).view(1, -1)) % self.block
        return spatial, pointwise

    def channel_sets(self, f: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(spatial, pointwise) input channels of filter ``f``, as indices into ``in_channels``."""
        offset = (f // self.filters_per_group) * self.block
        spatial, pointwise = self.channel_windows()
        return (tuple((spatial[f] + offset).tolist()), tuple((pointwise[f] + offset).tolist()))

    def to_dict(self) -> dict[str, Any]:
        """The knobs by name (every field is a plain value, so no deep copy is needed)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
