"""Search efficiency: does a model-based sampler beat random sampling on an ssc-nas space?

For every sampler (``random``, ``tpe``, ``nsga2``) and seed, one real search (``run_search``,
what ``ssc-nas search`` runs) in its own SQLite file, with the same data split, proxy schedule
and budget. The model-based samplers train ``--trials`` N candidates; random sampling trains
``--random-factor`` x N (default 2N), so "TPE at N vs random at 2N" is read off one run.
Reference designs are off by default: they are the same first trials for every sampler and
would hide the samplers' own difference (``--reference-designs`` puts them back).

Hypervolume of the feasible front after each trained trial, with a fixed reference point so
that runs compare: each objective is normalised to [0, 1], the score the search optimises
(``--objective``: ``val_loss / ln(classes)``, reference the loss of a uniform guess, by
default; or ``1 - accuracy``, reference accuracy 0), ``params / budget`` and ``MACs / largest
MACs reachable in the space`` (reference 1 each). Over-budget candidates are never trained
and add nothing. Wall-clock is each trial's completion time minus the first trial's start,
so it counts sampling, costing, rejected candidates and training.

``NAME+sh`` in ``--samplers`` runs that sampler with ``--strategy sh`` (successive halving) on
``--sh-factor`` x N candidates; its hypervolume counts top-rung trials only (the whole proxy
schedule, as every trial of the ``full`` strategy), and it is judged at equal wall-clock: at the
time the default (``tpe``) took for N trials, against random sampling at ``--random-factor`` x N.

``SPACE:NAME`` in ``--samplers`` runs that sampler on another search space (``--space`` is
the default), so spaces compare in one run: every space's hypervolume uses the largest MACs
reachable in any of them.

``--keep FOLDER`` keeps the study databases; run the same command again to resume (finished
searches are read back, not rerun).

Printed: per sampler, hypervolume at N trials and at the end (mean +- sample std over seeds),
hypervolume at equal wall-clock (the mean time TPE took for N trials), the best normalised
score at N trials (the accuracy axis alone: a ``width: fill`` space puts every design at the
params budget, where the hypervolume's params axis adds nothing), trained trials per hour;
then the verdict lines of the targets (a model-based sampler at N trials vs random at 2N, at
equal trials and at equal wall-clock), and each entry of ``--samplers`` paired seed by seed
(seed s is the same data split for all) against the first: the mean difference of the
hypervolume at the end, its 95 % t interval, and in how many seeds it is ahead. ``--plot
FILE.png`` draws hypervolume vs trials and vs seconds, mean over seeds.

Usage::

    python benchmarks/search_efficiency.py --quick          # digits, tiny space: ~5 min
    python benchmarks/search_efficiency.py                  # mnist-5k, resnet20-ssc, 0.5M,
                                                            # 20 trials x 3 seeds: hours on 2 cores
    python benchmarks/search_efficiency.py --samplers random,tpe --seeds 3 --plot hv.png
    python benchmarks/search_efficiency.py --space vgg16-ssc --samplers tpe,vgg16-ssc-stage:tpe+sh
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import moocore  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from scipy import stats  # noqa: E402

from ssc_nas.budget import Budget, within_limits  # noqa: E402
from ssc_nas.data import Splits, dataset_info, load_splits  # noqa: E402
from ssc_nas.search import (  # noqa: E402
    SCORES,
    SearchConfig,
    run_search,
    trial_accuracy,
    trial_val_loss,
)
from ssc_nas.spaces import BoundSpace, load_space  # noqa: E402
from ssc_nas.train import TrainConfig  # noqa: E402


@dataclass
class Curve:
    """One search: hypervolume after each trained trial and when it was reached."""

    sampler: str
    seed: int
    hypervolume: list[float]
    seconds: list[float]
    best: list[float] = field(default_factory=list)  # best normalised score so far

    def best_at(self, n: int) -> float:
        return self.best[min(n, len(self.best)) - 1] if self.best else math.nan

    def best_at_seconds(self, t: float) -> float:
        reached = [b for b, s in zip(self.best, self.seconds, strict=True) if s <= t]
        return reached[-1] if reached else math.nan

    def at_trials(self, n: int) -> float:
        return self.hypervolume[min(n, len(self.hypervolume)) - 1] if self.hypervolume else 0.0

    def at_seconds(self, t: float) -> float:
        reached = [hv for hv, s in zip(self.hypervolume, self.seconds, strict=True) if s <= t]
        return reached[-1] if reached else 0.0

    @property
    def trials_per_hour(self) -> float:
        return 3600 * len(self.seconds) / self.seconds[-1] if self.seconds else math.nan


def normalised_points(study: optuna.Study, budget_params: float, macs_ref: float,
                      score: str, classes: int) -> list[tuple[int, float, np.ndarray]]:
    """(trial number, completion second, normalised objective vector) of each trained trial,
    in completion order. ``score`` is ``val_loss`` (divided by ln(classes), the loss of a
    uniform guess) or ``accuracy`` (1 - accuracy); every trial records both, whichever the
    search optimised. Over-budget candidates (stored COMPLETE with constraint values > 0,
    never trained) are left out; the seconds they took are inside the next trained trial's."""
    trials = study.get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                  key=lambda t: t.datetime_complete)
    objectives = study.user_attrs["objectives"]
    out = []
    for t in done:
        if not within_limits(t.constraints):
            continue  # over budget: told COMPLETE but never trained; its time still counts
        v = dict(zip(objectives, t.values, strict=True))
        if score == "val_loss":
            loss = trial_val_loss(t, objectives)
            first = math.inf if loss is None else loss / math.log(classes)
        else:
            first = 1.0 - (trial_accuracy(t, objectives) or 0.0)
        point = np.array([first, v["params"] / budget_params, v["macs"] / macs_ref])
        out.append((t.number, (t.datetime_complete - start).total_seconds(), point))
    return out


