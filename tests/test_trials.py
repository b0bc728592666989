"""The trial runner, checked through what Optuna's samplers actually read from the study.

Each test runs real (tiny) searches on ``digits``: trials train for one epoch on a few images.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState, create_trial

from ssc_nas.budget import Budget
from ssc_nas.data import dataset_info, load_splits
from ssc_nas.search import SearchConfig, make_storage, run_search
from ssc_nas.search.rungs import mixed_order, pareto_order
from ssc_nas.search.samplers import BudgetTPESampler, HalvingTPESampler
from ssc_nas.search.trials import TrialRunner
from ssc_nas.spaces import BoundSpace, load_space
from ssc_nas.train import TrainConfig
from tests import forked

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SPACE = "digits-tiny"
TINY = TrainConfig(epochs=1, batch_size=32)
optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def splits():
    return load_splits("digits", "data", subset=0.05, split_seed=0)


@pytest.fixture(scope="module")
def bound() -> BoundSpace:
    info = dataset_info("digits")
    return BoundSpace(load_space(SPACE), info.in_channels, info.num_classes, info.input_size)


def config(tmp_path: Path, **kw) -> SearchConfig:
    # fp32 proxies: under --amp auto each new study times bf16 against float32, and on a Xeon
    # with AMX that probe measured 0.91-2.21x on this space in four studies in a row, so two
    # studies of one test could train in different precisions and their results differ
    base = {"budget": Budget(80_000), "space": SPACE, "dataset": "digits", "train": TINY,
            "subset": 0.05, "sampler": "random", "storage": f"sqlite:///{tmp_path / 's.db'}",
            "device": "cpu", "trials": 3, "amp": "off"}
    return SearchConfig(**{**base, **kw})


def runner(study: optuna.Study, bound: BoundSpace, splits, target: int | None,
           **kw) -> TrialRunner:
    kw.setdefault("budget", Budget(80_000))
    return TrialRunner(study, bound, kw.pop("budget"), ("accuracy", "params", "macs"), TINY,
                       splits, 0, torch.device("cpu"), 32, target, None, None, **kw)


def feasible(t: FrozenTrial) -> bool:
    return all(v <= 0 for v in t.constraints.values())


def trained(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that were trained: COMPLETE, within budget and with a training curve."""
    return [t for t in study.get_trials(states=(TrialState.COMPLETE,))
            if feasible(t) and "val_accuracy_curve" in t.user_attrs]


# -- item 1: reference designs are trained, never prescreened away ----------------------------


def test_prescreen_trains_every_reference_design_first(tmp_path: Path, splits) -> None:
    run = run_search(config(tmp_path, trials=6, prescreen="synflow", prescreen_k=3),
                     splits=splits)
    study = run.study
    names = [name for name, _ in run.references]
    assert len(names) >= 3
    refs = [t for t in study.trials if t.user_attrs.get("reference")]
    assert sorted(t.user_attrs["reference"] for t in refs) == sorted(names)  # each popped once
    done = trained(study)
    assert {t.user_attrs.get("reference") for t in done} >= set(names)
    assert not [t for t in refs if "prescreened_out" in t.user_attrs]
    assert [t for t in study.trials if "prescreened_out" in t.user_attrs]  # it did prescreen
    first = sorted(done, key=lambda t: t.number)[: len(names)]
    assert all(t.user_attrs.get("reference") for t in first)


# -- item 2: TPE's good group is decided among trained trials ---------------------------------


