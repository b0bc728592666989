"""The dense training layout: the same function, the same training, the compact model outside."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from ssc_nas.data import load_splits
from ssc_nas.layers import SSCConv2d, SSCSpec, dense_layout, dense_layout_layers
from ssc_nas.train import TrainConfig, Trainer, scores

from .test_layer import _input, specs


@settings(max_examples=60, deadline=None)
@given(spec=specs(), seed=st.integers(0, 2**16), channels_last=st.booleans())
def test_dense_layout_computes_the_layer_and_its_stored_weights_gradients(
        spec: SSCSpec, seed: int, channels_last: bool) -> None:
    torch.manual_seed(seed)
    layer = SSCConv2d.from_spec(spec).double()
    x = _input(spec, seed, channels_last)
    ref = layer.reference_forward(x)
    g = torch.randn(ref.shape, dtype=torch.float64)
    stored = (layer.spatial_weight, layer.pointwise_weight)
    grads = torch.autograd.grad((ref * g).sum(), stored, materialize_grads=True)
    dense = layer.enter_dense_layout(channels_last)
    assert layer.in_dense_layout and dict(layer.named_parameters())["dense_weight"] is dense
    y = layer(x)
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # without the mask multiply
        torch.testing.assert_close(layer(x), ref, rtol=1e-9, atol=1e-9)
    (grad,) = torch.autograd.grad((y * g).sum(), [dense])
    # The gradient is zero off the structure and the stored weights' gradient on it.
    mask = layer._layout.mask
    # no mask where the structure fills the dense weight: every entry holds a stored weight
    placed = layer._placed(torch.ones_like(layer.spatial_weight),
                           torch.ones_like(layer.pointwise_weight))
    assert (mask is None) == spec.fills_dense_weight == bool(placed.all())
    if mask is not None:
        assert torch.equal(grad * (1 - mask), torch.zeros_like(grad))
    for a, b in zip(layer._gathered(grad), grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        dense.mul_(2.0)
    layer.leave_dense_layout()
    assert not layer.in_dense_layout and "dense_weight" not in dict(layer.named_parameters())
    torch.testing.assert_close(layer.reference_forward(x), 2 * ref - (
        0 if layer.bias is None else layer.bias.view(1, -1, 1, 1)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("groups", [1, 2])
def test_a_full_layer_trains_its_dense_weight_unmasked(groups: int) -> None:
    """Where the structure fills the dense weight there is nothing to mask: the layout's
    training forward is the plain convolution (no multiply), with the stored weights' gradient."""
    torch.manual_seed(0)
    full = SSCConv2d(8, 8, 3, groups=groups).double()
    het = SSCConv2d(8, 8, 3, groups=groups, spatial_channels=2, pointwise_channels=2).double()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    ref = full.reference_forward(x)
    stored = torch.autograd.grad(ref.sum(), [full.spatial_weight])[0]
    dense = full.enter_dense_layout()
    het.enter_dense_layout()
    assert full._layout.mask is None and het._layout.mask is not None
    y = full(x)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(y.sum(), [dense])
    torch.testing.assert_close(full._gathered(grad)[0], stored, rtol=1e-12, atol=1e-12)


def test_the_dense_weight_object_is_kept_between_layouts() -> None:
    """A CUDA graph captured on the dense weight stays valid in the next epoch's layout."""
    layer = SSCConv2d(16, 16, 3, spatial_channels=8, pointwise_channels=8, phases=2)
    first = layer.enter_dense_layout(True)
    with pytest.raises(RuntimeError, match="already"):
        layer.enter_dense_layout(True)
    layer.leave_dense_layout()
    with pytest.raises(RuntimeError, match="not in"):
        layer.leave_dense_layout()
    with torch.no_grad():
        layer.spatial_weight.add_(1.0)  # e.g. a checkpoint loaded between epochs
    assert layer.enter_dense_layout(True) is first
    torch.testing.assert_close(first.detach(), layer.to_dense_weight().detach())


