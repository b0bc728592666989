"""Parallel search: many worker processes on one study, on SQLite and on a real PostgreSQL.

Checked through Optuna's own API: the study ends with exactly the asked number of COMPLETE
trials, unique trial numbers and nothing RUNNING; a worker killed with SIGKILL mid-trial has its
trial failed (heartbeat) and retried by another worker; a study refuses a run made for another
search. The PostgreSQL cluster comes from the ``postgres_url`` fixture (tests/conftest.py).
The ``ssc-nas`` processes the tests start are forked ready-imported (:mod:`tests.forked`); the
worker processes that ``search --workers N`` starts are real ``python -m ssc_nas`` processes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from ssc_nas.search import make_storage
from tests import forked
from tests.inprocess import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # worker processes, kills

BASE = ["search", "--dataset", "digits", "--space", "digits-tiny", "--budget", "80k",
        "--sampler", "random", "--strategy", "full", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return forked.run(args, cwd, ENV, timeout)


def start(args: list[str], cwd: Path) -> forked.ForkedProcess:
    return forked.start(args, cwd, ENV)


def finish(procs: list[forked.ForkedProcess],
           timeout: float = 240) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"worker {p.pid} did not finish in {timeout}s")
        results.append((p.returncode, out, err))
    return results


def load(name: str, url: str) -> optuna.Study:
    """Through ssc-nas's own storage, which waits out a worker that is creating the tables."""
    return optuna.load_study(study_name=name, storage=make_storage(url))


def check_study(study: optuna.Study, n: int, over: int = 0) -> list[FrozenTrial]:
    """``n`` (to ``n + over``) COMPLETE, unique trial numbers 0..len-1, nothing RUNNING."""
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), f"duplicate trial numbers: {sorted(numbers)}"
    assert sorted(numbers) == list(range(len(numbers)))
    # Over-budget candidates are COMPLETE too, infeasible and never trained (trial_kind).
    complete = [t for t in trials if t.state == TrialState.COMPLETE
                and "rejected" not in t.user_attrs]
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    assert n <= len(complete) <= n + over, states
    assert not [t.number for t in trials if t.state == TrialState.RUNNING], states
    for t in trials:  # over-target trials fail before sampling, never completed
        if "surplus" in t.user_attrs:
            assert t.state == TrialState.FAIL and not t.params
    return complete


def training(t: FrozenTrial) -> bool:
    """A worker holds ``t`` and has started training it.

    The worker writes the params before its ``worker`` attribute, but a reader's queries are not
    one snapshot (SQLite), so both are checked: a torn read shows the attribute without params.
    """
    return bool(t.user_attrs.get("worker")) and bool(t.params)