def _tpe_split(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Optuna's multi-objective TPE split, reproduced: the trials it reads are COMPLETE and
    PRUNED ones; the good group is the best ``gamma(n)`` of them, feasible COMPLETE trials by
    non-domination first, then PRUNED, then infeasible ones."""
    counted = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    gamma = getattr(study.sampler, "good_group_size", lambda n: math.ceil(0.1 * n))
    n_below = gamma(len(counted))
    complete = [t for t in counted if feasible(t) and t.state == TrialState.COMPLETE]
    signs = [-1 if d == optuna.study.StudyDirection.MAXIMIZE else 1 for d in study.directions]
    ranked: list[FrozenTrial] = []
    rest = list(complete)
    while rest:  # non-domination fronts
        front = [a for a in rest if not any(
            all(s * x <= s * y for s, x, y in zip(signs, b.values, a.values, strict=True))
            and b.values != a.values for b in rest)]
        ranked += sorted(front, key=lambda t: -t.values[0])
        rest = [t for t in rest if t not in front]
    others = [t for t in counted if t not in complete]
    order = ranked + others
    return order[:n_below], order[n_below:]


def test_tpe_good_group_is_split_among_trained_trials_with_prescreen(tmp_path: Path,
                                                                     splits) -> None:
    # 4 candidates per trained trial: 36 prescreened out (FAIL) beside the 12 trained. Were
    # they counted (PRUNED), Optuna's own gamma would make ceil(0.1 * 48) = 5 trials good, not 2.
    run = run_search(config(tmp_path, trials=12, sampler="tpe", prescreen="synflow",
                            prescreen_k=4, budget=Budget(10**7), reference_designs=False),
                     splits=splits)
    study = run.study
    done = {t.number for t in trained(study)}
    assert len(done) == 12
    losers = [t for t in study.trials if "prescreened_out" in t.user_attrs]
    assert len(losers) == 3 * 12  # nothing is over a budget of 10M
    good, bad = _tpe_split(study)
    assert {t.number for t in good} < done  # a strict subset: some trained trials are "bad"
    assert len(good) == math.ceil(0.1 * len(done))
    assert done & {t.number for t in bad}


def test_tpe_good_group_is_split_among_trained_trials_when_most_are_over_budget(
        tmp_path: Path, splits, bound: BoundSpace) -> None:
    low, _ = bound.cost_bounds()
    run = run_search(config(tmp_path, trials=12, sampler="tpe", reference_designs=False,
                            budget=Budget(int(low.params * 1.4))), splits=splits)
    study = run.study
    done = {t.number for t in trained(study)}
    over = [t for t in study.trials if "rejected" in t.user_attrs]
    assert len(over) > 3 * len(done)  # the case: rejected candidates outnumber trained ones
    good, bad = _tpe_split(study)
    assert {t.number for t in good} <= done and len(good) == math.ceil(0.1 * len(done))
    assert done & {t.number for t in bad}


def test_sh_tpe_models_each_candidate_once_ranked_by_how_far_it_got(
        tmp_path: Path, splits, bound: BoundSpace) -> None:
    """Under ``--strategy sh`` TPE reads one trial per candidate (HalvingTPESampler's view),
    not every rung's PRUNED trial without values."""
    low, _ = bound.cost_bounds()
    budget = Budget(int(low.params * 1.4))
    run = run_search(config(tmp_path, trials=12, sampler="tpe", strategy="sh", eta=3, rungs=2,
                            reference_designs=False, budget=budget), splits=splits)
    study = run.study
    assert isinstance(study.sampler, HalvingTPESampler)
    probe = study.ask()  # another worker's fresh candidate, still at rung 0
    bound.suggest(probe, budget)
    other = study.ask()  # its sampling builds the view this asserts on
    view = study.sampler.view(study, study.trials[other.number])
    rows = view.get_trials(deepcopy=False)
    ranked = sorted((t for t in rows if t.state == TrialState.COMPLETE and feasible(t)),
                    key=lambda t: t.value)
    assert [t.value for t in ranked] == list(range(12))  # each of the 12 candidates once
    top = trained(study)  # the top rung, COMPLETE
    assert len(top) == run.completed >= 12 // 3
    assert sorted(map(_key, ranked[:len(top)])) == sorted(map(_key, top))  # top rung first
    # in turns by the score and in Pareto order, at the study's score share (0.5 by default)
    assert study.user_attrs["strategy"]["score_share"] == 0.5
    mixed = [_key(t) for t in mixed_order(top, "val_loss", ("params", "macs"), 0.5)]
    assert [_key(t) for t in ranked[:len(top)]] == mixed
    assert mixed != [_key(t) for t in pareto_order(top, "val_loss")]  # so the share shows
    over = [t for t in study.trials if "rejected" in t.user_attrs]
    assert over and sum(not feasible(t) for t in rows) == len(over)
    (liar,) = [t for t in rows if t.state == TrialState.PRUNED]  # the running candidate
    assert liar.params == study.trials[probe.number].params
    assert len(rows) == 12 + len(over) + 1
    assert len(rows) >= 10  # so TPE modelled, past its 10 random start-up trials
    _replay_views(study)


def _replay_views(study: optuna.Study) -> None:
    """Trial by trial, the view a sampler extends from its last one (the over-budget
    candidates in a row) holds what one built afresh holds; and both ways are taken."""
    def rows(view: optuna.Study) -> list[tuple]:
        return [(t.state, t.values, t.params, t.constraints)
                for t in view.get_trials(deepcopy=False)]

    replay = optuna.create_study(directions=study.directions)
    for key in ("strategy", "objectives"):
        replay.set_user_attr(key, study.user_attrs[key])
    sampler, nobody = HalvingTPESampler(seed=0), create_trial(state=TrialState.RUNNING)
    last: list[tuple] = []
    extended = 0
    trials = study.get_trials(deepcopy=False)
    for i, t in enumerate(trials):
        replay.add_trial(t)
        sampler.before_trial(replay, nobody)
        view = sampler.view(replay, nobody)
        extended += len(now := rows(view)) == len(last) + 1 and now[:-1] == last
        last = now
        if i % 10 == 0 or i == len(trials) - 1:
            fresh = HalvingTPESampler(seed=0).view(replay, nobody)
            assert last == rows(fresh), i
            # and TPE samples the same from both (a Study caches the trials its sampler read)
            space = sampler.infer_relative_search_space(replay, nobody)
            tpe = [BudgetTPESampler(seed=0, multivariate=True, n_startup_trials=10,
                                    constant_liar=False)
                   for _ in range(2)]
            assert (tpe[0].sample_relative(view, nobody, space)
                    == tpe[1].sample_relative(fresh, nobody, space)), i
    assert 0 < extended < len(trials) - 1


def _key(t: FrozenTrial) -> str:
    return repr(sorted(t.params.items()))


def test_a_queued_trial_popped_by_two_workers_is_trained_by_one(tmp_path: Path, splits,
                                                                  bound: BoundSpace) -> None:
    """Optuna pops a queued trial by a read, then a write; on SQLite two workers can both pop
    it (seen in CI). The first to claim it trains it; the other asks again."""
    storage = make_storage(f"sqlite:///{tmp_path / 'q.db'}")
    study = optuna.create_study(storage=storage, study_name="q", directions=["maximize",
                                                                            "minimize",
                                                                            "minimize"])
    study.enqueue_trial({}, user_attrs={"reference": "standard"})
    first = runner(study, bound, splits, target=None, storage=storage)
    second = runner(study, bound, splits, target=None, storage=storage)
    popped = first._ask()
    assert popped.number == 0 and "q:run:0" in optuna.get_all_study_names(storage)
    # The second worker's read saw it WAITING too: put it back to what that read saw.
    storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("q"), 0), state=TrialState.WAITING)
    other = second._ask()
    assert other.number == 1 and not other.user_attrs  # a fresh trial instead
    first._tell(popped, state=TrialState.FAIL)
    assert "q:run:0" not in optuna.get_all_study_names(storage)  # the claim is released
    second._tell(other, state=TrialState.FAIL)


