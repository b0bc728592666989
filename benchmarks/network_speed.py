"""Time whole networks: SSC fast path vs the same network masked dense vs the dense network.

For each design, three networks run a training step (forward, cross-entropy, backward, SGD
step with momentum) and an inference forward (``torch.inference_mode()``, eval mode) on one
batch, interleaved in rotating order like ``layer_speed.py``:

* ``ssc``: the design as ``ssc_nas.build`` makes it, trained and evaluated as a search trial
  does: the layers of the dense-weight path in their dense layout
  (``ssc_nas.layers.dense_layout``; in inference the dense weight is built once, not per call);
* ``masked``: the same network with every ``SSCConv2d`` replaced by a dense ``groups=1``
  convolution whose weight is multiplied by a fixed 0/1 mask of the SSC structure every call,
  which is how pruning-at-initialisation code runs sparsity;
* ``dense``: the family network at the same width with every searchable convolution dense, as
  plain ``nn.Conv2d`` layers;
* ``compact`` (training only, with ``--compact``): ``ssc`` trained without the dense layout,
  every step placing the stored weights into the dense weight (the code before the layout).

Designs: the dense family network at width 1, every reference design that search enqueues
(``ssc_nas.search.reference_designs`` at the widest width that fits the budget), and
``--designs`` random feasible designs of each space (uniform knobs, rejected until they fit).
Spaces: ``resnet20-ssc`` on mnist-5k-shaped input (1 x 28 x 28) and ``vgg16-ssc`` on CIFAR-shaped
input (3 x 32 x 32), both 10 classes under a 0.5M parameter budget.

Times are per image (median over rounds); ratios are medians of per-round ratios (< 1: SSC
faster). The noise of the SSC / masked ratios is half their interquartile range over the rounds,
as in ``layer_speed.py``; the summary counts the designs slower than masked dense beyond it (the
network target: none). Peak memory is the most memory an eager training step allocates beyond
what exists before it (parameters, input), from ``torch.profiler``'s memory events (CUDA: the
caching allocator's peak). On CUDA the training steps of all three networks run their forward
and backward as CUDA graphs, as ``ssc-nas`` trains there (``ssc_nas.train.graphed_forward``;
loss and SGD step eager); ``--no-cuda-graphs`` times them eagerly. Inference is eager. As in
``ssc-nas``, the allocator is tuned first (``ssc_nas.runtime.tune_malloc``; ``--glibc-malloc``
to skip it).

With ``--cpu-time`` the script runs one torch thread and times its CPU time, which other
processes on a shared machine do not inflate (cache and memory-bandwidth contention remain).

Usage::

    python benchmarks/network_speed.py --designs 3 --repeats 2      # quick check, minutes
    python benchmarks/network_speed.py --markdown --out nets.csv   # full run (20 designs)
    python benchmarks/network_speed.py --cpu-time --designs 5       # on a busy machine
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssc_nas import Architecture, LayerSetting, SSCConv2d, build, count  # noqa: E402
from ssc_nas.budget import Budget  # noqa: E402
from ssc_nas.layers import dense_layout  # noqa: E402
from ssc_nas.runtime import malloc_state, tune_malloc  # noqa: E402
from ssc_nas.search.references import reference_architectures  # noqa: E402
from ssc_nas.spaces import BoundSpace, load_space  # noqa: E402
from ssc_nas.train import graphed_forward  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import Timing, max_error, write_csv  # noqa: E402  (a sibling benchmark script)

SPACES = {  # space: (in_channels, input size, classes, budget)
    "resnet20-ssc": (1, (28, 28), 10, "0.5M"),
    "vgg16-ssc": (3, (32, 32), 10, "0.5M"),
}
IMPLS = ("ssc", "masked", "dense")


class MaskedConv2d(nn.Module):
    """A dense ``groups=1`` convolution whose weight is multiplied by a fixed 0/1 mask."""

    def __init__(self, layer: SSCConv2d) -> None:
        super().__init__()
        s = layer.spec
        self.stride, self.padding = s.stride, s.padding
        self.weight = nn.Parameter(full_dense_weight(layer).detach().clone())
        ones = SSCConv2d.from_spec(s)
        with torch.no_grad():
            for p in ones.parameters():
                p.fill_(1.0)
        mask = full_dense_weight(ones) != 0  # the structure, even where a weight drew 0.0
        if int(mask.sum()) != s.out_channels * s.weights_per_filter:
            raise RuntimeError(f"mask of {s} does not match the structure")
        self.register_buffer("mask", mask.to(self.weight.dtype))
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


def full_dense_weight(layer: SSCConv2d) -> torch.Tensor:
    """The layer's weight as a (C_out, C_in, K, K) ``groups=1`` weight (block diagonal)."""
    s = layer.spec
    grouped = layer.to_dense_weight()
    full = grouped.new_zeros(s.out_channels, s.in_channels, s.kernel_size, s.kernel_size)
    m, b = s.filters_per_group, s.block
    for g in range(s.groups):
        full[g * m : (g + 1) * m, g * b : (g + 1) * b] = grouped[g * m : (g + 1) * m]
    return full


