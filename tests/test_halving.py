"""``--strategy sh``: multi-objective successive halving with its rungs in the study.

Which trial is promoted (non-dominated sorting, hypervolume contribution), exact continuation
from a checkpoint (the trainer, and a promoted trial against one uninterrupted run), a claim
that only one of many concurrent workers wins, two real workers on one study, and a worker
killed with SIGKILL mid-rung whose rung is re-run from the parent's checkpoint.
"""

from __future__ import annotations

import collections
import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from ssc_nas.budget import Budget
from ssc_nas.data import load_splits
from ssc_nas.errors import StudyError
from ssc_nas.models import Architecture, build
from ssc_nas.report.info import study_overview
from ssc_nas.search import DEFAULT_SCORE_SHARE, SearchConfig, front, make_storage, run_search
from ssc_nas.search.halving import (
    checkpoint_path,
    claim_name,
    promotable,
    promote,
    promotion_order,
)
from ssc_nas.search.results import (
    PROMOTED,
    STOPPED,
    promoted_numbers,
    trial_counts,
    trial_kind,
)
from ssc_nas.search.rungs import (
    Rungs,
    candidate_ranking,
    cost_objectives,
    is_rung_result,
    mixed_order,
    pareto_order,
    rungs_from_attr,
)
from ssc_nas.spaces import BoundSpace, load_space
from ssc_nas.train import TrainConfig, Trainer, train_model
from tests import forked

# fp32 proxies: which candidates asynchronous halving promotes depends on the order and values
# of the results, and the counts below were worked out for these.
DIGITS = dict(dataset="digits", space="digits-tiny", budget=Budget(params=80_000),
              sampler="random", reference_designs=False, amp="off")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _result(number: int, loss: float, params: int, macs: int, rung: int = 0,
            state: TrialState = TrialState.PRUNED) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        state=state, values=[loss, params, macs] if state == TrialState.COMPLETE else None,
        params={"x": number}, distributions={"x": CategoricalDistribution(list(range(100)))},
        user_attrs={"rung": rung, "val_loss": loss, "params": params, "macs": macs})
    trial.number = number
    return trial


def _mixed_rung() -> list[optuna.trial.FrozenTrial]:
    """Nine rung-0 results whose best losses (0, 3, 7) are costly and whose Pareto order puts
    cheap ones (1, 6, 8) right after 0."""
    return [_result(0, 0.10, 100, 100), _result(1, 0.80, 10, 90), _result(2, 0.90, 90, 10),
            _result(3, 0.20, 800, 800), _result(4, 0.30, 900, 900), _result(5, 0.95, 50, 50),
            _result(6, 0.85, 20, 20), _result(7, 0.25, 700, 700), _result(8, 0.99, 5, 5)]


# -- rungs and the promotion rule --------------------------------------------------------------


def test_rungs_fractions_steps_and_errors() -> None:
    rungs = Rungs(eta=3, count=3)
    assert [rungs.fraction(r) for r in range(3)] == [1 / 9, 1 / 3, 1.0]
    assert [rungs.steps(r, 114) for r in range(3)] == [13, 38, 114]
    assert Rungs(eta=2, count=1).steps(0, 10) == 10 and Rungs(3, 3).steps(0, 2) == 1
    for bad in ({"eta": 1}, {"count": 0}, {"eta": 2.5}):
        with pytest.raises(StudyError, match="must be an integer"):
            Rungs(**bad)
    with pytest.raises(StudyError, match="--strategy must be one of full, sh"):
        SearchConfig(budget=Budget(params=1000), strategy="asha")
    with pytest.raises(StudyError, match="--eta must be an integer >= 2, but got 1"):
        SearchConfig(budget=Budget(params=1000), strategy="sh", eta=1)