# -- item 3: a surplus trial does not empty the intersection search space ---------------------


def test_surplus_trial_keeps_every_knob_in_the_intersection_search_space(
        tmp_path: Path, splits, bound: BoundSpace) -> None:
    run = run_search(config(tmp_path, trials=2, reference_designs=False), splits=splits)
    study = run.study
    knobs = set(optuna.search_space.IntersectionSearchSpace().calculate(study))
    assert len(knobs) > 3
    other = study.ask()  # another worker holds the last trial of a target of 3
    job = runner(study, bound, splits, target=3)
    job.step()  # this worker races it to the same slot
    (surplus,) = [t for t in study.trials if "surplus" in t.user_attrs]
    assert surplus.state == TrialState.FAIL and not surplus.params
    assert set(optuna.search_space.IntersectionSearchSpace().calculate(study)) == knobs
    assert set(optuna.search_space.IntersectionSearchSpace(include_pruned=True)
               .calculate(study)) == knobs
    study.tell(other, state=TrialState.FAIL)


# -- item 5: NSGA-II learns from over-budget candidates ---------------------------------------


def _over_budget_share(study: optuna.Study, skip: int) -> float:
    later = sorted(study.trials, key=lambda t: t.number)[skip:]
    return sum("rejected" in t.user_attrs for t in later) / len(later)


