"""Bad input over the whole CLI: exit code 2, one line saying what to fix, no traceback, and the
study database (and everything else in the working folder) unchanged.

One table of cases over ``search``, ``worker``, ``front``, ``export`` and ``space show``. Each
case runs in a fresh folder holding a copy of one real study database (made once per module by a
tiny search); the folder's files, the database among them, are compared byte for byte (sha256)
before and after: equal bytes are the same studies and trials. Argument and input mistakes run
in-process through ``tests.inprocess.run_cli`` (``ssc_nas.cli.main`` with its error handling,
stderr captured as a process would print it); ``test_in_process_matches_a_real_process`` checks
that a few of them print the same in a real ``python -m ssc_nas`` process. Storage failures run
in processes of their own: a read-only database is a chmod 444 file opened by a ``python -m
ssc_nas`` process without CAP_DAC_OVERRIDE (root ignores file modes otherwise), or a ``mode=ro``
URI; a full disk is a filled tmpfs (where this process may mount one) or a file-size limit
(``ulimit -f``, EFBIG: Python ignores SIGXFSZ); standard output on /dev/full is a ``python -m
ssc_nas`` process with Python's own start-up buffering. The ``mode=ro``, tmpfs and file-size
cases are forked ready-imported (:mod:`tests.forked`), with ``setrlimit`` for the file-size
limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from ssc_nas.models import Architecture, InputShape, write_architecture_file
from tests import forked
from tests.inprocess import run_cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STUDY = "made"
SEARCH = ["search", "--dataset", "digits", "--space", "digits-tiny", "--epochs", "1",
          "--sampler", "random", "--strategy", "full", "--quiet", "--study", STUDY, "--trials",
          "4"]
GOOD = [*SEARCH, "--budget", "80k"]
TRAIN = ["train", "arch.json", "--dataset", "digits", "--epochs", "1", "--quiet"]
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/x"
DATASETS = ("mnist-5k", "digits", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet")


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    message: str  # regex the error line must match (search)
    env: str = "plain"  # plain | readonly | ulimit | tmpfs | devfull | devfull-unbuffered
    click: bool = False  # a click usage error (Usage: ... Error: ...), not ssc-nas's error: line

    @property
    def process(self) -> bool:
        """A storage failure: a process of its own (file modes, limits, a full disk)."""
        return self.env != "plain" or "READONLY_URI" in self.args

    @property
    def forked(self) -> bool:
        """A process forked ready-imported; the others start ``python -m ssc_nas`` (dropped
        capabilities, Python's start-up buffering of stdout)."""
        return self.process and self.env in ("plain", "tmpfs", "ulimit")


def case(id: str, args: list[str], message: str, **kw) -> pytest.param:
    c = Case(tuple(args), message, **kw)
    # A process per case: 1 to 7 s each.
    return pytest.param(c, id=id, marks=[pytest.mark.slow] if c.process else [])

CASES = [
    # budgets
    case("search-budget-abc", [*SEARCH, "--budget", "abc"], r"--budget must be a positive count"),
    case("search-budget-1.2.3M", [*SEARCH, "--budget", "1.2.3M"],
         r"--budget must be a positive count like 0\.5M.*'1\.2\.3M'"),
    case("search-budget-negative", [*SEARCH, "--budget", "-5"], r"--budget must be a positive"),
    case("search-budget-zero", [*SEARCH, "--budget", "0"], r"--budget .*at least 1.*'0'"),
    case("search-macs-negative", [*GOOD, "--macs", "-1M"], r"--macs must be a positive"),
    case("search-macs-zero", [*GOOD, "--macs", "0"], r"--macs .*at least 1"),
    case("search-flops-negative", [*GOOD, "--flops", "-1M"], r"--macs must be a positive"),
    case("search-macs-and-flops", [*GOOD, "--macs", "1M", "--flops", "2M"],
         r"give the MAC budget once"),
    case("search-budget-unreachable", [*SEARCH, "--budget", "10"], r"smallest reachable is"),
    case("space-show-budget-abc", ["space", "show", "digits-tiny", "--budget", "abc"],
         r"--budget must be a positive count"),
    case("space-show-budget-zero", ["space", "show", "digits-tiny", "--budget", "0"],
         r"--budget .*at least 1"),
    case("space-show-macs-negative", ["space", "show", "digits-tiny", "--macs", "-3"],
         r"--macs must be a positive"),
    case("space-show-flops-negative", ["space", "show", "digits-tiny", "--flops", "-3"],
         r"--macs must be a positive"),
    # other numbers
    case("search-trials-zero", [*GOOD, "--trials", "0"], r"--trials must be >= 1"),
    case("search-workers-zero", [*GOOD, "--workers", "0"], r"--workers must be >= 1"),
    case("search-heartbeat-negative", [*GOOD, "--heartbeat", "-5"], r"--heartbeat"),
    case("search-heartbeat-nan", [*GOOD, "--heartbeat", "nan"], r"--heartbeat"),
    case("search-score-share-above-1", [*GOOD, "--score-share", "1.5"],
         r"--score-share must be a number from 0 to 1, but got 1\.5"),
    case("search-score-share-nan", [*GOOD, "--score-share", "nan"], r"--score-share"),
    case("search-study-name-reserved", [*GOOD, "--study", "x:run:1"],
         r"--study 'x:run:1': names with ':promote:' or ':run:' in them .* are reserved"),
    case("search-study-name-baselines", [*GOOD, "--study", "made-baselines"],
         r"--study 'made-baselines': .* ending in '-baselines' .* reserved"),
    case("search-latency-batch-zero", [*GOOD, "--latency-batch", "0"],
         r"--latency-batch must be >= 1, but got 0"),
    case("search-lr-negative", [*GOOD, "--lr", "-1"], r"lr must be a positive number.*-1"),
    case("search-lr-nan", [*GOOD, "--lr", "nan"], r"lr must be a positive number.*nan"),
    case("train-lr-zero", [*TRAIN, "--lr", "0"], r"lr must be a positive.*0"),
    case("train-weight-decay-negative", [*TRAIN, "--weight-decay", "-0.1"],
         r"weight_decay must be >= 0.*-0\.1"),
    case("space-show-a-binary-file", ["space", "show", "binary.pt"],
         r"binary\.pt: not a search space \(not YAML text\)$"),
    case("search-config-a-binary-file", ["search", "--config", "binary.pt"],
         r"binary\.pt: not a study config \(not YAML text\)$"),
    case("train-a-binary-file", ["train", "binary.pt", "--dataset", "digits", "--quiet"],
         r"binary\.pt is not an architecture file \(not JSON text"),
    case("train-out-is-a-file", [*TRAIN, "--out", "bad.yaml"],
         r"cannot use bad\.yaml as the run folder: a file has that name"),
    case("worker-heartbeat-zero", ["worker", "--study", STUDY, "--storage",
                                   "sqlite:///ssc-nas.db", "--quiet", "--heartbeat", "0"],
         r"--heartbeat"),
    case("worker-threads-zero", ["worker", "--study", STUDY, "--storage",
                                 "sqlite:///ssc-nas.db", "--quiet", "--threads", "0"],
         r"'--threads': 0 is not in the range x>=1", click=True),
    # datasets
    case("search-dataset-unknown", [*GOOD, "--dataset", "nope"], r"--dataset", click=True),
    case("space-show-samples-zero", ["space", "show", "digits-tiny", "--budget", "20k",
                                     "--samples", "0"], r"--samples must be >= 1, but got 0"),
    case("space-show-dataset-unknown", ["space", "show", "digits-tiny", "--dataset", "nope"],
         r"--dataset", click=True),
    case("search-cifar10-data-dir-missing",
         ["search", "--dataset", "cifar10", "--data-dir", "nowhere", "--budget", "0.5M",
          "--quiet", "--trials", "1"], r"cifar-10-batches-py.*--download"),
    # search spaces and study configs
    case("search-space-invalid-yaml", [*GOOD, "--space", "bad.yaml"], r"bad\.yaml: not valid YAML"),
    case("search-space-unknown-key", [*GOOD, "--space", "unknown-key.yaml"],
         r"unknown-key\.yaml: bogus: unknown key; valid keys"),
    case("search-space-missing", [*GOOD, "--space", "missing.yaml"], r"not found"),
    case("space-show-invalid-yaml", ["space", "show", "bad.yaml"], r"bad\.yaml: not valid YAML"),
    case("space-show-unknown-key", ["space", "show", "unknown-key.yaml"],
         r"unknown-key\.yaml: bogus: unknown key"),
    case("space-show-missing", ["space", "show", "missing.yaml"], r"not found"),
    case("search-config-invalid-yaml", [*GOOD, "--config", "bad.yaml"],
         r"bad\.yaml: cannot read study config"),
    case("search-config-unknown-key", [*GOOD, "--config", "config-unknown-key.yaml"],
         r"unknown key 'bogus'; valid keys"),
    # storages
    case("search-storage-unreachable", [*GOOD, "--storage", UNREACHABLE],
         r"cannot open storage postgresql://nobody@127\.0\.0\.1:1/x: .*refused"),
    case("worker-storage-unreachable", ["worker", "--study", STUDY, "--storage", UNREACHABLE,
                                        "--quiet"], r"cannot open storage .*refused"),
    case("front-storage-unreachable", ["front", "--storage", UNREACHABLE],
         r"cannot open storage .*refused"),
    case("export-storage-unreachable", ["export", "--storage", UNREACHABLE, "--trial", "0"],
         r"cannot open storage .*refused"),
    case("search-storage-folder-missing", [*GOOD, "--storage", "sqlite:///nowhere/x.db"],
         r"folder .*nowhere does not exist"),
    case("front-json-and-csv", ["front", "--json", "--csv"],
         r"pass one of --json and --csv, not both$"),
    case("front-storage-a-file-name", ["front", "--storage", "ssc-nas.db"],
         r"--storage 'ssc-nas\.db' is not a database URL; for a SQLite file pass "
         r"sqlite:///ssc-nas\.db$"),
    case("worker-missing-db-file", ["worker", "--study", STUDY, "--storage",
                                    "sqlite:///typo.db", "--quiet"],
         r"typo\.db: no such database file"),
    case("front-missing-db-file", ["front", "--storage", "sqlite:///typo.db"],
         r"no such database file"),
    # studies and trials
    case("worker-unknown-study", ["worker", "--study", "nope", "--storage",
                                  "sqlite:///ssc-nas.db", "--quiet"],
         r"no study 'nope' in sqlite:///ssc-nas\.db; studies there: made"),
    case("studies-missing-database", ["studies", "--storage", "sqlite:///missing.db"],
         r"sqlite:///missing\.db: no such database file"),
    # (a host it cannot serve on: without the check this fails at once instead of serving)
    case("dashboard-missing-database", ["dashboard", "--storage", "sqlite:///missing.db",
                                        "--host", "256.0.0.1"],
         r"sqlite:///missing\.db: no such database file"),
    case("dashboard-port-out-of-range", ["dashboard", "--port", "70000"],
         r"--port must be in 0\.\.65535, but got 70000"),
    case("front-unknown-study", ["front", "--study", "nope"], r"no study 'nope'.*made"),
    case("export-unknown-study", ["export", "--study", "nope", "--trial", "0"],
         r"no study 'nope'.*made"),
    case("export-unknown-trial", ["export", "--study", STUDY, "--trial", "999"],
         r"has no trial 999"),
    case("report-output-is-a-folder", ["report", "--study", STUDY, "-o", "."],
         r"cannot write \.: Is a directory"),
    case("export-output-under-a-file", ["export", "--study", STUDY, "--trial", "0", "-o",
                                        "arch.json/new.json"],
         r"cannot write arch\.json/new\.json: File exists \(arch\.json\)$"),
    case("report-output-under-a-file", ["report", "--study", STUDY, "-o", "arch.json/r.html"],
         r"cannot write arch\.json/r\.html: File exists \(arch\.json\)$"),
    case("search-resume-other-epochs", [*GOOD, "--epochs", "2"],
         r"study 'made' .* another schedule \(epochs 1 there, 2 now\); pass --study NEW_NAME "
         r"to start a new one; to resume it: ssc-nas search --space digits-tiny --budget 80k "
         r"--dataset digits --strategy full --trials 4 --epochs 1 --sampler random --study "
         r"made$"),
    case("search-resume-other-lr-and-batch", [*GOOD, "--lr", "0.01", "--batch-size", "32"],
         r"another schedule \(batch_size 64 there, 32 now; lr None there, 0\.01 now\)"),
    # a database that cannot be written
    case("search-readonly-db", GOOD, r"read-?only", env="readonly"),
    case("worker-readonly-db", ["worker", "--study", STUDY, "--storage", "sqlite:///ssc-nas.db",
                                "--quiet"], r"read-?only", env="readonly"),
    case("search-readonly-uri", [*GOOD, "--storage", "READONLY_URI"], r"read-?only"),
    case("search-disk-full", GOOD, r"(?i)full|no space", env="tmpfs"),
    case("train-disk-full", TRAIN, r"cannot write runs/arch-digits/checkpoint\.pt: No space "
         r"left on device", env="tmpfs"),
    case("train-file-size-limit", TRAIN, r"cannot write runs/arch-digits/checkpoint\.pt: File "
         r"too large", env="ulimit"),
    case("search-file-size-limit", GOOD, r"(?i)full|no space|disk|too large|size",
         env="ulimit"),
    case("worker-file-size-limit", ["worker", "--study", STUDY, "--storage",
                                    "sqlite:///ssc-nas.db", "--quiet"],
         r"(?i)full|no space|disk|too large|size", env="ulimit"),
    # standard output that cannot be written (`> /dev/full`), with and without Python's buffer
    case("front-csv-output-full", ["front", "--study", STUDY, "--csv"],
         r"^error: cannot write the output: No space left on device$", env="devfull"),
    case("front-output-full-unbuffered", ["front", "--study", STUDY],
         r"^error: cannot write the output: No space left on device$",
         env="devfull-unbuffered"),
]


# -- the study, and how each case runs --------------------------------------------------------


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real study: 2 complete trials of a tiny search; its target raised to 4 afterwards so a
    rerun or a worker has trials left to write."""
    folder = tmp_path_factory.mktemp("study")
    r = run_cli([*GOOD, "--trials", "2"], cwd=folder)
    assert r.returncode == 0, r.stderr
    db = folder / "ssc-nas.db"
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2
    study.set_user_attr("trials", 4)
    return db


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_inputs(folder: Path) -> None:
    (folder / "bad.yaml").write_text("family: resnet20\nwidth: [0.5\n")
    (folder / "unknown-key.yaml").write_text(
        "family: resnet20\nshare: stage\nwidth: [0.5]\nknobs:\n  groups: [1]\nbogus: 1\n")
    (folder / "config-unknown-key.yaml").write_text("budget: 80k\nbogus: 1\n")
    write_architecture_file(folder / "arch.json", Architecture("resnet20", 0.25),
                            InputShape(1, (8, 8), 10))
    (folder / "binary.pt").write_bytes(b"PK\x03\x04\x80\xff")  # a zip, as torch.save writes


@contextlib.contextmanager
def full_tmpfs(folder: Path) -> Iterator[Path]:
    """A tiny tmpfs at ``folder``, filled up to the last byte by a filler file."""
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); "
                    "the file-size-limit case covers a full disk")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write filler files until the file system has not one byte left."""
    for name, block in (("filler", 4096), ("filler-small", 1)):
        with open(folder / name, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * block)


def arguments(case: Case, db: Path) -> list[str]:
    ro_uri = f"sqlite:///file:{db}?mode=ro&uri=true"
    return [ro_uri if a == "READONLY_URI" else a for a in case.args]


def command(case: Case, db: Path) -> list[str]:
    """The case as a ``python -m ssc_nas`` command line."""
    cmd = [sys.executable, "-m", "ssc_nas", *arguments(case, db)]
    # root ignores file modes unless it drops these capabilities
    if case.env == "readonly" and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE as root")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--", *cmd]
    return cmd


