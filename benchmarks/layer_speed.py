"""Time the SSC fast path against a dense conv and a masked dense conv, side by side.

For every (channels, map size, memory format, SSC setting) the script times three
implementations of one C -> C, K = 3 layer on a batch of 64:

* ``ssc``: the fast path, ``SSCConv2d(...)(x)``, as ``ssc-nas`` trains and evaluates it: in
  the dense layout where the layer takes the dense-weight path for that kind of step (the plan
  decides for training steps and for inference; ``SSCConv2d.enter_dense_layout``:
  in training ``conv2d(x, dense_weight * mask)``, in inference ``conv2d(x, dense_weight)``, the
  dense weight built once per evaluation pass, not per call); ``--compact`` times the stored
  weights' path, which builds the dense weight every call, instead;
* ``dense``: ``nn.Conv2d(C, C, 3, padding=1)``, the unstructured baseline;
* ``masked``: ``F.conv2d(x, weight * mask)`` with a dense (C, C, 3, 3) parameter and a fixed 0/1
  mask equal to the SSC structure, which is how pruning-at-initialisation code runs sparsity.

Both a training step (forward, ``.sum().backward()``, weights and input require grad) and an
inference forward (``torch.inference_mode()``) are timed. The three implementations run
interleaved, in a rotating order, so that drift on the machine hits them equally; each time is
the median of up to ``--repeats`` rounds after warm-up, and each ratio is the median of the
per-round ratios (the implementations of one round run back to back, so a slow spell of the
machine cancels out). Ratios below 1 mean SSC is faster; the ``noise`` column is the largest
half-interquartile range of a row's per-round ratios.

With glibc's default malloc, tensors of a few MB and more come from fresh ``mmap`` pages or a
heap that is trimmed back after use, so every iteration pays page faults for its temporaries.
Like the ``ssc-nas`` command, the script first applies :func:`ssc_nas.runtime.tune_malloc`
(freed blocks stay in the heap); ``--glibc-malloc`` times with glibc's defaults instead, for a
before/after comparison. The machine line printed at the start and end says which malloc
settings were in effect.

Usage::

    python benchmarks/layer_speed.py --quick            # about a minute
    python benchmarks/layer_speed.py --markdown         # full run, README-ready table
    python benchmarks/layer_speed.py --out speed.csv --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssc_nas.layers import SSCConv2d, dense_layout, executed_macs  # noqa: E402
from ssc_nas.runtime import malloc_state, tune_malloc  # noqa: E402

BATCH = 64
MALLOC_ENV = ("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")
KERNEL = 3


class MaskedConv2d(nn.Module):
    """A dense K x K convolution whose weight is multiplied by a fixed 0/1 mask every call."""

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.register_buffer("mask", mask.to(weight.dtype))
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, None, 1, self.padding)


@dataclass(frozen=True)
class Setting:
    """One SSC configuration, as knobs relative to the channel count ``c``."""

    name: str
    spatial: float  # fraction of the group block with a spatial kernel
    pointwise: float  # fraction of the group block with a 1 x 1 kernel
    pattern: str = "full"
    groups: int | None = None  # None: 1; 0: depthwise (groups = channels)

    def knobs(self, c: int) -> dict[str, Any]:
        """Keyword arguments of ``SSCConv2d`` for ``c`` -> ``c`` channels."""
        groups = 1 if self.groups is None else (c if self.groups == 0 else self.groups)
        block = c // groups
        n_k = round(block * self.spatial)
        n_1 = round(block * self.pointwise)
        phases = block // n_k if n_k else 1  # windows tile the block (HetConv-style)
        return {
            "groups": groups,
            "spatial_channels": n_k,
            "pointwise_channels": n_1,
            "pattern": self.pattern,
            "phases": phases,
        }


SETTINGS: tuple[Setting, ...] = (
    Setting("full (standard)", 1.0, 0.0),
    Setting("het 1/2", 1 / 2, 1 / 2),
    Setting("het 1/4", 1 / 4, 3 / 4),
    Setting("het 1/8", 1 / 8, 7 / 8),
    Setting("het 1/16", 1 / 16, 15 / 16),
    Setting("sp 1/4 + pw 1/4", 1 / 4, 1 / 4),
    Setting("sp 1/8 + pw 1/8", 1 / 8, 1 / 8),
    Setting("sp 1/4 only", 1 / 4, 0.0),
    Setting("het 1/4 plus", 1 / 4, 3 / 4, "plus"),
    Setting("het 1/4 x", 1 / 4, 3 / 4, "x"),
    Setting("het 1/4 checker", 1 / 4, 3 / 4, "checker"),
    Setting("groupwise g=8", 1.0, 0.0, groups=8),
    Setting("depthwise", 1.0, 0.0, groups=0),
)

QUICK_SETTINGS = (
    "full (standard)", "het 1/4", "het 1/8", "sp 1/4 + pw 1/4", "het 1/4 plus",
    "groupwise g=8", "depthwise",
)  # fmt: skip


@dataclass
class Row:
    """One printed/CSV row: structure ratios, time ratios and absolute times."""

    channels: int
    size: int
    memory_format: str
    setting: str
    mac_ratio: float
    param_ratio: float
    exec_mac_ratio: float
    train_vs_dense: float
    train_vs_masked: float
    infer_vs_dense: float
    infer_vs_masked: float
    noise: float  # largest half-IQR of the four per-round ratios
    others: float  # largest share of the cores other processes used while this row was timed
    train_rounds: int
    infer_rounds: int
    dense_train_ms: float
    dense_infer_ms: float
    ssc_train_ms: float
    ssc_infer_ms: float
    masked_train_ms: float
    masked_infer_ms: float
    max_abs_err: float


def full_dense_weight(layer: SSCConv2d) -> torch.Tensor:
    """The layer's weight as a (C_out, C_in, K, K) groups=1 weight (block diagonal over groups)."""
    s = layer.spec
    grouped = layer.to_dense_weight().detach()
    full = grouped.new_zeros(s.out_channels, s.in_channels, s.kernel_size, s.kernel_size)
    m, b = s.filters_per_group, s.block
    for g in range(s.groups):
        full[g * m : (g + 1) * m, g * b : (g + 1) * b] = grouped[g * m : (g + 1) * m]
    return full


