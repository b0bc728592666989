"""Where one design's training step goes, layer by layer: each SSC layer as ``ssc-nas`` trains
it against the same layer masked dense and against a plain convolution, at the shape it sees in
the network.

``network_speed.py`` says which designs train slower than their masked dense twin; this script
says which of their layers do. For each ``SSCConv2d`` of the design (its input shape recorded by
a forward of the whole network at ``--batch``), a forward and backward of the layer alone
(input gradient included, as inside a network; no optimizer step) is timed three ways,
interleaved in rotating order:

* ``ssc``: the layer as a trial trains it on that device, in its dense training layout where
  its plan takes the dense-weight path (``ssc_nas.layers.dense_layout``; on a GPU every layer);
* ``masked``: a dense ``groups=1`` weight times the structure's 0/1 mask (pruning at init);
* ``conv``: ``nn.Conv2d`` with the layer's groups and no mask (the floor for the layer's
  convolution).

On CUDA each layer's step is captured as a CUDA graph and replayed ``--steps`` times between two
events, as training runs there (``ssc_nas.train.graphed_forward``), so the figures are kernel
time, not launch overhead; on a CPU the step runs eagerly ``--steps`` times. Printed per layer:
its shape and knobs, ms per step of each way and ``ssc/masked``; then the sums over layers.

    python benchmarks/design_layers.py --design "ssc-uniform w3"                 # CPU
    python benchmarks/design_layers.py --device cuda --design "ssc-uniform w3" \
        --design "standard w1"
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dense_weight_paths import dense_path  # noqa: E402
from network_speed import SPACES, MaskedConv2d, designs, machine, rotated  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ssc_nas import SSCConv2d, build  # noqa: E402
from ssc_nas.layers import dense_layout  # noqa: E402
from ssc_nas.runtime import tune_malloc  # noqa: E402

WAYS = ("ssc", "masked", "conv")


def layer_inputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, SSCConv2d, torch.Size]]:
    """Each SSC layer of ``model`` with the shape of its input for ``x``, in forward order."""
    seen: list[tuple[str, SSCConv2d, torch.Size]] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append((names[m], m, args[0].shape)))
             for m in model.modules() if isinstance(m, SSCConv2d)]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


def step_fn(module: nn.Module, x: torch.Tensor, gy: torch.Tensor) -> Callable[[], None]:
    """One forward and backward of ``module`` on ``x`` (which requires grad)."""
    def step() -> None:
        module(x).backward(gy)
    return step


def graphed(step: Callable[[], None], module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """``step`` captured as a CUDA graph (after a warm-up on a side stream), as replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    for t in (x, *module.parameters()):
        t.grad = None  # backward allocates the gradients from the graph's pool
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def time_steps(step: Callable[[], None], steps: int, cuda: bool) -> float:
    """Milliseconds per call of ``step`` over ``steps`` calls."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / steps
    begin = time.perf_counter()
    for _ in range(steps):
        step()
    return 1e3 * (time.perf_counter() - begin) / steps


def knobs(layer: SSCConv2d) -> str:
    """The layer's structure in a few characters."""
    s = layer.spec
    kind = "dw" if s.block == 1 and s.groups > 1 else f"g{s.groups}"
    return (f"{kind} {s.pattern} sp{s.spatial_channels}/{s.block} pw{s.pointwise_channels} "
            f"ph{s.phases} s{s.stride}")


def time_layer(layer: SSCConv2d, shape: torch.Size, device: torch.device,
               fmt: torch.memory_format, steps: int, rounds: int) -> dict[str, float]:
    """Median ms per training step of the layer's three ways (interleaved rounds)."""
    cuda = device.type == "cuda"
    modules = {"ssc": nn.Sequential(dense_path(layer, SSCConv2d)),
               "masked": MaskedConv2d(layer), "conv": layer.to_conv2d()}
    modules = {k: m.to(device, memory_format=fmt).train() for k, m in modules.items()}
    x = torch.randn(*shape, device=device).contiguous(memory_format=fmt).requires_grad_(True)
    with torch.no_grad():
        gy = torch.randn_like(modules["conv"](x))
    with dense_layout(modules["ssc"], device_type=device.type,
                      channels_last=fmt == torch.channels_last, training=True):
        steps_of = {k: step_fn(m, x, gy) for k, m in modules.items()}
        if cuda:
            steps_of = {k: graphed(s, modules[k], x) for k, s in steps_of.items()}
        times: dict[str, list[float]] = {k: [] for k in WAYS}
        for r in range(1 + rounds):
            for k in rotated(WAYS, r):
                t = time_steps(steps_of[k], steps, cuda)
                if r:
                    times[k].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="resnet20-ssc", choices=sorted(SPACES))
    p.add_argument("--design", action="append",
                   help="a design's name as network_speed.py prints it (repeatable; default "
                        "'ssc-uniform w3', the slowest against masked dense on an H200)")
    p.add_argument("--samples", type=int, default=20,
                   help="sampled designs to draw, as network_speed.py (names 'sample N ...')")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--nchw", action="store_true", help="NCHW input (default channels_last)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per timing (default 50 on CUDA, 3 on a CPU)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    tune_malloc()  # as the ssc-nas command does
    device = torch.device(args.device)
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    steps = args.steps or (50 if device.type == "cuda" else 3)
    wanted = args.design or ["ssc-uniform w3"]
    found = {d.name: d for d in designs(args.space, args.samples, 0)}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SystemExit(f"unknown design(s) {missing}; {args.space} has: {', '.join(found)}")
    print(machine())
    print(f"{args.space}, batch {args.batch}, {'NCHW' if args.nchw else 'channels_last'}, "
          f"{'CUDA graph replays' if device.type == 'cuda' else 'eager steps'}: {steps} per "
          f"timing, 1 warm-up + {args.rounds} rounds; ms per forward + backward (median)")
    channels, size, classes, _ = SPACES[args.space]
    for name in wanted:
        torch.manual_seed(0)
        model = build(found[name].arch, channels, classes, size)
        x = torch.randn(args.batch, channels, *size)
        print(f"\n{name}\n| layer | input | knobs | ssc ms | masked ms | conv ms | ssc/masked |")
        print("|:--|:--|:--|--:|--:|--:|--:|")
        total = dict.fromkeys(WAYS, 0.0)
        for layer_name, layer, shape in layer_inputs(model, x):
            ms = time_layer(layer, shape, device, fmt, steps, args.rounds)
            for k in WAYS:
                total[k] += ms[k]
            print(f"| {layer_name} | {'x'.join(map(str, shape[1:]))} | {knobs(layer)} | "
                  f"{ms['ssc']:.3f} | {ms['masked']:.3f} | {ms['conv']:.3f} | "
                  f"{ms['ssc'] / ms['masked']:.2f} |", flush=True)
        print(f"| **sum** | | | {total['ssc']:.3f} | {total['masked']:.3f} | "
              f"{total['conv']:.3f} | {total['ssc'] / total['masked']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