def run_to_dev_full(cmd: list[str], folder: Path, unbuffered: bool) -> subprocess.CompletedProcess:
    """Run ``cmd`` with its standard output on /dev/full, where every write fails (ENOSPC)."""
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open("/dev/full", "w") as full:
        return subprocess.run(cmd, cwd=folder, env=env, stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=300)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
        case: Case, study_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with contextlib.ExitStack() as stack:
        folder = tmp_path
        if case.env == "tmpfs":
            folder = stack.enter_context(full_tmpfs(tmp_path / "disk"))
        db = folder / "ssc-nas.db"
        shutil.copyfile(study_db, db)
        write_inputs(folder)
        if case.env == "readonly":
            db.chmod(0o444)
        if case.env == "tmpfs":
            fill(folder)
        before_files = snapshot(folder)
        assert db.name in before_files

        if case.env.startswith("devfull"):
            r = run_to_dev_full(command(case, db), folder, case.env.endswith("unbuffered"))
        elif case.forked:  # ulimit -f 1 (1 KiB): no write to the journal or database lands
            r = forked.run(arguments(case, db), folder, ENV, timeout=300,
                           file_size_limit=1024 if case.env == "ulimit" else None)
        elif case.process:
            r = subprocess.run(command(case, db), cwd=folder, env=ENV, capture_output=True,
                               text=True, timeout=300)
        else:
            monkeypatch.chdir(folder)
            r = run_cli(case.args)

        after_files = snapshot(folder)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    if not case.process:  # (a storage failure comes after the study is open and announced)
        assert not r.stdout, r.stdout  # no banner or half a result before the error line
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if case.click:
        error = [line for line in lines if line.startswith("Error:")]
        assert len(error) == 1, r.stderr
        assert re.search(case.message, error[0]), error[0]
        if "--dataset" in case.args:
            assert "'nope' is not one of" in error[0]
            for name in DATASETS:  # the message lists what would have been valid
                assert f"'{name}'" in error[0], error[0]
    else:
        assert len(lines) == 1, f"expected one line, got:\n{r.stderr}"
        assert lines[0].startswith("error: "), lines[0]
        assert re.search(case.message, lines[0]), lines[0]
    # Nothing written, created or left behind: every file has the same bytes, the study's
    # database (and any journal beside it) included, so its studies and trials are unchanged.
    assert after_files == before_files


