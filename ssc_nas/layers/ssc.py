"""The structured sparse convolution (SSC) layer: exact structure, compact weights, fast path.

Definition (``docs/ssc-layer.md``, after Verma et al., WACV 2023): filter ``f`` of a
layer with ``groups`` G sees only its group's block of ``B = in_channels / G`` input channels.
Filter ``f`` is the ``j = f mod M``-th filter of its group (``M = out_channels / G``) and has
phase ``p = j mod phases``. Its ``spatial_channels`` channels carry a K x K kernel restricted to
``pattern``; they are the window of consecutive block channels starting at
``p * ceil(B / phases)`` (cyclically). The next ``pointwise_channels`` channels (cyclically)
carry a 1 x 1 kernel; the remaining channels are empty.

Fast path (what models run):

* spatial work: the filters are regrouped into *slots*, one per (group, phase); a slot's
  filters share one input window, so the spatial part is one native grouped convolution with
  ``G * phases`` groups per pattern piece (see :mod:`.patterns`). When the phase windows tile
  the group block (``spatial_channels * phases == B``), the input is used as it is, with no
  gather; otherwise one ``index_select`` gathers the windows.
* 1 x 1 work (pointwise channels, plus the centre tap of sparse patterns): one grouped-by-G
  1 x 1 convolution whose weight is scattered from the compact parameters each step.
* the sum is put back into filter order with one ``index_select`` when slot order differs.

Dense-weight path: where that work plus its overhead (extra convolution calls and adds, and
above all putting slots back into filter order, a strided pass that costs about as much per
output element as a few hundred multiply-accumulates on a CPU) is no less than one grouped
dense convolution, the layer instead scatters its compact weights into the dense
(C_out, C_in / groups, K, K) weight and runs that convolution. This is the case for small
blocks with several phases (a 16-channel layer with ``groups=4`` and 2 phases ran 3-5x faster
this way). The reorder costs less in NCHW than in channels_last, and in NCHW a grouped
convolution costs a pass per group however narrow its groups, more in training steps, so the
choice is made per memory format and, in NCHW, per step kind (:meth:`FastPathPlan.dense_for`).
Both paths compute the same function.

In training and evaluation, the layers of the dense-weight path can instead hold a dense
weight times the structure's fixed mask (:meth:`SSCConv2d.enter_dense_layout`; :mod:`.layout`
switches a model, and in training its optimizer, for the length of the trainer's steps or of
an evaluation pass).

Weights are stored compactly: ``spatial_weight`` (C_out, spatial_channels, taps) and
``pointwise_weight`` (C_out, pointwise_channels), so ``sum(p.numel())`` is the true parameter
count. ``to_dense_weight()`` gives the equivalent dense (C_out, B, K, K) weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .patterns import Piece, pattern_pieces, pattern_positions
from .spec import SSCSpec

__all__ = ["SSCConv2d", "SSCSpec", "FastPathPlan", "fast_path_plan", "sparse_path_cost"]


@dataclass(frozen=True)
class FastPathPlan:
    """How the fast path computes a layer, and the work it executes (pure Python, no torch).

    ``slot_filters`` lists, in the row order of the spatial convolution, the filter each row
    computes (``-1`` for a zero padding row, needed when phases hold unequal filter counts).
    """

    pieces: tuple[Piece, ...]
    fold_center: bool
    spatial_groups: int
    slot_filters: tuple[int, ...]
    in_index: tuple[int, ...] | None
    has_1x1: bool
    # Run one grouped dense convolution instead (see the module doc): for channels_last input
    # (what the trainer feeds), for contiguous (NCHW) input, and for NCHW training steps.
    dense_weight: bool = False
    dense_weight_contiguous: bool = False
    dense_weight_contiguous_train: bool = False

    @property
    def rows(self) -> int:
        return len(self.slot_filters)

    @property
    def slot_order_is_filter_order(self) -> bool:
        return self.slot_filters == tuple(range(len(self.slot_filters)))

    def dense_for(self, channels_last: bool, training: bool = False) -> bool:
        """Whether a CPU input of that memory format runs the dense-weight path, in a training
        step (with a backward pass) or in inference."""
        if channels_last:
            return self.dense_weight
        return self.dense_weight_contiguous_train if training else self.dense_weight_contiguous


# Overheads of the sparse path per output element, in multiply-accumulate equivalents, from
# CPU timings of layers against their grouped dense convolution (2-core x86, torch 2.14): a
# strided reorder of the output into filter order, and each convolution call beyond the first
# with the add that merges its output. In channels_last the reorder permutes channels inside
# every pixel; in NCHW it moves whole H x W planes, which costs about half as much
# (benchmarks/path_costs.py).
REORDER_COST = 300
REORDER_COST_CONTIGUOUS = 150
PASS_COST = 50
# In NCHW, a grouped K x K convolution costs about this much per group and output pixel
# however narrow its groups are (oneDNN's NCHW kernels go group by group), in inference and,
# more, in a training step; it costs max(its multiply-accumulates, groups * this) there. The
# pairs are (groups of one input channel, which run torch's depthwise kernel; groups of more).
# 64 channels in 16 groups of 4 or 32 groups of 2 took 0.38x / 0.72x the dense convolution's
# time in inference and 0.68x / 1.26x in training, for 1/16 and 1/32 of its MACs; depthwise,
# 0.17x and 0.21x for 1/64. In channels_last the layers' timings leave no room for such a term:
# the constants above describe them (benchmarks/path_costs.py).
GROUP_COSTS_CONTIGUOUS = (100, 900)
GROUP_COSTS_TRAIN_CONTIGUOUS = (120, 1500)
NO_GROUP_COSTS = (0, 0)


def _grouped_conv_cost(macs: int, groups: int, in_per_group: int,
                       group_costs: tuple[int, int]) -> int:
    """A K x K convolution's cost per output pixel: its multiply-accumulates, or, where each
    group costs ``group_costs`` (for one input channel, for more) whatever its width,
    ``groups`` times that if more."""
    if groups == 1:
        return macs
    return max(macs, groups * group_costs[in_per_group > 1])


def sparse_path_cost(spec: SSCSpec, plan: FastPathPlan,
                     group_costs: tuple[int, int] = NO_GROUP_COSTS) -> tuple[int, int, bool]:
    """``plan``'s sparse path per output pixel: (multiply-accumulates, passes beyond the first
    convolution call, counting a gather, and whether the slots need reordering).

    With ``group_costs`` (:data:`GROUP_COSTS_CONTIGUOUS`, :data:`GROUP_COSTS_TRAIN_CONTIGUOUS`)
    the first counts each grouped K x K piece as :func:`_grouped_conv_cost`."""
    work = sum(_grouped_conv_cost(plan.rows * spec.spatial_channels * len(piece.taps),
                                  plan.spatial_groups, spec.spatial_channels,
                                  group_costs if piece.size != (1, 1) else NO_GROUP_COSTS)
               for piece in plan.pieces)
    work += plan.rows * spec.block if plan.has_1x1 else 0
    calls = len(plan.pieces) + plan.has_1x1
    passes = max(calls, 1) - 1 + (plan.in_index is not None)
    reorder = bool(plan.pieces) and not plan.slot_order_is_filter_order
    return work, passes, reorder


def _dense_is_cheaper(spec: SSCSpec, plan: FastPathPlan, reorder_cost: int,
                      group_costs: tuple[int, int] = NO_GROUP_COSTS) -> bool:
    """Whether one grouped dense convolution beats ``plan``'s sparse path (per output pixel)."""
    work, passes, reorder = sparse_path_cost(spec, plan, group_costs)
    sparse = work + spec.out_channels * (PASS_COST * passes + reorder_cost * reorder)
    return dense_path_cost(spec, group_costs) < sparse


