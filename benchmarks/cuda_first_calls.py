"""First-call and steady-state times of grouped convolutions on a GPU, per memory format.

A search trains a new design in every trial, and each new convolution shape can pay a one-off
cost on its first call: cuDNN plan building, which for some kernels means compiling them at run
time. This script times the first three training calls (forward and backward, batch 64) and the
first two evaluation calls (batch 256, no gradients) of convolutions typical of the search
spaces (groups 1 to depthwise), each shape fresh, in channels_last (as ``ssc-nas`` trains) and in
NCHW. Run it in a fresh process: plans are cached per process. ``--no-cudnn`` times torch's own
kernels instead.

Usage::

    python benchmarks/cuda_first_calls.py               # needs a CUDA device
    python benchmarks/cuda_first_calls.py --no-cudnn    # in a second process
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

# (channels, groups, map size): ResNet-20 stages at widths 1 to 2, groups 1 to depthwise
SHAPES = ((64, 1, 28), (64, 2, 28), (64, 4, 28), (64, 8, 28), (96, 4, 14), (64, 64, 28),
          (128, 16, 14), (48, 3, 28), (32, 32, 28), (128, 128, 14))


def ms(fn: Callable[[], object]) -> float:
    """Milliseconds of ``fn()``, the device synchronised at both ends."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-cudnn", action="store_true", help="torch.backends.cudnn.enabled = False")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("cuda_first_calls.py: no CUDA device here")
    torch.backends.cudnn.enabled = not args.no_cudnn
    torch.backends.cudnn.benchmark = False  # as TrainConfig's default
    dev = torch.device("cuda")
    # CUDA and cuDNN start-up outside the table
    w0 = torch.randn(8, 8, 3, 3, device=dev, requires_grad=True)
    F.conv2d(torch.randn(64, 8, 28, 28, device=dev), w0, None, 1, 1).sum().backward()
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}; cuDNN "
          f"{torch.backends.cudnn.version()} {'on' if torch.backends.cudnn.enabled else 'off'}")
    print(f"{'C':>4} {'groups':>6} {'map':>4} {'format':>13} | train ms: 1st    2nd    3rd"
          " | eval ms: 1st    2nd")
    for fmt in (torch.channels_last, torch.contiguous_format):
        name = "channels_last" if fmt == torch.channels_last else "NCHW"
        for c, g, hw in SHAPES:
            x = torch.randn(64, c, hw, hw, device=dev).contiguous(memory_format=fmt)
            xe = torch.randn(256, c, hw, hw, device=dev).contiguous(memory_format=fmt)
            w = torch.randn(c, c // g, 3, 3, device=dev, requires_grad=True)

            def train(x=x, w=w, g=g) -> None:
                F.conv2d(x, w, None, 1, 1, 1, g).sum().backward()

            def infer(xe=xe, w=w, g=g) -> None:
                with torch.no_grad():
                    F.conv2d(xe, w, None, 1, 1, 1, g)

            t = [ms(train) for _ in range(3)]
            e = [ms(infer) for _ in range(2)]
            print(f"{c:>4} {g:>6} {hw:>4} {name:>13} | {t[0]:11.1f} {t[1]:6.2f} {t[2]:6.2f}"
                  f" | {e[0]:11.1f} {e[1]:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
