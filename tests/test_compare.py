"""ssc-nas compare: SSC designs vs pruning at init on digits, through the CLI and the API."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from ssc_nas.baselines import prune_at_init
from ssc_nas.budget import Budget
from ssc_nas.compare import (
    METHODS,
    SSC_METHODS,
    CompareConfig,
    Row,
    Run,
    bound_space,
    default_dense_width,
    equal_time_epochs,
    markdown_table,
    paired_difference,
    run_compare,
    run_key,
    sparse_macs,
    t_interval,
    uniform_design,
    verdict,
    verdicts,
)
from ssc_nas.cost import count
from ssc_nas.data import load_splits
from ssc_nas.errors import BudgetError, SSCNasError, StudyError
from ssc_nas.models import Architecture, build
from ssc_nas.report import baseline_points
from ssc_nas.search import DEFAULT_SCORE_SHARE
from ssc_nas.search.results import is_trained
from ssc_nas.train import TrainConfig
from tests import forked
from tests.inprocess import run_cli as run_in_process

BUDGET = 20_000
STUDY = "digits-resnet20-ssc-20k"  # what ssc-nas search --space resnet20-ssc names it
COMMON = ["--budget", "20k", "--dataset", "digits", "--epochs", "1", "--quiet"]
# Every SSC method and one pruning method (each pruning method's masks: test_baselines.py).
METHODS_RUN = ("ssc-search", "reference", "ssc-uniform", "snip")
FOLDS = 2


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``ssc-nas ARGS`` as a process of its own (forked ready-imported: tests.forked)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return forked.run(args, cwd, env, timeout=600)


def snapshot(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.values, t.params, t.user_attrs, t.datetime_complete)
            for t in study.get_trials()]


@pytest.mark.slow
def test_compare_cli_stores_runs_and_leaves_the_ssc_study_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # in-process runs print as wide as run_cli's
    url = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    # 4 trials: the 3 reference designs that fit 20k, then 1 searched design
    search = run_in_process(["search", "--space", "resnet20-ssc", "--trials", "4",
                             "--sampler", "random", "--strategy", "full", *COMMON], tmp_path)
    assert search.returncode == 0, search.stderr
    ssc = optuna.load_study(study_name=STUDY, storage=url)
    before = snapshot(ssc)

    args = ["compare", "--family", "resnet20", "--methods", ",".join(METHODS_RUN),
            "--folds", str(FOLDS), "--no-equal-time", *COMMON]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    for word in ("method", "params", "MACs", "accuracy", "train time", *METHODS_RUN,
                 "verdict (test accuracy)", "95% t interval over folds"):
        assert word in result.stdout, word
    assert "sparse MACs" in result.stdout
    assert f"{STUDY}-baselines" in result.stdout

    assert snapshot(optuna.load_study(study_name=STUDY, storage=url)) == before
    baselines = optuna.load_study(study_name=f"{STUDY}-baselines", storage=url)
    assert [d.name for d in baselines.directions] == ["MAXIMIZE"]
    trials = baselines.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # reference: one row per reference design trained within budget in the SSC study
    done = [t for t in ssc.get_trials(states=(TrialState.COMPLETE,)) if is_trained(t)]
    references = sorted({f"reference:{t.user_attrs['reference']}" for t in done
                         if t.user_attrs.get("reference") and t.user_attrs["params"] <= BUDGET})
    assert len(references) >= 2
    rows = [m for m in METHODS_RUN if m != "reference"] + references
    keys = sorted((t.user_attrs["method"], t.user_attrs["seed"]) for t in trials)
    assert keys == sorted((m, s) for m in rows for s in range(FOLDS))
    for t in trials:
        a = t.user_attrs
        for key in ("params", "macs", "accuracy", "train_time_s", "epochs"):
            assert key in a, key
        assert a["epochs"] == 1 and t.value == a["accuracy"]
        assert 0.0 <= a["accuracy"] <= 1.0
        if a["method"].split(":")[0] in SSC_METHODS:
            assert a["params"] <= BUDGET and a["dense_macs"] is None
        else:
            assert a["params"] == BUDGET
            assert 0 < a["macs"] < a["dense_macs"]
    # ssc-search retrains the best-scored searched design, reference:<name> each reference
    searched = min((t for t in done if not t.user_attrs.get("reference")),
                   key=lambda t: t.values[0])
    expected = {"ssc-search": searched} | {
        f"reference:{t.user_attrs['reference']}": t for t in done if t.user_attrs.get("reference")}
    for method in ("ssc-search", *references):
        for run in (t for t in trials if t.user_attrs["method"] == method):
            assert run.user_attrs["ssc_trial"] == expected[method].number, method
            assert run.user_attrs["architecture"] == expected[method].user_attrs["architecture"]

    points = baseline_points(url, STUDY)
    assert len(points) == len(rows)  # one point per row: mean and std over folds
    assert {p.method for p in points} == set(rows)
    assert all(p.runs == FOLDS and p.accuracy_std is not None for p in points)

    again = run_in_process(args, tmp_path)  # everything stored: reused, nothing retrained
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name=f"{STUDY}-baselines", storage=url).trials) == len(
        trials)
    assert "stored earlier" in " ".join(again.stderr.split())  # rich wraps at the width it finds

    report = run_in_process(["report", "--study", STUDY, "-o", "r.html"], tmp_path)
    assert report.returncode == 0, report.stderr


@pytest.mark.parametrize(("extra", "words"), [
    (["--methods", "snip,bogus"], ["unknown method 'bogus'", "valid methods", "ssc-uniform"]),
    (["--methods", "snip", "--budget", "5M"], ["reachable range", "pass a larger --width"]),
    (["--methods", "snip", "--budget", "100"], ["reachable range"]),
])
def test_compare_cli_mistakes_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           extra: list[str], words: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_in_process(["compare", "--family", "resnet20", "--dataset", "digits",
                             "--budget", "20k", *extra])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "ssc-nas.db").exists()  # refused before opening the storage


@pytest.mark.slow
def test_ssc_search_runs_a_short_search_when_there_is_no_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = CompareConfig(Budget(BUDGET), family="resnet20", methods=("ssc-search",),
                           dataset="digits", epochs=1, storage=url, search_trials=2, folds=2)
    (row,) = run_compare(config)
    ssc = optuna.load_study(study_name=STUDY, storage=url)
    assert sum(map(is_trained, ssc.get_trials(states=(TrialState.COMPLETE,)))) == 2
    assert row.method == "ssc-search" and row.params <= BUDGET
    assert len(row.runs) == 2 and not row.equal_runs  # no pruning method: no equal time
    # That short search trains no reference design, so there is no yardstick to retrain.
    assert not [t for t in ssc.trials if t.user_attrs.get("reference")]
    with pytest.raises(StudyError, match="no trained reference design within"):
        run_compare(replace(config, methods=("reference",)))


def test_a_missing_study_names_the_studies_of_other_spaces(tmp_path: Path) -> None:
    """After the default search (the stage space) ``compare`` without --space looks for the
    per-layer space's study; its error names the study that is there and how to use it."""
    searched = run_in_process(["search", "--budget", "20k", "--dataset", "digits", "--space",
                               "resnet20-ssc-stage", "--epochs", "1", "--trials", "1",
                               "--strategy", "full", "--no-reference-designs", "--quiet"],
                              tmp_path)
    assert searched.returncode == 0, searched.stderr
    result = run_in_process(["compare", "--family", "resnet20", "--dataset", "digits",
                             "--budget", "20k", "--methods", "reference", "--quiet"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("no trained reference design within 20k params; run ssc-nas search --space "
            "resnet20-ssc --budget 20k --dataset digits first (it trains them); the storage "
            "also has study 'digits-resnet20-ssc-stage-20k' (space resnet20-ssc-stage): to "
            "compare against it, pass --study digits-resnet20-ssc-stage-20k --space "
            "resnet20-ssc-stage") in " ".join(result.stderr.split())


def test_the_short_search_extends_a_study_with_its_own_settings(tmp_path: Path) -> None:
    """A study made by ``ssc-nas search`` (successive halving, here 1 epoch) whose only
    candidate stopped below the top rung has no searched design: ``compare``'s short search
    adds candidates with the study's strategy and schedule (it was refused, made with the
    defaults), and names the command that resumes the study."""
    space = ["--space", "digits-tiny", "--budget", "20k", "--dataset", "digits"]
    searched = run_in_process(["search", *space, "--epochs", "1", "--trials", "1",
                               "--no-reference-designs", "--quiet"], tmp_path)
    assert searched.returncode == 0, searched.stderr
    storage = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    name = "digits-digits-tiny-20k"
    assert not any(is_trained(t) for t in optuna.load_study(study_name=name,
                                                           storage=storage).trials)
    result = run_in_process(["compare", "--family", "resnet20", *space, "--methods",
                             "ssc-search", "--epochs", "1", "--folds", "2", "--search-trials",
                             "9"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (f"searching 9 candidates with the study's own settings (resume or extend it with: "
            f"ssc-nas search {' '.join(space)} --trials 10 --epochs 1 --study {name})"
            ) in " ".join((result.stdout + result.stderr).split())
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.user_attrs["train"]["epochs"] == 1
    assert study.user_attrs["strategy"] == {"name": "sh", "eta": 3, "rungs": 3,
                                            "score_share": DEFAULT_SCORE_SHARE}
    assert {t.user_attrs.get("rung", 0) for t in study.trials if is_trained(t)} == {2}


def test_a_study_that_is_not_a_search_is_refused_as_the_ssc_study(tmp_path: Path) -> None:
    """``--study <study>-baselines`` (compare's own runs) was read as the SSC study: its runs
    became "searched designs" and the results went to ``<study>-baselines-baselines``."""
    from optuna.trial import create_trial

    storage = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    for name in ("s-baselines", "plain"):
        optuna.create_study(study_name=name, storage=storage)
    run = create_trial(value=0.9, user_attrs={  # a compare run, as its store writes one
        "architecture": {"family": "resnet20", "width": 0.5, "layers": {}},
        "params": 10_000, "macs": 100_000})
    optuna.load_study(study_name="s-baselines", storage=storage).add_trial(run)
    for name, says in (("s-baselines", "--study 's-baselines': names with"),
                       ("plain", "study 'plain' in sqlite:///ssc-nas.db was not made by ssc-nas "
                                 "search")):
        result = run_in_process(["compare", "--family", "resnet20", *COMMON, "--methods",
                                 "ssc-search", "--study", name], tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert says in " ".join(result.stderr.split())
    assert sorted(optuna.get_all_study_names(storage)) == ["plain", "s-baselines"]


@pytest.mark.slow
def test_trials_picked_from_the_front_are_retrained_as_rows(tmp_path: Path) -> None:
    """``--trial N``: trial N of the SSC study (here a reference design and a searched one that
    is not the best-scored) is retrained on every fold as row ``trial:N``, beside the methods;
    a trial that is not there, or over the budget, is refused before anything trains."""
    searched = run_in_process(["search", "--space", "resnet20-ssc", "--trials", "4",
                               "--sampler", "random", "--strategy", "full", *COMMON], tmp_path)
    assert searched.returncode == 0, searched.stderr
    url = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    done = [t for t in optuna.load_study(study_name=STUDY, storage=url).trials
            if is_trained(t)]
    reference = next(t for t in done if t.user_attrs.get("reference"))
    other = max((t for t in done if not t.user_attrs.get("reference")),
                key=lambda t: t.values[0])  # the worst-scored searched design
    config = CompareConfig(Budget(BUDGET), family="resnet20", methods=("ssc-uniform",),
                           dataset="digits", epochs=1, storage=url, folds=FOLDS,
                           trials=(other.number, reference.number), equal_time=False)
    rows = run_compare(config)
    assert [r.method for r in rows] == ["ssc-uniform", f"trial:{other.number}",
                                        f"trial:{reference.number}"]
    baselines = optuna.load_study(study_name=f"{STUDY}-baselines", storage=url)
    for t in (other, reference):
        runs = [r for r in baselines.trials if r.user_attrs["method"] == f"trial:{t.number}"]
        assert sorted(r.user_attrs["seed"] for r in runs) == list(range(FOLDS))
        for r in runs:
            assert r.user_attrs["ssc_trial"] == t.number
            assert r.user_attrs["architecture"] == t.user_attrs["architecture"]
            assert r.user_attrs["params"] == t.user_attrs["params"]
    before = len(baselines.trials)
    with pytest.raises(StudyError, match=r"--trial 999: study .* has no trial 999"):
        run_compare(replace(config, trials=(999,)))
    smaller = Budget(int(other.user_attrs["params"]) - 1)
    with pytest.raises(BudgetError, match=rf"--trial {other.number} has .* over --budget"):
        run_compare(replace(config, budget=smaller, study=STUDY, methods=("ssc-search",),
                            trials=(other.number,)))
    assert len(optuna.load_study(study_name=f"{STUDY}-baselines", storage=url).trials) == before
    with pytest.raises(SSCNasError, match="distinct trial numbers"):
        replace(config, trials=(1, 1))
    result = run_in_process(["compare", "--family", "resnet20", *COMMON, "--methods",
                             "ssc-uniform", "--trial", "3", "--study", "nope"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--trial 3: there is no study 'nope'" in " ".join(result.stderr.split())


def test_config_rejects_unknown_methods_and_mac_budgets() -> None:
    with pytest.raises(SSCNasError, match="valid methods"):
        CompareConfig(Budget(BUDGET), methods=("snip", "nope"))
    with pytest.raises(BudgetError, match="MACs budget"):
        CompareConfig(Budget(BUDGET, 10**6))
    with pytest.raises(BudgetError, match="parameter budget"):
        CompareConfig(Budget(None, 10**6))
    assert set(METHODS) >= {"ssc-search", "ssc-uniform", "snip", "grasp", "synflow", "erk",
                            "random"}


def test_uniform_design_is_uniform_and_fits() -> None:
    config = CompareConfig(Budget(BUDGET), family="resnet20", dataset="digits")
    bound = bound_space(config)
    arch, label = uniform_design(bound, config.budget)
    assert bound.cost(arch).params <= BUDGET
    assert "HetConv-P" in label
    spatial = {s.pointwise_channels // max(1, s.spatial_channels) for s in arch.layers.values()}
    assert len(spatial) == 1  # the same fractions in every layer
    assert uniform_design(bound, Budget(100)) is None


def test_default_dense_width_is_well_above_the_budget() -> None:
    config = CompareConfig(Budget(BUDGET), family="resnet20", dataset="digits")
    width = default_dense_width(config, (0.5, 1.0, 1.5))
    model = build(Architecture("resnet20", width), 1, 10, (8, 8))
    assert sum(p.numel() for p in model.parameters()) >= 4 * BUDGET
    assert default_dense_width(config, (0.5,)) == 0.5


def test_sparse_macs_of_dense_equal_dense_macs_and_shrink_when_pruned() -> None:
    torch.manual_seed(0)
    dense = build(Architecture("resnet20", 0.5), 1, 10, (8, 8))
    assert sparse_macs(dense, (1, 8, 8)) == count(dense, (1, 8, 8)).macs
    splits = load_splits("digits")
    pruned = prune_at_init("resnet20", 0.5, "random", 10_000, splits, seed=0)
    assert 0 < sparse_macs(pruned, (1, 8, 8)) < count(pruned, (1, 8, 8)).macs


def test_markdown_table_shows_mean_and_interval() -> None:
    runs = tuple(Run("snip", s, "x1", BUDGET, 1000, 5000, acc, acc, 1.0, 1)
                 for s, acc in enumerate((0.5, 0.7)))
    text = markdown_table([Row("snip", "x1", runs)])
    # 2 folds: t(0.975, 1) = 12.7062 x sd 0.1414 / sqrt(2) = 1.2706
    assert "0.6000 ± 1.2706" in text and "20k" in text and "sparse MACs" in text
    assert "verdict (test accuracy): snip" in text


def test_a_stored_run_of_another_version_is_not_reused(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored-run key holds the toolkit version: an upgrade retrains, a rerun reuses."""
    import ssc_nas

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = CompareConfig(Budget(BUDGET), family="resnet20", methods=("ssc-uniform",),
                           dataset="digits", epochs=1, storage=url, folds=2)
    (first,) = run_compare(config)
    (again,) = run_compare(config)
    assert all(r.reused for r in again.runs)
    monkeypatch.setattr(ssc_nas, "__version__", ssc_nas.__version__ + ".next")
    (upgraded,) = run_compare(config)
    assert not any(r.reused for r in upgraded.runs)


def test_runs_added_from_another_storage_are_reused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/reuse_runs.py: runs added to a new storage's baselines study are reused there
    (nothing retrained), adding them again adds nothing, and runs added under another study
    name (--to-study) are reused by a compare of that study."""
    import runpy

    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    config = CompareConfig(Budget(BUDGET), family="resnet20", methods=("ssc-uniform",),
                           dataset="digits", epochs=1, storage=first, folds=2)
    (trained,) = run_compare(config)
    assert not any(r.reused for r in trained.runs)
    script = str(Path(__file__).resolve().parents[1] / "benchmarks" / "reuse_runs.py")
    for _ in range(2):
        monkeypatch.setattr("sys.argv", ["reuse_runs.py", "--from", first, "--to", second,
                                         "--study", STUDY + "-baselines",
                                         "--methods", "ssc-uniform"])
        runpy.run_path(script, run_name="__main__")
    out = capsys.readouterr().out
    assert "2 of 2 runs added" in out and "0 of 2 runs added" in out
    (reused,) = run_compare(replace(config, storage=second))
    assert all(r.reused for r in reused.runs)
    assert [r.accuracy for r in reused.runs] == [r.accuracy for r in trained.runs]
    third = f"sqlite:///{tmp_path / 'c.db'}"  # --to-study: another study's baselines
    monkeypatch.setattr("sys.argv", ["reuse_runs.py", "--from", first, "--to", third,
                                     "--study", STUDY + "-baselines",
                                     "--to-study", "other-baselines", "--methods", "ssc"])
    runpy.run_path(script, run_name="__main__")
    assert "2 of 2 runs added to other-baselines" in capsys.readouterr().out
    (renamed,) = run_compare(replace(config, storage=third, study="other"))
    assert all(r.reused for r in renamed.runs)
    assert [r.accuracy for r in renamed.runs] == [r.accuracy for r in trained.runs]


@pytest.mark.parametrize("change", [{"lr": 0.1}, {"optimizer": "adamw"},
                                    {"label_smoothing": 0.0}, {"momentum": 0.0},
                                    {"weight_decay": 0.0}, {"augment": True}])
def test_run_key_changes_with_every_training_setting(change: dict) -> None:
    base = TrainConfig(epochs=1, hopeless_factor=0.0)
    setup = {"dataset": "digits", "budget": BUDGET}
    design = {"dense_width": 0.5}
    assert run_key("snip", 0, base, setup, design) == run_key("snip", 0, base, setup, design)
    assert run_key("snip", 0, base, setup, design) != run_key(
        "snip", 0, replace(base, **change), setup, design)
    assert '"recalibrate_images": 1024' in run_key("snip", 0, base, setup, design)
    on_gpu = {**setup, "device": "cuda"}
    assert run_key("snip", 0, base, {**setup, "device": "cpu"}, design) != run_key(
        "snip", 0, base, on_gpu, design)


def test_t_interval_matches_a_hand_computed_one() -> None:
    # mean 0.92, sd 0.02, n 3: 0.92 +- t(0.975, 2) 4.302653 x 0.02 / sqrt(3) = +- 0.049683
    ci = t_interval([0.90, 0.92, 0.94])
    assert ci.n == 3 and ci.mean == pytest.approx(0.92)
    assert ci.low == pytest.approx(0.870317, abs=1e-6)
    assert ci.high == pytest.approx(0.969683, abs=1e-6)
    one = t_interval([0.9])
    assert one.low is None and one.covers_zero


def test_paired_difference_pairs_by_fold() -> None:
    # Fold effects shared by both methods cancel: a constant difference has zero width.
    a = {0: 0.80, 1: 0.95, 2: 0.90}
    b = {0: 0.78, 1: 0.93, 2: 0.88}
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.02)
    assert d.low == pytest.approx(0.02) and d.high == pytest.approx(0.02)
    assert not d.covers_zero
    unpaired = t_interval(list(a.values()))
    assert unpaired.high - unpaired.low > 0.1  # the fold spread the pairing removes


def test_verdict_names_winner_and_what_is_not_distinguishable() -> None:
    results = {
        "snip": {0: 0.90, 1: 0.915, 2: 0.93},    # A - snip: 0.05, 0.045, 0.04
        "ssc-a": {0: 0.95, 1: 0.96, 2: 0.97},
        "erk": {0: 0.96, 1: 0.94, 2: 0.965},     # A - erk: -0.01, 0.02, 0.005
    }
    v = verdict(results)
    assert v is not None and v.winner == "ssc-a"
    assert v.accuracy.mean == pytest.approx(0.96)
    erk, snip = v.margins  # closest first
    assert erk.method == "erk" and not erk.distinguishable
    assert erk.difference.mean == pytest.approx(0.005)
    assert erk.difference.low < 0 < erk.difference.high
    assert snip.method == "snip" and snip.distinguishable
    # 0.045 +- 4.302653 x 0.005 / sqrt(3) = +- 0.012421
    assert snip.difference.low == pytest.approx(0.032579, abs=1e-6)
    text = v.text()
    assert "ssc-a is most accurate" in text
    assert "erk +0.0050" in text and "not distinguishable" in text
    assert "snip +0.0450 [+0.0326, +0.0574]" in text
    assert text.count("not distinguishable") == 1
    assert verdict({}) is None


def test_verdict_with_one_fold_calls_nothing_distinguishable() -> None:
    v = verdict({"a": {0: 0.9}, "b": {0: 0.5}})
    assert v is not None and v.winner == "a"
    assert not v.margins[0].distinguishable and "no interval" in v.text()


def test_equal_time_epochs_fit_the_target() -> None:
    assert equal_time_epochs(30.0, 10.0) == 3
    assert equal_time_epochs(39.9, 10.0) == 3  # never more time than the target
    assert equal_time_epochs(5.0, 10.0) == 1
    with pytest.raises(ValueError):
        equal_time_epochs(5.0, 0.0)


def test_rows_and_verdicts_at_equal_time() -> None:
    def runs(method: str, accs: tuple[float, ...], epochs: int, secs: float) -> tuple[Run, ...]:
        return tuple(Run(method, f, "d", BUDGET, 1, None, a, a, secs, epochs)
                     for f, a in enumerate(accs))
    ssc = Row("ssc-uniform", "d", runs("ssc-uniform", (0.80, 0.82, 0.84), 1, 10.0),
              equal_runs=runs("ssc-uniform", (0.90, 0.91, 0.92), 3, 30.0), equal_time_s=31.0)
    snip = Row("snip", "d", runs("snip", (0.85, 0.86, 0.87), 1, 31.0),
               equal_runs=runs("snip", (0.85, 0.86, 0.87), 1, 31.0), equal_time_s=31.0)
    plain, equal = verdicts([ssc, snip])
    assert plain.winner == "snip" and equal.winner == "ssc-uniform"
    assert ssc.seconds_per_epoch == pytest.approx(10.0)
    text = markdown_table([ssc, snip])
    assert "accuracy at equal time" in text and "(3 ep, 30.0 s)" in text
    assert "target 31.0 s" in text
    same = [replace(r, equal_runs=r.runs) for r in (ssc, snip)]
    assert len(verdicts(same)) == 1  # nothing retrained: no second, identical verdict
    assert "verdict (test accuracy at equal training time): ssc-uniform" in text


def test_folds_must_be_at_least_two() -> None:
    with pytest.raises(SSCNasError, match="--folds must be >= 2"):
        CompareConfig(Budget(BUDGET), folds=1)


def test_equal_time_retrains_for_the_epochs_that_fit(tmp_path: Path) -> None:
    """A target of 2.5 x the measured seconds per epoch gives 2-epoch runs, stored as such."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = CompareConfig(Budget(BUDGET), family="resnet20", methods=("ssc-uniform",),
                           dataset="digits", epochs=1, storage=url, folds=2)
    (row,) = run_compare(config)
    assert not row.equal_runs  # no pruning method and no target: nothing to match
    target = 2.5 * row.seconds_per_epoch
    (equal,) = run_compare(replace(config, equal_time_s=target))
    assert all(r.reused for r in equal.runs)  # the common schedule is not retrained
    assert equal.equal_time_s == target and equal.equal_epochs == 2
    assert [r.epochs for r in equal.equal_runs] == [2, 2]
    assert not any(r.reused for r in equal.equal_runs)
    assert [r.seed for r in equal.equal_runs] == [0, 1]  # paired with the same folds
    study = optuna.load_study(study_name=f"{STUDY}-baselines", storage=url)
    flagged = [t.user_attrs for t in study.trials if t.user_attrs.get("equal_time")]
    assert sorted(a["epochs"] for a in flagged) == [2, 2]
    assert all(a["equal_time_target_s"] == round(target, 3) for a in flagged)
    assert "(2 ep," in markdown_table([equal])