def hypervolume_curve(points: list[tuple[int, float, np.ndarray]]) -> tuple[list[float],
                                                                              list[float]]:
    """Hypervolume (reference point 1, 1, 1) of the points seen so far, after each point."""
    kept: list[np.ndarray] = []
    values, seconds = [], []
    for _, second, p in points:
        if np.isfinite(p).all() and (p < 1.0).all():
            kept.append(p)
        hv = float(moocore.hypervolume(np.vstack(kept), ref=[1.0] * len(p))) if kept else 0.0
        values.append(hv)
        seconds.append(second)
    return values, seconds


def entry_parts(entry: str, default_space: str) -> tuple[str, str]:
    """``SPACE:NAME`` -> (space, name); a bare ``NAME`` runs on ``default_space``."""
    space, _, label = entry.rpartition(":")
    return space or default_space, label


def one_search(args: argparse.Namespace, entry: str, seed: int, trials: int, folder: Path,
               splits: Splits, macs_ref: float) -> Curve:
    """``entry`` is a sampler (``tpe``), a sampler with ``+sh`` for successive halving, either
    with ``SPACE:`` before it for another space than ``--space``."""
    space, label = entry_parts(entry, args.space)
    sampler, _, strategy = label.partition("+")
    name = entry.replace(":", "_")  # a bare entry keeps its old file and study name
    storage = f"sqlite:///{folder / f'{name}-{seed}.db'}"
    config = SearchConfig(
        budget=Budget.parse(args.budget), space=space, dataset=args.dataset,
        data_dir=args.data_dir, subset=args.subset, trials=trials,
        train=TrainConfig(epochs=args.epochs), sampler=sampler,
        storage=storage, seed=seed, reference_designs=args.reference_designs,
        study=f"{name}-{seed}", strategy=strategy or "full", eta=args.eta, rungs=args.rungs,
        objectives=(args.objective, "params", "macs"))
    result = run_search(config, splits=splits)
    points = normalised_points(result.study, float(config.budget.params or 1), macs_ref,
                               args.objective, splits.info.num_classes)
    hv, seconds = hypervolume_curve(points)
    best = np.minimum.accumulate([p[0] for _, _, p in points]).tolist() if points else []
    return Curve(entry, seed, hv, seconds, best)