def test_promotion_is_the_top_third_by_pareto_rank_then_hypervolume_contribution() -> None:
    # Front (rank 0): 0, 1, 2 (each best in one objective); 3-5 are dominated by trial 1.
    results = [_result(0, 0.10, 900, 900), _result(1, 0.30, 300, 300),
               _result(2, 0.90, 100, 100), _result(3, 0.40, 400, 400),
               _result(4, 0.50, 500, 500), _result(5, 0.60, 600, 600)]
    top = promotion_order(results, "val_loss", eta=3)
    # Within the front, hypervolume contribution decides (objectives scaled to [0, 1] over the
    # rung, reference 1.1): the knee, trial 1 at (0.25, 0.25, 0.25), contributes most; trial 2
    # at (1, 0, 0) 0.1 x (1.1^2 - 0.85^2) = 0.049; trial 0 at (0, 1, 1) 0.25 x 0.1^2 = 0.0025.
    assert [t.number for t in top] == [1, 2]
    assert promotion_order(results[:2], "val_loss", eta=3) == []  # fewer than eta results
    # The score direction: accuracy is maximised.
    acc = [_result(i, 0.0, 100, 100) for i in range(3)]
    for i, t in enumerate(acc):
        t.user_attrs["val_accuracy"] = [0.5, 0.9, 0.7][i]
    assert [t.number for t in promotion_order(acc, "accuracy", eta=3)] == [1]


def test_a_study_of_the_score_alone_promotes_by_the_score_alone() -> None:
    """With params and MACs among the objectives, the second-best loss (trial 3, dominated by
    trial 0) loses its place to the cheap front; a study of ``val_loss`` alone promotes the two
    best losses, and ranks its candidates by loss (what its sampler models)."""
    results = [_result(0, 0.10, 100, 100), _result(1, 0.80, 10, 90), _result(2, 0.90, 90, 10),
               _result(3, 0.20, 800, 800), _result(4, 0.30, 900, 900),
               _result(5, 0.95, 50, 50)]
    rungs = Rungs(eta=3, count=2)
    three = promotable(results, ["val_loss", "params", "macs"], rungs)
    assert 3 not in [t.number for t in three] and len(three) == 2
    assert [t.number for t in promotable(results, ["val_loss"], rungs)] == [0, 3]
    assert cost_objectives(["val_loss"]) == () and cost_objectives(
        ["accuracy", "macs", "latency"]) == ("macs",)
    ranked = candidate_ranking(results, ["val_loss"], rungs)
    assert [t.number for t in ranked] == [0, 3, 4, 1, 2, 5]
    assert [t.number for t in pareto_order(results, "val_loss", costs=())] == [0, 3, 4, 1, 2, 5]


def test_a_score_share_promotes_that_share_by_the_score_first_then_in_pareto_order() -> None:
    """``--score-share``: of a rung's ``k`` promotions, ``ceil(k * share)`` go to the best
    scores, the rest in Pareto order among the others; 0 is the Pareto order, 1 the score
    alone (while the study keeps its cost objectives), and a study of the score alone ignores
    it."""
    results = _mixed_rung()

    def order(share: float, costs: tuple[str, ...] = ("params", "macs")) -> list[int]:
        return [t.number for t in promotion_order(results, "val_loss", 3, costs, share)]

    pareto = [t.number for t in pareto_order(results, "val_loss")][:3]
    assert order(0.0) == pareto and 3 not in pareto and 7 not in pareto
    assert order(1 / 3) == [0] + [n for n in pareto if n != 0][:2]
    assert order(0.5)[:2] == [0, 3] and order(0.5)[2] == next(n for n in pareto if n not in (0, 3))
    assert order(1.0) == [0, 3, 7] == order(0.0, costs=())
    assert order(0.5, costs=()) == [0, 3, 7]
    three = SearchConfig(budget=Budget(params=1000), strategy="sh", score_share=0.5)
    assert three.resolved(None, 0.0).score_share == 0.5  # as given beats the resumed study's
    assert three.strategy_attr == {"name": "sh", "eta": 3, "rungs": 3, "score_share": 0.5}
    assert rungs_from_attr(three.strategy_attr) == Rungs(3, 3, 0.5)
    # 0 leaves the attribute as studies made before the share existed stored it; not given,
    # it is the resumed study's, else the default
    zero = SearchConfig(budget=Budget(params=1000), strategy="sh", score_share=0.0)
    assert zero.strategy_attr == {"name": "sh", "eta": 3, "rungs": 3}
    unset = SearchConfig(budget=Budget(params=1000), strategy="sh")
    assert unset.resolved(None, 0.25).score_share == 0.25
    assert unset.resolved(None).score_share == DEFAULT_SCORE_SHARE
    assert rungs_from_attr({"name": "sh", "eta": 3, "rungs": 3}) == Rungs(3, 3, 0.0)
    rungs = Rungs(eta=3, count=2, score_share=1.0)
    assert [t.number for t in promotable(results, ["val_loss", "params", "macs"], rungs)] == [
        0, 3, 7]
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(StudyError, match="--score-share must be a number from 0 to 1"):
            SearchConfig(budget=Budget(params=1000), strategy="sh", score_share=bad)


