"""Check the SSC layer's choice between its sparse path and its dense-weight path on a CPU.

``fast_path_plan`` picks a layer's path from a cost model: the sparse path's multiply-accumulates
plus per-channel overheads (``PASS_COST`` per extra convolution call, ``REORDER_COST`` when the
output must be put back into filter order, ``REORDER_COST_CONTIGUOUS`` for NCHW input, and for
NCHW input ``GROUP_COSTS_CONTIGUOUS`` / ``GROUP_COSTS_TRAIN_CONTIGUOUS`` per group of a grouped
K x K convolution) against one grouped dense convolution. The script first
times such grouped convolutions against the dense one and prints the group cost each implies.
Then it times both paths, side by side and interleaved, for HetConv-like layers whose sparse
path needs the reorder (the layers near the boundary), in both memory formats, for a train
step (forward + backward) and an inference forward, and prints:

* per layer, sparse / dense time (< 1: the sparse path is faster) and the path the plan picks;
* the reorder cost each timing implies: ``(ratio * dense MACs - sparse MACs - passes) / C_out``,
  in MAC-equivalents per output channel (the model's unit), and its median per format;
* per format and step, how many layers the plan sends down the slower path, and the geometric
  mean slowdown of the plan's choices against always taking the faster path; beside it the same
  for the plan before 2026-11-28, without the group costs (and with one NCHW choice for
  inference and training steps).

    python benchmarks/path_costs.py                 # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import machine  # noqa: E402  (a sibling benchmark script)

from ssc_nas.layers import SSCConv2d  # noqa: E402
from ssc_nas.layers.ssc import (  # noqa: E402
    GROUP_COSTS_CONTIGUOUS,
    GROUP_COSTS_TRAIN_CONTIGUOUS,
    NO_GROUP_COSTS,
    PASS_COST,
    REORDER_COST,
    REORDER_COST_CONTIGUOUS,
    _dense_is_cheaper,
    dense_path_cost,
    sparse_path_cost,
)
from ssc_nas.runtime import tune_malloc  # noqa: E402

KINDS = ("contiguous infer", "contiguous train", "channels_last infer", "channels_last train")


def layers(channels: list[int]) -> list[tuple[str, SSCConv2d]]:
    """HetConv-like layers (1/2, 1/4, 1/8 or 1/16 of each block spatial, the rest 1 x 1),
    groups 1 and 4."""
    out = []
    for c, groups, part in itertools.product(channels, (1, 4), (2, 4, 8, 16)):
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
    return time_paths({"sparse": layer._sparse_forward, "dense": layer.reference_forward}, x,
                      train, rounds)


def time_paths(paths: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor,
               train: bool, rounds: int) -> float:
    """Median per-round time ratio of the first of two ``paths`` to the second, alternating."""
    times: dict[str, list[float]] = {k: [] for k in paths}
    names = list(paths)
    first, second = names
    x = x.detach().requires_grad_(train)
    for i in range(rounds + 2):
        for name in (names if i % 2 else names[::-1]):
            start = time.perf_counter()
            if train:
                paths[name](x).sum().backward()
            else:
                with torch.inference_mode():
                    paths[name](x)
            if i >= 2:
                times[name].append(time.perf_counter() - start)
    return statistics.median(a / b for a, b in zip(times[first], times[second], strict=True))


def implied_reorder_cost(layer: SSCConv2d, ratio: float,
                         group_costs: tuple[int, int] = NO_GROUP_COSTS) -> float:
    """The reorder cost (MAC-equivalents per output channel) that would make the model exact."""
    s = layer.spec
    work, passes, _ = sparse_path_cost(s, layer.plan, group_costs)
    dense = dense_path_cost(s, group_costs)
    return (ratio * dense - work - PASS_COST * passes * s.out_channels) / s.out_channels


def time_group_costs(batch: int, rounds: int, channels: int = 64, size: int = 32) -> None:
    """Time 3 x 3 convolutions of ``channels`` channels in groups of 1 (depthwise), 2 and 4
    channels against the dense one, per format and step, and print the cost per group and
    output pixel each implies (``ratio * dense MACs / groups``, MAC-equivalents): where it
    exceeds the group's own MACs (9, 36, 144), the convolution costs a pass per group rather
    than its multiply-accumulates."""
    dense_macs = channels * channels * 9
    print(f"grouped 3 x 3 convolutions, {channels} channels, {size}x{size}, batch {batch}: "
          "time / dense time, and the implied cost per group and output pixel")
    print("| channels per group | " + " | ".join(KINDS) + " |")
    print("|--:|" + "--:|" * len(KINDS))
    for per in (1, 2, 4):
        groups = channels // per
        cells = []
        for kind in KINDS:
            fmt = (torch.channels_last if kind.startswith("channels_last")
                   else torch.contiguous_format)
            x = torch.randn(batch, channels, size, size).contiguous(memory_format=fmt)
            convs = {"grouped": torch.nn.Conv2d(channels, channels, 3, padding=1, groups=groups,
                                                bias=False),
                     "dense": torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)}
            paths = {k: m.to(memory_format=fmt) for k, m in convs.items()}
            ratio = time_paths(paths, x, kind.endswith("train"), rounds)
            cells.append(f"{ratio:.2f} / {ratio * dense_macs / groups:.0f}")
        print(f"| {per} | " + " | ".join(cells) + " |", flush=True)
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32], help="map sizes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per path (default 10)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--groups-only", action="store_true",
                   help="time only the grouped convolutions (the group costs), not the layers")
    args = p.parse_args(argv)
    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    time_group_costs(args.batch, args.rounds)
    if args.groups_only:
        return 0
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
            training = kind.endswith("train")
            ratio = time_ratio(layer, x, training, args.rounds)
            dense = layer.plan.dense_for(channels_last, training)
            before = _dense_is_cheaper(layer.spec, layer.plan, REORDER_COST if channels_last
                                       else REORDER_COST_CONTIGUOUS)
            for i, pick in enumerate((dense, before)):
                wrong[kind][i] += pick != (ratio > 1)
                log_loss[kind][i] += math.log((1.0 if pick else ratio) / min(1.0, ratio))
            group_costs = NO_GROUP_COSTS if channels_last else (
                GROUP_COSTS_TRAIN_CONTIGUOUS if training else GROUP_COSTS_CONTIGUOUS)
            cost = implied_reorder_cost(layer, ratio, group_costs)
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
