"""The paper-style table: SSC vs pruning at initialization at equal parameter counts, and how
well zero-cost proxies rank architectures.

Part 1, for every budget (default 0.5M and 0.1M params) on mnist-5k, and on CIFAR-10 too when
``--data-dir`` holds it: ``ssc_nas.compare.run_compare`` trains ssc-search, ssc-uniform, SNIP,
GraSP, SynFlow, ERK and random pruning with one schedule (``--epochs`` of SGD one-cycle, batch
64, no early stop) on ``--folds`` cross-validation folds (fold i: seed i), and the table gives
params, MACs (sparse MACs for pruned networks), test accuracy mean ± 95 % t interval, train
time, accuracy at equal training time and the verdict. The dense width the baselines prune
is compare's default (the smallest width of the family's space with >= 4x the budget's params).

Part 2: ``--tau-samples`` architectures drawn uniformly from the ``<family>-ssc`` space among
those within the largest budget; each is scored by every zero-cost proxy of
``ssc_nas.baselines.PROXIES`` on one batch of 64 training images at initialization, then
proxy-trained exactly as a search trial is (``TrainConfig()``: 2 epochs SGD, batch 64, the
hopeless early stop) and its validation accuracy taken. Kendall's tau (``scipy.stats.kendalltau``,
tau-b) between each proxy and that accuracy is reported. NASWOT's ``-inf`` (singular kernel)
ranks below every finite score.

Every number printed is measured in this run; nothing is copied from papers. Usage::

    python benchmarks/paper_table.py                       # mnist-5k, about 30 min on 2 cores
    python benchmarks/paper_table.py --data-dir data       # also CIFAR-10 if data/ holds it
    python benchmarks/paper_table.py --folds 2 --epochs 1 --tau-samples 10   # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssc_nas.baselines import PROXIES, score  # noqa: E402
from ssc_nas.budget import Budget, format_count, parse_count  # noqa: E402
from ssc_nas.compare import (  # noqa: E402
    DEFAULT_METHODS,
    CompareConfig,
    Run,
    bound_space,
    default_dense_width,
    markdown_table,
    run_compare,
)
from ssc_nas.data import load_splits  # noqa: E402
from ssc_nas.errors import DataError  # noqa: E402
from ssc_nas.models import build  # noqa: E402
from ssc_nas.train import TrainConfig, train_model  # noqa: E402


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Lines:
    """A compare reporter that logs one line per finished run."""

    def run_finished(self, run: Run) -> None:
        log(f"  {run.method:<11} seed {run.seed} acc {run.accuracy:.4f} "
            f"params {format_count(run.params)} {run.train_time_s:.1f}s")

    def message(self, text: str) -> None:
        log("  " + text)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
            f"load average {load}")


def compare_tables(args: argparse.Namespace, datasets: list[str], storage: str) -> list[str]:
    out = []
    for dataset in datasets:
        for text in args.budgets.split(","):
            budget = Budget(parse_count(text.strip(), "--budgets"))
            config = CompareConfig(budget, family=args.family, methods=tuple(args.methods),
                                   dataset=dataset, data_dir=args.data_dir or "data",
                                   epochs=args.epochs, folds=args.folds, storage=storage,
                                   search_trials=args.search_trials)
            width = default_dense_width(config, bound_space(config).space.width)
            log(f"compare {dataset} {budget.describe()} (dense width {width:g})")
            start = time.perf_counter()
            rows = run_compare(config, reporter=Lines())
            title = (f"### {args.family} on {dataset}, {budget.describe()}: {args.epochs} "
                     f"epochs, {args.folds} folds, pruned from x{width:g} "
                     f"({(time.perf_counter() - start) / 60:.1f} min)")
            table = f"{title}\n\n{markdown_table(rows)}\n"
            print(table, flush=True)
            out.append(table)
    return out


def _finite(values: list[float]) -> list[float]:
    """-inf (NASWOT's singular kernel) -> below the smallest finite value; ranks unchanged."""
    finite = [v for v in values if math.isfinite(v)]
    low = (min(finite) - 1.0) if finite else 0.0
    return [v if math.isfinite(v) else low for v in values]


def kendall_table(args: argparse.Namespace) -> str:
    from scipy.stats import kendalltau

    budget = Budget(max(parse_count(t.strip()) for t in args.budgets.split(",")))
    config = CompareConfig(budget, family=args.family, dataset=args.dataset)
    bound = bound_space(config)
    splits = load_splits(args.dataset, args.data_dir or "data")
    info = splits.info
    x, y = (t[:64] for t in splits.train.tensors)
    rng = random.Random(args.seed)
    train = TrainConfig()
    scores: dict[str, list[float]] = {p: [] for p in PROXIES}
    accuracies: list[float] = []
    log(f"kendall tau: {args.tau_samples} architectures of {bound.space.name} within "
        f"{budget.describe()}, proxy training {train.epochs} epochs on "
        f"{len(splits.train.tensors[1])} images")
    start = time.perf_counter()
    drawn = 0
    while len(accuracies) < args.tau_samples:
        arch = bound.sample(rng)
        drawn += 1
        if not budget.fits(bound.cost(arch)):
            continue
        torch.manual_seed(args.seed * 100_003 + len(accuracies))
        model = build(arch, info.in_channels, info.num_classes, info.input_size)
        for proxy in PROXIES:
            scores[proxy].append(score(model, proxy, x, y))
        result = train_model(model, splits.train, splits.val, train,
                             num_classes=info.num_classes, seed=len(accuracies))
        accuracies.append(result.final_accuracy)
        log(f"  arch {len(accuracies):>3} {format_count(bound.cost(arch).params):>6} params "
            f"acc {result.final_accuracy:.4f} ({result.seconds:.1f}s)")
    minutes = (time.perf_counter() - start) / 60
    lines = [f"### Kendall tau: zero-cost proxy vs proxy-trained accuracy ({args.dataset}, "
             f"{bound.space.name}, {len(accuracies)} architectures within "
             f"{budget.describe()} out of {drawn} drawn, {minutes:.1f} min)", "",
             "| proxy | Kendall tau | p-value |", "|---|---:|---:|"]
    for proxy in PROXIES:
        tau, p = kendalltau(_finite(scores[proxy]), accuracies)
        lines.append(f"| {proxy} | {tau:.3f} | {p:.2g} |")
    singular = sum(not math.isfinite(v) for v in scores["naswot"])
    lines += ["", f"accuracy: validation accuracy after the search's proxy training "
                  f"({train.epochs} epochs SGD one-cycle, batch {train.batch_size}, hopeless "
                  f"early stop), range {min(accuracies):.3f}-{max(accuracies):.3f}; proxies at "
                  f"initialization on one batch of 64 training images"
                  + (f"; naswot -inf (singular kernel) for {singular}" if singular else "")]
    table = "\n".join(lines) + "\n"
    print(table, flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="0.5M,0.1M")
    parser.add_argument("--folds", "--seeds", dest="folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4,
                        help="Training epochs of every compared method (default: 4)")
    parser.add_argument("--family", default="vgg16")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--data-dir", default=None,
                        help="Also run on CIFAR-10 from this folder (cifar-10-batches-py/)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        type=lambda s: [m.strip() for m in s.split(",") if m.strip()])
    parser.add_argument("--search-trials", type=int, default=8)
    parser.add_argument("--tau-samples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the tau sample")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage [default: a fresh SQLite file in a temp folder]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    storage = args.storage or f"sqlite:///{tempfile.mkdtemp(prefix='paper-table-')}/db.sqlite"
    datasets = [args.dataset]
    if args.data_dir:
        try:
            load_splits("cifar10", args.data_dir, subset=0.01)
            datasets.append("cifar10")
        except DataError as exc:
            log(f"skipping CIFAR-10: {exc}")
    started = time.perf_counter()
    print(f"machine: {machine()}\nstorage: {storage}\n", flush=True)
    compare_tables(args, datasets, storage)
    if args.tau_samples > 0:
        kendall_table(args)
    print(f"total {(time.perf_counter() - started) / 60:.1f} min; machine at the end: "
          f"{machine()}", flush=True)


if __name__ == "__main__":
    main()
