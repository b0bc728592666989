"""End-to-end search on digits through the CLI, checked through Optuna's own API."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ssc_nas.budget import Budget
from ssc_nas.errors import StudyError
from ssc_nas.search import SearchConfig, parse_duration
from ssc_nas.train import TrainConfig
from tests import forked
from tests.inprocess import run_cli as run_in_process

BUDGET = 80_000
BASE = ["search", "--dataset", "digits", "--space", "digits-tiny", "--budget", "80k",
        "--epochs", "1", "--sampler", "random", "--strategy", "full", "--quiet"]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``ssc-nas ARGS`` as a process of its own (forked ready-imported: tests.forked)."""
    return forked.run(args, cwd, {**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)


def load(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    (summary,) = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url)


def training_trials(db: Path) -> int:
    """RUNNING trials that a worker has started training, read without writing to ``db``.

    Opening an Optuna storage here would race the search process creating the schema.
    """
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            (n,) = c.execute(
                "SELECT COUNT(*) FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker'"
            ).fetchone()
    except sqlite3.OperationalError:  # no tables yet, or briefly locked
        return 0
    return int(n)


def dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    signs = [1 if d == "maximize" else -1 for d in directions]
    ge = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
    return ge and any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))


@pytest.mark.slow
def test_search_end_to_end_then_resume(tmp_path: Path) -> None:
    first = run_cli([*BASE, "--trials", "4"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Pareto front" in first.stdout
    assert "val loss" in first.stdout
    assert "optuna-dashboard sqlite:///ssc-nas.db" in first.stdout
    study = load(tmp_path)
    # Over-budget candidates are COMPLETE too, infeasible and never trained (trial_kind).
    complete = [t for t in study.get_trials(states=(TrialState.COMPLETE,))
                if "rejected" not in t.user_attrs]
    assert len(complete) == 4
    directions = [d.name.lower() for d in study.directions]
    assert directions == ["minimize", "minimize", "minimize"]  # val loss, params, MACs
    assert study.user_attrs["objectives"] == ["val_loss", "params", "macs"]
    for t in complete:
        assert t.values[1] <= BUDGET and t.user_attrs["params"] <= BUDGET
        for key in ("architecture", "params", "macs", "wall_time_s", "epochs",
                    "val_accuracy_curve", "val_loss", "val_loss_curve", "summary"):
            assert key in t.user_attrs, key
        assert t.user_attrs["architecture"]["family"] == "resnet20"
        assert 0.0 <= t.user_attrs["val_accuracy"] <= 1.0
        assert t.user_attrs["val_loss"] == t.user_attrs["val_loss_curve"][-1] > 0
        assert t.values[0] == pytest.approx(t.user_attrs["val_loss"], abs=1e-5)
    for t in study.trials:
        if "rejected" in t.user_attrs:
            assert "over budget" in t.user_attrs["rejected"]
            assert t.user_attrs["params"] > BUDGET and t.constraints["params"] > 0
            assert t.state == TrialState.COMPLETE and "val_accuracy_curve" not in t.user_attrs
            assert t.values[0] == float("inf")  # the worst val loss: never trained
    front = study.best_trials
    assert front
    for a in front:
        assert not any(dominates(b.values, a.values, directions) for b in front)
    assert study.user_attrs["dataset"] == "digits"
    assert study.user_attrs["budget"] == {"params": BUDGET, "macs": None}
    assert study.user_attrs["space"]["name"] == "digits-tiny"
    assert "ssc_nas_version" in study.user_attrs
    references = {t.user_attrs.get("reference") for t in study.trials} - {None}
    assert "standard" in references

    again = run_in_process([*BASE, "--trials", "6"], tmp_path)  # resumes run in-process
    assert again.returncode == 0, again.stderr
    study = load(tmp_path)
    assert sum("rejected" not in t.user_attrs
               for t in study.get_trials(states=(TrialState.COMPLETE,))) == 6
    assert not study.get_trials(states=(TrialState.RUNNING,))

    # Same command once the target is reached: nothing new is trained.
    done = run_in_process([*BASE, "--trials", "6"], tmp_path)
    assert done.returncode == 0 and "0 new" in done.stdout


@pytest.mark.slow
def test_sigint_fails_the_running_trial_and_the_study_resumes(tmp_path: Path) -> None:
    schedule = ["--epochs", "12"]  # about 6 s a trial: mid-trial at the signal, short to resume
    args = [*BASE, "--trials", "3", *schedule]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    db = tmp_path / "ssc-nas.db"

    def interrupt_when_training(proc: forked.ForkedProcess) -> tuple[str, str]:
        deadline = time.time() + 120
        running = False
        while time.time() < deadline and not running:
            time.sleep(0.5)
            running = db.exists() and training_trials(db) > 0
        if not running:
            proc.kill()
            pytest.fail(f"no trial started training in time: {proc.communicate()}")
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=120)

    proc = forked.start(args, tmp_path, env)
    out, err = interrupt_when_training(proc)
    assert proc.returncode == 130, err
    assert "run the same command to resume" in err
    assert "Traceback" not in err
    study = load(tmp_path)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    (stopped,) = study.get_trials(states=(TrialState.FAIL,))
    assert "queued again" in stopped.user_attrs["interrupted"]  # (test_trials: resumed as such)
    assert [t.user_attrs["interrupted_trial"] for t in study.get_trials(
        states=(TrialState.WAITING,)) if "interrupted_trial" in t.user_attrs] == [stopped.number]
    # A worker that `search --workers N` started (its --worker-index is theirs) leaves the
    # "interrupted" line to the search, which prints it once rather than once per worker.
    local = forked.start(["worker", "--study", study.study_name, "--storage",
                          f"sqlite:///{db}", "--worker-index", "0", "--quiet"], tmp_path, env)
    out, err = interrupt_when_training(local)
    assert local.returncode == 130 and "interrupted" not in err and "Traceback" not in err, err
    assert len(load(tmp_path).get_trials(states=(TrialState.WAITING,))) == len(
        study.get_trials(states=(TrialState.WAITING,)))  # it popped one and queued it again
    before = len(study.get_trials(states=(TrialState.COMPLETE,)))
    resumed = run_in_process([*BASE, "--trials", str(before + 1), *schedule], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(load(tmp_path).get_trials(states=(TrialState.COMPLETE,))) == before + 1


def test_study_refuses_a_different_search(tmp_path: Path) -> None:
    from ssc_nas.search import open_study
    from ssc_nas.spaces import load_space

    url = f"sqlite:///{tmp_path / 'x.db'}"
    space = load_space("digits-tiny")
    config = SearchConfig(budget=Budget(80_000), space="digits-tiny", storage=url,
                          dataset="digits")
    attrs = {"space": space.to_dict(), "budget": {"params": 80_000, "macs": None},
             "dataset": "digits", "objectives": ["accuracy", "params", "macs"], "subset": 1.0}
    open_study(config, space, "s", attrs)
    from ssc_nas.errors import StudyError

    with pytest.raises(StudyError, match="created for another search"):
        open_study(config, space, "s", {**attrs, "budget": {"params": 1, "macs": None}})


def test_a_resumed_study_keeps_its_score_share(tmp_path: Path) -> None:
    """Without ``--score-share``, a run resumes the study with the share it was made with;
    another share given explicitly is another search."""
    from ssc_nas.errors import StudyError
    from ssc_nas.search import open_study
    from ssc_nas.spaces import load_space

    space = load_space("digits-tiny")
    made = SearchConfig(budget=Budget(80_000), space="digits-tiny", dataset="digits",
                        storage=f"sqlite:///{tmp_path / 'x.db'}", strategy="sh",
                        score_share=0.25)
    attrs = {"space": space.to_dict(), "budget": {"params": 80_000, "macs": None},
             "dataset": "digits", "subset": 1.0}
    open_study(made, space, "s", attrs)
    again = open_study(replace(made, score_share=None), space, "s", attrs)
    assert again.user_attrs["strategy"]["score_share"] == 0.25
    with pytest.raises(StudyError, match="created for another search.*--score-share 0.25"):
        open_study(replace(made, score_share=0.0), space, "s", attrs)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("30m", 1800.0),
                                               ("2h", 7200.0), (15, 15.0)])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["-1m", "soon", "0", ""])
