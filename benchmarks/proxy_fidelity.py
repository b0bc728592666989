"""Proxy fidelity: does a short proxy training rank designs the way long training does?

``--archs`` feasible architectures of a space under a parameter budget, stratified over params
(many random samples, sorted by params, one drawn from each of ``--archs`` equal-count bins), are
each trained with every proxy schedule and with a long schedule, on the same data split
(the split ``ssc-nas search`` uses, seed 0) and the same seed:

* proxies ``e1``, ``e2``, ``e4`` (1, 2, 4 epochs; ``--proxy-epochs``), and ``e2-half``
  (2 epochs on half the training images), each scored as the search scores it: accuracy on the
  validation split (mnist-5k: 400 images), as the validation cross-entropy (``val_nll``,
  lower ranks higher) and on the test split (1,000 images) to show how much of the
  disagreement is the small validation split;
* the long schedule (``--long-epochs``, default 15), scored on the test split.

Printed per proxy: Kendall tau and Spearman rho against the long schedule, the overlap of the
top 10 % (share of the long schedule's top 10 % that the proxy also puts in its top 10 %) and
the mean wall time per architecture. The ceiling: the long schedule's own seed-to-seed Kendall
tau, from a second seed on ``--ceiling-archs`` of the architectures.

Every finished training is appended to ``--results`` (JSON lines) and reused when the command
is run again, so a long run can be resumed or spread over several sessions.

Usage::

    python benchmarks/proxy_fidelity.py --quick           # digits, tiny space: ~10 min
    python benchmarks/proxy_fidelity.py                   # mnist-5k, resnet20-ssc, 0.5M,
                                                          # 40 archs: many hours on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from ssc_nas.budget import Budget  # noqa: E402
from ssc_nas.data import Splits, dataset_info, load_splits  # noqa: E402
from ssc_nas.models import Architecture, build  # noqa: E402
from ssc_nas.spaces import BoundSpace, load_space  # noqa: E402
from ssc_nas.train import AMP_MODES, TrainConfig, evaluate, train_model  # noqa: E402


def sample_architectures(bound: BoundSpace, budget: Budget, n: int, pool: int,
                         seed: int) -> list[Architecture]:
    """``n`` feasible architectures spread over params: one from each of ``n`` equal-count
    bins of ``pool`` random feasible samples sorted by params."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    feasible: dict[str, tuple[int, Architecture]] = {}
    tries = 0
    while len(feasible) < pool and tries < 50 * pool:
        tries += 1
        arch = bound.suggest(study.ask())
        cost = bound.cost(arch)
        if budget.fits(cost):
            feasible[json.dumps(arch.to_dict(), sort_keys=True)] = (cost.params, arch)
    ranked = sorted(feasible.values(), key=lambda pa: pa[0])
    if len(ranked) < n:
        raise SystemExit(f"only {len(ranked)} distinct feasible architectures in {tries} draws")
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, len(ranked), n + 1).astype(int)
    return [ranked[int(rng.integers(lo, hi))][1] for lo, hi in zip(edges[:-1], edges[1:],
                                                                    strict=True)]


