"""SSCConv2d: fast path == reference == conv2d(dense weight), special cases, compact params."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ssc_nas.layers import PATTERNS, SSCConv2d, SSCSpec, num_positions, pattern_mask


@st.composite
def specs(draw: st.DrawFn) -> SSCSpec:
    """Random valid SSC settings across groups, strides, patterns, phases and odd kernels."""
    groups = draw(st.sampled_from([1, 2, 3, 4]))
    block = draw(st.integers(1, 8))
    per_group = draw(st.integers(1, 6))
    kernel = draw(st.sampled_from([1, 3, 5, 7]))
    n_k = draw(st.integers(0, block))
    n_1 = draw(st.integers(1 if n_k == 0 else 0, block - n_k)) if block > n_k else 0
    return SSCSpec(
        in_channels=groups * block,
        out_channels=groups * per_group,
        kernel_size=kernel,
        stride=draw(st.sampled_from([1, 2])),
        padding=draw(st.sampled_from([None, 0, 1, kernel // 2 + 1])),
        groups=groups,
        spatial_channels=n_k,
        pointwise_channels=n_1,
        pattern=draw(st.sampled_from(PATTERNS)),
        phases=draw(st.integers(1, block)),
        bias=draw(st.booleans()),
    )


def _input(spec: SSCSpec, seed: int, channels_last: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = spec.kernel_size + 4
    x = torch.randn(2, spec.in_channels, size, size + 1, generator=g, dtype=torch.float64)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@settings(max_examples=150, deadline=None)
@given(spec=specs(), seed=st.integers(0, 2**16), channels_last=st.booleans())
def test_fast_path_equals_reference_and_dense_conv(
    spec: SSCSpec, seed: int, channels_last: bool
) -> None:
    torch.manual_seed(seed)
    layer = SSCConv2d.from_spec(spec).double()
    x = _input(spec, seed, channels_last)
    fast = layer(x)
    ref = layer.reference_forward(x)
    dense = F.conv2d(x, layer.to_dense_weight(), layer.bias, spec.stride, spec.padding, 1,
                     spec.groups)
    assert fast.shape == (2, spec.out_channels, *spec.output_size(x.shape[2:]))
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast, dense, rtol=1e-10, atol=1e-10)
    # The sparse path stays exact also where the layer runs the dense-weight path.
    torch.testing.assert_close(layer._sparse_forward(x), ref, rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(spec=specs(), seed=st.integers(0, 2**16), channels_last=st.booleans())
def test_gradients_agree_with_reference(spec: SSCSpec, seed: int, channels_last: bool) -> None:
    torch.manual_seed(seed)
    layer = SSCConv2d.from_spec(spec).double()
    x = _input(spec, seed, channels_last).requires_grad_()
    g = torch.randn(layer(x).shape, dtype=torch.float64)
    params = list(layer.parameters())
    fast = torch.autograd.grad((layer(x) * g).sum(), [x, *params], materialize_grads=True)
    sparse = torch.autograd.grad((layer._sparse_forward(x) * g).sum(), [x, *params],
                                 materialize_grads=True)
    ref = torch.autograd.grad((layer.reference_forward(x) * g).sum(), [x, *params],
                              materialize_grads=True)
    for a, b, c in zip(fast, sparse, ref, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(b, c, rtol=1e-9, atol=1e-9)


def test_path_choice() -> None:
    """Small blocks whose slots need reordering run the grouped dense convolution; layers where
    the sparse path saves most of the work keep it."""
    small = SSCConv2d(16, 16, 3, groups=4, spatial_channels=2, pointwise_channels=1,
                      pattern="plus", phases=2)
    assert small.plan.dense_weight
    for layer in (SSCConv2d.hetconv(64, 64, part=8), SSCConv2d.depthwise(64),
                  SSCConv2d(64, 64, 3), SSCConv2d(128, 128, 3, spatial_channels=16,
                                                  pointwise_channels=112, phases=8)):
        assert not layer.plan.dense_weight, layer
        assert not layer.uses_dense_weight(torch.zeros(1, layer.spec.in_channels, 4, 4))
    assert small.uses_dense_weight(torch.zeros(1, 16, 4, 4))
    # The reorder costs less in NCHW: HetConv with 2 phases at 64 channels runs the sparse path
    # for NCHW input, the dense one for channels_last (benchmarks/path_costs.py).
    het = SSCConv2d(64, 64, 3, spatial_channels=32, pointwise_channels=32, phases=2)
    x = torch.zeros(1, 64, 4, 4)
    assert het.plan.dense_weight and not het.plan.dense_weight_contiguous
    assert het.uses_dense_weight(x.contiguous(memory_format=torch.channels_last))
    assert not het.uses_dense_weight(x)


def test_nchw_training_steps_choose_their_own_path() -> None:
    """In NCHW training steps a grouped convolution of narrow groups costs a pass per group:
    HetConv with 16 phases at 64 channels (16 groups of 4) trains on the dense-weight path and
    evaluates on the sparse one; at 128 channels (groups of 8) it keeps the sparse path, and
    channels_last input makes one choice for both (benchmarks/path_costs.py)."""
    het = SSCConv2d.hetconv(64, 64, part=16)
    x = torch.zeros(1, 64, 4, 4)
    assert het.plan.dense_for(False, training=True) and not het.plan.dense_for(False)
    assert het.uses_dense_weight(x)
    with torch.no_grad():
        assert not het.uses_dense_weight(x)
    assert not het.plan.dense_for(True) and not het.plan.dense_for(True, training=True)
    wide = SSCConv2d.hetconv(128, 128, part=16)
    assert not wide.plan.dense_for(False, training=True)
    for layer in (SSCConv2d.depthwise(64), SSCConv2d(64, 64, 3, groups=8),
                  SSCConv2d(64, 64, 3)):  # one grouped convolution on either path
        assert not layer.plan.dense_for(False, training=True), layer
    # Groups of one channel cost a pass each too: 32 one-channel pieces (2 of them) cost more
    # than the dense convolution's 4 groups of 8 (sparse path 1.8x / 3x its time at 14x14).
    plus = SSCConv2d(32, 32, 3, groups=4, spatial_channels=1, pointwise_channels=7, phases=8,
                     pattern="plus")
    assert plus.plan.dense_for(False) and plus.plan.dense_for(False, training=True)


@settings(max_examples=100, deadline=None)
@given(spec=specs())
def test_stored_params_are_compact(spec: SSCSpec) -> None:
    layer = SSCConv2d.from_spec(spec)
    stored = sum(p.numel() for p in layer.parameters())
    assert stored == spec.params
    weights = layer.spatial_weight.numel() + layer.pointwise_weight.numel()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand_like(p) + 0.5)  # no stored weight is zero
    assert int((layer.to_dense_weight() != 0).sum()) == weights


def test_gradcheck_small_layer() -> None:
    layer = SSCConv2d(4, 4, 3, spatial_channels=1, pointwise_channels=2, pattern="plus",
                      phases=2, groups=1, bias=True).double()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


class _Builds(nn.Module):
    """A layer's two weight builds as a module without inputs, so that ``functional_call`` can
    swap in the stored weights as inputs of a gradient check."""

    def __init__(self, layer: SSCConv2d) -> None:
        super().__init__()
        self.layer = layer

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer.to_dense_weight(), self.layer._one_by_one_weight(slot_order=True)


@pytest.mark.parametrize("knobs", [
    dict(spatial_channels=2, pointwise_channels=2, phases=2),  # full: centre not folded
    dict(spatial_channels=2, pointwise_channels=1, pattern="plus", phases=3),  # centre folded
    dict(spatial_channels=3, pointwise_channels=0, pattern="x"),
])
def test_weight_builds_have_exact_gradients_in_the_stored_weights(knobs: dict) -> None:
    """Both builds run a hand-written backward (``_Place``): check it numerically."""
    builds = _Builds(SSCConv2d(6, 6, 3, **knobs).double())
    stored = tuple(p.detach().clone().requires_grad_() for p in builds.layer.parameters())

    def run(spatial: torch.Tensor, pointwise: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.func.functional_call(builds, {"layer.spatial_weight": spatial,
                                                   "layer.pointwise_weight": pointwise}, ())

    assert torch.autograd.gradcheck(run, stored)
    assert torch.equal(run(*stored)[0], builds.layer.to_dense_weight())


@pytest.mark.parametrize(
    ("c_in", "c_out", "n_k", "n_1", "phases", "groups", "expected"),
    [
        # The design note's worked examples: (spatial, pointwise) channels per filter.
        (8, 4, 2, 3, 4, 1, [((0, 1), (2, 3, 4)), ((2, 3), (4, 5, 6)), ((4, 5), (6, 7, 0)),
                            ((6, 7), (0, 1, 2))]),
        (8, 4, 1, 1, 2, 2, [((0,), (1,)), ((2,), (3,)), ((4,), (5,)), ((6,), (7,))]),
        # Phases that do not divide the block: windows start at p * ceil(B / phases), cyclically.
        (8, 3, 3, 1, 3, 1, [((0, 1, 2), (3,)), ((3, 4, 5), (6,)), ((6, 7, 0), (1,))]),
        (10, 4, 2, 1, 2, 2, [((0, 1), (2,)), ((3, 4), (0,)), ((5, 6), (7,)), ((8, 9), (5,))]),
    ],
)
def test_design_note_examples(c_in, c_out, n_k, n_1, phases, groups, expected) -> None:
    spec = SSCSpec(c_in, c_out, 3, groups=groups, spatial_channels=n_k, pointwise_channels=n_1,
                   phases=phases)
    assert [spec.channel_sets(f) for f in range(c_out)] == expected


def test_filter_f_is_output_channel_f() -> None:
    """Zeroing filter f's weights zeroes output channel f and only it."""
    layer = SSCConv2d(8, 6, 3, spatial_channels=2, pointwise_channels=2, phases=3)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        layer.spatial_weight[4].zero_()
        layer.pointwise_weight[4].zero_()
    y = layer(x)
    assert torch.count_nonzero(y[:, 4]) == 0
    assert all(torch.count_nonzero(y[:, f]) > 0 for f in range(6) if f != 4)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_pattern_masks(pattern: str, k: int) -> None:
    mask = pattern_mask(pattern, k)
    expected = {"full": k * k, "plus": 2 * k - 1, "x": 2 * k - 1, "checker": (k * k + 1) // 2,
                "center": 1}[pattern]
    assert int(mask.sum()) == num_positions(pattern, k) == expected
    assert mask[k // 2, k // 2]
    layer = SSCConv2d(2, 2, k, pattern=pattern)
    with torch.no_grad():
        layer.spatial_weight.fill_(1.0)
    assert torch.equal(layer.to_dense_weight()[0, 0] != 0, mask)


def _conv_pairs() -> list[tuple[str, nn.Conv2d]]:
    return [
        ("standard", nn.Conv2d(6, 8, 3, padding=1, bias=True)),
        ("standard-k5-s2", nn.Conv2d(6, 8, 5, stride=2, padding=2)),
        ("groupwise", nn.Conv2d(6, 9, 3, padding=1, groups=3)),
        ("depthwise", nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)),
        ("depthwise-x2", nn.Conv2d(6, 12, 3, stride=2, padding=1, groups=6)),
        ("pointwise", nn.Conv2d(6, 8, 1)),
        ("no-padding", nn.Conv2d(6, 4, 3, padding=0)),
        ("padding-same", nn.Conv2d(6, 4, 3, padding="same")),
    ]


