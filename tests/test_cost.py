"""Analytic cost == traced count == torch's FlopCounterMode on what the fast path executes."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssc_nas.cost import Cost, count, layer_cost, measure_latency
from ssc_nas.layers import SSCConv2d, SSCSpec, executed_macs

from .test_layer import specs


def _torch_macs(module: nn.Module, x: torch.Tensor, grad: bool = False) -> int:
    """Multiply-accumulates per image of a forward pass (with gradients: a training step's)."""
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(grad):
        module(x)
    return counter.get_total_flops() // 2 // x.shape[0]


EXACT = {
    "standard": dict(in_channels=8, out_channels=16),
    "standard-k5-s2": dict(in_channels=8, out_channels=16, kernel_size=5, stride=2),
    "groupwise": dict(in_channels=8, out_channels=16, groups=4),
    "depthwise": dict(in_channels=8, out_channels=8, groups=8),
    "pointwise": dict(in_channels=8, out_channels=16, kernel_size=1),
    "pointwise-n1": dict(in_channels=8, out_channels=16, spatial_channels=0, pointwise_channels=8),
    # Wide enough to run the sparse path (narrower ones run one grouped dense convolution).
    "hetconv-plus": dict(in_channels=64, out_channels=128, spatial_channels=16,
                         pointwise_channels=48, phases=4, pattern="plus"),
    "tiled-x": dict(in_channels=64, out_channels=64, spatial_channels=32, phases=2, pattern="x"),
    "tiled-checker-k5": dict(in_channels=64, out_channels=64, kernel_size=5, spatial_channels=16,
                             phases=4, pattern="checker"),
}


def test_dense_weight_path_reports_the_dense_work() -> None:
    layer = SSCConv2d(16, 16, 3, groups=4, spatial_channels=2, pointwise_channels=1,
                      pattern="plus", phases=2)
    assert layer.plan.dense_weight and layer.plan.dense_weight_contiguous
    x = torch.randn(2, 16, 12, 12)
    assert executed_macs(layer.spec, (12, 12)) == 12 * 12 * 16 * 4 * 9 == _torch_macs(layer, x)
    assert executed_macs(layer.spec, (12, 12), channels_last=False) == _torch_macs(layer, x)
    assert count(layer, (16, 12, 12)).macs == layer.spec.macs((12, 12))


@pytest.mark.parametrize("name", list(EXACT))
def test_analytic_macs_equal_flop_counter_where_the_fast_path_is_exact(name: str) -> None:
    knobs = EXACT[name]
    layer = SSCConv2d(**knobs)
    x = torch.randn(2, knobs["in_channels"], 12, 12)
    analytic = layer_cost((12, 12), **knobs)
    assert executed_macs(layer.spec, (12, 12), channels_last=False) == analytic.macs
    assert _torch_macs(layer, x) == analytic.macs
    assert count(layer, (knobs["in_channels"], 12, 12)) == analytic


@settings(max_examples=80, deadline=None)
@given(spec=specs())
def test_executed_macs_equal_flop_counter_for_any_setting(spec: SSCSpec) -> None:
    """Where the fast path does more than the structural work, it says exactly how much."""
    layer = SSCConv2d.from_spec(spec)
    size = spec.kernel_size + 3
    x = torch.randn(1, spec.in_channels, size, size)
    nchw = executed_macs(spec, (size, size), channels_last=False)
    assert _torch_macs(layer, x) == nchw >= spec.macs((size, size))
    train = executed_macs(spec, (size, size), channels_last=False, training=True)
    assert _torch_macs(layer, x, grad=True) == train >= spec.macs((size, size))
    if spec.in_channels > 1:  # one channel is contiguous in either format
        x = x.contiguous(memory_format=torch.channels_last)
        assert _torch_macs(layer, x) == executed_macs(spec, (size, size)) >= spec.macs((size, size))
    expected = Cost(spec.params, spec.macs((size, size)))
    assert count(layer, (spec.in_channels, size, size)) == expected
    assert sum(p.numel() for p in layer.parameters()) == spec.params


def test_hetconv_full_reports_extra_executed_macs() -> None:
    spec = SSCConv2d.hetconv(8, 8, part=4).spec
    assert executed_macs(spec, (4, 4)) > spec.macs((4, 4))


def test_count_whole_network_matches_flop_counter() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        SSCConv2d(16, 32, 3, stride=2, groups=2), nn.BatchNorm2d(32), nn.ReLU(),
        SSCConv2d(32, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    cost = count(model, (3, 16, 16))
    assert cost.params == sum(p.numel() for p in model.parameters())
    expected_macs = 16 * 16 * 16 * 27 + 8 * 8 * 32 * 8 * 9 + 8 * 8 * 32 * 32 + 32 * 10
    assert cost.macs == expected_macs == _torch_macs(model.eval(), torch.zeros(2, 3, 16, 16))


def test_count_restores_training_mode() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    count(model, (1, 8, 8))
    assert model.training


class _Scripted(nn.Module):
    """Sleeps a scripted time per forward pass and records how it was called."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.delays = delays
        self.calls: list[tuple[tuple[int, ...], bool, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
        self.calls.append((tuple(x.shape), self.training, torch.is_grad_enabled(), channels_last))
        time.sleep(self.delays[len(self.calls) - 1])
        return x


@pytest.mark.parametrize("channels_last", [False, True])
def test_measure_latency_is_the_median_seconds_of_timed_passes(channels_last: bool) -> None:
    # 2 warmup passes (slow, untimed), then 5 timed: median 0.01 s; mean or timed warmup > 0.05.
    model = _Scripted([0.08, 0.08, 0.01, 0.15, 0.01, 0.15, 0.01]).train()
    t = measure_latency(model, (4, 6, 6), batch_size=3, warmup=2, repeats=5,
                        channels_last=channels_last)
    assert 0.01 <= t < 0.05
    assert model.calls == [((3, 4, 6, 6), False, False, channels_last)] * 7  # eval, no_grad


def test_latency_grows_with_batch_and_macs() -> None:
    model = nn.Sequential(SSCConv2d(16, 16, 3), nn.ReLU())
    wide = nn.Sequential(SSCConv2d(32, 32, 3), nn.ReLU())  # 4x the MACs per image
    assert count(wide, (32, 32, 32)).macs == 4 * count(model, (16, 32, 32)).macs

    def median(m: nn.Module, c: int, batch: int) -> float:
        return measure_latency(m, (c, 32, 32), batch_size=batch, warmup=2, repeats=7)

    one, sixteen = median(model, 16, 1), median(model, 16, 16)
    assert sixteen > 4 * one, (one, sixteen)
    narrow, wider = median(model, 16, 8), median(wide, 32, 8)
    assert wider > 1.5 * narrow, (narrow, wider)
