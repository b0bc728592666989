"""Where a proxy trial's time goes: build, move to the device, training steps, BatchNorm
re-estimation and validation, per design of the default search (mnist-5k, ``resnet20-ssc``,
0.5M parameters, the search's default 2-epoch schedule).

Designs are those of ``network_speed.py``: the dense family network, every reference design the
search enqueues, and ``--designs`` random feasible designs. Each phase is timed with the
device synchronised at its ends, so the columns add up to the trial's training time. The first
epoch carries one-off costs (cuDNN autotuning on a GPU, first-touch allocations); the second
shows the steady state.

On a GPU, ``--previous-depthwise`` times the code before depthwise layers ran NCHW there
(``SSCConv2d._dense_conv``): every layer's plain ``F.conv2d``, so channels_last
depthwise convolutions go to cuDNN, whose kernels for them are compiled at run time on the
first call of each shape. Run both ways in one session to compare.

Usage::

    python benchmarks/trial_phases.py                 # CPU, references + 3 sampled designs
    python benchmarks/trial_phases.py --amp bf16      # the same under bf16 autocast
    python benchmarks/trial_phases.py --device cuda --designs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssc_nas import SSCConv2d, build  # noqa: E402
from ssc_nas.data import load_splits  # noqa: E402
from ssc_nas.runtime import tune_malloc  # noqa: E402
from ssc_nas.train import AMP_MODES, TrainConfig, Trainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from network_speed import designs, machine  # noqa: E402  (a sibling benchmark script)

PHASES = ("build", "to device", "epoch 1", "BN 1", "val 1", "epoch 2", "BN 2", "val 2")


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """``fn()`` and its wall-clock seconds, the device synchronised at both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def _plain_dense_conv(layer: SSCConv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The dense-weight path's convolution before depthwise layers ran NCHW on a GPU."""
    s = layer.spec
    return F.conv2d(x, weight, layer.bias, s.stride, s.padding, 1, s.groups)


def step_flops(arch, splits, config: TrainConfig, device: torch.device) -> int:
    """FLOPs one full training step of ``arch`` executes (a fresh copy, one batch)."""
    info = splits.info
    model = build(arch, info.in_channels, info.num_classes, info.input_size)
    x, y = splits.train.tensors
    one_batch = TensorDataset(x[:config.batch_size], y[:config.batch_size])
    # Eager, not a CUDA graph: the counter sees each operator (the FLOPs are the same).
    trainer = Trainer(model, one_batch, dataclasses.replace(config, epochs=1, cuda_graphs=False),
                      seed=0, device=device)
    with FlopCounterMode(display=False) as counter:
        trainer.run_epoch()
    return counter.get_total_flops()


def reference_rates(device: torch.device, rounds: int = 10) -> tuple[float, float]:
    """GFLOP/s of a dense 3 x 3 convolution's training step (64 -> 64 channels, 28 x 28, batch
    64, channels_last) and of a 1024 x 1024 float32 matrix product, on ``device``."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(device)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(64, 64, 28, 28, device=device).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    a = torch.randn(1024, 1024, device=device)

    rates = []
    for fn, flops in ((lambda: conv(x).sum().backward(), 3 * 2 * 64 * 64 * 9 * 28 * 28 * 64),
                      (lambda: a @ a, 2 * 1024**3)):
        fn()
        seconds = sorted(timed(fn, device)[1] for _ in range(rounds))
        rates.append(flops / seconds[len(seconds) // 2] / 1e9)
    return rates[0], rates[1]


def trial_phases(arch, splits, config: TrainConfig, device: torch.device) -> dict[str, float]:
    """Seconds per phase of one proxy trial of ``arch`` (as ``train.train_model`` runs it)."""
    info = splits.info
    seconds: dict[str, float] = {}
    model, seconds["build"] = timed(
        lambda: build(arch, info.in_channels, info.num_classes, info.input_size), device)
    trainer, seconds["to device"] = timed(
        lambda: Trainer(model, splits.train, config, seed=0, device=device), device)
    for epoch in (1, 2):
        _, seconds[f"epoch {epoch}"] = timed(trainer.run_epoch, device)
        _, seconds[f"BN {epoch}"] = timed(trainer.recalibrate_batchnorm, device)
        _, seconds[f"val {epoch}"] = timed(lambda: trainer.evaluate(splits.val), device)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--designs", type=int, default=3,
                        help="sampled feasible designs besides the references (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the design sampler")
    defaults = TrainConfig()
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction,
                        default=defaults.cudnn_benchmark,
                        help="CUDA: cuDNN autotuning (TrainConfig.cudnn_benchmark; default as "
                        "training: %(default)s)")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction,
                        default=defaults.cuda_graphs,
                        help="CUDA: training steps as CUDA graphs (TrainConfig.cuda_graphs; "
                        "default as training: %(default)s)")
    parser.add_argument("--amp", default="off", choices=list(AMP_MODES),
                        help="autocast of training and validation (TrainConfig.amp; default off)")
    parser.add_argument("--dense-layout", action=argparse.BooleanOptionalAction,
                        default=defaults.dense_layout,
                        help="the SSC layers of the dense-weight path train as dense weights "
                        "times fixed masks (TrainConfig.dense_layout; default as training: "
                        "%(default)s)")
    parser.add_argument("--previous-depthwise", action="store_true",
                        help="the code before depthwise layers ran NCHW on a GPU (every layer's "
                        "dense-weight convolution a plain F.conv2d), to compare in the same "
                        "session")
    args = parser.parse_args(argv)
    if args.previous_depthwise:
        SSCConv2d._dense_conv = _plain_dense_conv
    tune_malloc()
    device = torch.device(args.device)
    splits = load_splits("mnist-5k")
    config = TrainConfig(epochs=2, cudnn_benchmark=args.cudnn_benchmark,
                         cuda_graphs=args.cuda_graphs, amp=args.amp,
                         dense_layout=args.dense_layout)
    steps = -(-len(splits.train.tensors[1]) // config.batch_size)
    print(f"mnist-5k: {len(splits.train.tensors[1])} training images ({steps} steps per epoch), "
          f"{len(splits.val.tensors[1])} validation images; {device}; amp {config.amp}, "
          f"cudnn_benchmark {config.cudnn_benchmark}, cuda_graphs {config.cuda_graphs}, "
          f"dense_layout {config.dense_layout}"
          + ("; previous depthwise code" if args.previous_depthwise else ""))
    conv_rate, matmul_rate = reference_rates(device)
    print(f"reference rates: dense 3 x 3 conv training step (64 ch, 28 x 28, batch 64) "
          f"{conv_rate:.0f} GFLOP/s; 1024 x 1024 matmul {matmul_rate:.0f} GFLOP/s")
    header = (f"{'design':<26}" + "".join(f"{p:>10}" for p in PHASES)
              + f"{'total':>9}{'ms/step':>9}{'GFLOP/step':>11}{'GFLOP/s':>9}")
    print(header)
    for design in designs("resnet20-ssc", args.designs, args.seed):
        seconds = trial_phases(design.arch, splits, config, device)
        per_step = seconds["epoch 2"] / steps
        flops = step_flops(design.arch, splits, config, device)
        print(f"{design.name:<26}" + "".join(f"{seconds[p]:>10.2f}" for p in PHASES)
              + f"{sum(seconds.values()):>9.2f}{1000 * per_step:>9.1f}{flops / 1e9:>11.2f}"
              + f"{flops / per_step / 1e9:>9.0f}", flush=True)
    print(f"\n{machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