def test_nsga2_sees_over_budget_candidates_and_proposes_fewer_than_random(
        tmp_path: Path, splits) -> None:
    budget = Budget(20_000)  # about 23 % of random digits-tiny designs fit
    shares = {}
    for sampler in ("nsga2", "random"):
        run = run_search(config(tmp_path, trials=12, sampler=sampler, budget=budget,
                                reference_designs=False, study=sampler), splits=splits)
        study = run.study
        if sampler == "nsga2":
            # NSGA-II builds its populations from COMPLETE trials: over-budget ones are there,
            # infeasible, so constrained domination ranks them below every trained trial.
            population = study.get_trials(states=(TrialState.COMPLETE,))
            assert [t for t in population if not feasible(t)]
            assert all("rejected" in t.user_attrs for t in population if not feasible(t))
        shares[sampler] = _over_budget_share(study, skip=16)  # after two generations of 8
    assert shares["nsga2"] < shares["random"], shares


# -- item 4: a killed worker's prescreen winner is failed, not left RUNNING -------------------


def _training(url: str) -> list[FrozenTrial]:
    try:
        study = optuna.load_study(study_name="kill", storage=url)
    except Exception:  # not created yet
        return []
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "worker" in t.user_attrs]


def test_killed_worker_leaves_no_trial_running_after_prescreen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "--dataset", "digits", "--space", SPACE, "--budget", "10M",
            "--epochs", "500", "--sampler", "random", "--strategy", "full", "--quiet",
            "--study", "kill",
            "--storage", url, "--prescreen", "synflow", "--prescreen-k", "4",
            "--no-reference-designs", "--heartbeat", "1", "--trials", "3", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = forked.start(args, tmp_path, env)
    deadline = time.monotonic() + 180
    held: list[FrozenTrial] = []
    while time.monotonic() < deadline and not held:
        time.sleep(0.5)
        held = _training(url)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert held, "no trial started training in time"
    time.sleep(3.5)  # two heartbeats of 1 s and then some
    study = optuna.load_study(study_name="kill", storage=make_storage(url, heartbeat=1))
    optuna.storages.fail_stale_trials(study)  # what every worker does when it starts
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.trials[held[0].number].state == TrialState.FAIL


# -- item 6: a trial popped by two workers is visible, not dropped ----------------------------