def dense_path_cost(spec: SSCSpec, group_costs: tuple[int, int] = NO_GROUP_COSTS) -> int:
    """The dense-weight path per output pixel: one grouped dense convolution's
    multiply-accumulates (with ``group_costs``, as :func:`_grouped_conv_cost`)."""
    k = spec.kernel_size
    macs = spec.out_channels * spec.block * k**2
    return _grouped_conv_cost(macs, spec.groups, spec.block,
                              group_costs if k > 1 else NO_GROUP_COSTS)


@lru_cache(maxsize=4096)
def fast_path_plan(spec: SSCSpec) -> FastPathPlan:
    """Decide the pieces, slots and gather of the fast path for ``spec`` (cached per spec),
    and, per memory format and for NCHW training, whether the dense-weight path is cheaper."""
    plan = _sparse_plan(spec)
    return replace(
        plan,
        dense_weight=_dense_is_cheaper(spec, plan, REORDER_COST),
        dense_weight_contiguous=_dense_is_cheaper(spec, plan, REORDER_COST_CONTIGUOUS,
                                                  GROUP_COSTS_CONTIGUOUS),
        dense_weight_contiguous_train=_dense_is_cheaper(
            spec, plan, REORDER_COST_CONTIGUOUS, GROUP_COSTS_TRAIN_CONTIGUOUS),
    )


