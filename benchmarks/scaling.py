"""How ssc-nas search scales with worker processes, and what the study storage costs per trial.

(a) Throughput. For each storage (SQLite file, PostgreSQL) and each worker count K, a study is
    made by one real ``ssc-nas search`` (digits, digits-tiny space, 1 proxy epoch, random
    sampler, no reference designs, 1 trial), its target is raised by ``--throughput-trials`` and
    K real ``ssc-nas worker`` processes (1 torch thread each) run the rest. Reported: wall time
    from starting the workers to the last one exiting (includes each worker's start-up: Python,
    torch, data), trials/minute end to end and in steady state (first new trial start to last
    completion, from the study's own timestamps), per-core efficiency = trials/min /
    min(K, cores), speed-up over K = 1, the mean trial duration (it grows once K > cores), and
    the count of "database is locked" messages (must be 0). Each run is checked: exactly the
    target of COMPLETE trials, nothing RUNNING.

(b) Storage overhead per trial as a study grows to ``--storage-trials`` COMPLETE trials. The real
    trial loop of a worker (``ssc_nas.search.trials.TrialRunner``: surplus check, sampling, analytic
    cost, budget constraints, the user attributes an ssc-nas trial stores, heartbeat, ``tell``) runs
    with model building and training replaced by a constant result, so only the storage and the loop
    around it cost time. The default search is used for the shape of each trial (mnist-5k,
    resnet20-ssc, 0.5M params, random sampler so the sampler's own cost does not grow with the
    study). Time is taken per window of ``--window`` completed trials, for an in-memory Optuna
    storage (the loop alone) and for each RDB storage; the overhead is the difference. It is
    compared with the median wall time of one default proxy trial (``ssc-nas search --budget 0.5M``:
    mnist-5k, resnet20-ssc, the standard reference design, default 2 epochs), measured here unless
    ``--proxy-seconds`` gives a figure.

SQLite is a file in a temporary folder (Python's default synchronous=FULL); PostgreSQL is a
throwaway cluster on 127.0.0.1 with the server's durable defaults (fsync on; see
tests/postgres.py), removed at the end.

Usage::

    python benchmarks/scaling.py                   # everything: about 10-15 min on 2 cores
    python benchmarks/scaling.py --quick           # a few minutes
    python benchmarks/scaling.py --storages sqlite --proxy-seconds 55
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PROXY_BASE = ["search", "--dataset", "digits", "--space", "digits-tiny", "--budget", "80k",
              "--epochs", "1", "--quiet", "--no-reference-designs"]


def machine() -> str:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import sqlalchemy
    import torch

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"CPU: {cpu}; cores: {os.cpu_count()} (usable {CORES}); python "
            f"{platform.python_version()}; torch {torch.__version__}; optuna "
            f"{optuna.__version__}; sqlalchemy {sqlalchemy.__version__}; load average {load}")


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 1800) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "ssc_nas", *args], cwd=cwd, env=env or ENV,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"ssc-nas {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


@contextlib.contextmanager
def storages(names: list[str], folder: Path) -> Iterator[dict[str, Any]]:
    """name -> a factory of fresh storage URLs (one database per call)."""
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if "sqlite" in names:
            counter = iter(range(10**6))
            out["sqlite"] = lambda: f"sqlite:///{folder / f'bench-{next(counter)}.db'}"
        if "postgresql" in names:
            from tests.postgres import PostgresCluster

            pg = stack.enter_context(PostgresCluster(durable=True))
            counter_pg = iter(range(10**6))

            def pg_url() -> str:
                db = f"bench{next(counter_pg)}"
                pg._run(pg.bin / "psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                        "postgres", "-d", "postgres", "-q", "-c", f'CREATE DATABASE "{db}"')
                return pg.url.rsplit("/", 1)[0] + f"/{db}"

            out["postgresql"] = pg_url
        yield out


# -- (a) throughput ----------------------------------------------------------------------------


def throughput(url: str, workers: int, trials: int, folder: Path, sampler: str) -> dict:
    name = f"tp{workers}"
    cli([*PROXY_BASE, "--sampler", sampler, "--trials", "1", "--study", name,
         "--storage", url], folder)
    study = optuna.load_study(study_name=name, storage=url)
    study.set_user_attr("trials", 1 + trials)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "ssc_nas", "worker", "--study", name,
                               "--storage", url, "--quiet", "--threads", "1",
                               "--worker-index", str(i + 1)], cwd=folder, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    outputs = [p.communicate(timeout=3600) for p in procs]
    wall = time.perf_counter() - t0
    errors = "".join(err for _out, err in outputs)
    codes = [p.returncode for p in procs]
    trials_all = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    new = [t for t in trials_all if t.number > 0 and t.state == TrialState.COMPLETE]
    running = [t for t in trials_all if t.state == TrialState.RUNNING]
    ok = (codes == [0] * workers and len(new) == trials and not running)
    span = (max(t.datetime_complete for t in new) - min(t.datetime_start for t in new))
    steady = span.total_seconds()
    return {
        "workers": workers, "wall_s": wall, "steady_s": steady,
        "tpm_e2e": 60 * len(new) / wall, "tpm_steady": 60 * len(new) / steady,
        "trial_s": statistics.mean((t.datetime_complete - t.datetime_start).total_seconds()
                                   for t in new),
        "locked": errors.count("database is locked"),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials_all),
        "check": "ok" if ok else f"FAILED codes={codes} complete={len(new)} "
                                 f"running={len(running)} {errors[-300:]}",
    }


def print_throughput(rows: dict[str, list[dict]], trials: int) -> None:
    print(f"\n(a) throughput: {trials} real proxy trials per run (digits, digits-tiny, 1 epoch), "
          f"K `ssc-nas worker` processes with 1 torch thread each, {CORES} cores")
    head = (f"{'storage':<11}{'K':>3}{'wall s':>8}{'trials/min':>12}{'steady':>9}"
            f"{'per core':>10}{'speed-up':>10}{'trial s':>9}{'locked':>8}{'pruned':>8}  check")
    print(head)
    print("-" * len(head))
    for storage, runs in rows.items():
        base = runs[0]["tpm_steady"] if runs else 1.0
        for r in runs:
            per_core = r["tpm_steady"] / min(r["workers"], CORES)
            print(f"{storage:<11}{r['workers']:>3}{r['wall_s']:>8.1f}{r['tpm_e2e']:>12.1f}"
                  f"{r['tpm_steady']:>9.1f}{per_core:>10.1f}{r['tpm_steady'] / base:>9.2f}x"
                  f"{r['trial_s']:>9.2f}{r['locked']:>8}{r['pruned']:>8}  {r['check']}")
    print("trials/min: end to end (incl. worker start-up); steady: from the trials' own "
          "timestamps; per core = steady / min(K, cores); speed-up = steady / steady at K=1; "
          "trial s = mean trial duration; pruned = surplus/over-budget trials (not trained)")


# -- (b) storage overhead ----------------------------------------------------------------------


def _cheap_job(storage: Any, name: str, epochs: int) -> Any:
    """The real trial loop of one worker on ``storage`` with training replaced by a constant."""
    import torch

    from ssc_nas import search as S
    from ssc_nas.budget import Budget
    from ssc_nas.data import dataset_info
    from ssc_nas.search import run as R
    from ssc_nas.search import trials as T
    from ssc_nas.spaces import BoundSpace, load_space
    from ssc_nas.train import TrainConfig, TrainResult

    T.build = lambda *a, **k: None  # no model
    T.train_model = lambda *a, **k: TrainResult(  # what a trained trial reports, instantly
        val_accuracy=[0.5] * epochs, train_loss=[1.0] * epochs, epochs_run=epochs, seconds=0.0)
    config = S.SearchConfig(budget=Budget.parse("0.5M"), space="resnet20-ssc",
                            dataset="mnist-5k", sampler="random", trials=1,
                            train=TrainConfig(epochs=epochs))
    space = load_space(config.space)
    info = dataset_info(config.dataset)
    bound = BoundSpace(space, info.in_channels, info.num_classes, info.input_size)
    shape = {"in_channels": info.in_channels, "input_size": list(info.input_size),
             "num_classes": info.num_classes}
    directions = ["maximize" if o == "accuracy" else "minimize" for o in config.objectives]
    study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(list(config.objectives))
    for key, value in R._study_attrs(config, space, shape).items():
        study.set_user_attr(key, value)
    splits = SimpleNamespace(info=info, train=None, val=None)  # training never reads them
    return T.TrialRunner(study=study, bound=bound, budget=config.budget,
                         objectives=config.objectives, train=config.train, splits=splits, seed=0,
                         device=torch.device("cpu"), latency_batch=32, target=0,
                         timeout=None, reporter=None)


def storage_overhead(storage: Any, name: str, total: int, window: int) -> list[dict]:
    job = _cheap_job(storage, name, epochs=2)
    rows = []
    for end in range(window, total + 1, window):
        job.target = end
        rows_before = len(job.study.get_trials(deepcopy=False))
        t0 = time.perf_counter()
        job.run()
        seconds = time.perf_counter() - t0
        rows_after = len(job.study.get_trials(deepcopy=False))
        rows.append({"end": end, "ms": 1000 * seconds / window,
                     "rows": rows_after - rows_before})
    return rows


def proxy_trial_seconds(repeats: int, threads: int, folder: Path) -> list[float]:
    """Wall time of the default search's first trial (the standard design), ``repeats`` runs."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    times = []
    for i in range(repeats):
        run = folder / f"proxy{i}"
        run.mkdir()
        cli(["search", "--budget", "0.5M", "--trials", "1", "--quiet"], run, env=env)
        url = f"sqlite:///{run / 'ssc-nas.db'}"
        (summary,) = optuna.get_all_study_summaries(url)
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        (t,) = study.get_trials(states=(TrialState.COMPLETE,))
        assert t.user_attrs.get("reference") == "standard", t.user_attrs
        times.append((t.datetime_complete - t.datetime_start).total_seconds())
    return times