def mean_std(values: list[float]) -> str:
    """Mean ± sample std over seeds; a seed without a value yet (NaN: nothing trained by that
    time) is left out and the seeds counted."""
    known = [v for v in values if not math.isnan(v)]
    of = "" if len(known) == len(values) else f" ({len(known)} of {len(values)} seeds)"
    if len(known) < 2:
        return (f"{known[0]:.4f}" if known else "-") + of
    return f"{statistics.fmean(known):.4f} ± {statistics.stdev(known):.4f}{of}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--data-dir", default="data",
                        help="where Fashion-MNIST, CIFAR and Tiny-ImageNet files are")
    parser.add_argument("--subset", type=float, default=1.0,
                        help="fraction of the training split the proxy trains on")
    parser.add_argument("--space", default="resnet20-ssc")
    parser.add_argument("--budget", default="0.5M")
    parser.add_argument("--trials", type=int, default=20, help="N: trials of tpe and nsga2")
    parser.add_argument("--random-factor", type=int, default=2,
                        help="random sampling trains this many x N trials")
    parser.add_argument("--epochs", type=int, default=2, help="proxy epochs")
    parser.add_argument("--samplers", default="random,tpe,nsga2",
                        help="samplers; NAME+sh runs that sampler with --strategy sh; "
                             "SPACE:NAME runs it on SPACE instead of --space")
    parser.add_argument("--sh-factor", type=int, default=3,
                        help="+sh searches train this many x N candidates (each stops at its "
                             "rung; they are compared at equal wall-clock)")
    parser.add_argument("--eta", type=int, default=3, help="+sh: rungs keep their top 1/eta")
    parser.add_argument("--rungs", type=int, default=3, help="+sh: number of rungs")
    parser.add_argument("--objective", choices=SCORES, default=SCORES[0],
                        help="the search's score objective, and the score the hypervolume uses")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed .. first-seed + seeds - 1 (run seeds in "
                             "parallel processes sharing one --keep folder)")
    parser.add_argument("--reference-designs", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--plot", default=None, help="write hypervolume curves to this PNG")
    parser.add_argument("--keep", default=None, help="keep the study databases in this folder")
    parser.add_argument("--quick", action="store_true",
                        help="digits, digits-tiny, 40k, 6 trials, 1 epoch, 2 seeds")
    if "--quick" in sys.argv[1:]:  # defaults of the quick run; flags given still win
        parser.set_defaults(dataset="digits", space="digits-tiny", budget="40k", trials=6,
                            epochs=1, seeds=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    info = dataset_info(args.dataset)
    spaces = sorted({entry_parts(s, args.space)[0] for s in samplers} | {args.space})
    macs_ref = float(max(BoundSpace(load_space(space), info.in_channels, info.num_classes,
                                    info.input_size).cost_bounds()[1].macs for space in spaces))
    print(f"# search efficiency: {args.dataset}, {', '.join(spaces)}, budget {args.budget}, "
          f"{args.epochs}-epoch proxy, objective {args.objective}, N = {args.trials}, "
          f"random {args.random_factor}N, "
          f"{args.seeds} seeds; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, {time.strftime('%Y-%m-%d %H:%M')}",
          flush=True)
    curves: dict[str, list[Curve]] = {s: [] for s in samplers}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            # Seed s: split seed s for every sampler (what ssc-nas search --seed s uses), so
            # the samplers of one seed see the same data.
            splits = load_splits(args.dataset, args.data_dir, subset=args.subset,
                                 split_seed=seed)
            for sampler in samplers:
                n = trials_of(args, sampler)
                start = time.perf_counter()
                curve = one_search(args, sampler, seed, n, folder, splits, macs_ref)
                curves[sampler].append(curve)
                print(f"{sampler:<7} seed {seed}: {len(curve.hypervolume)} trials in "
                      f"{time.perf_counter() - start:.0f} s, hypervolume {curve.at_trials(n):.4f}",
                      flush=True)
    report(args, curves)
    if args.plot:
        plot(curves, args.plot)
        print(f"wrote {args.plot}")


def trials_of(args: argparse.Namespace, entry: str) -> int:
    """The trials (``+sh``: candidates) an entry of ``--samplers`` trains."""
    label = entry_parts(entry, args.space)[1]
    return args.trials * (args.random_factor if label == "random" else
                          args.sh_factor if label.endswith("+sh") else 1)


def paired(args: argparse.Namespace, curves: dict[str, list[Curve]]) -> None:
    """Each entry against the first, seed by seed: hypervolume at its end, minus the first's."""
    first, *others = curves
    if not others:
        return
    ends = {entry: {c.seed: c.at_trials(trials_of(args, entry)) for c in cs}
            for entry, cs in curves.items()}
    print(f"\npaired by seed, hypervolume at the end minus {first}'s (mean, 95 % t interval):")
    for entry in others:
        seeds = sorted(ends[entry].keys() & ends[first].keys())
        d = [ends[entry][s] - ends[first][s] for s in seeds]
        if len(d) < 2:
            print(f"  {entry}: {len(d)} shared seed, no interval")
            continue
        mean = statistics.fmean(d)
        half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
        verdict = "ahead" if mean - half > 0 else "behind" if mean + half < 0 else "a tie"
        print(f"  {entry}: {mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}], ahead in "
              f"{sum(x > 0 for x in d)} of {len(d)} seeds ({verdict}; per seed "
              f"{', '.join(f'{x:+.4f}' for x in d)})")


def report(args: argparse.Namespace, curves: dict[str, list[Curve]]) -> None:
    n = args.trials
    # +sh: compared at equal wall-clock; random on another space is no model-based sampler
    model = [s for s in curves if entry_parts(s, args.space)[1] != "random"]
    full = [m for m in model if not m.endswith("+sh")]
    anchor = "tpe" if "tpe" in curves else (full[0] if full else next(iter(curves)))
    budget_s = statistics.fmean(c.seconds[min(n, len(c.seconds)) - 1]
                                for c in curves[anchor] if c.seconds)
    score = "val loss / ln(classes)" if args.objective == "val_loss" else "1 - accuracy"
    print(f"\n| sampler | HV at {n} trials (+sh: its end) | "
          f"HV at {args.random_factor * n} trials | "
          f"HV at {budget_s:.0f} s ({anchor}'s time for {n}) | best {score} at {n} trials | "
          f"best at {budget_s:.0f} s | trials / hour (+sh: top rung) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for sampler, cs in curves.items():
        at_2n = (mean_std([c.at_trials(args.random_factor * n) for c in cs])
                 if entry_parts(sampler, args.space)[1] == "random" else "-")
        print(f"| {sampler} | {mean_std([c.at_trials(n) for c in cs])} | {at_2n} | "
              f"{mean_std([c.at_seconds(budget_s) for c in cs])} | "
              f"{mean_std([c.best_at(n) for c in cs])} | "
              f"{mean_std([c.best_at_seconds(budget_s) for c in cs])} | "
              f"{statistics.fmean(c.trials_per_hour for c in cs):.0f} |")
    paired(args, curves)
    if "random" not in curves:
        return
    random_2n = statistics.fmean(c.at_trials(args.random_factor * n) for c in curves["random"])
    for sampler in [m for m in model if m.endswith("+sh")]:
        at_time = statistics.fmean(c.at_seconds(budget_s) for c in curves[sampler])
        print(f"{sampler} at {anchor}'s time for {n} trials ({budget_s:.0f} s): {at_time:.4f} "
              f"vs random at {args.random_factor * n} trials: {random_2n:.4f} -> "
              f"{'reached' if at_time >= random_2n else 'NOT reached'} (means over "
              f"{len(curves[sampler])} seeds; hypervolume of top-rung trials only)")
        # Equal wall-clock at the time it took (it may end before the anchor's time).
        end = statistics.fmean(c.seconds[-1] for c in curves[sampler] if c.seconds)
        others = "; ".join(
            f"{f} {mean_std([c.at_seconds(end) for c in curves[f]])}"
            for f in ("random", *full) if f in curves and (f != "random" or "random" not in full))
        print(f"  {sampler} at its end ({end:.0f} s, mean): "
              f"{mean_std([c.hypervolume[-1] for c in curves[sampler] if c.hypervolume])}; "
              f"the full strategy at {end:.0f} s: {others}")
    for sampler in [m for m in model if not m.endswith("+sh")]:
        at_n = statistics.fmean(c.at_trials(n) for c in curves[sampler])
        seconds = statistics.fmean(c.seconds[min(n, len(c.seconds)) - 1]
                                   for c in curves[sampler] if c.seconds)
        random_at_time = statistics.fmean(c.at_seconds(seconds) for c in curves["random"])
        print(f"{sampler} at {n} trials: {at_n:.4f} vs random at {args.random_factor * n}: "
              f"{random_2n:.4f} -> {'reached' if at_n >= random_2n else 'NOT reached'}; "
              f"at equal wall-clock ({seconds:.0f} s) random has {random_at_time:.4f} -> "
              f"{'ahead' if at_n >= random_at_time else 'behind'} (means over "
              f"{len(curves[sampler])} seeds)")


def plot(curves: dict[str, list[Curve]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_n, ax_t) = plt.subplots(1, 2, figsize=(10, 3.8))
    for sampler, cs in curves.items():
        length = min(len(c.hypervolume) for c in cs)
        mean = np.mean([c.hypervolume[:length] for c in cs], axis=0)
        ax_n.plot(range(1, length + 1), mean, label=sampler)
        grid = np.linspace(0, max(c.seconds[-1] for c in cs), 200)
        ax_t.plot(grid, [statistics.fmean(c.at_seconds(t) for c in cs) for t in grid],
                  label=sampler)
    ax_n.set(xlabel="trained trials", ylabel="hypervolume (mean over seeds)")
    ax_t.set(xlabel="wall-clock seconds", ylabel="hypervolume (mean over seeds)")
    ax_n.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