def wait_for_running_trial(name: str, url: str, pids: set[int],
                           timeout: float = 120) -> FrozenTrial:
    """A RUNNING trial that one of ``pids`` is training (user attr worker = host:pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in load(name, url).get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if training(t) and int(t.user_attrs["worker"].rsplit(":", 1)[1]) in pids:
                return t
        time.sleep(0.3)
    pytest.fail("no worker started training a trial in time")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# -- SQLite ------------------------------------------------------------------------------------


def test_sqlite_two_local_workers_reach_exactly_n(tmp_path: Path) -> None:
    n = 8
    t0 = time.monotonic()
    r = cli([*BASE, "--epochs", "1", "--trials", str(n), "--workers", "2", "--study", "s"],
            tmp_path)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "database is locked" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr
    study = load("s", sqlite_url(tmp_path / "ssc-nas.db"))
    complete = check_study(study, n)
    assert study.user_attrs["trials"] == n
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2, f"trials ran in {workers} ({seconds:.0f}s)"
    assert str(os.getpid()) not in {w.rsplit(":", 1)[1] for w in workers}  # child processes


# A worker looks for stale trials only once the study's other trials are all taken, so every
# trial of the target is trained before the killed one is retried: the kill tests keep the
# target small. Ten epochs on half the training split (two to three seconds a trial on a 2-core
# EPYC) leave the kill, sent as soon as a trial is seen training, well inside that trial.
KILL_EPOCHS = "10"
KILL_SCHEDULE = ["--epochs", KILL_EPOCHS, "--subset", "0.5"]


def test_sqlite_sigkill_of_a_local_worker_is_failed_and_retried(tmp_path: Path) -> None:
    n = 3  # the three reference designs, then the retry
    url = sqlite_url(tmp_path / "ssc-nas.db")
    # The parent runs no trial itself; its children are found through the trials they hold.
    parent = start([*BASE, *KILL_SCHEDULE, "--trials", str(n), "--workers", "2",
                    "--heartbeat", "2", "--study", "k"], tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                victim = next(t for t in load("k", url).get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,)) if training(t))
                break
            except (KeyError, StopIteration):  # no study yet / nothing training yet
                time.sleep(0.3)
        else:
            pytest.fail("no worker started training in time")
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        assert pid != parent.pid
        os.kill(pid, signal.SIGKILL)
        ((code, out, err),) = finish([parent])
    finally:
        parent.kill()
    assert "database is locked" not in err
    assert "Traceback" not in err
    study = load("k", url)
    check_retried(study, held_trial(study, victim), n)
    # The other worker finished the study; the run may report the dead worker (today: exit 2
    # with one line naming its exit code -9), but never with a traceback.
    assert code in (0, 2), err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "-9" in errors[0], err


def held_trial(study: optuna.Study, victim: FrozenTrial) -> FrozenTrial:
    """The trial the victim's worker held when it was killed.

    Usually ``victim`` itself; but a trial can complete between the poll that saw it RUNNING
    and the kill, and the worker is then killed in its next trial.
    """
    worker = victim.user_attrs["worker"]
    held = [t for t in study.trials if t.user_attrs.get("worker") == worker
            and t.number >= victim.number and t.state != TrialState.COMPLETE]
    assert len(held) == 1, f"worker {worker} held {[t.number for t in held]} when killed"
    return held[0]


def check_retried(study: optuna.Study, killed: FrozenTrial, n: int) -> None:
    assert killed.state == TrialState.FAIL, killed.state
    retries = [t for t in study.trials
               if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1, [(t.number, t.system_attrs) for t in study.trials]
    (retry,) = retries
    assert retry.number > killed.number
    assert retry.params == killed.params and retry.params
    assert retry.system_attrs["retry_history"] == [killed.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["worker"] != killed.user_attrs["worker"]  # someone else ran it
    # One over the target when another worker started a fresh trial between the killed trial's
    # FAIL and its retry's enqueue (test_a_retry_enqueued_after_the_target_still_runs).
    check_study(study, n, over=1)


def test_a_retry_enqueued_after_the_target_still_runs(tmp_path: Path) -> None:
    """The end state of a race seen in CI: the target is met, and then a killed worker's retry
    is enqueued (fail_stale_trials fails the trial first and enqueues its retry second, so
    another worker may start a fresh trial in between). A worker trains the retry rather than
    leave the killed candidate WAITING for good."""
    url = sqlite_url(tmp_path / "ssc-nas.db")
    r = run_cli([*BASE, "--epochs", "1", "--trials", "3", "--study", "late"], tmp_path)
    assert r.returncode == 0, r.stderr  # the three reference designs: nothing else queued
    study = load("late", url)
    killed = study.trials[2]  # what RetryHeartbeatStaleTrialCallback enqueues for a killed trial
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=killed.params, distributions=killed.distributions,
        user_attrs=killed.user_attrs,
        system_attrs={**killed.system_attrs, "failed_trial": killed.number,
                      "retry_history": [killed.number]}))
    r = run_cli(["worker", "--study", "late", "--storage", url, "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "worker done: 1 trials" in r.stdout, r.stdout
    study = load("late", url)
    retry = study.trials[-1]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    check_study(study, 3, over=1)
    r = run_cli(["worker", "--study", "late", "--storage", url, "--quiet"], tmp_path)
    assert r.returncode == 0 and "worker done: 0 trials" in r.stdout, r.stdout + r.stderr


# -- PostgreSQL -------------------------------------------------------------------------------


def _pg_study(postgres_url: str, name: str, n: int, tmp_path: Path,
              schedule: list[str]) -> None:
    """Make the study with one trial, then raise its target to ``n`` for the workers."""
    r = run_cli([*BASE, *schedule, "--trials", "1", "--storage", postgres_url,
                 "--study", name], tmp_path)
    assert r.returncode == 0, r.stderr
    study = load(name, postgres_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1
    study.set_user_attr("trials", n)


def test_postgres_three_workers_reach_exactly_n(postgres_url: str, tmp_path: Path) -> None:
    n = 10
    _pg_study(postgres_url, "pg3", n, tmp_path, ["--epochs", "1"])
    procs = [start(["worker", "--study", "pg3", "--storage", postgres_url, "--quiet",
                    "--threads", "1"], tmp_path) for _ in range(3)]
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    study = load("pg3", postgres_url)
    complete = check_study(study, n)
    pids = {str(p.pid) for p in procs}
    ran = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in complete if t.number > 0}
    assert ran <= pids
    assert len(ran) >= 2, f"only {ran} of workers {pids} completed trials"
    # What each worker reports ("worker done: K trials completed here") is what it ran.
    reported = {str(p.pid): int(out.split("worker done: ")[1].split()[0])
                for p, (_c, out, _e) in zip(procs, results, strict=True)}
    actual = {pid: sum(t.user_attrs["worker"].endswith(f":{pid}") for t in complete)
              for pid in pids}
    assert reported == actual


def test_postgres_sigkill_mid_trial_is_failed_and_retried(postgres_url: str,
                                                          tmp_path: Path) -> None:
    n = 3  # trial 0, then one trial for each of the two workers, then the retry
    _pg_study(postgres_url, "pgkill", n, tmp_path, KILL_SCHEDULE)
    args = ["worker", "--study", "pgkill", "--storage", postgres_url, "--quiet", "--threads",
            "1", "--heartbeat", "2"]
    procs = [start(args, tmp_path) for _ in range(2)]  # the survivor must run the retry
    try:
        victim = wait_for_running_trial("pgkill", postgres_url, {p.pid for p in procs})
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        killed = next(p for p in procs if p.pid == pid)
        killed.wait(timeout=30)
        assert killed.returncode == -signal.SIGKILL
        others = [p for p in procs if p is not killed]
        results = finish(others)
    finally:
        for p in procs:
            p.kill()
    for code, _out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    study = load("pgkill", postgres_url)
    killed_trial = held_trial(study, victim)
    check_retried(study, killed_trial, n)
    # Failed by a heartbeat check: after two missed heartbeats (2 s each), not much later.
    fail_delay = killed_trial.datetime_complete - killed_trial.datetime_start
    assert fail_delay.total_seconds() >= 4
    assert time.monotonic() - killed_at < 240


# -- a study made for another search ---------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dump(url: str) -> list:
    out = []
    for summary in optuna.get_all_study_summaries(url):
        s = load(summary.study_name, url)
        system = s._storage.get_study_system_attrs(s._study_id)
        out.append((summary.study_name, s.user_attrs, system,
                    [(t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs,
                      t.datetime_start, t.datetime_complete) for t in s.trials]))
    return out


@pytest.fixture(scope="module")
def made_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database holding study 'same': digits-tiny, 80k params, 3 objectives."""
    folder = tmp_path_factory.mktemp("made")
    r = run_cli([*BASE, "--epochs", "1", "--trials", "1", "--study", "same"], folder)
    assert r.returncode == 0, r.stderr
    return folder / "ssc-nas.db"