def swapped(model: nn.Module, make: Callable[[SSCConv2d], nn.Module]) -> nn.Module:
    """A copy of ``model`` with every ``SSCConv2d`` replaced by ``make(layer)``."""
    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SSCConv2d):
                setattr(module, child_name, make(child))
    return out


def masked_copy(model: nn.Module) -> nn.Module:
    """``model`` with every ``SSCConv2d`` replaced by its :class:`MaskedConv2d`."""
    return swapped(model, MaskedConv2d)


@dataclass(frozen=True)
class Design:
    """One network to time: where it comes from and its architecture."""

    space: str
    kind: str  # "dense family", "reference" or "sampled"
    name: str
    arch: Architecture


def dense_arch(arch: Architecture, bound: BoundSpace) -> Architecture:
    """The same family and width with every searchable convolution dense."""
    slots = bound.plans[arch.width].searchable
    return Architecture(arch.family, arch.width, {s.name: LayerSetting() for s in slots})


def reference_archs(bound: BoundSpace, budget: Budget) -> dict[str, Architecture]:
    """Each reference design as ``enqueue_reference_designs`` enqueues it."""
    return {name: arch for name, (_, arch) in reference_architectures(bound, budget).items()}


def designs(space_name: str, n: int, seed: int) -> list[Design]:
    """The dense family network, the reference designs as search enqueues them, n samples."""
    channels, size, classes, budget_text = SPACES[space_name]
    space = load_space(space_name)
    bound = BoundSpace(space, channels, classes, size)
    budget = Budget.parse(budget_text)
    out = [Design(space_name, "dense family", "dense width 1",
                  Architecture(space.family, 1.0, {}))]
    for name, arch in reference_archs(bound, budget).items():
        out.append(Design(space_name, "reference", f"{name} w{arch.width:g}", arch))
    rng = random.Random(seed)
    found, tries = 0, 0
    while found < n:
        tries += 1
        if tries > 10000 * max(1, n):
            raise RuntimeError(f"{space_name}: fewer than {n} feasible designs in {tries} draws")
        arch = bound.sample(rng)
        if budget.fits(bound.cost(arch)):
            found += 1
            out.append(Design(space_name, "sampled", f"sample {found} w{arch.width:g}", arch))
    return out


CLOCK = time.perf_counter  # --cpu-time: time.thread_time (one thread, immune to other processes)


def rotated(names: Sequence[str], i: int) -> list[str]:
    """``names`` started at round ``i``'s place, so each comes first in turn (drift cancels)."""
    shift = i % len(names)
    return [*names[shift:], *names[:shift]]