def _net() -> nn.Module:
    """SSC layers of both paths on a CPU (the 1st and 2nd run the dense one; the 3rd does in
    training steps, and in NCHW inference runs the sparse one; the 4th, depthwise, and the 5th,
    standard, run the sparse one but fill their dense weight, so they run in the layout too).
    The stem is a plain convolution, as in the model families: with the model in channels_last
    its output is channels_last (an SSC layer cannot tell a 1-channel input's format), so the
    layers run in the format the trainer asks for."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),
        SSCConv2d(16, 16, 3, groups=4, spatial_channels=2, pointwise_channels=1, phases=2),
        nn.BatchNorm2d(16), nn.ReLU(),
        SSCConv2d(16, 32, 3, spatial_channels=8, pointwise_channels=8, phases=2, bias=True),
        nn.ReLU(), SSCConv2d(32, 32, 3, spatial_channels=8, phases=4),
        nn.BatchNorm2d(32), nn.ReLU(), SSCConv2d(32, 32, 3, groups=32), nn.ReLU(),
        SSCConv2d(32, 32, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def _in_layout(net: nn.Module, channels_last: bool, training: bool) -> list[bool]:
    return [m in dense_layout_layers(net, "cpu", channels_last, training)
            for m in net if isinstance(m, SSCConv2d)]


def _ids(optimizer: torch.optim.Optimizer) -> list[list[int]]:
    """The optimizer's parameters by identity, group by group, in order."""
    return [[id(p) for p in group["params"]] for group in optimizer.param_groups]


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_training_in_the_dense_layout_is_compact_training(digits, optimizer: str,
                                                          channels_last: bool) -> None:
    """Two epochs, stopped after 7 steps and continued from a checkpoint, give bit for bit the
    weights and optimizer state of compact training; outside training the model and the
    optimizer are compact."""
    net = _net()
    assert _in_layout(net, channels_last, training=True) == [True, True, True, True, True]
    states = []
    for layout in (False, True):
        config = TrainConfig(epochs=2, optimizer=optimizer, channels_last=channels_last,
                             dense_layout=layout)
        trainer = Trainer(copy.deepcopy(net), digits.train, config, seed=0)
        trainer.train_steps(7)
        checkpoint = copy.deepcopy(trainer.state_dict())
        trainer = Trainer(copy.deepcopy(net), digits.train, config, seed=0)
        params = [(name, id(p)) for name, p in trainer.model.named_parameters()]
        groups = _ids(trainer.optimizer)
        trainer.load_state_dict(checkpoint)
        trainer.train_steps(trainer.total_steps)
        assert [(name, id(p)) for name, p in trainer.model.named_parameters()] == params
        assert _ids(trainer.optimizer) == groups
        assert {id(p) for p in trainer.optimizer.state} <= {i for _, i in params}
        states.append(trainer.state_dict())
    (compact, layout) = states
    torch.testing.assert_close(layout["model"], compact["model"], rtol=0, atol=0)
    torch.testing.assert_close(layout["optimizer"]["state"], compact["optimizer"]["state"],
                               rtol=0, atol=0)
    assert layout["optimizer"]["param_groups"] == compact["optimizer"]["param_groups"]


@pytest.mark.parametrize("channels_last", [True, False])
def test_evaluation_in_the_dense_layout_gives_the_same_scores(digits,
                                                             channels_last: bool) -> None:
    """Validation and BatchNorm re-estimation build each dense weight once per pass; they
    give bit for bit what the compact layers give, and leave the model compact."""
    net = _net()
    assert _in_layout(net, channels_last, training=False) == [True, True, channels_last, True,
                                                               True]
    trainer = Trainer(net, digits.train, TrainConfig(epochs=1, channels_last=channels_last),
                      seed=0)
    trainer.train_steps(5)
    stats = {}
    for layout in (False, True):
        trainer.config = replace(trainer.config, dense_layout=layout)
        trainer.recalibrate_batchnorm()
        stats[layout] = (trainer.scores(digits.val), copy.deepcopy(net.state_dict()))
    assert stats[True][0] == stats[False][0]
    torch.testing.assert_close(stats[True][1], stats[False][1], rtol=0, atol=0)
    assert not any(m.in_dense_layout for m in net if isinstance(m, SSCConv2d))
    assert scores(net, digits.val, channels_last=channels_last) == stats[True][0]


def test_the_layout_is_left_when_training_raises() -> None:
    net = _net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    params = list(net.parameters())
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    with pytest.raises(KeyboardInterrupt), dense_layout(
            net, optimizer, device_type="cuda", channels_last=True) as layers:
        assert len(layers) == 5 and all(layer.in_dense_layout for layer in layers)
        raise KeyboardInterrupt
    assert not any(m.in_dense_layout for m in net if isinstance(m, SSCConv2d))
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert _ids(optimizer) == [[id(p) for p in params]]
    assert {id(p) for p in optimizer.state} <= {id(p) for p in params}


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_dense_weight_takes_the_input_memory_format(channels_last: bool) -> None:
    """As a masked dense model's weight after ``model.to(memory_format=...)``."""
    net = _net()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with dense_layout(net, device_type="cpu", channels_last=channels_last,
                      training=True) as layers:
        assert len(layers) == 5
        assert all(layer.dense_weight.is_contiguous(memory_format=fmt) for layer in layers)
        assert channels_last is not all(layer.dense_weight.is_contiguous() for layer in layers)


def test_layers_reparametrized_by_pruning_stay_compact() -> None:
    """``torch.nn.utils.prune`` computes ``spatial_weight`` from ``spatial_weight_orig`` in a
    forward pre-hook, which the dense layout would bypass."""
    net = _net()
    prune.random_unstructured(net[3], "spatial_weight", amount=0.5)
    layers = dense_layout_layers(net, "cuda", True)
    assert net[3] not in layers and net[6] in layers
