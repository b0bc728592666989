"""Trials per hour of the default search: this tree against an earlier commit, side by side.

Runs README's first command (``ssc-nas search --budget 0.5M``, mnist-5k, resnet20-ssc, 2-epoch
proxy) with ``--trials K`` in a fresh study, once with this working tree and once with the code
of ``--baseline`` (a git revision, exported with ``git archive`` into a temporary folder, or a
folder that already holds such an export, for a machine without the git history), in
alternating order over ``--rounds``. With K <= 5 the trials are the reference designs, the same
architectures for both codes, so the ratio measures the speed of the code, not luck in
sampling. Each run is a fresh process started the way a user starts it (``python -m ssc_nas``),
so whatever the CLI sets up at start-up (e.g. the allocator) is included.

Printed: wall seconds per run (process start to exit, data loading included), trained trials
per hour from the study's own timestamps (first trial start to last completion), and the ratio
new / baseline.

A baseline from before successive halving became the default (``--strategy sh``) trains each
of its K trials fully; ``--flags "--strategy full"`` gives this tree's runs the same work.

Usage::

    python benchmarks/trial_throughput.py                      # K = 5, 1 round: ~8 min
    python benchmarks/trial_throughput.py --baseline f5e7a23 --trials 3 --rounds 2
    python benchmarks/trial_throughput.py --baseline f5e7a23 --flags "--strategy full"
    python benchmarks/trial_throughput.py --baseline HEAD --flags "--strategy full" \
        --baseline-flags "--strategy full"
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
#: The code before the work on trial speed (issue 14): the last landed commit before it.
DEFAULT_BASELINE = "f5e7a23"


def export(revision: str, folder: Path) -> Path:
    """The tree of ``revision`` as plain files in ``folder`` (symlinks kept)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def one_run(tree: Path, trials: int, workdir: Path, name: str,
            flags: list[str]) -> tuple[float, float]:
    """(wall seconds, trained trials per hour) of one default search with ``tree``'s code
    (plus ``flags``)."""
    db = workdir / f"{name}.db"
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "ssc_nas", "search", "--budget", "0.5M", "--trials",
           str(trials), "--storage", f"sqlite:///{db}", "--quiet", *flags]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=workdir, check=True, capture_output=True)
    wall = time.perf_counter() - start
    summaries = optuna.get_all_study_summaries(f"sqlite:///{db}")
    study = optuna.load_study(study_name=summaries[0].study_name, storage=f"sqlite:///{db}")
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    return wall, 3600 * len(done) / (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help="git revision to compare, or a folder holding its exported tree")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--flags", default="",
                        help="extra ssc-nas search flags for this tree's runs only")
    parser.add_argument("--baseline-flags", default="",
                        help="extra ssc-nas search flags for the baseline's runs (e.g. the same "
                             "--strategy full, for a baseline that has the option)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"# default search, {args.trials} trials, {args.rounds} round(s): this tree vs "
          f"{args.baseline}; extra flags: this tree {args.flags or 'none'}, baseline "
          f"{args.baseline_flags or 'none'}; "
          f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results: dict[str, list[tuple[float, float]]] = {"this tree": [], args.baseline: []}
    with tempfile.TemporaryDirectory() as tmp:
        given = Path(args.baseline)
        base = given.resolve() if given.is_dir() else export(args.baseline, Path(tmp) / "base")
        trees = {"this tree": ROOT, args.baseline: base}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for label in order:
                flags = shlex.split(args.flags if label == "this tree" else args.baseline_flags)
                wall, per_hour = one_run(trees[label], args.trials, Path(tmp),
                                         f"{'new' if label == 'this tree' else 'base'}-{r}", flags)
                results[label].append((wall, per_hour))
                print(f"round {r} {label:<10} wall {wall:6.1f} s  {per_hour:6.1f} trials/h",
                      flush=True)
    print("\n| code | wall s (mean) | trials / hour (mean) |")
    print("|---|---:|---:|")
    means = {}
    for label, runs in results.items():
        means[label] = statistics.fmean(p for _, p in runs)
        print(f"| {label} | {statistics.fmean(w for w, _ in runs):.1f} | {means[label]:.1f} |")
    print(f"ratio this tree / {args.baseline}: "
          f"{means['this tree'] / means[args.baseline]:.2f}x trials per hour")


if __name__ == "__main__":
    main()
