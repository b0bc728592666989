"""The score objective: val loss by default, accuracy on request, both recorded, and a study
resumed with the objectives it was made with; the proxy's autocast stored with the study."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from ssc_nas.budget import Budget
from ssc_nas.errors import StudyError
from ssc_nas.runtime import cpu_has_native_bf16
from ssc_nas.search import (
    DEFAULT_OBJECTIVES,
    SearchConfig,
    against_references,
    front,
    run_search,
)
from ssc_nas.search.objectives import (
    seed_noise,
    sort_key,
    trial_accuracy,
    trial_val_loss,
    untrained_value,
)
from ssc_nas.search.storage import make_storage, stored_settings
from ssc_nas.train import AMP_MIN_SPEEDUP, TrainConfig
from tests.inprocess import run_cli


def _config(url: str, **kw) -> SearchConfig:
    return SearchConfig(budget=Budget(40_000), space="digits-tiny", dataset="digits",
                        train=TrainConfig(epochs=1), sampler="random", storage=url,
                        reference_designs=False, **kw)


@pytest.mark.parametrize("objectives", [("params", "macs"), ("accuracy", "val_loss", "params"),
                                        ("val_loss", "val_loss"), ("loss", "params")])
def test_exactly_one_score_objective(objectives: tuple[str, ...]) -> None:
    with pytest.raises(StudyError, match="exactly one of val_loss or accuracy"):
        SearchConfig(budget=Budget(1000), objectives=objectives)


def test_bad_objectives_on_the_command_line_exit_2_with_one_line(tmp_path: Path) -> None:
    r = run_cli(["search", "--budget", "40k", "--dataset", "digits", "--space", "digits-tiny",
                 "--objectives", "params,macs", "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "exactly one of val_loss or accuracy" in r.stderr
    assert not (tmp_path / "x.db").exists()


def test_untrained_values_are_the_worst() -> None:
    assert untrained_value("accuracy") == 0.0
    assert untrained_value("val_loss") == math.inf == untrained_value("latency")


def test_reading_scores_back_from_either_kind_of_study() -> None:
    by_loss = create_trial(values=[0.3, 10.0], user_attrs={"val_accuracy": 0.9, "val_loss": 0.3})
    by_acc = create_trial(values=[0.9, 10.0], user_attrs={"val_loss": 0.3})
    old = create_trial(values=[0.9, 10.0])  # before val loss was kept
    assert trial_accuracy(by_loss, ["val_loss", "params"]) == 0.9
    assert trial_val_loss(by_loss, ["val_loss", "params"]) == 0.3
    assert trial_accuracy(by_acc, ["accuracy", "params"]) == 0.9
    assert trial_val_loss(by_acc, ["accuracy", "params"]) == 0.3
    assert trial_val_loss(old, ["accuracy", "params"]) is None
    # Best first: lowest loss, or highest accuracy.
    a = create_trial(values=[0.2, 1.0])
    b = create_trial(values=[0.5, 1.0])
    a.number, b.number = 0, 1
    assert sorted([b, a], key=lambda t: sort_key(t, ["val_loss", "params"])) == [a, b]
    assert sorted([a, b], key=lambda t: sort_key(t, ["accuracy", "params"])) == [b, a]


def test_default_search_minimizes_val_loss_and_keeps_accuracy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = run_search(_config(url, trials=3))
    study = run.study
    assert study.user_attrs["objectives"] == list(DEFAULT_OBJECTIVES)
    assert [d.name for d in study.directions] == ["MINIMIZE"] * 3
    trained = [t for t in study.get_trials(states=(TrialState.COMPLETE,))
               if "rejected" not in t.user_attrs]
    assert len(trained) == 3
    for t in trained:
        assert t.values[0] == pytest.approx(t.user_attrs["val_loss"], abs=1e-5)
        assert t.values[0] > 0
        assert 0 <= t.user_attrs["val_accuracy"] <= 1
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        if "rejected" in t.user_attrs:  # over budget: the worst loss, never trained
            assert t.values[0] == math.inf
    losses = [t.values[0] for t in front(study)]
    assert losses == sorted(losses)


def test_a_study_resumes_with_the_objectives_it_was_made_with(tmp_path: Path) -> None:
    """A study made with the accuracy score (the default before) goes on with it when the
    command gives no --objectives; naming another score is refused and changes nothing."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_search(_config(url, trials=1, objectives=("accuracy", "params", "macs"), study="old"))
    resumed = run_search(_config(url, trials=2, study="old"))
    study = resumed.study
    assert study.user_attrs["objectives"] == ["accuracy", "params", "macs"]
    assert resumed.completed == 2 and study.directions[0].name == "MAXIMIZE"
    before = len(study.trials)
    with pytest.raises(StudyError, match="created for another search"):
        run_search(_config(url, trials=3, objectives=DEFAULT_OBJECTIVES, study="old"))
    assert len(optuna.load_study(study_name="old", storage=url).trials) == before