def test_the_sampler_ranks_a_rung_by_the_score_and_the_pareto_order_in_turns() -> None:
    """What the sh sampler models follows the study's score share: within a rung, every first
    ``i`` candidates hold ``ceil(i * share)`` taken by the best scores, so TPE's good group (its
    first ``ceil(0.1 n)``) holds that share of the most accurate designs, whatever its size."""
    results = _mixed_rung()
    pareto = [t.number for t in pareto_order(results, "val_loss")]
    by_score = [t.number for t in pareto_order(results, "val_loss", ())]
    assert pareto == [0, 1, 6, 8, 2, 5, 7, 3, 4] and by_score == [0, 3, 7, 4, 1, 6, 2, 5, 8]

    def order(share: float) -> list[int]:
        return [t.number for t in mixed_order(results, "val_loss", ("params", "macs"), share)]

    assert order(0.0) == pareto and order(1.0) == by_score
    half = order(0.5)
    assert sorted(half) == sorted(pareto)
    for i in range(1, len(half) + 1):  # each prefix: the ceil(i / 2) best scores, and the
        first = math.ceil(i / 2)         # Pareto order's best i - ceil(i / 2)
        assert set(by_score[:first]) | set(pareto[:i - first]) <= set(half[:i])
    # by score 0, Pareto 1, score 3, Pareto 6, score 7, Pareto 8, score 4, Pareto 2, score 5
    assert half == [0, 1, 3, 6, 7, 8, 4, 2, 5]
    assert order(0.25)[:5] == [0, 1, 6, 8, 3]  # a score pick at 1 and 5
    rungs = Rungs(eta=3, count=2, score_share=0.5)
    ranked = candidate_ranking(results, ["val_loss", "params", "macs"], rungs)
    assert [t.number for t in ranked] == half
    assert candidate_ranking(results, ["val_loss", "params", "macs"], Rungs(3, 2)) == \
        pareto_order(results, "val_loss")


def test_promotable_skips_promoted_trials_and_takes_the_highest_rung_first() -> None:
    rungs = Rungs(eta=2, count=3)
    rung0 = [_result(i, 0.1 * (i + 1), 100, 100) for i in range(4)]  # 0 then 1 are best
    rung1 = [_result(10, 0.2, 100, 100, rung=1), _result(11, 0.1, 100, 100, rung=1)]
    for child, parent in ((10, 0), (11, 1)):
        rung1[child - 10].user_attrs["promoted_from"] = parent
    order = promotable([*rung0, *rung1], ["val_loss", "params", "macs"], rungs)
    assert [t.number for t in order] == [11]  # rung 1's best; rung 0's top two are promoted
    waiting = _result(12, 0.0, 100, 100, rung=2)
    waiting.user_attrs["promoted_from"] = 11
    assert promotable([*rung0, *rung1, waiting], ["val_loss", "params", "macs"], rungs) == []


