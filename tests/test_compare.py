"""ssc-nas compare: SSC designs vs pruning at init on digits, through the CLI and the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from ssc_nas.baselines import prune_at_init
from ssc_nas.budget import Budget
from ssc_nas.compare import (
    METHODS,
    CompareConfig,
    Row,
    Run,
    bound_space,
    default_dense_width,
    markdown_table,
    run_compare,
    sparse_macs,
    uniform_design,
)
from ssc_nas.cost import count
from ssc_nas.data import load_splits
from ssc_nas.errors import BudgetError, SSCNasError
from ssc_nas.models import Architecture, build
from ssc_nas.report import baseline_points
from tests.inprocess import run_cli as run_in_process

BUDGET = 20_000
STUDY = "digits-resnet20-ssc-20k"  # what ssc-nas search --space resnet20-ssc names it
COMMON = ["--budget", "20k", "--dataset", "digits", "--epochs", "1", "--quiet"]
METHODS_RUN = ("ssc-search", "ssc-uniform", "snip", "random", "erk")
SEEDS = 2


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ssc_nas", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def snapshot(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.values, t.params, t.user_attrs, t.datetime_complete)
            for t in study.get_trials()]


@pytest.mark.slow
def test_compare_cli_stores_runs_and_leaves_the_ssc_study_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    search = run_cli(["search", "--space", "resnet20-ssc", "--trials", "2", "--sampler",
                      "random", *COMMON], tmp_path)
    assert search.returncode == 0, search.stderr
    ssc = optuna.load_study(study_name=STUDY, storage=url)
    before = snapshot(ssc)

    args = ["compare", "--family", "resnet20", "--methods", ",".join(METHODS_RUN),
            "--seeds", str(SEEDS), *COMMON]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    for word in ("method", "params", "MACs", "accuracy", "train time", *METHODS_RUN):
        assert word in result.stdout, word
    assert "sparse MACs" in result.stdout
    assert f"{STUDY}-baselines" in result.stdout

    assert snapshot(optuna.load_study(study_name=STUDY, storage=url)) == before
    baselines = optuna.load_study(study_name=f"{STUDY}-baselines", storage=url)
    assert [d.name for d in baselines.directions] == ["MAXIMIZE"]
    trials = baselines.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    keys = sorted((t.user_attrs["method"], t.user_attrs["seed"]) for t in trials)
    assert keys == sorted((m, s) for m in METHODS_RUN for s in range(SEEDS))
    for t in trials:
        a = t.user_attrs
        for key in ("params", "macs", "accuracy", "train_time_s", "epochs"):
            assert key in a, key
        assert a["epochs"] == 1 and t.value == a["accuracy"]
        assert 0.0 <= a["accuracy"] <= 1.0
        if a["method"].startswith("ssc-"):
            assert a["params"] <= BUDGET and a["dense_macs"] is None
        else:
            assert a["params"] == BUDGET
            assert 0 < a["macs"] < a["dense_macs"]
    search_trial = next(t for t in trials if t.user_attrs["method"] == "ssc-search")
    best = next(t for t in ssc.best_trials if t.number == search_trial.user_attrs["ssc_trial"])
    assert search_trial.user_attrs["architecture"] == best.user_attrs["architecture"]

    points = baseline_points(url, STUDY)
    assert len(points) == len(METHODS_RUN) * SEEDS
    assert {p.method for p in points} == set(METHODS_RUN)

    again = run_cli(args, tmp_path)  # everything stored: reused, nothing retrained
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name=f"{STUDY}-baselines", storage=url).trials) == len(
        trials)
    assert "stored earlier" in again.stderr

    report = run_cli(["report", "--study", STUDY, "-o", "r.html"], tmp_path)
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
                           dataset="digits", epochs=1, storage=url, search_trials=2)
    (row,) = run_compare(config)
    ssc = optuna.load_study(study_name=STUDY, storage=url)
    assert len(ssc.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert row.method == "ssc-search" and row.params <= BUDGET
    assert len(row.runs) == 1 and row.accuracy_std is None


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


def test_markdown_table_shows_mean_and_std() -> None:
    runs = tuple(Run("snip", s, "x1", BUDGET, 1000, 5000, acc, acc, 1.0, 1)
                 for s, acc in enumerate((0.5, 0.7)))
    text = markdown_table([Row("snip", "x1", runs)])
    assert "0.6000 ± 0.1414" in text and "20k" in text and "sparse MACs" in text