def half(data: TensorDataset, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[: len(data) // 2]
    return TensorDataset(*(t[idx] for t in data.tensors))


def train_once(arch: Architecture, splits: Splits, epochs: int, seed: int,
               subset: bool, amp: str = "off") -> dict[str, float]:
    """One training of ``arch`` (under ``amp`` autocast); its validation and test accuracy and
    seconds."""
    info = splits.info
    torch.manual_seed(seed)
    model = build(arch, info.in_channels, info.num_classes, info.input_size)
    train = half(splits.train, seed) if subset else splits.train
    # The search's schedule, but never cut short: a fidelity study needs every final value.
    config = TrainConfig(epochs=epochs, hopeless_factor=0.0, amp=amp).for_dataset(info.augment)
    result = train_model(model, train, splits.val, config, num_classes=info.num_classes,
                         seed=seed)
    return {"val": result.final_accuracy, "val_nll": result.final_loss,
            "test": evaluate(model, splits.test, 256, "cpu", config.channels_last, amp),
            "seconds": result.seconds}


def top_overlap(proxy: list[float], long: list[float], share: float = 0.1) -> float:
    k = max(1, round(share * len(long)))
    top = set(np.argsort(long)[::-1][:k])
    return len(top & set(np.argsort(proxy)[::-1][:k])) / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--space", default="resnet20-ssc")
    parser.add_argument("--budget", default="0.5M")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--pool", type=int, default=400,
                        help="random feasible samples the architectures are stratified from")
    parser.add_argument("--proxy-epochs", default="1,2,4")
    parser.add_argument("--long-epochs", type=int, default=15)
    parser.add_argument("--ceiling-archs", type=int, default=10,
                        help="architectures trained long with a second seed (the ceiling)")
    parser.add_argument("--results", default="proxy_fidelity.jsonl")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--amp", default="off", choices=list(AMP_MODES),
                        help="bf16: also train every proxy under CPU bf16 autocast (rows "
                        "'<proxy>-bf16'), beside the fp32 proxies; the long schedule stays fp32")
    parser.add_argument("--quick", action="store_true",
                        help="digits, digits-tiny, 40k, 12 archs, long = 8 epochs")
    if "--quick" in sys.argv[1:]:  # defaults of the quick run; flags given still win
        parser.set_defaults(dataset="digits", space="digits-tiny", budget="40k", archs=12,
                            pool=120, long_epochs=8, ceiling_archs=6,
                            results="proxy_fidelity_quick.jsonl")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    info = dataset_info(args.dataset)
    bound = BoundSpace(load_space(args.space), info.in_channels, info.num_classes,
                       info.input_size)
    budget = Budget.parse(args.budget)
    archs = sample_architectures(bound, budget, args.archs, args.pool, seed=0)
    splits = load_splits(args.dataset, "data", split_seed=0)
    # name -> (epochs, half the training images, seed, amp)
    schedules: dict[str, tuple[int, bool, int, str]] = {
        f"e{e}": (int(e), False, 0, "off") for e in args.proxy_epochs.split(",")}
    schedules["e2-half"] = (2, True, 0, "off")
    if args.amp != "off":
        schedules |= {f"{name}-{args.amp}": (*spec[:3], args.amp)
                      for name, spec in schedules.items()}
    schedules["long"] = (args.long_epochs, False, 0, "off")
    schedules["long-seed1"] = (args.long_epochs, False, 1, "off")
    print(f"# proxy fidelity: {args.dataset} ({len(splits.val)} val, {len(splits.test)} test "
          f"images), {args.space}, budget {args.budget}, {len(archs)} archs, params "
          f"{min(bound.cost(a).params for a in archs)}-{max(bound.cost(a).params for a in archs)}"
          f"; {platform.machine()}, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    path = Path(args.results)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            done[(row["arch"], row["schedule"])] = row
    keys = [json.dumps(a.to_dict(), sort_keys=True) for a in archs]
    for name, (epochs, subset, seed, amp) in schedules.items():
        todo = archs[: args.ceiling_archs] if name == "long-seed1" else archs
        for arch, key in zip(todo, keys, strict=False):
            if (key, name) in done:
                continue
            row = {"arch": key, "schedule": name, "dataset": args.dataset,
                   "params": bound.cost(arch).params, **train_once(arch, splits, epochs, seed,
                                                                   subset, amp)}
            done[(key, name)] = row
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name:<10} {row['params']:>7} params  val {row['val']:.4f}  test "
                  f"{row['test']:.4f}  {row['seconds']:.1f} s", flush=True)
    report(schedules, keys, done, args)


def report(schedules: dict[str, tuple[int, bool, int, str]], keys: list[str],
           done: dict[tuple[str, str], dict[str, Any]], args: argparse.Namespace) -> None:
    long = [done[(k, "long")]["test"] for k in keys]
    print(f"\n| proxy | scored on | Kendall tau | Spearman rho | top-10 % overlap | "
          f"s / arch |  (vs {args.long_epochs}-epoch test accuracy, {len(keys)} archs)")
    print("|---|---|---:|---:|---:|---:|")
    for name in schedules:
        if name.startswith("long"):
            continue
        for split in ("val", "val_nll", "test"):
            if any(done[(k, name)].get(split) is None for k in keys):
                continue  # rows from before val_nll was recorded
            sign = -1 if split.endswith("nll") else 1  # a lower loss ranks higher
            proxy = [sign * done[(k, name)][split] for k in keys]
            tau = stats.kendalltau(proxy, long).statistic
            rho = stats.spearmanr(proxy, long).statistic
            seconds = statistics.fmean(done[(k, name)]["seconds"] for k in keys)
            print(f"| {name} | {split} | {tau:.3f} | {rho:.3f} | "
                  f"{top_overlap(proxy, long):.2f} | {seconds:.1f} |")
    ceiling = [k for k in keys if (k, "long-seed1") in done]
    if len(ceiling) >= 3:
        a = [done[(k, "long")]["test"] for k in ceiling]
        b = [done[(k, "long-seed1")]["test"] for k in ceiling]
        diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
        print(f"ceiling: long schedule seed 0 vs seed 1 on {len(ceiling)} archs: Kendall tau "
              f"{stats.kendalltau(a, b).statistic:.3f}, median |difference| "
              f"{statistics.median(diffs):.4f}, max {max(diffs):.4f}")
    spread = max(long) - min(long)
    top5 = sorted(long)[-5:]
    print(f"long-schedule accuracy: {min(long):.4f}-{max(long):.4f} (spread {spread:.4f}); "
          f"top five within {top5[-1] - top5[0]:.4f}; "
          f"{math.nan if not long else statistics.fmean(long):.4f} mean")


if __name__ == "__main__":
    main()