def test_reference_designs_are_always_promoted() -> None:
    """A reference design goes on to the top rung even when it ranks last in its rung, so the
    front shows the classic designs at the whole schedule."""
    rungs = Rungs(eta=3, count=3)
    rung0 = [_result(i, 0.1 * (i + 1), 100, 100) for i in range(6)]  # 0 and 1 are the top third
    rung0[5].user_attrs["reference"] = "standard"
    order = promotable(rung0, ["val_loss", "params", "macs"], rungs)
    assert [t.number for t in order] == [0, 1, 5]
    rung1 = _result(10, 0.9, 100, 100, rung=1)
    rung1.user_attrs.update(reference="standard", promoted_from=5)
    children = [_result(20 + p, 0.1, 100, 100, rung=1) for p in (0, 1)]
    for child, parent in zip(children, (0, 1), strict=True):
        child.user_attrs["promoted_from"] = parent
    order = promotable([*rung0, rung1, *children], ["val_loss", "params", "macs"], rungs)
    # rung 1's top third (20), then the reference, last of the three in rung 1
    assert [t.number for t in order] == [20, 10]


def test_candidate_ranking_holds_each_design_once_by_how_far_it_got() -> None:
    """What the sh sampler models: a candidate's furthest result, the further the better, and
    by Pareto place within a rung; a promoted design is not also counted at its lower rungs."""
    rungs = Rungs(eta=3, count=3)
    objectives = ["val_loss", "params", "macs"]
    rung0 = [_result(i, 0.1 * (i + 1), 100 * (6 - i), 100) for i in range(6)]  # one front
    rung1 = [_result(10, 0.9, 600, 100, rung=1), _result(11, 0.5, 500, 100, rung=1)]
    for child, parent in zip(rung1, (0, 1), strict=True):
        child.user_attrs.update(promoted_from=parent, candidate=parent)
    top = _result(20, 0.95, 500, 100, rung=2, state=TrialState.COMPLETE)
    top.user_attrs.update(promoted_from=11, candidate=1)
    ranked = candidate_ranking([*rung0, *rung1, top], objectives, rungs)
    # The top-rung design first, whatever its loss; then rung 1's; then rung 0's own order.
    rest = [t.number for t in pareto_order(rung0[2:], "val_loss")]
    assert [t.number for t in ranked] == [20, 10, *rest]
    assert sorted(rest) == [2, 3, 4, 5]
    # An over-budget candidate and a running one hold no result.
    over = _result(30, 0.0, 10**6, 100, state=TrialState.COMPLETE)
    over.user_attrs["rejected"] = "over budget"
    running = _result(31, 0.0, 100, 100, state=TrialState.RUNNING)
    assert candidate_ranking([*rung0, over, running], objectives, rungs) == \
        pareto_order(rung0, "val_loss")


def test_only_one_of_many_concurrent_workers_wins_a_promotion(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    study = optuna.create_study(storage=make_storage(url), study_name="s",
                                directions=["minimize"] * 3)
    study.add_trial(_result(0, 0.1, 100, 100))
    parent = study.trials[0]
    for round_ in range(3):  # a fresh parent each round: the race starts from scratch
        if round_:
            study.add_trial(_result(0, 0.1, 100, 100))
            parent = study.trials[-1]
        barrier, wins = threading.Barrier(6), []

        def worker(barrier=barrier, wins=wins, parent=parent) -> None:
            storage = make_storage(url)
            own = optuna.load_study(study_name="s", storage=storage)
            barrier.wait()
            wins.append(promote(own, storage, parent))

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False] * 5 + [True], wins
        children = [t for t in study.get_trials(deepcopy=False)
                    if t.user_attrs.get("promoted_from") == parent.number]
        assert len(children) == 1 and children[0].state == TrialState.WAITING
        assert children[0].system_attrs["fixed_params"] == parent.params  # enqueued
        assert children[0].user_attrs["rung"] == 1
    # The claims are gone: nothing but the study is left in the storage.
    names = [s.study_name for s in optuna.get_all_study_summaries(make_storage(url))]
    assert names == ["s"] and claim_name("s", 0) == "s:promote:0"


# -- continuing from a checkpoint ---------------------------------------------------------------