@pytest.mark.parametrize(("name", "conv"), _conv_pairs(), ids=[n for n, _ in _conv_pairs()])
def test_from_conv2d_is_exact(name: str, conv: nn.Conv2d) -> None:
    conv = conv.double()
    layer = SSCConv2d.from_conv2d(conv)
    x = torch.randn(2, conv.in_channels, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-12, atol=1e-12)
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in conv.parameters())
    back = layer.to_conv2d()
    torch.testing.assert_close(back(x), conv(x), rtol=1e-12, atol=1e-12)


def test_named_constructors_match_their_special_cases() -> None:
    x = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    cases = {
        "standard": (SSCConv2d.standard(8, 4), nn.Conv2d(8, 4, 3, padding=1, bias=False)),
        "groupwise": (SSCConv2d.groupwise(8, 4, groups=2),
                      nn.Conv2d(8, 4, 3, padding=1, groups=2, bias=False)),
        "depthwise": (SSCConv2d.depthwise(8), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)),
        "pointwise": (SSCConv2d.pointwise(8, 4), nn.Conv2d(8, 4, 1, bias=False)),
    }
    for name, (layer, conv) in cases.items():
        layer, conv = layer.double(), conv.double()
        with torch.no_grad():
            conv.weight.copy_(layer.to_dense_weight())
        torch.testing.assert_close(layer(x), conv(x), msg=name)
        assert sum(p.numel() for p in layer.parameters()) == conv.weight.numel(), name