def test_measured_seed_noise_is_recorded_and_shown(tmp_path: Path) -> None:
    noise = seed_noise("mnist-5k", "resnet20-ssc", 2)
    assert noise is not None and noise["val_loss"] < noise["accuracy"] * 2
    assert seed_noise("mnist-5k", "resnet20-ssc", 2, subset=0.5) is None
    assert seed_noise("mnist-5k", "resnet20-ssc-stage", 2) is not None  # the default search's
    bf16 = seed_noise("mnist-5k", "resnet20-ssc-stage", 2, amp="bf16")  # measured on its own
    assert bf16 is not None and bf16 != seed_noise("mnist-5k", "resnet20-ssc-stage", 2)
    assert seed_noise("mnist-5k", "resnet20-ssc", 2, amp="bf16") is None
    assert seed_noise("digits", "digits-tiny", 1) is None
    # Measured on a subset: found for that subset only (the key is the value --subset parses to).
    fashion = seed_noise("fashion-mnist", "resnet20-ssc-stage", 2, subset=float("0.0667"))
    assert fashion is not None and fashion["val_loss"] == 0.0130
    assert seed_noise("fashion-mnist", "resnet20-ssc-stage", 2) is None
    fashion_bf16 = seed_noise("fashion-mnist", "resnet20-ssc-stage", 2, subset=float("0.0667"),
                              amp="bf16")
    assert fashion_bf16 is not None and fashion_bf16["val_loss"] == 0.0147
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = run_search(_config(url, trials=1)).study
    assert "seed_noise" not in study.user_attrs  # nothing measured for this proxy
    study.set_user_attr("seed_noise", noise)
    out = " ".join(run_cli(["front", "--storage", url]).stdout.split())
    assert "val loss ± 0.0098" in out and "acc ± 0.0055" in out
    assert "benchmarks/seed_noise.py" in out


def test_a_new_study_stores_the_autocast_it_trains_with(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = make_storage(url)
    study = run_search(_config(url, trials=1, amp="bf16", study="bf16")).study
    stored = stored_settings(storage, "bf16")
    assert stored is not None and study.user_attrs["train"]["amp"] == "bf16" == stored.amp
    assert stored.objectives == list(study.user_attrs["objectives"])
    out = " ".join(run_cli(["front", "--storage", url, "--study", "bf16"]).stdout.split())
    assert "proxy trained under bf16 autocast" in out
    auto = run_search(_config(url, trials=1, study="auto")).study
    # auto measured bf16 against float32 where the CPU has bf16, and stored what it measured
    speedup = auto.user_attrs.get("amp_speedup")
    assert (speedup is not None) == cpu_has_native_bf16()
    fast = speedup is not None and speedup >= AMP_MIN_SPEEDUP
    assert auto.user_attrs["train"]["amp"] == ("bf16" if fast else "off")
    assert "amp_speedup" not in study.user_attrs  # bf16 was asked for: nothing to measure
    assert stored_settings(storage, "none yet") is None
    with pytest.raises(StudyError, match="--amp must be one of auto, off, bf16, fp16"):
        _config(url, amp="fp8")


def _scored_study(objectives: list[str], noise: dict | None) -> optuna.Study:
    directions = ["minimize" if o != "accuracy" else "maximize" for o in objectives]
    study = optuna.create_study(directions=directions, storage=None)
    study.set_user_attr("objectives", objectives)
    if noise is not None:
        study.set_user_attr("seed_noise", noise)
    return study


def _add(study: optuna.Study, score: float, reference: str | None = None,
         **kw: object) -> None:
    attrs = {"params": 1000, "macs": 1000, **({"reference": reference} if reference else {})}
    study.add_trial(create_trial(values=[score, 1000.0, 1000.0], constraints={"params": -0.5},
                                 user_attrs={**attrs, **kw.pop("user_attrs", {})}, **kw))


def test_the_best_searched_design_against_the_best_reference_with_the_seed_noise() -> None:
    """Trained trials only (not an over-budget candidate's worst score, not a lower rung), best
    of each kind, and the verdict from the proxy's seed std: beyond 2 sqrt(2) stds or a tie."""
    study = _scored_study(["val_loss", "params", "macs"], {"val_loss": 0.02, "accuracy": 0.01})
    _add(study, 0.25)
    _add(study, 0.21, "standard")
    assert against_references(study) is not None
    _add(study, 0.30, "groupwise")
    _add(study, 0.20)
    _add(study, math.inf, user_attrs={"rejected": "over budget"})  # never trained
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"val_loss": 0.01}))
    a = against_references(study)
    assert (a.searched, a.reference, a.reference_name) == (3, 1, "standard")
    assert a.lead == pytest.approx(0.01) and a.verdict == "a tie"  # 0.5 stds
    _add(study, 0.10)  # 0.11 ahead: 5.5 stds
    assert against_references(study).verdict == "ahead"
    _add(study, 0.02, "hetconv-p4")
    a = against_references(study)
    assert (a.reference_name, a.verdict) == ("hetconv-p4", "behind")
    assert a.lead == pytest.approx(-0.08)

    # An accuracy study: higher is better; no measured noise, no verdict.
    study = _scored_study(["accuracy", "params", "macs"], None)
    _add(study, 0.90)
    _add(study, 0.95, "standard")
    a = against_references(study)
    assert a.lead == pytest.approx(-0.05) and a.verdict is None
    # Without a trained reference design (or searched design) there is nothing to say.
    alone = _scored_study(["val_loss", "params", "macs"], None)
    _add(alone, 0.2)
    assert against_references(alone) is None


def test_front_says_how_the_best_searched_design_stands_against_the_references(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study = optuna.create_study(storage=url, study_name="s",
                                directions=["minimize", "minimize", "minimize"])
    study.set_user_attr("objectives", ["val_loss", "params", "macs"])
    study.set_user_attr("seed_noise", {"val_loss": 0.0182, "accuracy": 0.0089})
    _add(study, 0.2099, "standard")
    _add(study, 0.2026)
    out = run_cli(["front", "--storage", url], tmp_path)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert ("reference design: trial 1 at 0.2026, standard (trial 0) at 0.2099 (proxy val loss): "
            "ahead by 0.0073, "
            "0.4 seed stds: a tie (beyond the noise from 2.8 seed stds;") in text