def test_training_in_pieces_through_checkpoints_equals_one_run(tmp_path: Path) -> None:
    splits = load_splits("digits", "data", split_seed=0)
    info = splits.info
    bound = BoundSpace(load_space("digits-tiny"), info.in_channels, info.num_classes,
                       info.input_size)
    arch = bound.sample(random.Random(1))
    config = TrainConfig(epochs=2, augment=True, batch_size=50)

    def trainer() -> Trainer:
        torch.manual_seed(0)
        model = build(arch, info.in_channels, info.num_classes, info.input_size)
        return Trainer(model, splits.train, config, seed=7)

    whole = trainer()
    whole.train_steps(whole.total_steps)
    pieces = trainer()
    for until in (5, pieces.steps_per_epoch + 3, pieces.total_steps):  # mid-epoch stops
        pieces.train_steps(until)
        torch.save(pieces.state_dict(), tmp_path / "c.pt")
        pieces = trainer()
        pieces.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=False))
    assert pieces.step == whole.step == whole.total_steps and pieces.epoch == 2
    for a, b in zip(whole.model.state_dict().values(), pieces.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_sh_search_promotes_continues_and_keeps_every_rung(tmp_path: Path) -> None:
    splits = load_splits("digits", "data", split_seed=0)
    url = f"sqlite:///{tmp_path / 'sh.db'}"
    config = SearchConfig(**DIGITS, trials=9, train=TrainConfig(epochs=3), storage=url,
                          strategy="sh", eta=3, rungs=3, study="sh")
    run = run_search(config, splits=splits)
    study = run.study
    trials = study.get_trials(deepcopy=False)
    by_rung = collections.Counter(t.user_attrs["rung"] for t in trials if "rung" in t.user_attrs
                                  and t.state in (TrialState.PRUNED, TrialState.COMPLETE))
    # 9 candidates; the final top third of each rung went on. Asynchronous, a result promoted
    # while in the top third of the results so far stays promoted when later results push it
    # out, so how many did depends on the order of the values (and so on the CPU's kernels).
    promoted = promoted_numbers(trials)
    share = rungs_from_attr(study.user_attrs["strategy"]).score_share
    assert share == DEFAULT_SCORE_SHARE
    for rung in range(2):
        results = [t for t in trials if is_rung_result(t, rung, 2)]
        top = promotion_order(results, "val_loss", 3, ("params", "macs"), share)
        assert {t.number for t in top} <= promoted
    assert by_rung[0] == 9 and 3 <= by_rung[1] <= 7 and by_rung[1] // 3 <= by_rung[2]
    top = [t for t in trials if t.state == TrialState.COMPLETE and "rejected" not in t.user_attrs]
    assert len(top) == by_rung[2] == run.completed
    assert {t.number for t in front(study)} <= {t.number for t in top}
    winner = min(top, key=lambda t: t.values[0])
    history = winner.user_attrs["rung_results"]
    assert [h["rung"] for h in history] == [0, 1, 2]
    assert [h["steps"] for h in history] == [Rungs(3, 3).steps(r, history[-1]["steps"])
                                             for r in range(3)]
    assert winner.user_attrs["resumed"] is True
    assert winner.values[0] == pytest.approx(history[-1]["val_loss"], abs=1e-5)
    # Rung 0 of the chain is the candidate the others started from.
    parent = study.trials[winner.user_attrs["promoted_from"]]
    grandparent = study.trials[parent.user_attrs["promoted_from"]]
    assert grandparent.number == winner.user_attrs["candidate"]
    assert parent.user_attrs["rung_results"] == history[:2]
    # A lower-rung trial is "promoted" when a later trial continues its candidate, else
    # "stopped": the stopped ones are the candidates that ended below the top rung.
    assert all(trial_kind(t, promoted) == PROMOTED for t in (parent, grandparent))
    assert trial_kind(parent) == STOPPED  # without the study's promotions it cannot tell
    stopped = by_rung[0] - by_rung[2]  # every candidate but those that reached the top rung
    counts = trial_counts(study)
    assert counts[STOPPED] == stopped and counts[PROMOTED] == by_rung[1] + by_rung[2]
    overview = study_overview(study)  # the report says which results its front holds
    assert "top-rung trials only" in overview.details["strategy"]
    assert overview.counts[STOPPED] == stopped and overview.front_size == len(front(study))
    assert overview.counts[PROMOTED] == counts[PROMOTED]
    # Continued from checkpoints, the top rung's result is that of one uninterrupted run.
    arch = Architecture.from_dict(winner.user_attrs["architecture"])
    info = splits.info
    seed = config.seed * 100_003 + grandparent.number
    torch.manual_seed(seed)
    straight = train_model(build(arch, info.in_channels, info.num_classes, info.input_size),
                           splits.train, splits.val, TrainConfig(epochs=3, hopeless_factor=0),
                           num_classes=10, seed=seed)
    assert straight.final_loss == pytest.approx(winner.user_attrs["val_loss"], abs=2e-5)
    # Finished: the checkpoints are gone; the same command again trains nothing.
    assert not (tmp_path / "sh.checkpoints").exists()
    again = run_search(config, splits=splits)
    assert again.new_trials == 0 and len(again.study.trials) == len(trials)
    # The strategy is part of what a study is: a full run cannot join it.
    with pytest.raises(StudyError, match="strategy"):
        run_search(SearchConfig(**DIGITS, trials=9, train=TrainConfig(epochs=3), storage=url,
                                study="sh"), splits=splits)


# -- real workers -------------------------------------------------------------------------------

SH = ["search", "--dataset", "digits", "--space", "digits-tiny", "--budget", "80k",
      "--sampler", "random", "--no-reference-designs", "--quiet", "--strategy", "sh",
      "--eta", "3", "--rungs", "2"]


def _children(study: optuna.Study) -> collections.Counter:
    """Promotions per parent, leaving out retries of a killed trial and recorded duplicates."""
    return collections.Counter(
        t.user_attrs["promoted_from"] for t in study.get_trials(deepcopy=False)
        if "promoted_from" in t.user_attrs and "failed_trial" not in t.system_attrs
        and "duplicate" not in t.user_attrs)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_never_promote_a_trial_twice(tmp_path: Path) -> None:
    r = forked.run([*SH, "--trials", "6", "--epochs", "1", "--workers", "2", "--study", "w"],
                   tmp_path, ENV, timeout=240)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    study = optuna.load_study(study_name="w", storage=make_storage(
        f"sqlite:///{tmp_path / 'ssc-nas.db'}"))
    trials = study.get_trials(deepcopy=False)
    assert len({t.user_attrs.get("worker") for t in trials if "worker" in t.user_attrs}) == 2
    children = _children(study)
    # Asynchronous: a trial is promoted while it is in the top third of the results so far, so
    # there are at least 6 // 3 promotions, and never two of one trial.
    assert sum(children.values()) >= 2 and set(children.values()) == {1}, children
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_workers_rung_is_rerun_from_the_parent_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ssc-nas.db'}"
    args = [*SH, "--trials", "3", "--epochs", "12", "--subset", "0.5", "--heartbeat", "1",
            "--study", "k"]
    first = forked.start(args, tmp_path, ENV)
    try:
        deadline = time.monotonic() + 180
        victim = None
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="k", storage=make_storage(url))
            except KeyError:
                continue
            victim = next((t for t in study.get_trials(deepcopy=False,
                                                        states=(TrialState.RUNNING,))
                           if "promoted_from" in t.user_attrs and "worker" in t.user_attrs),
                          None)
        assert victim is not None, "no promoted trial started training in time"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    parent = victim.user_attrs["promoted_from"]
    assert checkpoint_path(tmp_path / "ssc-nas.checkpoints", "k", parent).exists()
    second = forked.run(args, tmp_path, ENV, timeout=240)
    assert second.returncode == 0, second.stderr
    study = optuna.load_study(study_name="k", storage=make_storage(url))
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["promoted_from"] == parent and retry.user_attrs["resumed"] is True
    assert [h["rung"] for h in retry.user_attrs["rung_results"]] == [0, 1]
    assert _children(study) == {parent: 1}
    assert not (tmp_path / "ssc-nas.checkpoints" / "k").exists()
