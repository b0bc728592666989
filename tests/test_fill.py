"""``width: fill``: the width is not searched but the widest that keeps a design in budget."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ssc_nas.budget import Budget
from ssc_nas.errors import SpaceError
from ssc_nas.search import SearchConfig, run_search
from ssc_nas.search.references import reference_architectures
from ssc_nas.spaces import BoundSpace, load_space
from ssc_nas.spaces.schema import FILL_RANGE, FILL_STEP, parse_space
from ssc_nas.train import TrainConfig

MNIST = (1, 10, (28, 28))
SPACE = {"family": "resnet20", "share": "stage", "width": "fill",
         "knobs": {"groups": [1, 2, 4, "depthwise"], "spatial_fraction": [1.0, 0.25],
                   "pointwise_fraction": [0.0, 1.0]}}


def _wider_valid(bound: BoundSpace, arch, values) -> list[float]:
    return [w for w in bound.widths if w > arch.width and bound.valid_at(w, values)]


def test_fill_parses_to_a_grid_of_sixteenths_and_round_trips() -> None:
    space = parse_space(SPACE)
    assert space.fill and space.width[0] == FILL_RANGE[0] and space.width[-1] == FILL_RANGE[1]
    steps = [b - a for a, b in zip(space.width, space.width[1:], strict=False)]
    assert all(abs(s - FILL_STEP) < 1e-12 for s in steps)
    assert space.to_dict()["width"] == {"fill": [0.25, 4.0]}
    stored = {k: v for k, v in space.to_dict().items() if k != "name"}
    assert parse_space(stored) == space  # what a worker reads back from the study
    narrow = parse_space({**SPACE, "width": {"fill": [0.5, 1]}})
    assert narrow.width == tuple(k / 16 for k in range(8, 17))
    assert narrow.describe_width() == "fill: 0.5-1 in steps of 0.0625"


@pytest.mark.parametrize("width", [{"fill": [2, 1]}, {"fill": 1}, {"fill": [0, 1]}, "wide",
                                   {"fill": [0.25, 1], "x": 1}])
def test_bad_fill_is_a_clear_error(width) -> None:
    with pytest.raises(SpaceError, match="width"):
        parse_space({**SPACE, "width": width}, "s.yaml")


@pytest.mark.parametrize("budget", ["30k", "0.2M", "0.5M"])
def test_sampled_designs_fill_the_budget(budget: str) -> None:
    """Every design fits, and no wider width at which its knobs are valid would."""
    bound = BoundSpace(parse_space(SPACE), *MNIST)
    limit = Budget.parse(budget)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        arch = bound.suggest(trial, limit)
        assert "width" not in trial.params  # derived, not searched
        values = bound.values_of(trial.params)
        assert bound.valid_at(arch.width, values)
        assert limit.fits(bound.cost(arch)), arch.width
        for wider in _wider_valid(bound, arch, values):
            assert not limit.fits(bound.cost(bound.architecture(wider, values))), wider
        assert arch == bound.from_params(trial.params, budget=limit)


def test_groups_valid_only_at_some_widths_are_kept_and_respected() -> None:
    """Channel counts round to multiples of 8, so groups 16 divides every stage at x1 (16, 32,
    64 channels) but not at x1.0625 (stage 3: 72): the choice stays in the space and a design
    with it never lands on a width where it is invalid, even when that width would fit."""
    bound = BoundSpace(parse_space({**SPACE, "knobs": {"groups": [1, 16]}}), *MNIST)
    assert 16 in bound.param_groups[-1].choices["groups"]
    values = {g.key: {"groups": 16, "pattern": "full", "spatial_fraction": 1.0,
                      "pointwise_fraction": 0.0, "phases": "cover"} for g in bound.param_groups}
    assert bound.valid_at(1.0, values) and not bound.valid_at(1.0625, values)
    above = min(w for w in bound.widths if w > 1.0 and bound.valid_at(w, values))
    at_1 = bound.cost(bound.architecture(1.0, values)).params
    at_above = bound.cost(bound.architecture(above, values)).params
    assert bound.fill_width(values, Budget(at_above - 1)) == 1.0 and at_1 < at_above - 1
    assert bound.fill_width(values, Budget(at_above)) == above
    assert bound.fill_width(values) == max(w for w in bound.widths if bound.valid_at(w, values))


def test_widths_that_plan_the_same_network_are_kept_once() -> None:
    bound = BoundSpace(parse_space(SPACE), *MNIST)
    plans = [tuple((s.in_channels, s.out_channels) for s in bound.plans[w].slots)
             for w in bound.widths]
    assert len(set(plans)) == len(plans) < len(bound.space.width)
    assert bound.widths[-1] == 4.0


def test_reference_designs_fill_the_budget() -> None:
    bound = BoundSpace(load_space("resnet20-ssc-fill"), *MNIST)
    budget = Budget.parse("0.5M")
    refs = reference_architectures(bound, budget)
    assert set(refs) >= {"standard", "groupwise", "hetconv-p4", "ssc-uniform"}
    for name, (params, arch) in refs.items():
        assert "width" not in params, name
        assert budget.fits(bound.cost(arch))
        values = bound.values_of(params)
        for wider in _wider_valid(bound, arch, values):
            assert not budget.fits(bound.cost(bound.architecture(wider, values))), name
    assert bound.cost(refs["standard"][1]).params > 0.95 * 500_000  # x1 on the grid: 272k


@pytest.mark.parametrize("space", ["resnet20-ssc-stage-fill", "resnet20-ssc-fill"])
@pytest.mark.parametrize("budget", ["30k", "0.1M"])
def test_reference_designs_skip_widths_where_they_are_invalid(space: str, budget: str) -> None:
    """At a tight budget the widest widths are over it, and some of them round a stage's
    channels so that depthwise does not divide them (x3.875: 128 in, 248 out): the
    depthwise-separable design lands on the widest valid width that fits, with no error
    (it crashed both shipped fill spaces below ~0.5M until 2026-11-30)."""
    bound = BoundSpace(load_space(space), *MNIST)
    dws = {g.key: {"groups": "depthwise", "pattern": "full", "spatial_fraction": 1.0,
                   "pointwise_fraction": 0.0, "phases": "cover"} for g in bound.param_groups}
    assert not bound.valid_at(3.875, dws)
    limit = Budget.parse(budget)
    refs = reference_architectures(bound, limit)
    assert set(refs) == {"standard", "groupwise", "depthwise-separable", "hetconv-p4",
                         "ssc-uniform"}
    for name, (params, arch) in refs.items():
        values = bound.values_of(params)
        assert bound.valid_at(arch.width, values), name
        assert limit.fits(bound.cost(arch)), name
        assert arch.width == bound.fill_width(values, limit), name  # as a sampled design
        for wider in _wider_valid(bound, arch, values):
            assert not limit.fits(bound.cost(bound.architecture(wider, values))), name


def test_samples_without_a_budget_span_the_widths() -> None:
    bound = BoundSpace(parse_space(SPACE), *MNIST)
    rng = random.Random(0)
    widths = {bound.sample(rng).width for _ in range(400)}
    assert len(widths) > 40 and min(widths) < 0.5 and max(widths) > 3.5


def test_search_on_a_fill_space(tmp_path: Path) -> None:
    """A real digits search: trained designs are in budget and use most of it, reference
    designs included; a worker reading the study back gets the same space."""
    space = tmp_path / "fill.yaml"
    space.write_text("family: resnet20\nshare: stage\nwidth: {fill: [0.25, 1.5]}\n"
                     "knobs:\n  groups: [1, 2]\n  spatial_fraction: [1.0, 0.5]\n")
    budget = Budget(40_000)
    run = run_search(SearchConfig(
        budget=budget, space=str(space), dataset="digits", trials=6,
        train=TrainConfig(epochs=1), sampler="random", storage=f"sqlite:///{tmp_path / 's.db'}"))
    trained = [t for t in run.study.get_trials(states=(TrialState.COMPLETE,))
               if "rejected" not in t.user_attrs]
    assert len(trained) == 6 and {name for name, _ in run.references} >= {"standard"}
    stored = {k: v for k, v in run.study.user_attrs["space"].items() if k != "name"}
    bound = BoundSpace(parse_space(stored), 1, 10, (8, 8))
    assert bound.space.fill
    for t in trained:
        assert "width" not in t.params
        assert t.user_attrs["params"] <= 40_000
        width = t.user_attrs["architecture"]["width"]
        values = bound.values_of(t.params)
        for wider in [w for w in bound.space.width if w > width and bound.valid_at(w, values)]:
            assert not budget.fits(bound.cost(bound.architecture(wider, values)))