def test_hetconv_structure() -> None:
    """HetConv(P): each filter has C/P spatial and C - C/P 1x1 kernels, shifted across filters."""
    c, part = 8, 4
    layer = SSCConv2d.hetconv(c, 8, part=part)
    dense = layer.to_dense_weight()
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(1.0)
    dense = layer.to_dense_weight()
    spatial = (dense != 0).flatten(2).sum(2) > 1  # channels with a K x K kernel
    assert spatial.sum(1).tolist() == [c // part] * 8
    assert ((dense != 0).flatten(2).sum(2) == 1).sum(1).tolist() == [c - c // part] * 8
    # The spatial channels move across the first P filters and cover every channel.
    assert spatial[:part].any(0).all()
    assert sum(p.numel() for p in layer.parameters()) == 8 * (2 * 9 + 6)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"in_channels": 6, "out_channels": 4, "groups": 4}, "groups must divide"),
        ({"in_channels": 4, "out_channels": 4, "spatial_channels": 5},
         r"spatial_channels.*\[0, 4\]"),
        ({"in_channels": 4, "out_channels": 4, "spatial_channels": 3, "pointwise_channels": 2},
         r"pointwise_channels.*\[0, 1\]"),
        ({"in_channels": 4, "out_channels": 4, "kernel_size": 4}, "kernel_size must be odd"),
        ({"in_channels": 4, "out_channels": 4, "kernel_size": 0}, "kernel_size"),
        ({"in_channels": 4, "out_channels": 4, "pattern": "star"}, "pattern must be one of"),
        ({"in_channels": 4, "out_channels": 4, "phases": 5}, r"phases.*\[1, 4\]"),
        ({"in_channels": 4, "out_channels": 4, "phases": 0}, "phases"),
        ({"in_channels": 4, "out_channels": 4, "stride": 0}, "stride"),
        ({"in_channels": 4, "out_channels": 4, "padding": -1}, "padding"),
        ({"in_channels": 0, "out_channels": 4}, "in_channels"),
        ({"in_channels": 4, "out_channels": 4, "spatial_channels": 0}, "spatial_channels \\+"),
    ],
)
def test_bad_knobs_raise_value_error_naming_the_knob(knobs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SSCConv2d(**knobs)


def test_from_conv2d_rejects_what_it_cannot_represent() -> None:
    with pytest.raises(ValueError, match="dilation"):
        SSCConv2d.from_conv2d(nn.Conv2d(4, 4, 3, dilation=2))
    with pytest.raises(ValueError, match="square kernel"):
        SSCConv2d.from_conv2d(nn.Conv2d(4, 4, (3, 1)))


def test_state_dict_round_trip_and_device_move() -> None:
    a = SSCConv2d(8, 8, 3, spatial_channels=2, pointwise_channels=4, phases=4, pattern="x")
    b = SSCConv2d(8, 8, 3, spatial_channels=2, pointwise_channels=4, phases=4, pattern="x")
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"spatial_weight", "pointwise_weight"}
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(a(x), b(x))
    if torch.cuda.is_available():
        torch.testing.assert_close(a.cuda()(x.cuda()).cpu(), b(x), rtol=1e-4, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(spec=specs())
def test_from_conv2d_with_knobs_keeps_dense_weights_where_structure_keeps_them(
    spec: SSCSpec,
) -> None:
    conv = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                     spec.padding, bias=spec.bias).double()
    knobs = {k: v for k, v in spec.to_dict().items()
             if k not in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                          "bias")}
    layer = SSCConv2d.from_conv2d(conv, **knobs)
    dense = layer.to_dense_weight()
    assert layer.spec == spec
    kept = layer.with_knobs()
    with torch.no_grad():
        for p in kept.parameters():
            p.fill_(1.0)
    mask = kept.to_dense_weight() != 0  # the structure, in the layer's own block layout
    expanded = torch.zeros_like(dense)
    for f in range(spec.out_channels):
        g = f // spec.filters_per_group
        expanded[f] = conv.weight[f, g * spec.block:(g + 1) * spec.block]
    torch.testing.assert_close(dense, expanded * mask)