class _OtherWorkerTellsFirst:
    """A progress reporter that, as training ends here, tells the same trial from a second
    handle: what a second worker that popped the same enqueued trial on SQLite does."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    def trial_started(self, number, arch, cost) -> None:
        pass

    def batch(self, done, total) -> None:
        pass

    def trial_finished(self, number, result, cost) -> None:
        self.study.tell(number, [0.5, float(cost.params), float(cost.macs)])

    def study_progress(self, study, done) -> None:
        pass


def test_a_trial_popped_twice_is_kept_as_a_duplicate(tmp_path: Path, splits,
                                                     bound: BoundSpace) -> None:
    run = run_search(config(tmp_path, trials=1, reference_designs=False), splits=splits)
    study = run.study
    (done,) = study.get_trials(states=(TrialState.COMPLETE,))
    study.enqueue_trial(done.params, user_attrs={"reference": "again"})
    job = runner(study, bound, splits, target=2)
    job.reporter = _OtherWorkerTellsFirst(study)
    job.run()
    again = [t for t in study.trials if t.user_attrs.get("reference") == "again"]
    assert [t.state for t in again] == [TrialState.COMPLETE, TrialState.FAIL]
    assert again[0].values[0] == 0.5  # the first tell stands
    (duplicate,) = [t for t in study.trials if "duplicate" in t.user_attrs]
    assert f"trial {again[0].number} was also run" in duplicate.user_attrs["duplicate"]
    assert duplicate.params == done.params


# -- item 9: every untrained trial has one named cause, counted the same everywhere -----------


def test_causes_are_named_and_counted_once_the_same_way_everywhere(tmp_path: Path,
                                                                   splits) -> None:
    from ssc_nas.report.info import study_overview, trial_points
    from ssc_nas.search import study_rows

    cfg = config(tmp_path, trials=8, budget=Budget(60_000), prescreen="synflow",
                 prescreen_k=4)
    first = run_search(cfg, splits=splits)
    study = first.study
    losers = sum("prescreened_out" in t.user_attrs for t in study.trials)
    over = sum("rejected" in t.user_attrs for t in study.trials)
    assert losers > 0 and over > 0
    points = trial_points(study)  # the report draws each cause as itself
    assert sum(p.state == "prescreened out" for p in points) == losers
    assert sum(p.state == "over-budget" for p in points) == over
    assert all(p.accuracy is None for p in points if p.state != "feasible")
    assert study_overview(study).counts.get("prescreened out") == losers

    from ssc_nas.search.results import trial_counts, trial_kind

    for t in study.trials:
        expected = ("prescreened out" if "prescreened_out" in t.user_attrs
                    else "over budget" if "rejected" in t.user_attrs else "trained")
        assert trial_kind(t) == expected, t
    counts = trial_counts(study)
    assert (counts["over budget"], counts["prescreened out"]) == (over, losers)
    assert counts["trained"] == 8 == first.completed
    assert sum(counts.values()) == len(study.trials)
    assert first.counts == counts  # the study's counts, as every other reader gives them
    (row,) = study_rows(cfg.storage)
    assert row["counts"] == counts and row["complete"] == 8
    # a second run in the same study reports the study's counts too, not this run's
    again = run_search(SearchConfig(**{**cfg.__dict__, "trials": 9}), splits=splits)
    assert again.counts == trial_counts(again.study)
    assert again.counts["over budget"] >= counts["over budget"]


# -- Ctrl-C: the interrupted candidate is queued again and resumed as if never stopped ---------


class _CtrlC:
    """A search reporter that presses Ctrl-C (SIGINT to this process), as a user at the
    terminal would, at batch ``at`` of the first trial for which ``when`` is true."""

    def __init__(self, when: Callable[[FrozenTrial], bool], at: int = 1) -> None:
        self.when, self.at = when, at
        self.study: optuna.Study | None = None
        self.current: FrozenTrial | None = None
        self.batches = 0  # of the current trial

    def start(self, study: optuna.Study, *args: object) -> None:
        self.study = study

    def trial_started(self, number: int, *args: object) -> None:
        assert self.study is not None
        self.current, self.batches = self.study.trials[number], 0

    def trial_finished(self, *args: object) -> None: ...

    def study_progress(self, *args: object) -> None: ...

    def batch(self, done: int, total: int) -> None:  # ``done``: of the whole schedule
        self.batches += 1
        if self.current is not None and self.when(self.current) and self.batches == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _sh_config(tmp_path: Path, strategy: str, study: str) -> SearchConfig:
    # batches of 8: a few batches in a rung, so the interrupt lands inside one
    return config(tmp_path, trials=3, strategy=strategy, study=study, eta=3, rungs=2,
                  train=TrainConfig(epochs=1, batch_size=8))


@pytest.mark.parametrize("strategy", ["full", "sh"])
def test_an_interrupted_candidate_is_queued_again_and_resumed_as_if_never_stopped(
        tmp_path: Path, splits, strategy: str) -> None:
    """Ctrl-C while the second reference design trains: that trial is FAIL and
    ``interrupted``; its candidate waits in the queue (same parameters, reference name and
    candidate number, so the same seed), and the same search run again trains it to what an
    uninterrupted search gets. Before, the reference design was lost: the FAIL trial kept it
    from being enqueued again (``enqueue_trial(skip_if_exists=True)``)."""
    from ssc_nas.errors import SearchInterrupted
    from ssc_nas.search.results import INTERRUPTED, trial_counts, trial_kind

    def cfg(study: str) -> SearchConfig:
        return _sh_config(tmp_path, strategy, study)

    whole = run_search(cfg("whole"), splits=splits).study
    with pytest.raises(SearchInterrupted):
        run_search(cfg("cut"), reporter=_CtrlC(lambda t: t.number == 1), splits=splits)
    cut = optuna.load_study(study_name="cut", storage=cfg("cut").storage)
    stopped = cut.trials[1]
    assert stopped.state == TrialState.FAIL and trial_kind(stopped) == INTERRUPTED
    assert stopped.user_attrs["reference"] == "groupwise"
    (again,) = [t for t in cut.trials if t.user_attrs.get("interrupted_trial") == 1]
    assert again.state == TrialState.WAITING  # (its parameters are fixed when it is popped)
    assert again.user_attrs["reference"] == "groupwise" and again.user_attrs["candidate"] == 1
    assert trial_counts(cut)[INTERRUPTED] == 1

    run_search(cfg("cut"), splits=splits)
    cut = optuna.load_study(study_name="cut", storage=cfg("cut").storage)
    assert cut.trials[again.number].params == stopped.params

    def results(study: optuna.Study) -> dict[str, tuple]:
        return {t.user_attrs["reference"]: (t.params, t.user_attrs["val_loss_curve"])
                for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
                if "reference" in t.user_attrs and "val_loss_curve" in t.user_attrs
                and t.user_attrs.get("rung", 0) == 0}

    assert len(results(whole)) == 3  # every reference design, trained once
    assert results(cut) == results(whole)


def test_an_interrupted_promotion_is_queued_again_and_continues_from_its_parent(
        tmp_path: Path, splits) -> None:
    """``--strategy sh``: Ctrl-C in the first promotion. It waits in the queue with its rung,
    parent and candidate, and the search run again trains it from the parent's checkpoint to
    what the uninterrupted search's promotion of that candidate got."""
    from ssc_nas.errors import SearchInterrupted

    whole = run_search(_sh_config(tmp_path, "sh", "whole"), splits=splits).study
    with pytest.raises(SearchInterrupted):
        run_search(_sh_config(tmp_path, "sh", "cut"),
                   reporter=_CtrlC(lambda t: "promoted_from" in t.user_attrs), splits=splits)
    url = _sh_config(tmp_path, "sh", "cut").storage
    (stopped,) = optuna.load_study(study_name="cut", storage=url).get_trials(
        states=(TrialState.FAIL,))
    assert "queued again" in stopped.user_attrs["interrupted"]
    run_search(_sh_config(tmp_path, "sh", "cut"), splits=splits)
    cut = optuna.load_study(study_name="cut", storage=url)
    (again,) = [t for t in cut.trials if t.user_attrs.get("interrupted_trial") == stopped.number]
    for key in ("promoted_from", "rung", "candidate"):
        assert again.user_attrs[key] == stopped.user_attrs[key], key
    assert again.state == TrialState.COMPLETE and again.user_attrs["resumed"]  # from the parent

    def promotion(study: optuna.Study) -> list[float]:
        (t,) = [t for t in study.get_trials(states=(TrialState.COMPLETE,))
                if t.user_attrs.get("candidate") == stopped.user_attrs["candidate"]
                and t.user_attrs.get("rung") == stopped.user_attrs["rung"]]
        return t.user_attrs["val_loss_curve"]

    assert promotion(cut) == promotion(whole)

