"""Search spaces: every sample builds and costs what the analytic count says; budgets; errors."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch

from ssc_nas.budget import Budget, format_count
from ssc_nas.cost import Cost, count, layer_cost
from ssc_nas.errors import BudgetError, SpaceError
from ssc_nas.layers import SSCConv2d, SSCSpec
from ssc_nas.models import Architecture, architecture_cost, build, slot_spec
from ssc_nas.spaces import (
    SPACE_KNOBS,
    BoundSpace,
    ParamGroup,
    check_budget,
    feasible_share,
    load_space,
    parse_space,
    shipped_spaces,
)
from tests.inprocess import CliResult, run_cli

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted(shipped_spaces())
DIGITS = (1, 10, (8, 8))  # digits: 1 x 8 x 8 images, 10 classes
CIFAR = (3, 10, (32, 32))

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _bound(name: str, shape: tuple = DIGITS) -> BoundSpace:
    return BoundSpace(load_space(name), *shape)


def test_shipped_spaces_load() -> None:
    assert set(SPACES) >= {"vgg16-ssc", "vgg16-ssc-stage", "resnet20-ssc", "resnet20-ssc-stage",
                           "resnet56-ssc", "resnet18-ssc", "mobilenetv2-ssc", "digits-tiny"}
    for name, path in shipped_spaces().items():
        space = load_space(path)
        assert space == load_space(name)  # by name or by file
        assert space.name == name and space.source == str(path)
        assert set(space.knobs) == set(SPACE_KNOBS)
        bound = _bound(name)
        assert bound.size() > 1 and bound.param_groups


def _check_model(bound: BoundSpace, arch: Architecture) -> tuple[torch.nn.Module, Cost]:
    """``arch`` builds, runs a real forward pass to (1, classes) and costs what ``bound.cost``
    says; returns the model and its counted cost."""
    c, classes, size = bound.in_channels, bound.num_classes, bound.input_size
    model = build(arch, c, classes, size)
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.shape)))
    cost = count(model, (c, *size))  # one real eval forward pass of a (1, C, H, W) input
    hook.remove()
    assert shapes == [(1, classes)], arch.to_json()
    assert cost == bound.cost(arch), arch.to_json()
    return model, cost


def _check_samples(name: str, n: int, seed: int) -> None:
    """``n`` random samples build, run a real forward pass and cost what ``bound.cost`` says."""
    bound = _bound(name)
    rng = random.Random(seed)
    for _ in range(n):
        _check_model(bound, bound.sample(rng))


LayerKey = tuple[SSCSpec, tuple[int, int]]  # an SSC layer and the (H, W) it is fed
# What ``_check_layer`` counted, per test process: a layer checks the same in every space, and
# the spaces share many (the 1000-sample tests of the nine spaces check 30,725 layers, 15,367
# of them distinct).
_COUNTED: dict[LayerKey, Cost] = {}


def _layers(bound: BoundSpace, arch: Architecture) -> list[LayerKey]:
    """The SSC layers a built ``arch`` has, one per plan slot, with their planned inputs."""
    return [(slot_spec(s, arch.setting(s)), s.input_size) for s in bound.plans[arch.width].slots]


def _check_layer(spec: SSCSpec, size: tuple[int, int]) -> Cost:
    """The layer of ``spec`` builds, maps a (1, C, H, W) input to the spec's output shape and
    counts what ``layer_cost`` says; returns its counted cost."""
    layer = SSCConv2d.from_spec(spec)
    shapes: list[tuple[int, ...]] = []
    hook = layer.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.shape)))
    cost = count(layer, (spec.in_channels, *size))  # a real eval forward pass, as in a model
    hook.remove()
    assert shapes == [(1, spec.out_channels, *spec.output_size(size))], spec
    assert cost == layer_cost(size, **spec.to_dict()), (spec, size)
    return cost


@pytest.mark.parametrize("name", SPACES)
def test_random_samples_build_and_cost_what_the_space_says(name: str) -> None:
    _check_samples(name, 50, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", SPACES)
def test_1000_random_samples_build_and_cost_what_the_space_says(name: str) -> None:
    """What ``_check_samples(name, 1000, seed=0)`` checks, without building a layer twice.

    A built model is its width's fixed modules (stem, BatchNorms, classifier; the family's
    module class builds them from the plan alone, so they are the same for every sample of one
    width) plus one ``SSCConv2d`` per plan slot, made from ``slot_spec(slot, setting)`` and fed
    the slot's planned (H, W); ``count`` sums params and MACs module by module. Most layers
    recur across samples (the 1000 samples of a space have 300 to 5500 distinct ones among
    12k to 56k layers), and a layer counts the same wherever it is. So:

    (a) every distinct (spec, input size) of the 1000 samples is built once as a layer (once
        per test process: ``_COUNTED``), run on a (1, C, H, W) input to the spec's output
        shape, and counts what ``layer_cost`` says;
    (b) every 10th sample (every width among them; with ``width: fill``, also the first sample
        of each width not among them) is built whole as ``_check_samples``
        builds it: output (1, classes), count == ``bound.cost``, its SSC layers are the
        plan's specs, and its count is the plan's fixed cost plus its layers' counts from (a);
    (c) for all 1000 samples, ``bound.cost`` is the plan's fixed cost plus the layers' counts
        from (a).

    By (b) the fixed modules of each width count ``fixed_cost()`` and layers chain as planned,
    so by (a) and (c) ``count(build(arch)) == bound.cost(arch)`` for every one of the 1000,
    and every layer of each runs a forward pass, as before.
    """
    bound = _bound(name)
    rng = random.Random(0)
    archs = [bound.sample(rng) for _ in range(1000)]
    layers = [_layers(bound, arch) for arch in archs]
    counted = _COUNTED
    for key in (k for keys in layers for k in keys):  # (a)
        if key not in counted:
            counted[key] = _check_layer(*key)
    every_10th = range(0, len(archs), 10)  # (b)
    if not bound.space.fill:
        assert {archs[i].width for i in every_10th} == set(bound.space.width)
    # With width: fill (61 widths) the first sample of any width not among them is built too.
    first = {}
    for i, arch in enumerate(archs):
        first.setdefault(arch.width, i)
    whole = sorted(set(every_10th) | set(first.values()))
    for i in whole:
        model, cost = _check_model(bound, archs[i])
        built = Counter(m.spec for m in model.modules() if isinstance(m, SSCConv2d))
        assert built == Counter(spec for spec, _ in layers[i]), archs[i].to_json()
        fixed = bound.plans[archs[i].width].fixed_cost()
        assert cost == sum((counted[k] for k in layers[i]), fixed), archs[i].to_json()
    for arch, keys in zip(archs, layers, strict=True):  # (c)
        fixed = bound.plans[arch.width].fixed_cost()
        assert bound.cost(arch) == sum((counted[k] for k in keys), fixed), arch.to_json()


@pytest.mark.parametrize("name", ["resnet20-ssc", "mobilenetv2-ssc"])
def test_a_sample_trains(name: str) -> None:
    """Every parameter of a sampled network gets a gradient, and a few SGD steps fit a batch."""
    torch.manual_seed(0)
    model = build(_bound(name).sample(random.Random(3)), 1, 10, (8, 8)).train()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    params = {n: p for n, p in model.named_parameters() if p.numel()}  # (16, 0): no pointwise
    before = {n: p.detach().clone() for n, p in params.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if step == 0:
            for pname, p in params.items():
                assert p.grad is not None, f"{pname} gets no gradient"
                assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
        optimizer.step()
        losses.append(loss.item())
    assert [n for n, p in params.items() if torch.equal(p, before[n])] == []  # all trained
    assert losses[-1] < 0.5 * losses[0], losses


# -- per-layer choices and Optuna parameters ---------------------------------------------------


def _space(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_groups_that_do_not_divide_a_layer_are_excluded_for_that_layer() -> None:
    space = parse_space({"family": "resnet20", "width": [0.5, 1.0],
                         "knobs": {"groups": [1, 3, 16], "pattern": ["full", "x"]}})
    bound = BoundSpace(space, *CIFAR)
    choices = {g.key: g.choices["groups"] for g in bound.param_groups}
    # 3 divides no channel count; 16 not the 8 channels of stage 1 at width 0.5.
    assert choices["stage1.block0.conv1"] == (1,)
    assert choices["stage2.block0.conv1"] == (1,)  # 16 -> 32 at width 1, 8 -> 16 at 0.5
    assert choices["stage2.block0.conv2"] == (1, 16)
    assert choices["stage3.block2.conv2"] == (1, 16)
    for g in bound.param_groups:
        slots = [s for p in bound.plans.values() for s in p.searchable if s.name in g.slots]
        want = tuple(v for v in (1, 3, 16)
                     if all(s.in_channels % v == 0 == s.out_channels % v for s in slots))
        assert g.choices["groups"] == want, g.key
    rng = random.Random(0)
    archs = [bound.sample(rng) for _ in range(300)]
    assert all(bound.cost(a).params > 0 for a in archs)  # every layer is a valid SSCSpec
    assert {s.groups for a in archs for s in a.layers.values()} == {1, 16}
    for arch in archs[:10]:
        model = build(arch, *CIFAR)
        assert count(model, (3, 32, 32)) == bound.cost(arch)


def test_groups_with_no_valid_choice_is_a_clear_error() -> None:
    space = parse_space({"family": "resnet20", "knobs": {"groups": [3, 5]}}, "bad.yaml")
    with pytest.raises(SpaceError, match=r"bad.yaml: layer stage1.block0.conv1 .* add 1"):
        BoundSpace(space, *CIFAR)


def test_depthwise_layers_stay_depthwise() -> None:
    bound = _bound("mobilenetv2-ssc", CIFAR)
    for g in bound.param_groups:
        if g.key.endswith(".depthwise"):
            assert g.choices["groups"] == ("depthwise",)
            assert g.choices["pattern"] == ("full", "plus", "x", "checker")
        else:
            assert g.choices["pattern"] == ("full",)  # 1 x 1 layers: no spatial pattern
    arch = bound.sample(random.Random(0))
    for name, setting in arch.layers.items():
        assert setting.depthwise == name.endswith(".depthwise")


def _expected_params(bound: BoundSpace) -> set[str]:
    names = {"width"} if len(bound.space.width) > 1 else set()
    return names | {g.param(k) for g in bound.param_groups for k, c in g.choices.items()
                    if len(c) > 1}


def test_optuna_parameter_names_per_layer() -> None:
    bound = _bound("resnet20-ssc")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = bound.suggest(trial)
    names = set(trial.params)
    assert names == _expected_params(bound)
    layers = [s.name for s in bound.plans[1.0].searchable]
    assert len(layers) == 18
    assert names == {"width"} | {f"{layer}.{knob}" for layer in layers
                                 for knob in ("groups", "pattern", "spatial_fraction",
                                              "pointwise_fraction")}
    # phases has one choice ("cover"), so Optuna never sees it.
    assert "stage1.block0.conv1.phases" not in names
    assert bound.from_params(trial.params) == arch


def test_optuna_parameter_names_per_stage() -> None:
    bound = _bound("digits-tiny")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = bound.suggest(trial)
    assert set(trial.params) == {"width"} | {f"stage{i}.{k}" for i in (1, 2, 3)
                                             for k in ("groups", "pattern", "spatial_fraction",
                                                       "pointwise_fraction")}
    # Layers of one stage share their knobs.
    by_stage: dict[str, set] = {}
    for name, setting in arch.layers.items():
        by_stage.setdefault(name.split(".")[0], set()).add((setting.groups, setting.pattern))
    assert all(len(v) == 1 for v in by_stage.values())
    assert bound.from_params(trial.params) == arch


DENSE = {"groups": 1, "pattern": "full", "spatial_fraction": 1.0, "pointwise_fraction": 0.0}


def test_params_for_enqueues_a_reference_design() -> None:
    bound = _bound("resnet20-ssc", CIFAR)
    params = bound.params_for(1.0, DENSE)
    assert params is not None and params["width"] == 1.0
    standard = architecture_cost(Architecture("resnet20"), *CIFAR)
    assert bound.cost(bound.from_params(params)) == standard
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(params)
    assert bound.cost(bound.suggest(study.ask())) == standard
    assert bound.params_for(1.0, {**DENSE, "groups": 3}) is None  # not a choice
    assert bound.params_for(0.7, DENSE) is None  # not a width of the space


# -- budgets -----------------------------------------------------------------------------------

BUDGETS = [  # (space, shape, params budget, MACs budget)
    ("vgg16-ssc", CIFAR, "0.5M", None),
    ("vgg16-ssc-stage", CIFAR, "0.5M", None),
    ("resnet20-ssc", CIFAR, "0.1M", None),
    ("resnet56-ssc", CIFAR, "0.3M", None),
    ("resnet18-ssc", CIFAR, "1M", "40M"),
    ("mobilenetv2-ssc", CIFAR, "0.5M", None),
    ("digits-tiny", DIGITS, "50k", None),
]


@pytest.mark.parametrize(("name", "shape", "params", "macs"), BUDGETS)
def test_budget_feasible_sampling_with_optuna(name: str, shape: tuple, params: str,
                                              macs: str | None) -> None:
    bound, budget = _bound(name, shape), Budget.parse(params, macs)
    check_budget(bound, budget)
    evaluated = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        cost = bound.cost(bound.suggest(trial))
        if not budget.fits(cost):
            raise optuna.TrialPruned()  # rejected before any training
        evaluated.append(trial.number)
        return cost.params, cost.macs

    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=200)
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    pruned = study.get_trials(states=[optuna.trial.TrialState.PRUNED])
    assert len(complete) + len(pruned) == 200
    assert [t.number for t in complete] == evaluated
    assert complete and pruned, "pick a budget that some samples miss"
    assert all(budget.fits(bound.cost(bound.from_params(t.params))) for t in complete)
    assert all(t.values[0] <= budget.params for t in complete)
    assert all(macs is None or t.values[1] <= budget.macs for t in complete)
    assert not any(budget.fits(bound.cost(bound.from_params(t.params))) for t in pruned)
    share = len(complete) / 200
    expected = feasible_share(bound, budget, samples=1000, seed=0)
    print(f"{name} @ {budget.describe()}: {share:.1%} of 200 Optuna trials fit; "
          f"feasible_share {expected:.1%}")
    assert share == pytest.approx(expected, abs=0.1)  # ~3 sigma of 200 draws


def test_budget_fits_only_within_every_limit() -> None:
    both = Budget(1000, 50_000)
    assert both.fits(Cost(1000, 50_000)) and both.fits(Cost(1, 1))  # limits are inclusive
    assert not both.fits(Cost(1001, 50_000)) and not both.fits(Cost(1000, 50_001))
    assert not both.fits(Cost(2000, 100_000))
    assert both.violations(Cost(1500, 25_000)) == {"params": 0.5, "macs": -0.5}
    assert Budget(1000).fits(Cost(1000, 10**12)) and not Budget(1000).fits(Cost(1001, 1))
    assert Budget(macs=10).fits(Cost(10**9, 10)) and not Budget(macs=10).fits(Cost(1, 11))


@pytest.mark.parametrize("name", SPACES)
def test_check_budget_states_the_smallest_reachable_params(name: str) -> None:
    bound = _bound(name)
    low, high = bound.cost_bounds()
    assert check_budget(bound, Budget(low.params)) == (low, high)
    with pytest.raises(BudgetError) as info:
        check_budget(bound, Budget(low.params - 1))
    message = str(info.value)
    assert f"smallest reachable is {format_count(low.params)} params ({low.params})" in message
    assert name in message and "\n" not in message
    with pytest.raises(BudgetError, match=f"smallest reachable is {format_count(low.macs)} MACs"):
        check_budget(bound, Budget(macs=low.macs - 1))


@pytest.mark.parametrize("name", SPACES)
def test_cost_bounds_hold_for_every_sample(name: str) -> None:
    bound = _bound(name)
    low, high = bound.cost_bounds()
    assert low.params < high.params and low.macs < high.macs
    rng = random.Random(7)
    costs = [bound.cost(bound.sample(rng)) for _ in range(1000)]
    assert all(low.params <= c.params <= high.params for c in costs)
    assert all(low.macs <= c.macs <= high.macs for c in costs)
    # The densest design at the largest width (depthwise layers stay depthwise) is the largest.
    def densest(_i: int, g: ParamGroup) -> dict[str, object]:
        c = g.choices
        return {"groups": 1 if 1 in c["groups"] else c["groups"][0], "pattern": "full",
                "spatial_fraction": 1.0, "pointwise_fraction": c["pointwise_fraction"][0]}

    params = bound.params_for(max(bound.space.width), densest)
    assert params is not None
    assert bound.cost(bound.from_params(params)) == high


# -- schema errors -----------------------------------------------------------------------------

GOOD = "family: resnet20\nwidth: [1.0]\nknobs:\n  groups: [1, 2]\n"


@pytest.mark.parametrize(
    ("text", "key", "choices"),
    [
        (GOOD + "knob: 3\n", "knob", "valid keys: family, description, share, width, knobs"),
        (GOOD.replace("groups", "group"), "knobs.group", "valid knobs: groups, pattern, "
         "spatial_fraction, pointwise_fraction, phases"),
        (GOOD + "  pattern: [full, star]\n", "knobs.pattern",
         "'star' is not a valid choice; a choice is one of full, plus, x, checker, center"),
        (GOOD.replace("resnet20", "resnet99"), "family",
         "'resnet99' is not a family; valid: vgg16, vgg11, resnet20"),
        (GOOD.replace("[1.0]", "[0, 1.0]"), "width", "multipliers in (0, 8]"),
        (GOOD.replace("[1.0]", "wide"), "width", "multipliers in (0, 8]"),
        (GOOD + "share: block\n", "share", "valid: layer, stage"),
        (GOOD + "  phases: [0]\n", "knobs.phases", "an integer >= 1 or 'cover'"),
        (GOOD + "  spatial_fraction: [1.5]\n", "knobs.spatial_fraction", "a number in [0, 1]"),
        (GOOD + "overrides:\n  - match: '*'\n    grups: [1]\n", "overrides[0].grups",
         "valid knobs: groups"),
    ],
)
def test_schema_errors_name_file_key_and_choices(tmp_path: Path, text: str, key: str,
                                                 choices: str) -> None:
    path = _space(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert choices in message


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = _space(tmp_path, "family: resnet20\nknobs:\n  groups: [1, 2\n")
    with pytest.raises(SpaceError, match=rf"^{path}: not valid YAML \(line \d+\)"):
        load_space(path)
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpaceError) as info:
        load_space(missing)
    message = str(info.value)
    assert str(missing) in message and "not found" in message
    assert all(name in message for name in SPACES)
    with pytest.raises(SpaceError, match="a search space must be a YAML mapping"):
        load_space(_space(tmp_path, "- 1\n- 2\n", "list.yaml"))


# -- CLI ---------------------------------------------------------------------------------------


def _cli(*args: str) -> CliResult:
    """``ssc-nas ARGS`` in the repository root, in-process (``tests.inprocess``: what a real
    process prints, a traceback included, without seconds of imports per call)."""
    return run_cli(args, ROOT)


def test_cli_space_show() -> None:
    result = _cli("space", "show", "search_spaces/vgg16-ssc.yaml", "--budget", "0.5M")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    bound = _bound("vgg16-ssc", (1, 10, (28, 28)))  # costed for the default dataset, mnist-5k
    low, high = bound.cost_bounds()
    assert "smallest reachable" in out and "largest reachable" in out
    assert format_count(low.params) in out and format_count(high.params) in out
    share = feasible_share(bound, Budget.parse("0.5M"), samples=1000, seed=0)
    assert f"{share:.1%} of 1000 random samples fit" in out
    assert 0 < share < 1


def test_cli_unreachable_budget_is_one_line_without_traceback() -> None:
    result = _cli("space", "show", "vgg16-ssc", "--budget", "1k")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    low, _ = _bound("vgg16-ssc", (1, 10, (28, 28))).cost_bounds()
    assert f"smallest reachable is {format_count(low.params)} params ({low.params})" in lines[0]


def test_cli_broken_space_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = _space(tmp_path, GOOD + "  pattern: [star]\n", "broken.yaml")
    result = _cli("space", "show", str(path), "--budget", "0.5M")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr.replace("\n", "") and "knobs.pattern" in result.stderr



@pytest.mark.parametrize("name", SPACES)
def test_one_design_has_the_smallest_params_and_macs(name: str) -> None:
    """The exact (params, MACs) front starts at the per-axis minima: (low.params, low.macs) is
    one design's cost, so no pair of limits above both minima is infeasible."""
    from ssc_nas.spaces import cost_front

    bound = _bound(name)
    low, _ = bound.cost_bounds()
    front = cost_front(bound)
    assert front[0] == (low.params, low.macs)
    assert all(p >= low.params and m >= low.macs for p, m in front)
    assert cost_front(bound, Budget(low.params, low.macs)) == [(low.params, low.macs)]


@pytest.mark.parametrize("name", ["digits-tiny", "resnet20-ssc"])
def test_check_budget_checks_both_limits_together(name: str) -> None:
    bound = _bound(name)
    low, high = bound.cost_bounds()
    assert check_budget(bound, Budget(low.params, low.macs)) == (low, high)
    for budget in (Budget(low.params - 1, low.macs), Budget(low.params, low.macs - 1),
                   Budget(high.params, low.macs - 1)):
        with pytest.raises(BudgetError) as info:
            check_budget(bound, budget)
        message = str(info.value)
        assert (f"the smallest reachable design has {format_count(low.params)} params "
                f"({low.params}) and {format_count(low.macs)} MACs ({low.macs})") in message
        assert "\n" not in message
