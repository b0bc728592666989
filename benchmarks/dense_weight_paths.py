"""Where an SSC network's step time goes when the layer runs its dense-weight path (always on a
GPU): the cost of building the dense weight from the compact one, against masking a dense
weight and against no weight construction at all.

For each network (the dense family network, the reference designs and ``--designs`` sampled
designs of ``--space``), one train step (forward, loss, backward, SGD) is timed with every
``SSCConv2d`` computing its convolution in one of seven ways, interleaved round by round:

* ``ssc``: the layer as it is (dense-weight path forced on, as on a GPU);
* ``index_put``: the layer with its dense weight built as before 2026-11-27 (concatenate
  the stored weights, ``index_put`` them into zeros; autograd's backward), against the layer's
  ``_Place`` (two in-place ``scatter_``, backward one ``index_select`` each): the previous
  code in the same run;
* ``flat``: one flat parameter holding both stored tensors, scattered into a zero dense weight
  in place (``new_zeros`` + ``index_put_``; backward one gather): what the layer would cost with
  a single flat weight tensor;
* ``cl_build``: the layer's ``_Place`` build, but into the channels_last storage order of the
  dense weight, so a channels_last convolution gets its weight in its own layout (the ``ssc``
  weight is NCHW and the convolution converts it, forward and backward);
* ``gather``: the dense weight gathered from the stored weights and one zero (``cat`` +
  ``index_select`` forward, one ``index_select`` backward) instead of scattered into zeros;
* ``layout``: the layer as ``ssc-nas`` trains it, in its dense training layout
  (``ssc_nas.layers.dense_layout``: a dense weight times the structure's mask; on a CPU only the
  layers whose plan takes the dense-weight path in training);
* ``masked``: a dense ``groups=1`` weight times a fixed 0/1 mask (pruning at init);
* ``conv``: a plain ``nn.Conv2d`` with the layer's groups (no weight construction: the floor).

On CUDA four more columns, ``graphed``, ``graphed_cl``, ``graphed_layout`` and
``graphed_masked``, run the ``ssc``, ``cl_build``, ``layout`` and ``masked`` networks' forward
and backward as CUDA graphs (``torch.cuda.make_graphed_callables``; loss and SGD step eager), as
training runs there: what replaying the kernels without per-operator dispatch gives, for
networks whose GPU time is small against their launch overhead, and whether the layout then
costs what masked dense costs (the sixth GPU run found 1.13x where both run one convolution).

Printed: median ms per step and each variant's median per-round ratio to ``ssc``; then
``torch.profiler``'s top operators (self CPU time, and self device time on CUDA) of ``ssc``,
``layout`` and ``masked`` on the dense network, which show the per-operator dispatch and launch
cost, and the operators the layout runs that masked dense does not.

    python benchmarks/dense_weight_paths.py --device cuda --designs 5
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import full_float32  # noqa: E402  (sibling benchmark scripts)
from network_speed import (  # noqa: E402  (a sibling benchmark script)
    SPACES,
    MaskedConv2d,
    designs,
    machine,
    rotated,
    swapped,
    sync,
    train_step,
)

from ssc_nas.layers import SSCConv2d, dense_layout  # noqa: E402
from ssc_nas.layers.ssc import _place  # noqa: E402
from ssc_nas.models import build  # noqa: E402
from ssc_nas.runtime import tune_malloc  # noqa: E402

VARIANTS = ("ssc", "index_put", "flat", "cl_build", "gather", "layout", "masked", "conv")
#: CUDA only: graphed steps of these variants' networks
GRAPHED = {"graphed": "ssc", "graphed_cl": "cl_build", "graphed_layout": "layout",
           "graphed_masked": "masked"}


class DenseSSC(SSCConv2d):
    """The layer with its dense-weight path on whatever the device (as on a GPU)."""

    def uses_dense_weight(self, x: torch.Tensor) -> bool:
        return True


class FlatConv2d(nn.Module):
    """One flat parameter (spatial then pointwise) scattered into a zero dense weight."""

    def __init__(self, layer: SSCConv2d) -> None:
        super().__init__()
        s = layer.spec
        self.spec = s
        self.weight = nn.Parameter(torch.cat([layer.spatial_weight.detach().flatten(),
                                              layer.pointwise_weight.detach().flatten()]))
        self.register_buffer("index", torch.cat([layer._dense_spatial, layer._dense_pointwise]))
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())
        self.shape = (s.out_channels, s.block, s.kernel_size, s.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        w = self.weight.new_zeros(self.shape).view(-1).index_put_((self.index,), self.weight)
        return F.conv2d(x, w.view(self.shape), self.bias, s.stride, s.padding, 1, s.groups)


class IndexPutSSC(DenseSSC):
    """:class:`DenseSSC` with the dense weight built as before 2026-11-27: a concatenation of
    the stored weights put into zeros by ``index_put`` (autograd's backward: an indexing
    gather and a split). Its one index buffer is concatenated once, as that code stored it."""

    def _register_indices(self) -> None:
        super()._register_indices()
        self.register_buffer("_dense_index", torch.cat([self._dense_spatial,
                                                        self._dense_pointwise]), persistent=False)

    def to_dense_weight(self) -> torch.Tensor:
        s = self.spec
        w = self.spatial_weight.new_zeros(s.out_channels * s.block * s.kernel_size**2)
        values = torch.cat([self.spatial_weight.flatten(), self.pointwise_weight.flatten()])
        w = w.index_put((self._dense_index,), values)
        return w.view(s.out_channels, s.block, s.kernel_size, s.kernel_size)


def _channels_last_positions(index: torch.Tensor, shape: tuple[int, int, int, int]
                             ) -> torch.Tensor:
    """Flat positions in a contiguous (C, B, K, K) tensor -> positions in its channels_last
    storage order (C, K, K, B)."""
    c, b, kh, kw = shape
    w = index % kw
    h = index // kw % kh
    i = index // (kw * kh) % b
    o = index // (kw * kh * b)
    return ((o * kh + h) * kw + w) * b + i


class ChannelsLastBuildSSC(DenseSSC):
    """:class:`DenseSSC` with the dense weight placed straight into channels_last storage."""

    def _register_indices(self) -> None:
        super()._register_indices()
        s = self.spec
        shape = (s.out_channels, s.block, s.kernel_size, s.kernel_size)
        for name in ("_dense_spatial", "_dense_pointwise"):
            self.register_buffer(f"{name}_cl", _channels_last_positions(getattr(self, name), shape),
                                 persistent=False)

    def to_dense_weight(self) -> torch.Tensor:
        s = self.spec
        # With one input channel per group both layouts are the same memory, and channels_last
        # strides would send a GPU depthwise convolution to cuDNN (SSCConv2d._dense_conv).
        if s.block == 1:
            return super().to_dense_weight()
        k = s.kernel_size
        w = _place(s.out_channels * s.block * k * k, (self._dense_spatial_cl, self.spatial_weight),
                   (self._dense_pointwise_cl, self.pointwise_weight))
        return w.view(s.out_channels, k, k, s.block).permute(0, 3, 1, 2)


class _Gather(torch.autograd.Function):
    """Dense weight = ``cat(values, 0)[index]``; backward: the gradient at the values'
    positions (each value sits at exactly one)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, index: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(positions)
        return torch.cat([values, values.new_zeros(1)]).index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (positions,) = ctx.saved_tensors
        return grad.index_select(0, positions), None, None