@pytest.mark.parametrize(
    "knobs",
    [dict(spatial_channels=2, pointwise_channels=6, phases=4),
     dict(spatial_channels=2, pointwise_channels=2, phases=4, pattern="plus", groups=2),
     dict(spatial_channels=4, phases=2, pattern="x")],
)
def test_channels_last_in_channels_last_out(knobs: dict) -> None:
    """Phases regroup filters; putting them back must not drop the memory format."""
    layer = SSCConv2d(8, 8, 3, **knobs).to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    y = layer(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, layer.reference_forward(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("pattern", "kernel", "stride"),
                         [("full", 3, 1), ("full", 3, 2), ("plus", 5, 1), ("x", 3, 2),
                          ("center", 1, 1)])
def test_depthwise_pairs_on_cpu_equal_one_convolution(pattern: str, kernel: int, stride: int,
                                                      channels_last: bool) -> None:
    """A CPU depthwise layer with two filters per channel runs as two depthwise convolutions
    (``_conv2d``), on both paths: the same values and gradients as one grouped convolution,
    in the input's memory format."""
    torch.manual_seed(0)
    layer = SSCConv2d.depthwise(6, kernel, multiplier=2, stride=stride, pattern=pattern,
                                bias=True).double()
    assert layer.spec.block == 1 and layer.spec.filters_per_group == 2
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 6, 9, 8, dtype=torch.float64).contiguous(memory_format=fmt)
    x.requires_grad_()
    params = [x, *layer.parameters()]
    ref = layer.reference_forward(x)
    g = torch.randn(ref.shape, dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref * g).sum(), params)
    for forward in (lambda: layer._dense_conv(x, layer.to_dense_weight()),
                    lambda: layer._sparse_forward(x)):
        y = forward()
        assert y.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        grads = torch.autograd.grad((y * g).sum(), params, materialize_grads=True)
        for a, b in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
