"""``torch.compile`` of the blocks a trial trains, against eager, side by side.

Compiling a whole network costs every trial a compile, since every trial is a new architecture
(README: 166 s for one ResNet-20 SSC network on a 2-core CPU, against 30-90 s for a whole
eager trial). Blocks are different: an SSC layer in its dense layout followed by BatchNorm and
ReLU, at a stage's channels and map size, recurs across the trials of a search, so a compiled
block could be paid for once per shape and reused. That only pays if the compiled block's
training step is faster than eager at all, and that is what this script measures.

For each block and shape (ResNet-20's three stages on 28 x 28 mnist-5k images, batch 64, the
proxy's memory format) it prints the first compiled training step (the compile, in a fresh
Inductor cache, so earlier runs do not hide it), the eager and compiled training steps
(forward and ``.sum().backward()``, timed as ``layer_speed.py`` times them; medians of
rounds in which the two run back to back in a rotating order), and eager / compiled as the
median of the per-round ratios with its noise (half the interquartile range). Above 1 the
compiled block is faster.

Blocks: ``bn+relu`` (``nn.BatchNorm2d`` and ``nn.ReLU``: the memory-bound part of a step that
only fusion could shorten) and ``ssc <setting>+bn+relu`` (an ``SSCConv2d`` with a setting of
``layer_speed.py``, in the dense layout ``ssc-nas`` trains it in, then BatchNorm and ReLU).

Usage::

    python benchmarks/compile_speed.py              # about 3 minutes on 2 CPU cores
    python benchmarks/compile_speed.py --dynamic    # symbolic shapes
    python benchmarks/compile_speed.py --nchw --repeats 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# A fresh Inductor cache for this process, before torch reads the variable: compile times are
# then what a new machine pays, not a hit in the cache of an earlier run.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ssc-inductor-")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from layer_speed import SETTINGS, interleaved, train_step  # noqa: E402  (a sibling benchmark script)
from network_speed import machine  # noqa: E402  (a sibling benchmark script)

from ssc_nas.layers import SSCConv2d, dense_layout  # noqa: E402
from ssc_nas.runtime import tune_malloc  # noqa: E402

#: (channels, map size) of ResNet-20's three stages at width 1 on 28 x 28 images.
SHAPES = ((16, 28), (32, 14), (64, 7))
BATCH = 64
#: The SSC settings timed inside a block (names of ``layer_speed.SETTINGS``).
BLOCK_SETTINGS = ("full (standard)", "het 1/4", "depthwise")


def block(setting: str | None, channels: int) -> nn.Sequential:
    """BatchNorm and ReLU, after an SSC layer with ``setting`` unless it is None."""
    layers: list[nn.Module] = [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    if setting is not None:
        knobs = next(s for s in SETTINGS if s.name == setting).knobs(channels)
        layers.insert(0, SSCConv2d(channels, channels, 3, **knobs))
    return nn.Sequential(*layers)


def measure(setting: str | None, channels: int, size: int, channels_last: bool, dynamic: bool,
            warmup: int, repeats: int) -> dict[str, float]:
    """Compile seconds, eager and compiled milliseconds and their ratio for one block."""
    torch.compiler.reset()  # a fresh start per block: no recompile limit, no earlier graphs
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    eager = block(setting, channels).to(memory_format=memory_format)
    x = torch.randn(BATCH, channels, size, size).to(memory_format=memory_format)
    x.requires_grad_(True)
    with dense_layout(eager, device_type="cpu", channels_last=channels_last, training=True):
        compiled = torch.compile(eager, dynamic=dynamic)
        compile_s = train_step(compiled, x)
        timing = interleaved(train_step, {"eager": eager, "compiled": compiled}, x,
                             warmup=warmup, repeats=repeats, budget=float("inf"))
    return {"compile_s": compile_s, "eager_ms": timing.ms("eager"),
            "compiled_ms": timing.ms("compiled"), "ratio": timing.ratio("eager", "compiled"),
            "noise": timing.spread("eager", "compiled")}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per block [15]")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds per block [3]")
    p.add_argument("--dynamic", action="store_true",
                   help="compile with symbolic shapes (the graph a search could reuse for every "
                        "shape of a block)")
    p.add_argument("--nchw", action="store_true", help="NCHW input instead of channels_last")
    p.add_argument("--threads", type=int, help="torch threads [torch's default]")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {machine()}; {'NCHW' if args.nchw else 'channels_last'}; batch {BATCH}; "
          f"dynamic={args.dynamic}; Inductor cache {os.environ['TORCHINDUCTOR_CACHE_DIR']}")
    print("| block | C | H = W | first compiled step (s) | eager (ms) | compiled (ms) "
          "| eager / compiled | noise |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    ratios = []
    for setting in (None, *BLOCK_SETTINGS):
        name = "bn+relu" if setting is None else f"ssc {setting}+bn+relu"
        for channels, size in SHAPES:
            r = measure(setting, channels, size, not args.nchw, args.dynamic, args.warmup,
                        args.repeats)
            ratios.append(r["ratio"])
            print(f"| {name} | {channels} | {size} | {r['compile_s']:.1f} | {r['eager_ms']:.2f} "
                  f"| {r['compiled_ms']:.2f} | {r['ratio']:.2f}x | ±{r['noise']:.2f} |",
                  flush=True)
    print(f"# eager / compiled: {min(ratios):.2f}x to {max(ratios):.2f}x over {len(ratios)} "
          f"blocks (above 1: compiled faster)")
    print(f"# {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