def test_parse_duration_rejects(bad) -> None:
    from ssc_nas.errors import StudyError

    with pytest.raises(StudyError):
        parse_duration(bad)


def test_search_config_validation() -> None:
    from ssc_nas.errors import StudyError

    with pytest.raises(StudyError, match="objectives"):
        SearchConfig(budget=Budget(1000), objectives=("params",))
    with pytest.raises(StudyError, match="sampler"):
        SearchConfig(budget=Budget(1000), sampler="grid")
    with pytest.raises(StudyError, match="limit"):
        SearchConfig(budget=Budget(1000), trials=None, timeout=None)
    assert SearchConfig(budget=Budget(1000), train=TrainConfig(epochs=1)).train.epochs == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "abc"], "budget must be a positive count"),
        (["--budget", "-5"], "budget must be a positive count"),
        (["--budget", "10"], "smallest reachable is"),
        (["--budget", "0.5M", "--space", "nope"], "not found"),
        (["--budget", "0.5M", "--dataset", "cifar10", "--data-dir", "nowhere"],
         "cifar-10-batches-py"),
        (["--budget", "0.5M", "--timeout", "soon"], "--timeout"),
        ([], "give a budget"),
        (["--budget", "0.5M", "--config", "nope"], "study config"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            args, message) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_in_process(["search", "--dataset", "digits", "--quiet", *args])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "ssc-nas.db").exists()  # nothing written for a bad command