def print_overhead(results: dict[str, list[dict]], total: int, window: int,
                   proxy: float | None, proxy_note: str) -> None:
    print(f"\n(b) ssc-nas per-trial cost without training, as the study grows to {total} COMPLETE "
          f"trials (default search's trial shape: mnist-5k, resnet20-ssc, 0.5M; random sampler), "
          f"ms per completed trial per {window}-trial window; overhead = storage - in-memory")
    names = [n for n in results if n != "in-memory"]
    head = f"{'trials':>11}{'in-memory':>11}" + "".join(
        f"{n:>12}{'overhead':>10}{'% proxy':>9}" for n in names) + f"{'rows/win':>10}"
    print(head)
    print("-" * len(head))
    base = results["in-memory"]
    for i, b in enumerate(base):
        line = f"{b['end'] - window + 1:>5}-{b['end']:<5}{b['ms']:>11.1f}"
        for n in names:
            r = results[n][i]
            over = r["ms"] - b["ms"]
            pct = f"{100 * over / 1000 / proxy:>8.2f}%" if proxy else f"{'-':>9}"
            line += f"{r['ms']:>12.1f}{over:>10.1f}{pct}"
        line += f"{b['rows']:>10}"
        print(line)
    for n in names:
        over = [r["ms"] - b["ms"] for r, b in zip(results[n], base, strict=True)]
        first, last = over[0], over[-1]
        verdict = ""
        if proxy:
            worst = max(over)
            share = worst / 1000 / proxy
            verdict = (f"; worst window {worst:.1f} ms = {100 * share:.2f}% of a default proxy "
                       f"trial ({'under' if share < 0.05 else 'OVER'} the 5% target)")
        print(f"{n}: overhead first window {first:.1f} ms, last window {last:.1f} ms "
              f"(x{last / first if first > 0 else float('nan'):.2f}){verdict}")
    print(f"default proxy trial: {proxy_note}")
    print("rows/win: trial rows per window, incl. over-budget candidates (PRUNED, not trained)")


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2,4", help="worker counts for (a) [1,2,4]")
    p.add_argument("--throughput-trials", type=int, default=20,
                   help="new proxy trials per (storage, K) run [20]")
    p.add_argument("--storage-trials", type=int, default=1000,
                   help="COMPLETE trials the study grows to in (b) [1000]")
    p.add_argument("--window", type=int, default=100, help="trials per timing window in (b)")
    p.add_argument("--storages", default="sqlite,postgresql",
                   help="comma-separated from sqlite,postgresql [both]")
    p.add_argument("--sampler", default="random", choices=["random", "tpe", "nsga2"],
                   help="sampler of the proxy trials in (a) [random]")
    p.add_argument("--proxy-seconds", type=float, default=None,
                   help="wall time of a default proxy trial to compare with, instead of "
                        "measuring it")
    p.add_argument("--proxy-repeats", type=int, default=1,
                   help="default proxy trials to time (median) [1]")
    p.add_argument("--proxy-threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads of the timed default proxy trial [all cores, as a "
                        "plain `ssc-nas search` gets]")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="K=1,2, 8 trials per run, 300 trials in (b)")
    a = p.parse_args(argv)
    if a.quick:
        a.workers, a.throughput_trials, a.storage_trials = "1,2", 8, 300
    names = [s.strip() for s in a.storages.split(",") if s.strip()]
    unknown = set(names) - {"sqlite", "postgresql"}
    if unknown:
        p.error(f"unknown storage(s): {', '.join(sorted(unknown))}")
    if a.storage_trials % a.window:
        p.error("--storage-trials must be a multiple of --window")
    counts = [int(k) for k in a.workers.split(",")]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    print(machine())
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="ssc-nas-scaling-"))
    try:
        with storages(names, folder) as make_url:
            tp: dict[str, list[dict]] = {}
            if not a.skip_throughput:
                for n in names:
                    tp[n] = []
                    for k in counts:
                        r = throughput(make_url[n](), k, a.throughput_trials, folder, a.sampler)
                        tp[n].append(r)
                        print(f"  {n} K={k}: {r['tpm_steady']:.1f} trials/min steady, "
                              f"{r['wall_s']:.0f}s wall, {r['check']}", flush=True)
            ov: dict[str, list[dict]] = {}
            proxy_note = "not measured"
            proxy = a.proxy_seconds
            if not a.skip_overhead:
                from optuna.storages import InMemoryStorage

                from ssc_nas.search import make_storage

                ov["in-memory"] = storage_overhead(InMemoryStorage(), "cheap", a.storage_trials,
                                                   a.window)
                print(f"  in-memory: {ov['in-memory'][-1]['ms']:.1f} ms/trial at the end",
                      flush=True)
                for n in names:
                    ov[n] = storage_overhead(make_storage(make_url[n](), 30.0), "cheap",
                                             a.storage_trials, a.window)
                    print(f"  {n}: {ov[n][-1]['ms']:.1f} ms/trial at the end", flush=True)
                if proxy is None:
                    times = proxy_trial_seconds(a.proxy_repeats, a.proxy_threads, folder)
                    proxy = statistics.median(times)
                    proxy_note = (f"{proxy:.1f} s (median of {len(times)} measured here: "
                                  f"`ssc-nas search --budget 0.5M --trials 1`, mnist-5k, "
                                  f"resnet20-ssc standard design, 2 epochs, "
                                  f"{a.proxy_threads} torch threads; trial start to end)")
                else:
                    proxy_note = f"{proxy:.1f} s (given with --proxy-seconds)"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(machine())
    if tp:
        print_throughput(tp, a.throughput_trials)
    if ov:
        print_overhead(ov, a.storage_trials, a.window, proxy, proxy_note)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