@pytest.mark.parametrize(
    ("change", "mismatch"),
    [
        (["--space", "SPACE_FILE"], "space"),
        (["--objectives", "accuracy,params"], "objectives"),
        (["--budget", "70k"], "budget"),
    ],
)
def test_study_refuses_another_space_or_objectives(made_study: Path, tmp_path: Path, change,
                                                   mismatch) -> None:
    db = tmp_path / "ssc-nas.db"
    db.write_bytes(made_study.read_bytes())
    before, sha = _dump(sqlite_url(db)), _sha(db)
    space = tmp_path / "other.yaml"  # digits-tiny with one width: another space
    space.write_text("family: resnet20\nshare: stage\nwidth: [0.5]\nknobs:\n  groups: [1, 2]\n")
    change = [str(space) if a == "SPACE_FILE" else a for a in change]
    r = run_cli([*BASE, "--epochs", "1", "--trials", "3", "--study", "same", *change], tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "'same'" in lines[0] and "created for another search" in lines[0]
    assert f"{mismatch}:" in lines[0] and "--study NEW_NAME" in lines[0]
    assert "Traceback" not in r.stderr
    assert _sha(db) == sha
    assert _dump(sqlite_url(db)) == before
    if mismatch == "space":  # the same command under a new study name starts a new study
        r = run_cli([*BASE, "--epochs", "1", "--trials", "1", "--study", "new", *change],
                    tmp_path)
        assert r.returncode == 0, r.stderr
        names = {s.study_name for s in optuna.get_all_study_summaries(sqlite_url(db))}
        assert names == {"same", "new"}


def _open_at_once(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        make_storage(url)
        results.put("ok")
    except Exception as exc:  # reported to the test, which prints it
        results.put(f"{type(exc).__name__}: {exc}")


def test_fresh_sqlite_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    """Workers started together on a new database all open it (one creates Optuna's tables)."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(4):
        url = sqlite_url(tmp_path / f"fresh{round_}.db")
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_at_once, args=(url, barrier, results))
                 for _ in range(6)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert outcomes == ["ok"] * 6, outcomes
        optuna.create_study(storage=url, study_name="after")  # the database is usable


def _seed_in_child(results: Any) -> None:
    from ssc_nas.search import worker_seed

    results.put(worker_seed(0))


def test_worker_seeds_differ_between_workers_and_repeat_for_an_index() -> None:
    from ssc_nas.search import worker_seed

    assert worker_seed(0, 0) == worker_seed(0, 0)
    assert len({worker_seed(s, i) for s in range(3) for i in range(50)}) == 150
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_seed_in_child, args=(results,)) for _ in range(3)]
    for p in procs:
        p.start()
    seeds = {results.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=30)
    assert len(seeds | {worker_seed(0)}) == 4  # hand-started workers: one seed per process