class GatherSSC(DenseSSC):
    """:class:`DenseSSC` with the dense weight gathered rather than scattered."""

    def _register_indices(self) -> None:
        super()._register_indices()
        s = self.spec
        numel = s.out_channels * s.block * s.kernel_size**2
        positions = torch.cat([self._dense_spatial, self._dense_pointwise])
        index = torch.full((numel,), len(positions), dtype=torch.long)
        index[positions] = torch.arange(len(positions))
        self.register_buffer("_gather_index", index, persistent=False)
        self.register_buffer("_gather_positions", positions, persistent=False)

    def to_dense_weight(self) -> torch.Tensor:
        s = self.spec
        values = torch.cat([self.spatial_weight.reshape(-1), self.pointwise_weight.reshape(-1)])
        w = _Gather.apply(values, self._gather_index, self._gather_positions)
        return w.view(s.out_channels, s.block, s.kernel_size, s.kernel_size)


def dense_path(layer: SSCConv2d, kind: type[DenseSSC] = DenseSSC) -> SSCConv2d:
    out = kind.from_spec(layer.spec)
    out.load_state_dict(layer.state_dict())
    return out


MAKERS = {"ssc": dense_path, "index_put": lambda layer: dense_path(layer, IndexPutSSC),
          "flat": FlatConv2d,
          "cl_build": lambda layer: dense_path(layer, ChannelsLastBuildSSC),
          "gather": lambda layer: dense_path(layer, GatherSSC),
          "layout": lambda layer: dense_path(layer, SSCConv2d), "masked": MaskedConv2d,
          "conv": lambda layer: layer.to_conv2d()}


def networks(design, device: torch.device, fmt: torch.memory_format) -> dict[str, nn.Module]:
    channels, size, classes, _ = SPACES[design.space]
    torch.manual_seed(0)
    base = build(design.arch, channels, classes, size)
    return {k: swapped(base, MAKERS[k]).to(device, memory_format=fmt) for k in VARIANTS}