def build(setting: Setting, c: int, channels_last: bool) -> dict[str, nn.Module]:
    """The three modules for one setting, in the requested memory format."""
    ssc = SSCConv2d(c, c, KERNEL, **setting.knobs(c))
    dense = nn.Conv2d(c, c, KERNEL, padding=KERNEL // 2, bias=False)
    weight = full_dense_weight(ssc)
    ones = SSCConv2d(c, c, KERNEL, **setting.knobs(c))
    for param in ones.parameters():
        param.data.fill_(1.0)
    mask = full_dense_weight(ones) != 0  # the structure, even where a weight drew 0.0
    if int(mask.sum()) != ssc.spec.out_channels * ssc.spec.weights_per_filter:
        raise RuntimeError(f"{setting.name}: mask does not match the structure")
    masked = MaskedConv2d(weight, mask, KERNEL // 2)
    modules: dict[str, nn.Module] = {"ssc": ssc, "dense": dense, "masked": masked}
    if channels_last:
        modules = {k: m.to(memory_format=torch.channels_last) for k, m in modules.items()}
    return modules


def sync(x: torch.Tensor) -> None:
    """Wait for queued GPU work on ``x``'s device (nothing on CPU)."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def train_step(module: nn.Module, x: torch.Tensor) -> float:
    """Seconds for forward + ``.sum().backward()``; gradients are cleared outside the timing."""
    for p in module.parameters():
        p.grad = None
    x.grad = None
    sync(x)
    start = time.perf_counter()
    module(x).sum().backward()
    sync(x)
    return time.perf_counter() - start


def infer_step(module: nn.Module, x: torch.Tensor) -> float:
    """Seconds for one forward under ``torch.inference_mode()``."""
    sync(x)
    start = time.perf_counter()
    with torch.inference_mode():
        module(x)
    sync(x)
    return time.perf_counter() - start


@dataclass
class Timing:
    """Per-round seconds of each implementation for one kind of step."""

    times: dict[str, list[float]]
    stat: str = "median"

    def ms(self, name: str) -> float:
        """Median (or, with ``stat="min"``, fastest) milliseconds of ``name``."""
        pick = min if self.stat == "min" else statistics.median
        return 1e3 * pick(self.times[name])

    def ratios(self, name: str, other: str) -> list[float]:
        """Per-round ``name / other`` (both ran back to back in the same round)."""
        return [a / b for a, b in zip(self.times[name], self.times[other], strict=True)]

    def ratio(self, name: str, other: str) -> float:
        """Median of the per-round ratios: robust to slow spells that last a round or more.

        With ``stat="min"``: fastest time over fastest time, the least disturbed estimate on a
        machine that other processes share (they can only add time).
        """
        if self.stat == "min":
            return min(self.times[name]) / min(self.times[other])
        return statistics.median(self.ratios(name, other))

    def spread(self, name: str, other: str) -> float:
        """Half the interquartile range of the per-round ratios (0 with fewer than 2 rounds)."""
        r = self.ratios(name, other)
        if len(r) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(r, n=4, method="inclusive")
        return (q3 - q1) / 2

    @property
    def rounds(self) -> int:
        """Number of timed rounds."""
        return len(next(iter(self.times.values())))


def interleaved(
    step: Callable[[nn.Module, torch.Tensor], float],
    modules: dict[str, nn.Module],
    x: torch.Tensor,
    warmup: int,
    repeats: int,
    budget: float,
) -> Timing:
    """Time ``repeats`` rounds of every implementation, rotating the order every round.

    Stops early, after at least ``min(5, repeats)`` timed rounds, once the timed rounds took
    more than ``budget`` seconds (so large layers do not dominate the run time).
    """
    times: dict[str, list[float]] = {k: [] for k in modules}
    names = list(modules)
    spent = 0.0
    for i in range(warmup + repeats):
        if i >= warmup + min(5, repeats) and spent > budget:
            break
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t = step(modules[name], x)
            if i >= warmup:
                times[name].append(t)
                spent += t
    return Timing(times)


def busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used (from /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OthersMeter:
    """Share of the machine's cores that *other* processes used between start() and stop()."""

    def start(self) -> None:
        self.wall = time.perf_counter()
        self.busy = busy_seconds()
        t = os.times()
        self.own = t.user + t.system

    def stop(self) -> float:
        """Fraction in [0, 1] of all cores used by others (NaN where /proc/stat is missing)."""
        busy = busy_seconds()
        if busy is None or self.busy is None:
            return float("nan")
        t = os.times()
        own = t.user + t.system - self.own
        wall = time.perf_counter() - self.wall
        return max(0.0, (busy - self.busy - own) / (wall * (os.cpu_count() or 1)))


def wait_quiet(max_others: float, max_wait: float) -> None:
    """Sleep in 0.1 s probes until other processes use at most ``max_others`` of the cores.

    Gives up after ``max_wait`` seconds; does nothing when ``max_wait`` is 0.
    """
    deadline = time.perf_counter() + max_wait
    meter = OthersMeter()
    while time.perf_counter() < deadline:
        meter.start()
        time.sleep(0.1)
        if not meter.stop() > max_others:
            return


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """cuDNN convolutions in float32, not TF32 (torch's default on a GPU,
    ``torch.backends.cudnn.allow_tf32``), for the correctness checks: TF32 rounds each input to
    10 mantissa bits, the likely reason a depthwise layer (torch's own float32 kernel) measured
    1.0-1.1e-3 from masked dense (cuDNN) on an H200. No effect on a CPU."""
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def max_error(modules: dict[str, nn.Module], x: torch.Tensor, images: int = 4) -> float:
    """Largest |ssc(x) - masked(x)| on a few images (both compute the same function), in
    float32 (:func:`full_float32`)."""
    with torch.inference_mode(), full_float32():
        return float((modules["ssc"](x[:images]) - modules["masked"](x[:images])).abs().max())


def measure(
    setting: Setting,
    c: int,
    size: int,
    channels_last: bool,
    warmup: int,
    repeats: int,
    budget: float,
    max_others: float = 0.1,
    quiet_wait: float = 0.0,
    stat: str = "median",
    device: str = "cpu",
    compact: bool = False,
) -> Row:
    """Build, check and time one setting (optionally waiting for a quiet machine first)."""
    torch.manual_seed(0)
    modules = {k: m.to(device) for k, m in build(setting, c, channels_last).items()}
    run = dict(modules)  # the SSC layer as ssc-nas trains and evaluates it (dense layout)
    if not compact:
        run["ssc"] = copy.deepcopy(modules["ssc"])

    def layout(training: bool) -> contextlib.AbstractContextManager[Any]:
        """The dense layout ``ssc-nas`` uses for training steps or for evaluation."""
        if compact:
            return contextlib.nullcontext()
        return dense_layout(run["ssc"], device_type=torch.device(device).type,
                            channels_last=channels_last, training=training)

    x = torch.randn(BATCH, c, size, size, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    with layout(training=False):
        err = max(max_error(modules, x), max_error(run, x))
    x.requires_grad_(True)
    meter = OthersMeter()
    wait_quiet(max_others, quiet_wait)
    meter.start()
    with layout(training=True):
        train = interleaved(train_step, run, x, warmup, repeats, budget)
    others = meter.stop()
    wait_quiet(max_others, quiet_wait)
    meter.start()
    with layout(training=False):
        infer = interleaved(infer_step, run, x, warmup, repeats, budget)
    others = max(others, meter.stop())
    train.stat = infer.stat = stat
    spec = modules["ssc"].spec  # type: ignore[union-attr]
    dense_macs = size * size * c * c * KERNEL * KERNEL
    pairs = [(t, a, b) for t in (train, infer) for a, b in (("ssc", "dense"), ("ssc", "masked"))]
    return Row(
        channels=c,
        size=size,
        memory_format="channels_last" if channels_last else "contiguous",
        setting=setting.name,
        mac_ratio=spec.macs((size, size)) / dense_macs,
        param_ratio=spec.params / (c * c * KERNEL * KERNEL),
        exec_mac_ratio=executed_macs(spec, (size, size), channels_last) / dense_macs,
        train_vs_dense=train.ratio("ssc", "dense"),
        train_vs_masked=train.ratio("ssc", "masked"),
        infer_vs_dense=infer.ratio("ssc", "dense"),
        infer_vs_masked=infer.ratio("ssc", "masked"),
        noise=max(t.spread(a, b) for t, a, b in pairs),
        others=others,
        train_rounds=train.rounds,
        infer_rounds=infer.rounds,
        dense_train_ms=train.ms("dense"),
        dense_infer_ms=infer.ms("dense"),
        ssc_train_ms=train.ms("ssc"),
        ssc_infer_ms=infer.ms("ssc"),
        masked_train_ms=train.ms("masked"),
        masked_infer_ms=infer.ms("masked"),
        max_abs_err=err,
    )


HEADER = (
    "C", "map", "format", "setting", "MACs", "params", "exec MACs",
    "train/dense", "train/masked", "infer/dense", "infer/masked", "noise ±", "others %",
    "dense train ms", "dense infer ms",
)  # fmt: skip


def cells(row: Row) -> list[str]:
    """The printed cells of a row (ratios are SSC / other)."""
    return [
        str(row.channels),
        f"{row.size}x{row.size}",
        "CL" if row.memory_format == "channels_last" else "NCHW",
        row.setting,
        f"{row.mac_ratio:.3f}",
        f"{row.param_ratio:.3f}",
        f"{row.exec_mac_ratio:.3f}",
        f"{row.train_vs_dense:.2f}",
        f"{row.train_vs_masked:.2f}",
        f"{row.infer_vs_dense:.2f}",
        f"{row.infer_vs_masked:.2f}",
        f"{row.noise:.2f}",
        f"{100 * row.others:.0f}",
        f"{row.dense_train_ms:.1f}",
        f"{row.dense_infer_ms:.1f}",
    ]


WIDTHS = (4, 6, 5, 16, 6, 6, 9, 11, 12, 11, 12, 7, 8, 14, 14)


def text_line(values: list[str] | tuple[str, ...]) -> str:
    """A fixed-width line for progress output."""
    return "  ".join(
        v.rjust(w) if i != 3 else v.ljust(w)
        for i, (v, w) in enumerate(zip(values, WIDTHS, strict=True))
    )


def markdown(rows: list[Row]) -> str:
    """A README-ready markdown table of all rows."""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(":--" if i in (2, 3) else "--:" for i in range(len(HEADER))) + "|",
    ]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's best guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_csv(path: Path, rows: Sequence[Any]) -> None:
    """The benchmark's rows (dataclasses) as a CSV file, one column per field."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    print(f"wrote {path}")


def machine() -> str:
    """One line describing the machine and torch."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    tuned = [f"{k}={v}" for k, v in os.environ.items() if k.startswith(MALLOC_ENV)]
    return (
        f"CPU: {cpu_model()}; cores: {os.cpu_count()} (usable {usable}); "
        f"torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"mkldnn {torch.backends.mkldnn.is_available()}; "
        f"malloc: {malloc_state()}; env: {' '.join(tuned) or 'none'}; load average {load}"
    )


def summary(rows: list[Row], tol: float, max_others: float) -> str:
    """Targets: SSC never slower than masked dense; >= 1.5x faster than dense at MACs <= 0.25."""
    out: list[str] = []
    busy = [r for r in rows if r.others > max_others]
    out.append(
        f"contention: {len(busy)} of {len(rows)} settings were timed while other processes used "
        f"more than {100 * max_others:.0f}% of the cores (marked * below; their ratios are "
        "unreliable)"
    )
    bad = [r for r in rows if r.max_abs_err > tol]
    out.append(
        f"correctness: {len(rows) - len(bad)}/{len(rows)} settings match masked dense "
        f"(max |diff| <= {tol:g})"
    )
    out += [
        f"  MISMATCH {r.channels} {r.size}x{r.size} {r.memory_format} {r.setting}: "
        f"{r.max_abs_err:.2e}"
        for r in bad
    ]
    for mode, key in (("train", "train_vs_masked"), ("infer", "infer_vs_masked")):
        slow = [r for r in rows if getattr(r, key) > 1.0]
        beyond = [r for r in slow if getattr(r, key) - r.noise > 1.0]
        out.append(
            f"SSC slower than masked dense ({mode}): {len(slow)} of {len(rows)} (target: 0); "
            f"{len(beyond)} of them by more than the row's noise"
        )
        out += [
            f" {'*' if r.others > max_others else ' '}{r.channels} {r.size}x{r.size} "
            f"{r.memory_format:13} {r.setting:16} {getattr(r, key):.2f}x (noise ±{r.noise:.2f})"
            for r in slow
        ]
    cheap = [r for r in rows if r.mac_ratio <= 0.25]
    for mode, key in (("train", "train_vs_dense"), ("infer", "infer_vs_dense")):
        fast = [r for r in cheap if getattr(r, key) <= 1 / 1.5]
        out.append(
            f"MAC ratio <= 0.25 and SSC >= 1.5x faster than dense ({mode}): "
            f"{len(fast)} of {len(cheap)} (stretch target: all)"
        )
        out += [
            f" {'*' if r.others > max_others else ' '}{r.channels} {r.size}x{r.size} "
            f"{r.memory_format:13} {r.setting:16} {1 / getattr(r, key):.2f}x faster"
            for r in fast
        ]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="a fast subset: 64 channels, fewer settings, 5 repeats"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch threads (default: torch's, {torch.get_num_threads()})",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds of each implementation (default 9; 5 with --quick)",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default 1)")
    p.add_argument(
        "--budget",
        type=float,
        default=4.0,
        help="seconds of timed rounds per setting and step kind after which a setting stops "
        "early, once it has 5 rounds (default 4; large layers get fewer rounds)",
    )
    p.add_argument(
        "--max-others",
        type=float,
        default=0.10,
        help="share of the cores other processes may use while a setting is timed before the "
        "setting counts as contended (default 0.10)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=0,
        help="re-time a contended setting up to this many times, keeping the least contended "
        "run (default 0)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="on a shared machine, wait up to this many seconds before timing each setting's "
        "train and inference rounds until other processes use at most --max-others of the "
        "cores (default 0: do not wait)",
    )
    p.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="median: times are medians and ratios medians of per-round ratios (default); "
        "min: fastest times and their ratios, for a machine other processes keep busy",
    )
    p.add_argument(
        "--glibc-malloc",
        action="store_true",
        help="keep glibc's default malloc settings (default: tune them as ssc-nas does)",
    )
    p.add_argument("--device", default="cpu", help="torch device to time on (default cpu)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table at the end")
    p.add_argument("--out", type=Path, default=None, help="also write the rows to this CSV file")
    p.add_argument("--only", default=None, help="run only settings whose name contains this text")
    p.add_argument("--compact", action="store_true",
                   help="time SSC with the stored weights (the code before the dense layout) "
                   "instead of as ssc-nas trains and evaluates")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time every setting, print rows as they finish, then the table, summary and machine."""
    args = parse_args(argv)
    if not args.glibc_malloc:
        tune_malloc()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 9)
    if args.quick:
        grid = [(64, 32), (64, 16)]
        settings = [s for s in SETTINGS if s.name in QUICK_SETTINGS]
    else:
        grid = [(64, 32), (64, 16), (128, 32), (128, 16)]
        settings = list(SETTINGS)
    if args.only:
        settings = [s for s in settings if args.only in s.name]
    if not settings:
        raise SystemExit(f"no setting matches --only {args.only!r}"
                         + (" among --quick's settings" if args.quick else ""))
    print(machine())
    print(
        f"batch {BATCH}, K={KERNEL}; quiet-wait {args.quiet_wait:g} s, retries {args.retries}; "
        f"per setting {args.warmup} warm-up round(s), then up to "
        f"{repeats} timed rounds (fewer past {args.budget:g} s, at least {min(5, repeats)}), "
        "implementations interleaved in rotating order.\n"
        "MACs, params, exec MACs: SSC / dense. train/infer: "
        + (
            "fastest SSC time / fastest other time"
            if args.stat == "min"
            else "median over rounds of SSC time / other time"
        )
        + " (< 1: SSC faster); noise: largest half-IQR of the per-round ratios; others %: "
        "share of the cores other processes used meanwhile.",
        flush=True,
    )
    print(text_line(HEADER), flush=True)
    rows: list[Row] = []
    start = time.perf_counter()
    for c, size in grid:
        for channels_last in (False, True):
            for setting in settings:
                run = (setting, c, size, channels_last, args.warmup, repeats, args.budget,
                       args.max_others, args.quiet_wait, args.stat, args.device,
                       args.compact)  # fmt: skip
                row = measure(*run)
                for _ in range(args.retries):
                    if not row.others > args.max_others:
                        break
                    again = measure(*run)
                    row = min(row, again, key=lambda r: r.others)
                rows.append(row)
                print(text_line(cells(row)), flush=True)
    rounds = [n for r in rows for n in (r.train_rounds, r.infer_rounds)]
    print(
        f"\n{len(rows)} rows in {time.perf_counter() - start:.0f} s; "
        f"{min(rounds)}-{max(rounds)} timed rounds per setting and step kind"
    )
    if args.markdown:
        print("\n" + markdown(rows))
    print("\n" + summary(rows, 1e-3, args.max_others))
    print("\n" + machine())
    if args.out:
        write_csv(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
