"""Pruning at initialization: exact parameter counts, each method's defining behaviour."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssc_nas.baselines import (
    METHODS,
    apply_masks,
    mask_scores,
    masks_for,
    prunable,
    prune_at_init,
    pruned_param_count,
    unprunable_param_count,
)
from ssc_nas.baselines.saliency import grasp_scores, snip_scores
from ssc_nas.cost import count
from ssc_nas.data import load_splits
from ssc_nas.layers import SSCConv2d
from ssc_nas.models import Architecture, build
from ssc_nas.train import TrainConfig, train_model

CASES = [("resnet20", 0.5), ("vgg16", 0.25)]


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


def _model(family: str = "resnet20", width: float = 0.5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(Architecture(family, width), 1, 10, (8, 8))


def _prunable_total(model: nn.Module) -> int:
    return sum(getattr(m, a).numel() for _, m, a in prunable(model))


def _target(model: nn.Module, sparsity: float) -> int:
    return unprunable_param_count(model) + round((1 - sparsity) * _prunable_total(model))


def _kept(masks: dict[str, torch.Tensor]) -> list[int]:
    return [int(m.sum()) for m in masks.values()]


def test_prunable_weights_are_conv_and_linear_weights() -> None:
    model = _model()
    names = [name for name, _, _ in prunable(model)]
    assert names[0] == "stem.0.weight" and names[-1] == "classifier.weight"
    assert "blocks.3.shortcut.0.spatial_weight" in names
    assert not any("pointwise" in n or "bias" in n or "bn" in n for n in names)  # (C, 0): empty
    assert all(isinstance(m, (SSCConv2d, nn.Conv2d, nn.Linear)) for _, m, _ in prunable(model))
    # Unprunable = BatchNorm affine weights + classifier bias; the total is cost.count's.
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())
    assert unprunable_param_count(model) == bn + model.classifier.bias.numel()
    assert unprunable_param_count(model) + _prunable_total(model) == count(model, (1, 8, 8)).params


@pytest.mark.parametrize(("family", "width"), CASES)
@pytest.mark.parametrize("sparsity", [0.9, 0.99])
def test_every_method_hits_the_target_exactly(family: str, width: float, sparsity: float,
                                              digits) -> None:
    model = _model(family, width)
    target = _target(model, sparsity)
    batch = (digits.train.tensors[0][:32], digits.train.tensors[1][:32])
    fixed = unprunable_param_count(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in METHODS:
        masks = masks_for(model, method, target, batch, iterations=5)
        assert set(masks) == {n for n, _, _ in prunable(model)}
        for (name, module, attr) in prunable(model):
            mask = masks[name]
            assert mask.shape == getattr(module, attr).shape
            assert bool(((mask == 0) | (mask == 1)).all())
        assert sum(_kept(masks)) + fixed == target, method
    # masks_for leaves the model (weights and BatchNorm statistics) untouched ...
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    # ... and the applied masks give exactly the target count.
    apply_masks(model, masks)
    assert pruned_param_count(model) == target
    assert count(model, (1, 8, 8)).params > target  # cost.count sees the dense *_orig tensors


def test_targets_outside_the_prunable_range_raise() -> None:
    model = _model()
    fixed, total = unprunable_param_count(model), count(model, (1, 8, 8)).params
    for bad in (fixed - 1, total + 1, 0, float(fixed + 10), True):
        with pytest.raises(ValueError, match="target_params"):
            masks_for(model, "random", bad)
    with pytest.raises(ValueError, match="unknown pruning method"):
        masks_for(model, "obd", total)
    with pytest.raises(ValueError, match="needs data"):
        masks_for(model, "snip", total)
    with pytest.raises(ValueError, match="input shape"):
        masks_for(model, "synflow", total)
    # The two ends of the range: nothing kept, everything kept.
    for method in ("magnitude", "erk", "synflow"):
        assert sum(_kept(masks_for(model, method, fixed, input_shape=(1, 8, 8)))) == 0
        assert sum(_kept(masks_for(model, method, total, input_shape=(1, 8, 8)))) == total - fixed


def _erk_shape(module: nn.Module, weight: torch.Tensor) -> tuple[int, ...]:
    if isinstance(module, SSCConv2d):
        k = module.spec.kernel_size
        return (weight.shape[0], weight.shape[1], k, k)
    return tuple(weight.shape)


@pytest.mark.parametrize("sparsity", [0.9, 0.99])
def test_erk_densities_follow_the_erk_formula(sparsity: float) -> None:
    model = _model("vgg16", 0.25)
    keep = _target(model, sparsity) - unprunable_param_count(model)
    masks = masks_for(model, "erk", _target(model, sparsity), seed=0)
    layers = []
    for name, module, attr in prunable(model):
        w = getattr(module, attr)
        shape = _erk_shape(module, w)
        layers.append((sum(shape) / math.prod(shape), w.numel(), int(masks[name].sum())))
    # Fewer dims-sum per weight (more parameters per fan) -> lower density (1 weight of slack).
    for raw_a, n_a, k_a in layers:
        for raw_b, n_b, k_b in layers:
            if raw_a < raw_b:
                assert k_a / n_a <= k_b / n_b + 1 / n_a
    # Layers at density 1 are the ones with the largest raw ERK scores; the rest get
    # eps * raw * n weights, floor or ceil, with one eps for all of them.
    dense = [raw for raw, n, k in layers if k == n]
    sparse = [(raw, n, k) for raw, n, k in layers if k < n]
    assert len(dense) == (2 if sparsity == 0.9 else 0)  # stem and classifier capped at 1
    assert not dense or min(dense) > max(raw for raw, _, _ in sparse)
    eps = (keep - sum(n for raw, n, k in layers if k == n)) / sum(raw * n for raw, n, _ in sparse)
    for raw, n, k in sparse:
        assert math.floor(eps * raw * n) <= k <= math.ceil(eps * raw * n)


def test_random_and_erk_are_reproducible_under_a_seed() -> None:
    model = _model()
    target = _target(model, 0.95)
    for method in ("random", "erk"):
        a = masks_for(model, method, target, seed=3)
        b = masks_for(model, method, target, seed=3)
        c = masks_for(model, method, target, seed=4)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)
        if method == "erk":  # the seed moves weights within a layer, never the layer counts
            assert _kept(a) == _kept(c)


def test_synflow_is_data_free(digits) -> None:
    model = _model()
    target = _target(model, 0.99)
    x = digits.train.tensors[0]
    batches = [(x[:16], digits.train.tensors[1][:16]), (torch.randn(5, 1, 8, 8), None),
               (x[100:101] * 7, None)]
    reference = masks_for(model, "synflow", target, None, input_shape=(1, 8, 8), iterations=10)
    for batch in batches:
        masks = masks_for(model, "synflow", target, batch, iterations=10)
        assert all(torch.equal(masks[k], reference[k]) for k in masks)
    s1 = mask_scores(model, "synflow", batches[0])
    s2 = mask_scores(model, "synflow", input_shape=(1, 8, 8))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_iterative_synflow_avoids_layer_collapse_where_one_shot_pruning_does_not() -> None:
    # Keep 0.1 % of a VGG-16 x0.25's prunable weights (about 920 of 920,000).
    model = _model("vgg16", 0.25)
    target = _target(model, 0.999)
    magnitude = _kept(masks_for(model, "magnitude", target))
    one_shot = _kept(masks_for(model, "synflow", target, input_shape=(1, 8, 8), iterations=1))
    iterative = _kept(masks_for(model, "synflow", target, input_shape=(1, 8, 8), iterations=100))
    assert min(magnitude) == 0 and magnitude.count(0) >= 5  # whole layers cut: no signal
    assert min(one_shot) == 0
    assert min(iterative) > 0  # every layer keeps weights (Tanaka et al. 2020, Sec. 6)


def test_snip_and_grasp_masks_depend_on_the_batch(digits) -> None:
    model = _model()
    target = _target(model, 0.9)
    x, y = digits.train.tensors
    for method in ("snip", "grasp"):
        a = masks_for(model, method, target, (x[:64], y[:64]))
        b = masks_for(model, method, target, (x[64:128], y[64:128]))
        a2 = masks_for(model, method, target, (x[:64], y[:64]))
        assert all(torch.equal(a[k], a2[k]) for k in a)
        assert not all(torch.equal(a[k], b[k]) for k in a)
    # From a dataset, the batch is drawn with the seed.
    s0 = masks_for(model, "snip", target, digits.train, seed=0, batch_size=32)
    s1 = masks_for(model, "snip", target, digits.train, seed=1, batch_size=32)
    assert not all(torch.equal(s0[k], s1[k]) for k in s0)


def test_grasp_scores_are_minus_w_hg_and_the_lowest_are_kept() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3, bias=False)).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))
    temperature = 200.0
    w1, b1, w2 = model[0].weight, model[0].bias, model[2].weight

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, b = flat[:24].view(6, 4), flat[24:].view(3, 6)
        out = F.linear(F.relu(F.linear(x, a, b1.detach())), b)
        return F.cross_entropy(out / temperature, y)

    flat = torch.cat([w1.detach().flatten(), w2.detach().flatten()])
    g = torch.autograd.functional.jacobian(loss, flat)
    h = torch.autograd.functional.hessian(loss, flat)
    expected = -flat * (h @ g)
    scores = grasp_scores(model, x, y, temperature)
    got = torch.cat([scores["0.weight"].flatten(), scores["2.weight"].flatten()])
    torch.testing.assert_close(got, expected)
    assert (expected > 0).any() and (expected < 0).any()  # the sign matters here

    keep = 10
    masks = masks_for(model, "grasp", unprunable_param_count(model) + keep, (x, y))
    kept = torch.cat([masks["0.weight"].flatten(), masks["2.weight"].flatten()]).bool()
    assert int(kept.sum()) == keep
    assert got[kept].max() < got[~kept].min()  # GraSP removes the highest scores

    # SNIP keeps the highest |g * w| instead.
    snip = snip_scores(model, x, y)
    s = torch.cat([snip["0.weight"].flatten(), snip["2.weight"].flatten()])
    masks = masks_for(model, "snip", unprunable_param_count(model) + keep, (x, y))
    kept = torch.cat([masks["0.weight"].flatten(), masks["2.weight"].flatten()]).bool()
    assert s[kept].min() > s[~kept].max()


def test_ties_are_broken_deterministically_by_position() -> None:
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    masks = masks_for(model, "magnitude", 5)
    assert masks["0.weight"].flatten().tolist() == [1.0] * 5 + [0.0] * 7
    assert int(masks["1.weight"].sum()) == 0


def test_apply_masks_validates() -> None:
    model = _model()
    masks = masks_for(model, "random", _target(model, 0.9))
    name = next(iter(masks))
    with pytest.raises(ValueError, match="missing"):
        apply_masks(model, {k: v for k, v in masks.items() if k != name})
    with pytest.raises(ValueError, match="only 0 and 1"):
        apply_masks(model, {**masks, name: masks[name] * 2})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(model, {**masks, name: masks[name].flatten()})
    apply_masks(model, masks)
    with pytest.raises(ValueError, match="unpruned"):
        masks_for(model, "random", _target(model, 0.9))


def test_a_pruned_model_trains_and_keeps_its_exact_count(digits) -> None:
    model = _model()
    target = _target(model, 0.9)
    pruned = prune_at_init("resnet20", 0.5, "snip", target, digits, seed=0)
    assert pruned_param_count(pruned) == target
    conv = pruned.blocks[4].conv1
    start = conv.spatial_weight_orig.detach().clone()
    mask = conv.spatial_weight_mask.bool()
    result = train_model(pruned, digits.train, digits.val, TrainConfig(epochs=1),
                         num_classes=10, seed=0)
    assert result.epochs_run == 1 and math.isfinite(result.train_loss[0])
    assert pruned_param_count(pruned) == target
    orig = conv.spatial_weight_orig.detach()
    assert not torch.equal(orig[mask], start[mask])  # kept weights trained
    pruned(digits.val.tensors[0][:4])  # refresh the pruned attribute
    assert bool((conv.spatial_weight[~mask] == 0).all())


def test_prune_at_init_is_reproducible_and_takes_a_batch(digits) -> None:
    x, y = digits.train.tensors[0][:32], digits.train.tensors[1][:32]
    target = _target(_model(), 0.95)
    a = prune_at_init("resnet20", 0.5, "grasp", target, (x, y), num_classes=10, seed=2)
    b = prune_at_init("resnet20", 0.5, "grasp", target, (x, y), num_classes=10, seed=2)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert pruned_param_count(a) == target
    with pytest.raises(ValueError, match="num_classes"):
        prune_at_init("resnet20", 0.5, "random", target, (x, y))