def graphed_times(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  repeats: int) -> list[float]:
    """Train-step seconds of a copy of ``model`` run as CUDA graphs (after its SGD rounds);
    NaN rounds when capture fails (printed)."""
    graphed = copy.deepcopy(model).train()
    for p in graphed.parameters():
        p.grad = None
    try:
        # allow_unused_input: in the layout the stored weights are parameters the step skips
        graphed = torch.cuda.make_graphed_callables(graphed, (x.clone(),),
                                                    allow_unused_input=True)
        opt = torch.optim.SGD(graphed.parameters(), lr=1e-3, momentum=0.9)
        out = [train_step(graphed, opt, x, y) for _ in range(2 + repeats)]
    except Exception as exc:  # a probe: report and go on
        print(f"  graphed: failed: {type(exc).__name__}: {exc}")
        return [float("nan")] * repeats
    return out[2:]


def profile_table(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rows: int,
                  layout: bool = False) -> str:
    """``torch.profiler``'s top operators over 5 train steps (after 3), the model in its dense
    training layout if ``layout``."""
    from torch.profiler import ProfilerActivity, profile

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    block = (dense_layout(model, opt, device_type=x.device.type, channels_last=True) if layout
             else contextlib.nullcontext())
    with block:
        for _ in range(3):
            train_step(model, opt, x, y)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.is_cuda else [])
        with profile(activities=activities) as prof:
            for _ in range(5):
                train_step(model, opt, x, y)
    key = "self_cuda_time_total" if x.is_cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=40)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="resnet20-ssc", choices=sorted(SPACES))
    p.add_argument("--designs", type=int, default=5, help="sampled designs (default 5)")
    p.add_argument("--repeats", type=int, default=9, help="timed rounds (default 9)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--profile-rows", type=int, default=15,
                   help="rows of each profile table (0: no profile)")
    args = p.parse_args(argv)
    tune_malloc()  # as the ssc-nas command does
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fmt = torch.channels_last
    print(machine())
    print(f"{args.space}, batch {args.batch}, channels_last, 2 warm-up + {args.repeats} rounds; "
          "ms per train step (median); ratio: median per-round variant / ssc")
    shown = VARIANTS + (GRAPHED if device.type == "cuda" else ())
    print("| design | " + " | ".join(f"{v} ms" for v in shown) + " | "
          + " | ".join(f"{v}/ssc" for v in shown[1:]) + " |")
    print("|:--|" + "--:|" * (2 * len(shown) - 1))
    channels, size, classes, _ = SPACES[args.space]
    all_ratios: dict[str, list[float]] = {v: [] for v in VARIANTS[1:]}
    todo = designs(args.space, args.designs, 0)
    for design in todo:
        models = networks(design, device, fmt)
        x = torch.randn(args.batch, channels, *size, device=device).contiguous(
            memory_format=fmt)
        y = torch.randint(0, classes, (args.batch,), device=device)
        with torch.no_grad(), full_float32():
            ref = models["conv"].eval()(x[:4])
            for k, m in models.items():
                err = float((m.eval()(x[:4]) - ref).abs().max())
                if err > 1e-3:
                    raise RuntimeError(f"{design.name}: {k} differs from conv by {err:.2e}")
        opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
                for k, m in models.items()}
        times: dict[str, list[float]] = {k: [] for k in VARIANTS}
        for m in models.values():
            m.train()
        with dense_layout(models["layout"], opts["layout"], device_type=device.type,
                          channels_last=True):
            for i in range(2 + args.repeats):
                for k in rotated(VARIANTS, i):
                    t = train_step(models[k], opts[k], x, y)
                    if i >= 2:
                        times[k].append(t)
            if device.type == "cuda":
                for k, variant in GRAPHED.items():
                    times[k] = graphed_times(models[variant], x, y, args.repeats)
        ratios = {k: statistics.median(a / b for a, b in zip(times[k], times["ssc"],
                                                             strict=True))
                  for k in times if k != "ssc"}
        for k, r in ratios.items():
            all_ratios.setdefault(k, []).append(r)
        print(f"| {design.name} | "
              + " | ".join(f"{1e3 * statistics.median(t):.2f}" for t in times.values())
              + " | " + " | ".join(f"{r:.2f}" for r in ratios.values()) + " |", flush=True)
    print("\nmedian over designs: " + ", ".join(
        f"{k}/ssc {statistics.median(v):.2f}" for k, v in all_ratios.items()))
    if args.profile_rows:
        models = networks(todo[0], device, fmt)
        x = torch.randn(args.batch, channels, *size, device=device).contiguous(
            memory_format=fmt)
        y = torch.randint(0, classes, (args.batch,), device=device)
        for k in ("ssc", "layout", "masked"):
            print(f"\nprofile, {todo[0].name}, {k}, 5 train steps:")
            print(profile_table(models[k].train(), x, y, args.profile_rows,
                                layout=k == "layout"))
    sync(torch.empty(0, device=device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