def _sparse_plan(spec: SSCSpec) -> FastPathPlan:
    n_k, n_1, k = spec.spatial_channels, spec.pointwise_channels, spec.kernel_size
    fold_center = n_k > 0 and n_1 > 0 and (spec.pattern != "full" or k == 1)
    pieces = pattern_pieces(spec.pattern, k, include_center=not fold_center) if n_k else ()
    if not pieces:
        return FastPathPlan((), fold_center, 0, tuple(range(spec.out_channels)), None, True)
    m, phases = spec.filters_per_group, min(spec.phases, spec.filters_per_group)
    per_slot = math.ceil(m / phases)
    spatial, _ = spec.channel_windows()
    slot_filters: list[int] = []
    in_index: list[int] = []
    for g in range(spec.groups):
        for p in range(phases):
            filters = list(range(g * m + p, (g + 1) * m, spec.phases))
            slot_filters += filters + [-1] * (per_slot - len(filters))
            in_index += (spatial[g * m + p] + g * spec.block).tolist()
    identity = in_index == list(range(spec.in_channels))
    return FastPathPlan(
        pieces=pieces,
        fold_center=fold_center,
        spatial_groups=spec.groups * phases,
        slot_filters=tuple(slot_filters),
        in_index=None if identity else tuple(in_index),
        has_1x1=n_1 > 0 or fold_center,
    )


def executed_macs(spec: SSCSpec, input_size: tuple[int, int], channels_last: bool = True,
                  training: bool = False) -> int:
    """Multiply-accumulates the fast path runs per image (>= the structural ``spec.macs``) on
    a CPU input of that memory format, in inference or in a training step's forward.

    They exceed the structural count where the 1 x 1 convolution is dense over the block
    while a filter uses fewer of its channels, and where slots hold zero padding rows.
    """
    plan = fast_path_plan(spec)
    h, w = spec.output_size(input_size)
    if plan.dense_for(channels_last, training):
        return h * w * spec.out_channels * spec.block * spec.kernel_size**2
    return h * w * sparse_path_cost(spec, plan)[0]