def test_config_file_is_the_default_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--config fills the defaults (flops read as macs); flags and --flops still override it."""
    from click.testing import CliRunner

    import ssc_nas.search as search_api
    from ssc_nas.cli import cli

    seen: list[SearchConfig] = []

    def fake_run(config: SearchConfig, reporter: object = None) -> None:
        seen.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(search_api, "run_search", fake_run)
    path = tmp_path / "c.yaml"
    path.write_text("budget: 60k\nflops: 5M\nobjectives: [accuracy, params]\ntrials: 3\n")
    runner = CliRunner()
    cases = (([], 5_000_000, 3), (["--macs", "7M", "--trials", "5"], 7_000_000, 5),
             (["--flops", "8M"], 8_000_000, 3))
    for extra, macs, trials in cases:
        runner.invoke(cli, ["search", "--quiet", "--config", str(path), *extra])
        config = seen.pop()
        assert config.budget == Budget(60_000, macs)
        assert config.objectives == ("accuracy", "params") and config.trials == trials


def test_a_study_config_joins_and_reads_back_through_its_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``joining`` takes every setting a study stores from its attributes, and ``command()``
    writes a command line that the CLI reads back as the same search."""
    import shlex

    from click.testing import CliRunner

    import ssc_nas.search as search_api
    from ssc_nas.cli import cli
    from ssc_nas.search.run import _study_attrs
    from ssc_nas.spaces import load_space

    made = SearchConfig(
        budget=Budget(20_000, 3_000_000), space="digits-tiny", dataset="digits",
        data_dir="elsewhere", strategy="sh", eta=2, rungs=4, score_share=0.25, trials=30,
        timeout=60.0,
        train=TrainConfig(epochs=3, batch_size=32, optimizer="adamw", lr=1e-3), subset=0.5,
        sampler="random", seed=7, objectives=("accuracy", "params"), latency_batch=8,
        prescreen="synflow", prescreen_k=5, study="s", storage="sqlite:///x.db")
    attrs = _study_attrs(made, load_space("digits-tiny"), {})
    plain = SearchConfig(budget=made.budget, space="digits-tiny", dataset="digits",
                         data_dir="elsewhere", trials=30, timeout=60.0, study="s",
                         storage="sqlite:///x.db")
    joined = plain.joining(attrs)
    assert joined == made
    assert plain.joining({}) == plain  # a study without the attributes keeps the defaults
    with pytest.raises(StudyError, match="cannot read the study's proxy schedule"):
        plain.joining({"train": {"lr": -1.0}})  # stored before lr was checked

    seen: list[SearchConfig] = []

    def capture(config: SearchConfig, reporter: object = None) -> None:
        seen.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(search_api, "run_search", capture)
    command = joined.command()
    assert command.startswith("ssc-nas search --space digits-tiny --budget 20k --macs 3M ")
    result = CliRunner().invoke(cli, [*shlex.split(command)[1:], "--quiet"])
    assert seen, result.output
    assert seen == [joined]
    assert SearchConfig(budget=Budget(500_000)).command() == (
        "ssc-nas search --space resnet20-ssc --budget 500k --dataset mnist-5k --strategy full")