def sync(x: torch.Tensor) -> None:
    """Wait for queued GPU work on ``x``'s device (nothing on CPU)."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def train_step(forward: Callable[[torch.Tensor], torch.Tensor], opt: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds for forward, loss, backward and an SGD step (``forward``: a module, or its
    CUDA-graphed forward)."""
    sync(x)
    start = CLOCK()
    loss = F.cross_entropy(forward(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sync(x)
    return CLOCK() - start


def infer_step(model: nn.Module, x: torch.Tensor) -> float:
    """Seconds for one forward under inference mode."""
    sync(x)
    start = CLOCK()
    with torch.inference_mode():
        model(x)
    sync(x)
    return CLOCK() - start


def peak_step_mb(step: Callable[[], object], device: torch.device) -> float:
    """MB allocated at the peak of ``step`` beyond what existed before (CUDA: the caching
    allocator's peak; CPU: profiler memory events, NaN where torch does not expose them)."""
    from torch.profiler import ProfilerActivity, profile

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        current = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            current += e.nbytes()
            peak = max(peak, current)
    except AttributeError:
        return float("nan")
    return peak / 2**20


@dataclass
class Row:
    """One design's costs, per-image times (ms), ratios and peak training memory (MB)."""

    space: str
    kind: str
    name: str
    macs: int
    params: int
    mac_ratio: float  # SSC MACs / dense network MACs
    param_ratio: float
    train_ms: dict[str, float]
    infer_ms: dict[str, float]
    train_vs_masked: float
    train_vs_compact: float  # NaN unless --compact
    train_vs_dense: float
    infer_vs_masked: float
    infer_vs_dense: float
    # Half the interquartile range of the per-round SSC / masked ratios, as layer_speed.py's
    # noise: a ratio above 1 by no more than this is a tie.
    train_noise: float
    infer_noise: float
    peak_mb: dict[str, float]
    max_abs_err: float


def measure(design: Design, batch: int, warmup: int, repeats: int, channels_last: bool,
            memory: bool, device: torch.device, cuda_graphs: bool = True,
            compact: bool = False) -> Row:
    """Build the three networks of ``design``, check ssc == masked, time them interleaved
    (training steps as CUDA graphs where ``device`` is CUDA and ``cuda_graphs``; with
    ``compact`` also ``ssc``'s training without the dense layout)."""
    channels, size, classes, _ = SPACES[design.space]
    bound_dense = dense_arch(design.arch, BoundSpace(load_space(design.space), channels,
                                                     classes, size))
    torch.manual_seed(0)
    ssc = build(design.arch, channels, classes, size)
    # The dense network as plain ``nn.Conv2d`` layers, as a user without SSC runs it (built of
    # SSC layers, it would place each weight every step on a GPU, where every layer takes the
    # dense-weight path).
    models = {"ssc": ssc, "masked": masked_copy(ssc),
              "dense": swapped(build(bound_dense, channels, classes, size), SSCConv2d.to_conv2d)}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    cost = count(ssc, (channels, *size))
    dense_cost = count(models["dense"], (channels, *size))
    models = {k: m.to(device, memory_format=fmt) for k, m in models.items()}
    x = torch.randn(batch, channels, *size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,), device=device)
    for m in models.values():
        m.eval()
    err = max_error(models, x, images=8)
    # Training runs on copies: the ssc copy stays in its dense training layout (as for a whole
    # epoch of a trial), the ssc model timed at inference in its evaluation layout.
    trained = {k: copy.deepcopy(m) for k, m in models.items()}
    if compact:
        trained["compact"] = copy.deepcopy(models["ssc"])
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
            for k, m in trained.items()}
    layout = contextlib.ExitStack()
    layout.enter_context(dense_layout(trained["ssc"], opts["ssc"], device_type=device.type,
                                      channels_last=channels_last))
    layout.enter_context(dense_layout(models["ssc"], device_type=device.type,
                                      channels_last=channels_last))
    err = max(err, max_error(models, x, images=8))  # the evaluation layout: the same function
    forwards: dict[str, Callable[[torch.Tensor], torch.Tensor]] = dict(trained)
    if cuda_graphs and device.type == "cuda":
        for k, m in trained.items():
            forwards[k] = graphed_forward(m.train(), x)
    train_t: dict[str, list[float]] = {k: [] for k in trained}
    infer_t: dict[str, list[float]] = {k: [] for k in IMPLS}
    for i in range(warmup + repeats):
        for k in rotated(list(trained), i):
            trained[k].train()
            t = train_step(forwards[k], opts[k], x, y)
            if i >= warmup:
                train_t[k].append(t)
        for k in rotated(IMPLS, i):
            models[k].eval()
            t = infer_step(models[k], x)
            if i >= warmup:
                infer_t[k].append(t)
    peak = {k: float("nan") for k in IMPLS}
    if memory:
        for k in IMPLS:
            trained[k].train()
            peak[k] = peak_step_mb(lambda k=k: train_step(trained[k], opts[k], x, y), device)
    layout.close()

    train, infer = Timing(train_t), Timing(infer_t)
    return Row(
        design.space, design.kind, design.name, cost.macs, cost.params,
        cost.macs / dense_cost.macs, cost.params / dense_cost.params,
        {k: train.ms(k) / batch for k in IMPLS}, {k: infer.ms(k) / batch for k in IMPLS},
        train.ratio("ssc", "masked"),
        train.ratio("ssc", "compact") if compact else float("nan"), train.ratio("ssc", "dense"),
        infer.ratio("ssc", "masked"), infer.ratio("ssc", "dense"),
        train.spread("ssc", "masked"), infer.spread("ssc", "masked"),
        peak, err,
    )