def _is_channels_last(x: torch.Tensor) -> bool:
    """A 4-D tensor laid out channels_last (and not also contiguous, as 1 x 1 maps are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and (
        not x.is_contiguous())


def _conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            stride: int | tuple[int, int], padding: int | tuple[int, int],
            dilation: int | tuple[int, int], groups: int) -> torch.Tensor:
    """``F.conv2d``, except for a CPU depthwise K x K convolution (K > 1, undilated) with two
    filters per input channel (``weight`` of ``2 * groups`` filters of one channel each): there
    it runs as two depthwise convolutions, one per filter of each pair, whose outputs are
    interleaved. On a 2-core x86 CPU (torch 2.14, oneDNN) that took 0.18-0.91x the single
    call's time in a training step and 0.20-0.69x in inference (3 x 3 and 5 x 5, strides 1 and
    2), with the same values. For 1 x 1, 3 x 1 and dilated kernels (the sparse path's pieces)
    it was up to 2x slower in training, so those stay one call (docs/ssc-layer.md)."""
    k = weight.shape[2]
    if not (x.device.type == "cpu" and groups > 1 and weight.shape[0] == 2 * groups
            and weight.shape[1] == 1 and k > 1 and weight.shape[3] == k
            and dilation in (1, (1, 1))):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    pairs = weight.reshape(groups, 2, *weight.shape[1:])
    biases = (None, None) if bias is None else bias.view(groups, 2).unbind(1)
    ys = [F.conv2d(x, pairs[:, j], biases[j], stride, padding, dilation, groups) for j in (0, 1)]
    n, c, h, w = ys[0].shape
    if _is_channels_last(ys[0]):  # channels innermost: interleave inside each pixel
        return torch.stack([y.permute(0, 2, 3, 1) for y in ys], dim=-1).view(
            n, h, w, 2 * c).permute(0, 3, 1, 2)
    return torch.stack(ys, dim=2).view(n, 2 * c, h, w)


def _conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    offset: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """A convolution whose taps start ``offset`` into a window padded by ``padding``."""
    pad_h, pad_w = padding - offset[0], padding - offset[1]
    if pad_h < 0 or pad_w < 0:
        crop_h, crop_w = max(-pad_h, 0), max(-pad_w, 0)
        x = x[:, :, crop_h : x.shape[2] - crop_h, crop_w : x.shape[3] - crop_w]
        pad_h, pad_w = max(pad_h, 0), max(pad_w, 0)
    return _conv2d(x, weight, None, stride, (pad_h, pad_w), dilation, groups)


@lru_cache(maxsize=4096)
def _index_buffers(spec: SSCSpec) -> tuple[tuple[str, torch.Tensor], ...]:
    """The index tensors of a layer of ``spec``, as (buffer name, tensor) pairs."""
    plan = fast_path_plan(spec)
    c_out, b, k = spec.out_channels, spec.block, spec.kernel_size
    win, pw = spec.channel_windows()
    rows = torch.arange(c_out).view(c_out, 1)
    positions = pattern_positions(spec.pattern, k) if spec.spatial_channels else ()
    # Flat indices into the (C_out, B) 1 x 1 weight of the fast path: pointwise channels, and
    # (sparse patterns) the centre taps folded into it.
    center_one = (rows * b + win).flatten()
    if not plan.fold_center:
        center_one = center_one[:0]
    rows_idx = [f if f >= 0 else c_out for f in plan.slot_filters]
    slot_of = {f: r for r, f in enumerate(plan.slot_filters) if f >= 0}
    in_index = plan.in_index if plan.in_index is not None else ()
    # Flat positions of the stored weights (spatial, then pointwise) in the dense weight.
    cols = spec.block * k * k
    taps = torch.tensor([i * k + j for i, j in positions], dtype=torch.long)
    spatial = (rows.unsqueeze(2) * cols + win.unsqueeze(2) * k * k + taps.view(1, 1, -1))
    center = (k // 2) * k + k // 2
    buffers = [
        ("_one_by_one", (rows * b + pw).flatten()),
        ("_center_one_by_one", center_one),
        ("_slot_rows", torch.tensor(rows_idx, dtype=torch.long)),
        ("_out_index", torch.tensor([slot_of[f] for f in range(c_out)], dtype=torch.long)),
        ("_in_index", torch.tensor(in_index, dtype=torch.long)),
        ("_dense_spatial", spatial.flatten()),
        ("_dense_pointwise", (rows * cols + pw * k * k + center).flatten()),
    ]
    buffers += [(f"_taps{i}", torch.tensor(piece.taps, dtype=torch.long))
                for i, piece in enumerate(plan.pieces)]
    return tuple(buffers)


class _Place(torch.autograd.Function):
    """Two stored weight tensors placed at flat positions of a new zero tensor.

    Forward: two in-place ``scatter_`` (no concatenation); backward: one ``index_select`` per
    tensor. Autograd's own backward of a scatter is a slower ``gather`` and that of
    ``index_put`` an indexing gather; ``benchmarks/dense_weight_paths.py`` times the
    difference. The positions are unique, so the result is deterministic.
    """

    @staticmethod
    def forward(ctx: Any, numel: int, index_a: torch.Tensor, a: torch.Tensor,
                index_b: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = a.new_zeros(numel)
        out.scatter_(0, index_a, a.reshape(-1))
        out.scatter_(0, index_b, b.reshape(-1))
        ctx.save_for_backward(index_a, index_b)
        ctx.shapes = (a.shape, b.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        index_a, index_b = ctx.saved_tensors
        shape_a, shape_b = ctx.shapes
        grad_a = grad_b = None
        if ctx.needs_input_grad[2]:
            grad_a = grad.index_select(0, index_a).view(shape_a)
        if ctx.needs_input_grad[4]:
            grad_b = grad.index_select(0, index_b).view(shape_b)
        return None, None, grad_a, None, grad_b


def _place(numel: int, a: tuple[torch.Tensor, torch.Tensor],
           b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """A flat tensor of ``numel`` zeros with ``a[1]`` at positions ``a[0]`` and ``b[1]`` at
    ``b[0]`` (each flattened), differentiable in the values."""
    return _Place.apply(numel, a[0], a[1], b[0], b[1])


@dataclass
class _DenseLayout:
    """An :class:`SSCConv2d`'s dense layout: its dense weight and fixed mask (``None`` where
    the structure fills the dense weight, as in a full layer: nothing to mask)."""

    weight: nn.Parameter
    mask: torch.Tensor | None
    active: bool = True


class SSCConv2d(nn.Module):
    """A structured sparse convolution; the knobs are those of :class:`SSCSpec`.

    Input (N, in_channels, H, W) -> output (N, out_channels, H_out, W_out), channel f being
    filter f. Works in either memory format (``channels_last`` is usually faster on CPU).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        spatial_channels: int | None = None,
        pointwise_channels: int = 0,
        pattern: str = "full",
        phases: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        spec = SSCSpec(
            in_channels, out_channels, kernel_size, stride, padding, groups,
            spatial_channels, pointwise_channels, pattern, phases, bias,
        )  # fmt: skip
        self.spec = spec
        self.plan = fast_path_plan(spec)
        n_k, n_1, taps = spec.spatial_channels, spec.pointwise_channels, spec.taps
        self.spatial_weight = nn.Parameter(torch.empty(out_channels, n_k, taps))
        self.pointwise_weight = nn.Parameter(torch.empty(out_channels, n_1))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self._layout: _DenseLayout | None = None
        self._register_indices()
        self.reset_parameters()

    # -- construction -------------------------------------------------------------------------

    def _register_indices(self) -> None:
        spec, plan = self.spec, self.plan
        if plan.fold_center:
            positions = pattern_positions(spec.pattern, spec.kernel_size)
            centre = (spec.kernel_size // 2, spec.kernel_size // 2)
            self._center_tap = positions.index(centre)
        self._slot_identity = plan.slot_order_is_filter_order
        per_phase = spec.filters_per_group // spec.phases
        self._equal_phases = (plan.rows == spec.out_channels
                              and per_phase * spec.phases == spec.filters_per_group)
        # Index buffers are read-only and the same for every layer of one spec: they are built
        # once per spec and shared (a model's .to() gives each module its own copy).
        for name, index in _index_buffers(spec):
            self.register_buffer(name, index, persistent=False)

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the true fan-in, as nn.Conv2d does."""
        bound = 1.0 / math.sqrt(self.spec.weights_per_filter)
        for p in (self.spatial_weight, self.pointwise_weight, self.bias):
            if p is not None:
                nn.init.uniform_(p, -bound, bound)

    @classmethod
    def from_spec(cls, spec: SSCSpec) -> SSCConv2d:
        return cls(**spec.to_dict())

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, **knobs: Any) -> SSCConv2d:
        """The SSC layer of ``conv``'s shape, keeping ``conv``'s weights where the structure does.

        With no ``knobs`` (or ``groups=conv.groups`` and all channels spatial, pattern full) it is
        exact for standard, grouped, depthwise and pointwise ``nn.Conv2d``. Other knobs keep the
        dense weights at the positions the structure keeps (a projection onto the structure);
        ``groups`` must then be a multiple of ``conv.groups``.
        """
        kh, kw = conv.kernel_size
        if kh != kw or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError(
                "from_conv2d needs a square kernel, dilation 1 and zero padding, but got "
                f"kernel_size={conv.kernel_size}, dilation={conv.dilation}, "
                f"padding_mode={conv.padding_mode!r}"
            )
        padding = conv.padding
        if padding == "same":
            padding = (kh // 2, kw // 2)
        if isinstance(padding, str) or padding[0] != padding[1] or conv.stride[0] != conv.stride[1]:
            raise ValueError(
                "from_conv2d needs equal padding and stride on both axes, but got "
                f"padding={conv.padding}, stride={conv.stride}"
            )
        knobs.setdefault("groups", conv.groups)
        if knobs["groups"] % conv.groups:
            raise ValueError(
                f"groups must be a multiple of the convolution's groups ({conv.groups}), "
                f"but got {knobs['groups']}"
            )
        layer = cls(conv.in_channels, conv.out_channels, kh, conv.stride[0], padding[0],
                    bias=conv.bias is not None, **knobs)
        layer = layer.to(device=conv.weight.device, dtype=conv.weight.dtype)
        # The conv's weight as one (C_out, C_in, K*K) block-diagonal weight, then gather.
        s, w = layer.spec, conv.weight.detach()
        c_in_block = conv.in_channels // conv.groups
        full = w.new_zeros(s.out_channels, s.in_channels, kh * kw)
        rows = torch.arange(s.out_channels, device=w.device)
        cols = (rows // (s.out_channels // conv.groups) * c_in_block).view(-1, 1)
        full[rows.view(-1, 1), cols + torch.arange(c_in_block, device=w.device)] = w.flatten(2)
        rows, win, taps, pw, center = layer._structure_index()
        offset = (rows // s.filters_per_group) * s.block
        with torch.no_grad():
            layer.spatial_weight.copy_(full[rows.unsqueeze(2), (win + offset).unsqueeze(2),
                                            taps.view(1, 1, -1)])
            layer.pointwise_weight.copy_(full[rows, pw + offset, center])
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    @classmethod
    def standard(cls, in_channels: int, out_channels: int, kernel_size: int = 3,
                 **knobs: Any) -> SSCConv2d:
        """A dense K x K convolution."""
        return cls(in_channels, out_channels, kernel_size, **knobs)

    @classmethod
    def groupwise(cls, in_channels: int, out_channels: int, groups: int, kernel_size: int = 3,
                  **knobs: Any) -> SSCConv2d:
        """A grouped K x K convolution."""
        return cls(in_channels, out_channels, kernel_size, groups=groups, **knobs)

    @classmethod
    def depthwise(cls, channels: int, kernel_size: int = 3, multiplier: int = 1,
                  **knobs: Any) -> SSCConv2d:
        """One K x K kernel per input channel (``multiplier`` filters per channel)."""
        return cls(channels, channels * multiplier, kernel_size, groups=channels, **knobs)

    @classmethod
    def pointwise(cls, in_channels: int, out_channels: int, groups: int = 1,
                  **knobs: Any) -> SSCConv2d:
        """A (grouped) 1 x 1 convolution."""
        return cls(in_channels, out_channels, 1, groups=groups, **knobs)

    @classmethod
    def hetconv(cls, in_channels: int, out_channels: int, part: int, kernel_size: int = 3,
                **knobs: Any) -> SSCConv2d:
        """HetConv with part P: each filter has C_in/P spatial and C_in - C_in/P 1 x 1 kernels."""
        if part < 1 or in_channels % part:
            raise ValueError(
                f"part must divide in_channels, but got part={part}, in_channels={in_channels}"
            )
        n_k = in_channels // part
        return cls(in_channels, out_channels, kernel_size, spatial_channels=n_k,
                   pointwise_channels=in_channels - n_k, phases=part, **knobs)

    def with_knobs(self, **knobs: Any) -> SSCConv2d:
        """A new, freshly initialised layer with some knobs changed."""
        return type(self).from_spec(replace(self.spec, **knobs))

    # -- conversions --------------------------------------------------------------------------

    def _structure_index(self) -> tuple[torch.Tensor, ...]:
        """(rows (C_out, 1), spatial (C_out, n_k), taps (T,), pointwise (C_out, n_1), centre):
        where each stored weight sits in a dense (C_out, C_in / groups, K * K) weight."""
        s = self.spec
        k = s.kernel_size
        device = self.spatial_weight.device
        win, pw = (t.to(device) for t in s.channel_windows())
        rows = torch.arange(s.out_channels, device=device).view(-1, 1)
        positions = pattern_positions(s.pattern, k) if s.spatial_channels else ()
        taps = torch.tensor([i * k + j for i, j in positions], dtype=torch.long, device=device)
        center = torch.tensor((k // 2) * k + k // 2, device=device)
        return rows, win, taps, pw, center

    def to_dense_weight(self) -> torch.Tensor:
        """The equivalent dense (C_out, C_in / groups, K, K) weight (zeros where empty)."""
        return self._placed(self.spatial_weight, self.pointwise_weight)

    def _placed(self, spatial: torch.Tensor, pointwise: torch.Tensor) -> torch.Tensor:
        """Two tensors shaped like the stored weights (the weights themselves, their gradient or
        optimizer state) placed where the weights sit in the dense weight, zeros elsewhere."""
        s = self.spec
        w = _place(s.out_channels * s.block * s.kernel_size**2,
                   (self._dense_spatial, spatial), (self._dense_pointwise, pointwise))
        return w.view(s.out_channels, s.block, s.kernel_size, s.kernel_size)

    def _gathered(self, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inverse of :meth:`_placed`: the entries of a dense-weight-shaped tensor (any
        memory format) at the stored weights' positions, shaped like them."""
        flat = dense.reshape(-1)
        return (flat.index_select(0, self._dense_spatial).view(self.spatial_weight.shape),
                flat.index_select(0, self._dense_pointwise).view(self.pointwise_weight.shape))

    def to_conv2d(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` computing the same function with the dense weight."""
        s = self.spec
        w = self.spatial_weight
        conv = nn.Conv2d(s.in_channels, s.out_channels, s.kernel_size, s.stride, s.padding,
                         groups=s.groups, bias=s.bias, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.to_dense_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Slow, obviously right: ``F.conv2d`` with the dense weight."""
        s = self.spec
        return F.conv2d(x, self.to_dense_weight(), self.bias, s.stride, s.padding, 1, s.groups)

    # -- fast path ----------------------------------------------------------------------------

    def _one_by_one_weight(self, slot_order: bool) -> torch.Tensor:
        """The (rows, block, 1, 1) weight of the grouped 1 x 1 convolution, its rows in filter
        order or (``slot_order``) in the row order of the spatial convolution."""
        s = self.spec
        center = (self.spatial_weight[:, :, self._center_tap] if self.plan.fold_center
                  else self.spatial_weight.new_zeros(0))
        w = _place(s.out_channels * s.block, (self._one_by_one, self.pointwise_weight),
                   (self._center_one_by_one, center)).view(s.out_channels, s.block)
        if slot_order and not self._slot_identity:
            w = torch.cat([w, w.new_zeros(1, s.block)]).index_select(0, self._slot_rows)
        return w.view(w.shape[0], s.block, 1, 1)

    def _phase_views(self, slots: torch.Tensor,
                     filters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Views in which ``slots`` (slot order) and ``filters`` (filter order) line up.

        When every phase holds the same number of filters, slot order -> filter order is a
        transpose of (phase, index) within each group, so adding or copying through these views
        reorders in the same pass, keeping the memory format. None when a gather is needed.
        """
        s = self.spec
        if not self._equal_phases:
            return None
        per_phase = s.filters_per_group // s.phases
        n, _, h, w = slots.shape
        shape = (n, s.groups, s.phases, per_phase, h, w)
        if all(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
               for t in (slots, filters)):
            nhwc = (n, h, w, s.groups, s.phases, per_phase)
            src = slots.permute(0, 2, 3, 1).view(nhwc).transpose(4, 5)
            dst = filters.permute(0, 2, 3, 1).view(*nhwc[:4], per_phase, s.phases)
            return src, dst
        if slots.is_contiguous() and filters.is_contiguous():
            src = slots.view(shape).transpose(2, 3)
            return src, filters.view(n, s.groups, per_phase, s.phases, h, w)
        return None

    def _to_filter_order(self, slots: torch.Tensor) -> torch.Tensor:
        """Slot order -> filter order: one strided copy, or a gather for unequal phases."""
        out = torch.empty_like(slots)
        views = self._phase_views(slots, out)
        if views is None:
            return slots.index_select(1, self._out_index)
        views[1].copy_(views[0])
        return out

    def uses_dense_weight(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward` runs the dense-weight path for ``x``
        (:meth:`dense_path_for` its device and memory format; a training step where gradients
        are enabled)."""
        return self.dense_path_for(x.device.type, _is_channels_last(x), torch.is_grad_enabled())

    def dense_path_for(self, device_type: str, channels_last: bool,
                       training: bool = False) -> bool:
        """Whether input on ``device_type`` in that memory format runs the dense-weight path,
        in a training step or in inference: where the plan says it is cheaper
        (:meth:`FastPathPlan.dense_for`), and always off the CPU (on a GPU the sparse path's
        extra kernel launches cost more than the multiply-accumulates it saves;
        docs/ssc-layer.md)."""
        return device_type != "cpu" or self.plan.dense_for(channels_last, training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_dense_layout:
            # The masked entries of the dense weight are exactly zero (the mask keeps their
            # gradient zero), so without gradients the multiply changes nothing.
            weight = self.dense_weight
            if torch.is_grad_enabled() and self._layout.mask is not None:
                weight = weight * self._layout.mask
            return self._dense_conv(x, weight)
        if self.uses_dense_weight(x):
            return self._dense_conv(x, self.to_dense_weight())
        return self._sparse_forward(x)

    def _dense_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The dense-weight path: the convolution of :meth:`reference_forward` with ``weight``,
        except for depthwise layers (``in_channels / groups == 1``) given a channels_last GPU
        input, which run on an NCHW copy and return channels_last. For a channels_last
        depthwise convolution torch always calls cuDNN, whose kernels for it are compiled at run
        time on the first call of each shape (0.25-0.45 s per shape on an H200, cuDNN 9.19); in
        NCHW float32 torch runs its own depthwise kernel, which needs no compilation
        (docs/ssc-layer.md)."""
        s = self.spec
        if s.block == 1 and s.groups > 1 and x.is_cuda and _is_channels_last(x):
            y = F.conv2d(x.contiguous(), weight.contiguous(), self.bias, s.stride, s.padding, 1,
                         s.groups)
            return y.contiguous(memory_format=torch.channels_last)
        return _conv2d(x, weight, self.bias, s.stride, s.padding, 1, s.groups)

    # -- dense training layout ----------------------------------------------------------------

    @property
    def in_dense_layout(self) -> bool:
        """Whether the layer runs as ``dense_weight`` times its fixed structure mask
        (:meth:`enter_dense_layout`)."""
        return self._layout is not None and self._layout.active

    def enter_dense_layout(self, channels_last: bool = False) -> nn.Parameter:
        """Run as a dense weight times the structure's fixed 0/1 mask, as masked dense code
        does: registers the parameter ``dense_weight`` (the stored weights placed, zeros
        elsewhere; channels_last if asked, except for depthwise layers) and returns it.
        Without gradients the forward skips the multiply (the masked entries are zero), and a
        layer whose structure fills the dense weight (a full layer) has no mask at all.

        The function is the same. Under SGD or AdamW, with or without weight decay, the masked
        entries stay exactly zero and the others take the stored weights' updates, so
        :meth:`leave_dense_layout` gives the weights compact training would have given. The
        parameter object is kept between calls (a CUDA graph captured on it stays valid).
        """
        if self.in_dense_layout:
            raise RuntimeError("the layer is in its dense layout already")
        fmt = (torch.channels_last if channels_last and self.spec.block > 1
               else torch.contiguous_format)
        with torch.no_grad():
            dense = self.to_dense_weight()
            old = self._layout
            if (old is not None and old.weight.shape == dense.shape
                    and old.weight.dtype == dense.dtype and old.weight.device == dense.device
                    and old.weight.is_contiguous(memory_format=fmt)):
                old.weight.copy_(dense)
                layout = _DenseLayout(old.weight, old.mask)
            else:
                mask = None if self.spec.fills_dense_weight else self._placed(
                    torch.ones_like(self.spatial_weight),
                    torch.ones_like(self.pointwise_weight)).contiguous(memory_format=fmt)
                layout = _DenseLayout(nn.Parameter(dense.contiguous(memory_format=fmt)), mask)
        self.register_parameter("dense_weight", layout.weight)
        self._layout = layout
        return layout.weight

    def leave_dense_layout(self) -> None:
        """Back to the stored weights, which take ``dense_weight``'s trained values."""
        if not self.in_dense_layout:
            raise RuntimeError("the layer is not in its dense layout")
        with torch.no_grad():
            spatial, pointwise = self._gathered(self.dense_weight)
            self.spatial_weight.copy_(spatial)
            self.pointwise_weight.copy_(pointwise)
        self.dense_weight.grad = None  # the kept parameter holds no stale gradient
        del self.dense_weight
        self._layout.active = False

    def _sparse_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The sparse path (pieces, 1 x 1 convolution, reorder), whichever path is cheaper."""
        s, plan = self.spec, self.plan
        c = s.kernel_size // 2
        channels_last = _is_channels_last(x)
        out = None
        if plan.pieces:
            xs = x
            if plan.in_index is not None:
                xs = x.index_select(1, self._in_index)
                if channels_last:  # index_select returns NCHW; the convolutions want x's format
                    xs = xs.contiguous(memory_format=torch.channels_last)
            w = self.spatial_weight
            if not self._slot_identity:
                w = torch.cat([w, w.new_zeros(1, *w.shape[1:])]).index_select(0, self._slot_rows)
            for i, piece in enumerate(plan.pieces):
                if len(piece.taps) == w.shape[2]:
                    wp = w.view(w.shape[0], w.shape[1], *piece.size)
                else:
                    taps = getattr(self, f"_taps{i}")
                    wp = w.index_select(2, taps).view(w.shape[0], w.shape[1], *piece.size)
                y = _conv(xs, wp, s.stride, s.padding, (piece.row, piece.col), piece.dilation,
                          plan.spatial_groups)
                out = y if out is None else out.add_(y)
        reorder = out is not None and not self._slot_identity  # out is in slot order
        if plan.has_1x1:
            # With equal phases the 1 x 1 output comes in filter order and takes the spatial
            # sum through a reordering view: the add and the reorder are one pass.
            fuse = reorder and self._equal_phases
            y = _conv(x, self._one_by_one_weight(slot_order=reorder and not fuse), s.stride,
                      s.padding, (c, c), (1, 1), s.groups)
            if out is None:
                out = y
            elif fuse:
                views = self._phase_views(out, y)
                if views is None:  # unusual strides: reorder, then add
                    out = self._to_filter_order(out).add_(y)
                else:
                    out = y
                    views[1].add_(views[0])
                reorder = False
            else:
                out = out.add_(y)
        if reorder:
            out = self._to_filter_order(out)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        if channels_last and out.is_contiguous() and out.shape[1] > 1:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def extra_repr(self) -> str:
        s = self.spec
        text = (f"{s.in_channels}, {s.out_channels}, kernel_size={s.kernel_size}, "
                f"stride={s.stride}, padding={s.padding}, groups={s.groups}, "
                f"spatial_channels={s.spatial_channels}, "
                f"pointwise_channels={s.pointwise_channels}")
        if s.spatial_channels:
            text += f", pattern={s.pattern!r}"
        if s.phases != 1:
            text += f", phases={s.phases}"
        return text + (", bias=True" if s.bias else "")