def test_cli_defaults_are_the_default_study(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flags, search runs studies/default.yaml: the stage space, successive halving,
    60 candidates; --strategy full alone falls back to 20 trials."""
    from click.testing import CliRunner

    import ssc_nas.search as search_api
    from ssc_nas.cli import cli

    seen: list[SearchConfig] = []

    def capture(config: SearchConfig, reporter: object = None) -> None:
        seen.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(search_api, "run_search", capture)
    runner = CliRunner()
    for args in (["--budget", "0.5M"], ["--config", "default"]):
        runner.invoke(cli, ["search", "--quiet", *args])
    plain, from_file = seen
    assert plain == from_file
    assert (plain.space, plain.strategy, plain.trials) == ("resnet20-ssc-stage", "sh", 60)
    runner.invoke(cli, ["search", "--quiet", "--budget", "0.5M", "--strategy", "full"])
    assert (seen[-1].strategy, seen[-1].trials) == ("full", 20)


def test_old_study_vocabulary_is_still_read(tmp_path: Path) -> None:
    """A study of an older version: input as channels/size/classes, depthwise as groups 0 and
    the reference design uniform-ssc. The front and export speak today's vocabulary."""
    import json

    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from ssc_nas.search import export_trial, front_rows

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("objectives", ["accuracy", "params", "macs"])
    study.set_user_attr("input", {"channels": 1, "size": [8, 8], "classes": 10})
    arch = {"family": "resnet20", "width": 0.5,
            "layers": {"stage1.block0.conv1": {"groups": 0}}}
    study.add_trial(create_trial(
        values=[0.9, 1000, 2000], params={"stage1.groups": 2},
        distributions={"stage1.groups": CategoricalDistribution([1, 2])},
        user_attrs={"architecture": arch, "reference": "uniform-ssc", "summary": "old"}))
    (row,) = front_rows(study)
    assert row.val_loss is None  # a study from before val_loss was recorded
    assert row.reference == "ssc-uniform"
    assert row.design.startswith("ssc-uniform: ResNet-20 x0.5, mostly ungrouped")
    assert row.to_dict()["trial"] == 0 and row.values["params"] == 1000
    data = json.loads(export_trial(study, 0, tmp_path / "a.json", "memory").read_text())
    assert data["input"] == {"in_channels": 1, "input_size": [8, 8], "num_classes": 10}
    assert data["layer_table"][0]["groups"] == "depthwise"


def test_an_untrained_trial_exports_without_a_proxy_score_and_with_a_note(
        tmp_path: Path) -> None:
    """An over-budget trial of an accuracy study is stored with the worst accuracy, 0, and a
    lower-rung trial with a part-schedule score: exporting them writes no ``proxy_accuracy``,
    and ``ssc-nas export`` says what they are."""
    import json

    from optuna.trial import create_trial

    from ssc_nas.search import export_trial
    from ssc_nas.search.results import untrained_note

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("objectives", ["accuracy", "params", "macs"])
    study.set_user_attr("input", {"in_channels": 1, "input_size": [8, 8], "num_classes": 10})
    study.set_user_attr("budget", {"params": 20_000, "macs": None})
    arch = {"family": "resnet20", "width": 0.5, "layers": {}}
    study.add_trial(create_trial(values=[0.0, 68_602, 553_600],
                                 user_attrs={"architecture": arch, "rejected": True}))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "architecture": arch, "rung": 0, "val_accuracy": 0.5}))
    study.add_trial(create_trial(values=[0.75, 19_000, 140_000],
                                 user_attrs={"architecture": arch}))
    exported = [json.loads(export_trial(study, n, tmp_path / f"{n}.json", "memory").read_text())
                for n in range(3)]
    assert [d["proxy_accuracy"] for d in exported] == [None, None, 0.75]
    assert [d["source"]["kind"] for d in exported] == [
        "over budget", "stopped at a lower rung", "trained"]
    assert untrained_note(study, 0) == (
        "trial 0 is over the study's budget (20k params) and was never trained")
    assert untrained_note(study, 1) == (
        "trial 1 is rung 0 of successive halving (stopped at a lower rung): its proxy scores "
        "are from part of the schedule")
    assert untrained_note(study, 2) is None