# -- what still works on a read-only database --------------------------------------------------


def test_read_only_database_still_serves_read_commands(study_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "ssc-nas.db"
    shutil.copyfile(study_db, db)
    db.chmod(0o444)
    before = snapshot(tmp_path)
    cmd = [sys.executable, "-m", "ssc_nas", "front", "--csv"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE as root")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--", *cmd]
    r = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("trial,accuracy,val_loss,params,macs")
    assert snapshot(tmp_path) == before


@pytest.mark.slow  # a real process
def test_output_past_a_file_size_limit_is_one_line(study_db: Path, tmp_path: Path) -> None:
    """``front --json > file`` under ``ulimit -f``: the usual shape of a full disk under a
    redirect, where the failed write may have taken its text with it (nothing to re-test).

    Python's default, buffered standard output; with PYTHONUNBUFFERED set, CPython takes a short
    write as done and the file is cut without any error, which no code of ours sees.
    """
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    shutil.copyfile(study_db, tmp_path / "ssc-nas.db")
    cmd = [sys.executable, "-m", "ssc_nas", "front", "--json"]
    free = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert free.returncode == 0 and len(free.stdout) > 2048, free.stderr  # over the limit
    cut = ["bash", "-c", 'ulimit -f 1 && exec "$@" > front.json', "bash", *cmd]
    r = subprocess.run(cut, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, r.stderr
    assert re.fullmatch(r"error: (cannot write the output|a write failed): File too large\n",
                        r.stderr), r.stderr


# -- in-process runs print what a real process prints ------------------------------------------

BY_ID = {p.id: p.values[0] for p in CASES}
PROG = re.compile(r"(?m)^(Usage: |Try ')\S.*? (?=(search|space|worker|front|export)\b)")


@pytest.mark.slow  # a real process per case
@pytest.mark.parametrize("name", ["search-budget-zero", "search-dataset-unknown",
                                  "search-storage-unreachable"])
def test_in_process_matches_a_real_process(name: str, study_db: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_ID[name]
    assert not case.process
    shutil.copyfile(study_db, tmp_path / "ssc-nas.db")
    write_inputs(tmp_path)
    real = subprocess.run(command(case, tmp_path / "ssc-nas.db"), cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    monkeypatch.chdir(tmp_path)
    here = run_cli(case.args)
    assert real.returncode == here.returncode == 2
    assert real.stdout == here.stdout
    # The usage line names the program: python -m ssc_nas there, pytest's runner here.
    assert PROG.sub(r"\1PROG ", real.stderr) == PROG.sub(r"\1PROG ", here.stderr)