HEADER = ("space", "design", "MACs M", "params k", "MAC ratio", "train ms/img ssc/msk/dns",
          "train ssc/msk", "train ssc/cmp", "train ssc/dns", "infer ms/img ssc/msk/dns",
          "infer ssc/msk", "infer ssc/dns", "ssc/msk noise ± train/infer", "peak MB ssc/msk/dns")


def cells(r: Row) -> list[str]:
    """Printed cells of a row."""
    def three(d: dict[str, float], f: str) -> str:
        return "/".join(format(d[k], f) for k in IMPLS)

    return [r.space, r.name, f"{r.macs / 1e6:.1f}", f"{r.params / 1e3:.0f}",
            f"{r.mac_ratio:.3f}", three(r.train_ms, ".2f"), f"{r.train_vs_masked:.2f}",
            f"{r.train_vs_compact:.2f}", f"{r.train_vs_dense:.2f}", three(r.infer_ms, ".3f"),
            f"{r.infer_vs_masked:.2f}", f"{r.infer_vs_dense:.2f}",
            f"{r.train_noise:.2f}/{r.infer_noise:.2f}",
            three(r.peak_mb, ".0f")]


def summary(rows: list[Row], cheap: float) -> str:
    """Median speed-up vs dense of cheap sampled designs; worst designs vs masked and dense."""
    out = []
    for space in SPACES:
        sampled = [r for r in rows if r.space == space and r.kind == "sampled"]
        if not sampled:
            continue
        low = [r for r in sampled if r.mac_ratio <= cheap]
        for mode in ("train", "infer"):
            if low:
                speedup = statistics.median(1 / getattr(r, f"{mode}_vs_dense") for r in low)
                out.append(f"{space} {mode}: median speed-up vs dense of the {len(low)} sampled "
                           f"designs at MAC ratio <= {cheap:g}: {speedup:.2f}x")
            else:
                out.append(f"{space} {mode}: no sampled design at MAC ratio <= {cheap:g}")
            for other in ("masked", "dense"):
                worst = max(sampled, key=lambda r, m=mode, o=other: getattr(r, f"{m}_vs_{o}"))
                slower = sum(getattr(r, f"{mode}_vs_{other}") > 1 for r in sampled)
                out.append(f"  worst vs {other}: {worst.name} (MAC ratio "
                           f"{worst.mac_ratio:.3f}) at {getattr(worst, f'{mode}_vs_{other}'):.2f}x"
                           f" the {other} time; {slower} of {len(sampled)} sampled slower than "
                           f"{other}")
            # The network target: no SSC design slower than masked dense beyond its noise.
            beyond = [r for r in rows if r.space == space and getattr(r, f"{mode}_vs_masked")
                      - getattr(r, f"{mode}_noise") > 1]
            out.append(f"  slower than masked beyond noise: {len(beyond)} of "
                       f"{sum(r.space == space for r in rows)} designs (target: 0)")
            out += [f"    {r.name}: {getattr(r, f'{mode}_vs_masked'):.2f}x "
                    f"(noise ±{getattr(r, f'{mode}_noise'):.2f})" for r in beyond]
    compared = [r.train_vs_compact for r in rows if r.train_vs_compact == r.train_vs_compact]
    if compared:  # --compact
        out.append(f"train ssc / compact (the dense training layout against compact training): "
                   f"median {statistics.median(compared):.3f} over {len(compared)} designs "
                   f"({min(compared):.2f}-{max(compared):.2f})")
    bad = [r for r in rows if r.max_abs_err > 1e-3]
    out.append(f"correctness: {len(rows) - len(bad)}/{len(rows)} designs match masked dense "
               "(max |diff| <= 1e-3 on 8 images, eval mode)")
    out += [f"  MISMATCH {r.space} {r.name}: {r.max_abs_err:.2e}" for r in bad]
    return "\n".join(out)