def test_reference_design_names_match_the_constant() -> None:
    from ssc_nas.search.references import REFERENCE_DESIGNS, reference_designs
    from ssc_nas.spaces import BoundSpace, load_space

    bound = BoundSpace(load_space("digits-tiny"), 1, 10, (8, 8))
    assert tuple(reference_designs(bound)) == REFERENCE_DESIGNS


@pytest.mark.parametrize(("params", "macs", "name"), [
    (500_000, None, "digits-digits-tiny-500k"),          # today's names stay, so studies resume
    (80_000, 40_000_000, "digits-digits-tiny-80k-40Mmacs"),
    (1_234_567, None, "digits-digits-tiny-1234567"),
    (1_225_001, None, "digits-digits-tiny-1225001"),
    (80_000, 12_345_678, "digits-digits-tiny-80k-12345678macs"),
])
def test_default_study_names_are_exact(params, macs, name) -> None:
    from ssc_nas.search import default_study_name
    from ssc_nas.spaces import load_space

    config = SearchConfig(budget=Budget(params, macs), space="digits-tiny", dataset="digits")
    assert default_study_name(config, load_space("digits-tiny")) == name


def test_budgets_that_round_alike_get_different_study_names() -> None:
    from ssc_nas.search import default_study_name
    from ssc_nas.spaces import load_space

    space = load_space("digits-tiny")
    names = {default_study_name(SearchConfig(budget=Budget(p), dataset="digits"), space)
             for p in (1_234_567, 1_225_001, 1_230_000)}
    assert len(names) == 3


def test_front_shows_the_validation_size_and_standard_error(tmp_path: Path) -> None:
    """The proxy accuracy carries its noise: the front says how many validation images it was
    measured on and gives each accuracy its binomial standard error; so does the report."""
    import math

    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from ssc_nas.report.info import study_overview
    from ssc_nas.search import accuracy_se
    from tests.inprocess import run_cli

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url,
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("objectives", ["accuracy", "params", "macs"])
    study.set_user_attr("input", {"in_channels": 1, "input_size": [8, 8], "num_classes": 10})
    arch = {"family": "resnet20", "width": 0.5, "layers": {}}
    study.add_trial(create_trial(
        values=[0.9, 1000, 2000], params={"stage1.groups": 2},
        distributions={"stage1.groups": CategoricalDistribution([1, 2])},
        user_attrs={"architecture": arch}))
    assert accuracy_se(study, 0.9) is None  # an older study: no size, no claim
    assert "± " not in run_cli(["front", "--storage", url]).stdout
    study.set_user_attr("val_images", 400)
    assert accuracy_se(study, 0.9) == pytest.approx(math.sqrt(0.9 * 0.1 / 400))
    out = " ".join(run_cli(["front", "--storage", url]).stdout.split())
    assert "400 validation images" in out and "0.9000 ± 0.0150" in out
    assert "0.9000 ± 0.0150" in study_overview(study).details["validation"]


def test_a_resumed_random_search_does_not_repeat_its_candidates(tmp_path: Path) -> None:
    """A resumed search reseeds its sampler from the seed and the trials so far
    (``resume_seed``): with the plain seed again, ``--sampler random`` replayed the study's
    first candidates (5 of 10 trials were repeats). A fresh study keeps the plain seed."""
    from ssc_nas.data import load_splits
    from ssc_nas.search import run_search
    from ssc_nas.search.samplers import resume_seed

    splits = load_splits("digits", "data", split_seed=0)
    for trials in (4, 8):
        run = run_search(SearchConfig(
            budget=Budget(params=80_000), space="digits-tiny", dataset="digits", trials=trials,
            train=TrainConfig(epochs=1), sampler="random", reference_designs=False,
            storage=f"sqlite:///{tmp_path / 'r.db'}", study="r"), splits=splits)
    params = [tuple(sorted(t.params.items())) for t in run.study.trials if t.params]
    assert len(params) >= 8 and len(set(params)) == len(params)
    assert resume_seed(3, 0) == 3 and resume_seed(3, 5) not in (3, resume_seed(3, 6))
