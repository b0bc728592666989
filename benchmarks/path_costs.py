"""Check the SSC layer's choice between its sparse path and its dense-weight path on a CPU.

``fast_path_plan`` picks a layer's path from a cost model: the sparse path's multiply-accumulates
plus per-channel overheads (``PASS_COST`` per extra convolution call, ``REORDER_COST`` when the
output must be put back into filter order, ``REORDER_COST_CONTIGUOUS`` for NCHW input) against
one grouped dense convolution. This script times both paths, side by side and interleaved, for
HetConv-like layers whose sparse path needs the reorder (the layers near the boundary), in both
memory formats, for a train step (forward + backward) and an inference forward, and prints:

* per layer, sparse / dense time (< 1: the sparse path is faster) and the path the plan picks;
* the reorder cost each timing implies: ``(ratio * dense MACs - sparse MACs - passes) / C_out``,
  in MAC-equivalents per output channel (the model's unit), and its median per format;
* per format and step, how many layers the plan sends down the slower path, and the geometric
  mean slowdown of the plan's choices against always taking the faster path; beside it the same
  for the plan before 2026-11-27, which used the channels_last choice for both formats.

    python benchmarks/path_costs.py                 # about 90 s on 2 cores
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import machine  # noqa: E402  (a sibling benchmark script)

from ssc_nas.layers import SSCConv2d  # noqa: E402
from ssc_nas.layers.ssc import PASS_COST, sparse_path_cost  # noqa: E402
from ssc_nas.runtime import tune_malloc  # noqa: E402

KINDS = ("contiguous infer", "contiguous train", "channels_last infer", "channels_last train")


def layers(channels: list[int]) -> list[tuple[str, SSCConv2d]]:
    """HetConv-like layers (1/2 or 1/4 of each block spatial, the rest 1 x 1), groups 1 and 4."""
    out = []
    for c, groups, part in itertools.product(channels, (1, 4), (2, 4)):
        block = c // groups
        if block // part < 1:
            continue
        n_k = block // part
        layer = SSCConv2d(c, c, 3, groups=groups, spatial_channels=n_k,
                          pointwise_channels=block - n_k, phases=part)
        if not layer.plan.slot_order_is_filter_order:
            out.append((f"C={c} g={groups} het 1/{part}", layer))
    return out


def time_ratio(layer: SSCConv2d, x: torch.Tensor, train: bool, rounds: int) -> float:
    """Median per-round time ratio sparse / dense path, the two alternating."""
    paths = {"sparse": layer._sparse_forward, "dense": layer.reference_forward}
    times: dict[str, list[float]] = {k: [] for k in paths}
    x = x.detach().requires_grad_(train)
    for i in range(rounds + 2):
        for name in (("sparse", "dense") if i % 2 else ("dense", "sparse")):
            start = time.perf_counter()
            if train:
                paths[name](x).sum().backward()
            else:
                with torch.inference_mode():
                    paths[name](x)
            if i >= 2:
                times[name].append(time.perf_counter() - start)
    return statistics.median(a / b for a, b in zip(times["sparse"], times["dense"], strict=True))


def implied_reorder_cost(layer: SSCConv2d, ratio: float) -> float:
    """The reorder cost (MAC-equivalents per output channel) that would make the model exact."""
    s = layer.spec
    work, passes, _ = sparse_path_cost(s, layer.plan)
    dense = s.out_channels * s.block * s.kernel_size**2
    return (ratio * dense - work - PASS_COST * passes * s.out_channels) / s.out_channels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32], help="map sizes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per path (default 10)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    print(f"batch {args.batch}; sparse / dense path time (< 1: sparse faster), the plan's pick "
          "in brackets; implied reorder cost after the slash")
    print("| layer | map | " + " | ".join(KINDS) + " |")
    print("|:--|--:|" + "--:|" * len(KINDS))
    implied: dict[str, list[float]] = {k: [] for k in KINDS}
    wrong: dict[str, list[int]] = {k: [0, 0] for k in KINDS}  # this plan, the previous one
    log_loss: dict[str, list[float]] = {k: [0.0, 0.0] for k in KINDS}
    count = 0
    for (name, layer), size in itertools.product(layers(args.channels), args.sizes):
        count += 1
        cells = []
        for kind in KINDS:
            channels_last = kind.startswith("channels_last")
            x = torch.randn(args.batch, layer.spec.in_channels, size, size)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            ratio = time_ratio(layer, x, kind.endswith("train"), args.rounds)
            dense = layer.plan.dense_for(channels_last)
            for i, pick in enumerate((dense, layer.plan.dense_weight)):
                wrong[kind][i] += pick != (ratio > 1)
                log_loss[kind][i] += math.log((1.0 if pick else ratio) / min(1.0, ratio))
            cost = implied_reorder_cost(layer, ratio)
            implied[kind].append(cost)
            cells.append(f"{ratio:.2f} [{'dense' if dense else 'sparse'}] / {cost:.0f}")
        print(f"| {name} | {size}x{size} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{count} layers")
    for kind in KINDS:
        now, before = (math.exp(v / count) for v in log_loss[kind])
        print(f"{kind:20s} implied reorder cost median {statistics.median(implied[kind]):4.0f}; "
              f"slower path picked in {wrong[kind][0]} of {count} (previous plan "
              f"{wrong[kind][1]}); picks cost {now:.3f}x the faster path's time (previous "
              f"{before:.3f}x; geometric mean)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