def machine() -> str:
    """Torch, threads, cores, load and allocator settings."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"torch {torch.__version__}; GPU {gpu}; threads {torch.get_num_threads()}; cores "
            f"{os.cpu_count()}; load average {load}; malloc: {malloc_state()}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--designs", type=int, default=20,
                   help="sampled feasible designs per space (default 20)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64, as search)")
    p.add_argument("--spaces", default=",".join(SPACES),
                   help=f"comma-separated spaces (default {','.join(SPACES)})")
    p.add_argument("--no-references", action="store_true",
                   help="skip the dense family network and the reference designs")
    p.add_argument("--seed", type=int, default=0, help="seed of the design sampler")
    p.add_argument("--contiguous", action="store_true",
                   help="NCHW tensors (default channels_last, as training uses)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="CUDA: eager training steps (default: forward and backward as CUDA "
                   "graphs, as training runs there)")
    p.add_argument("--compact", action="store_true",
                   help="also time ssc's training without the dense layout (column ssc/cmp: "
                   "the layout against the code before it, in the same run)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--device", default="cpu", help="torch device to time on (default cpu)")
    p.add_argument("--cpu-time", action="store_true",
                   help="on a shared CPU machine: one torch thread, timed by its CPU time "
                   "(time.thread_time), which other processes do not inflate")
    p.add_argument("--glibc-malloc", action="store_true",
                   help="keep glibc's default malloc settings (default: tune as ssc-nas does)")
    p.add_argument("--cheap", type=float, default=0.3,
                   help="MAC ratio at or below which a design counts as cheap (default 0.3)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table at the end")
    p.add_argument("--out", type=Path, default=None, help="also write rows to this CSV file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time every design, print rows as they finish, then the summary."""
    args = parse_args(argv)
    global CLOCK
    if args.cpu_time:
        if args.device != "cpu":
            raise SystemExit("--cpu-time measures CPU work; it cannot time a GPU")
        CLOCK = time.thread_time
        args.threads = 1
    if not args.glibc_malloc:
        tune_malloc()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        raise SystemExit(f"unknown space(s) {unknown}; choose from {', '.join(SPACES)}")
    print(machine())
    graphs = args.device.startswith("cuda") and not args.no_cuda_graphs
    print(f"clock: {'thread CPU time, 1 thread' if args.cpu_time else 'wall time'}; "
          f"training steps {'as CUDA graphs' if graphs else 'eager'}; "
          f"batch {args.batch}; {args.warmup} warm-up + {args.repeats} timed rounds, "
          "implementations interleaved; ratios: median per-round SSC time / other (< 1: SSC "
          "faster); MAC ratio: SSC / dense network at the same width", flush=True)
    print(" | ".join(HEADER), flush=True)
    rows: list[Row] = []
    start = time.perf_counter()
    for space in spaces:
        todo = designs(space, args.designs, args.seed)
        if args.no_references:
            todo = [d for d in todo if d.kind == "sampled"]
        for design in todo:
            row = measure(design, args.batch, args.warmup, args.repeats, not args.contiguous,
                          not args.no_memory, torch.device(args.device), graphs,
                          args.compact)
            rows.append(row)
            print(" | ".join(cells(row)), flush=True)
    print(f"\n{len(rows)} designs in {time.perf_counter() - start:.0f} s")
    if args.markdown:
        print("\n| " + " | ".join(HEADER) + " |\n|" + "|".join(
            ":--" if i < 2 else "--:" for i in range(len(HEADER))) + "|")
        print("\n".join("| " + " | ".join(cells(r)) + " |" for r in rows))
    print("\n" + summary(rows, args.cheap))
    print("\n" + machine())
    if args.out:
        write_csv(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
