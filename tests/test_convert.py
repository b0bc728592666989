"""convert(): torchvision and user models to SSC, exact for "standard", analytic for the rest."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

import ssc_nas
from ssc_nas.conversion import convert, is_eligible
from ssc_nas.cost import count, layer_cost
from ssc_nas.errors import SpaceError
from ssc_nas.layers import SSCConv2d, num_positions

SETTING = {"groups": 2, "spatial_fraction": 0.25, "pointwise_fraction": 1.0, "pattern": "plus"}


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def _convs(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | SSCConv2d)}


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_convert_is_public() -> None:
    assert "convert" in ssc_nas.__all__
    assert ssc_nas.convert is convert


def test_standard_resnet18_is_exact_and_leaves_the_input_alone(resnet18: nn.Module) -> None:
    model = copy.deepcopy(resnet18).double()
    before = _snapshot(model)
    types_before = {n: type(m) for n, m in model.named_modules()}
    out = convert(model)
    assert out is not model
    # The input is untouched: same module types, same weights.
    assert {n: type(m) for n, m in model.named_modules()} == types_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Every eligible conv (all of resnet18's, the 7x7 stride-2 stem included) became SSC.
    convs = _convs(model)
    assert len(convs) == 20 and all(is_eligible(c) for c in convs.values())
    converted = _convs(out)
    assert converted.keys() == convs.keys()
    assert all(isinstance(m, SSCConv2d) for m in converted.values())
    assert converted["conv1"].spec.kernel_size == 7 and converted["conv1"].spec.stride == 2
    assert count(out.float(), (3, 32, 32)) == count(resnet18, (3, 32, 32))
    out.double()
    assert not out.training
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(out(x), model(x), rtol=1e-12, atol=1e-12)


def test_standard_is_exact_for_grouped_depthwise_and_biased_convs() -> None:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10).eval().double()
    out = convert(model)
    assert not any(isinstance(m, nn.Conv2d) for m in out.modules())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(out(x), model(x), rtol=1e-12, atol=1e-12)
    biased = nn.Sequential(nn.Conv2d(4, 6, 5, stride=2, padding=2, bias=True),
                           nn.Conv2d(6, 6, 3, padding="same", groups=3)).double()
    out = convert(biased)
    assert all(isinstance(m, SSCConv2d) for m in out)
    x = torch.randn(2, 4, 11, 11, dtype=torch.float64)
    torch.testing.assert_close(out(x), biased(x), rtol=1e-12, atol=1e-12)


def _input_sizes(model: nn.Module, shape: tuple[int, int, int]) -> dict[str, tuple[int, int]]:
    """(H, W) of the input each conv sees in one forward pass."""
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
            sizes[name] = (args[0].shape[2], args[0].shape[3])

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in _convs(model).items()]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return sizes


def test_non_standard_setting_matches_the_analytic_count(resnet18: nn.Module) -> None:
    out = convert(resnet18, SETTING)
    convs = _convs(out)
    # conv1 has 3 input channels: groups=2 does not divide them, so it stays dense.
    assert type(convs.pop("conv1")) is nn.Conv2d
    assert all(isinstance(m, SSCConv2d) for m in convs.values())
    dense, cost = count(resnet18, (3, 32, 32)), count(out, (3, 32, 32))
    assert cost.params < dense.params / 2
    # The model's count is the sum of each SSC layer's analytic cost plus the dense rest.
    sizes = _input_sizes(resnet18, (3, 32, 32))
    analytic = [layer_cost(sizes[n], **m.spec.to_dict()) for n, m in convs.items()]
    for (name, layer), c in zip(convs.items(), analytic, strict=True):
        assert c.params == sum(p.numel() for p in layer.parameters()), name
    stem = resnet18.conv1
    stem_params, fc = stem.weight.numel(), resnet18.fc
    bn = sum(p.numel() for m in out.modules() if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())
    assert cost.params == sum(c.params for c in analytic) + stem_params + bn + (
        fc.weight.numel() + fc.bias.numel())
    assert cost.macs == sum(c.macs for c in analytic) + stem_params * 16 * 16 + 512 * 10
    # One layer by hand: 64 -> 64, 3x3, G=2 (block 32): 8 spatial 'plus' (5 taps) + 24 1x1.
    s = convs["layer1.0.conv1"].spec
    assert (s.groups, s.spatial_channels, s.pointwise_channels, s.pattern) == (2, 8, 24, "plus")
    assert s.phases == 4 and s.params == 64 * (8 * num_positions("plus", 3) + 24)
    # 1x1 downsample: the pattern does not apply; its 8 + 24 channels are all 1x1.
    d = convs["layer2.0.downsample.0"].spec
    assert (d.kernel_size, d.pattern, d.params) == (1, "full", 128 * 32)


def test_non_standard_keeps_dense_weights_where_the_structure_does(resnet18: nn.Module) -> None:
    out = convert(resnet18, SETTING)
    conv, layer = resnet18.layer2[1].conv2, out.layer2[1].conv2
    dense = layer.to_dense_weight().detach()  # (C_out, C_in / 2, 3, 3)
    s = layer.spec
    group = torch.arange(s.out_channels) // s.filters_per_group
    channels = group.view(-1, 1) * s.block + torch.arange(s.block).view(1, -1)
    original = conv.weight.detach()[torch.arange(s.out_channels).view(-1, 1), channels]
    kept = dense != 0
    assert kept.sum() == s.params
    torch.testing.assert_close(dense[kept], original[kept])


def test_callable_setting_and_skip(resnet18: nn.Module) -> None:
    def only_square_3x3(name: str, conv: nn.Conv2d) -> dict | str | None:
        if conv.kernel_size == (3, 3) and conv.in_channels == conv.out_channels:
            return {"groups": "depthwise", "pattern": "x"}
        return "standard" if name.startswith("layer4") else None

    out = convert(resnet18, only_square_3x3, skip=["layer4.1.*", "layer1.0.conv2"])
    convs = _convs(out)
    for name, conv in _convs(resnet18).items():
        got = convs[name]
        if name.startswith("layer4.1.") or name == "layer1.0.conv2":
            assert type(got) is nn.Conv2d, name
        elif conv.kernel_size == (3, 3) and conv.in_channels == conv.out_channels:
            assert isinstance(got, SSCConv2d), name
            assert got.spec.groups == conv.in_channels and got.spec.pattern == "x"
        elif name.startswith("layer4"):
            assert isinstance(got, SSCConv2d) and got.spec.groups == 1, name
            assert got.spec.spatial_channels == conv.in_channels
        else:
            assert type(got) is nn.Conv2d, name
    dense = convert(resnet18, skip=["*"])
    assert all(type(m) is nn.Conv2d for m in _convs(dense).values())


class Mixed(nn.Module):
    """Eligible and ineligible convolutions, one used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.ok = nn.Conv2d(4, 8, 3, padding=1)
        self.odd_groups = nn.Conv2d(8, 6, 3, padding=1)  # groups=4 does not divide 6
        self.tall = nn.Conv2d(6, 8, (3, 1), padding=(1, 0))
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.reflect = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.even = nn.Conv2d(8, 8, 2, padding=1)
        self.strided = nn.Conv2d(8, 8, 3, stride=(1, 2), padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.again = self.shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tall(self.odd_groups(self.ok(x)))
        x = self.even(self.reflect(self.dilated(x)))
        return self.again(self.shared(self.strided(x)))


def test_ineligible_and_indivisible_convs_stay_dense() -> None:
    torch.manual_seed(0)
    model = Mixed().double()
    out = convert(model, {"groups": 4, "spatial_fraction": 0.5})
    assert isinstance(out.ok, SSCConv2d) and out.ok.spec.groups == 4
    assert out.ok.spec.spatial_channels == 1 and out.ok.spec.bias
    for name in ("odd_groups", "tall", "dilated", "reflect", "even", "strided"):
        assert type(getattr(out, name)) is nn.Conv2d, name
    assert isinstance(out.shared, SSCConv2d) and out.again is out.shared
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    assert out(x).shape == model(x).shape
    exact = convert(model)
    torch.testing.assert_close(exact(x), model(x), rtol=1e-12, atol=1e-12)
    assert exact.again is exact.shared


def test_a_setting_whose_groups_fit_no_layer_warns(resnet18: nn.Module) -> None:
    """groups 3 divides none of ResNet-18's channel counts: the model comes back unchanged, and
    a warning says so (it used to come back silently). A partial fit (the RGB stem under
    groups 2) stays silent, as documented."""
    with pytest.warns(UserWarning, match=r"groups fit none of the 20 convolution\(s\) it "
                                         r"applies to \(conv1, layer1\.0\.conv1"):
        out = convert(resnet18, {"groups": 3})
    assert not any(isinstance(m, SSCConv2d) for m in out.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = convert(resnet18, {"groups": 2})
    assert type(out.conv1) is nn.Conv2d and isinstance(out.layer1[0].conv1, SSCConv2d)


def test_depthwise_conv_keeps_its_groups_unless_asked() -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                          nn.Conv2d(8, 16, 1, bias=False))
    out = convert(model, {"pattern": "plus"})
    assert out[0].spec.groups == 8 and out[0].spec.pattern == "plus"
    assert out[0].spec.params == 8 * 5
    assert out[1].spec.groups == 1 and out[1].spec.pattern == "full"
    # groups=2 cannot represent a depthwise conv (it would connect channels): left dense.
    out = convert(model, {"groups": 2})
    assert type(out[0]) is nn.Conv2d and out[1].spec.groups == 2


def test_keeps_dtype_mode_and_frozen_weights() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)).double()
    model[0].requires_grad_(False)
    model.train()
    out = convert(model, {"pattern": "checker", "phases": 2})
    assert out.training and all(m.training for m in out)
    assert out[0].spatial_weight.dtype == torch.float64
    assert not out[0].spatial_weight.requires_grad and out[1].spatial_weight.requires_grad
    assert out[1].spec.phases == 2
    root = convert(nn.Conv2d(4, 4, 3, padding=1))
    assert isinstance(root, SSCConv2d)


@pytest.mark.parametrize(
    ("setting", "error", "match"),
    [
        ({"group": 2}, ValueError, "valid knobs: groups, pattern"),
        ({"pattern": "star"}, SpaceError, "one of full, plus, x, checker"),
        ({"groups": [1, 2]}, ValueError, "one value"),
        ({"spatial_fraction": 2.0}, SpaceError, r"\[0, 1\]"),
        ("dense", ValueError, "'standard', a mapping"),
        (3, ValueError, "must be 'standard', a mapping or None"),
    ],
)
def test_bad_settings_are_rejected(setting: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        convert(nn.Conv2d(4, 4, 3, padding=1), setting)  # type: ignore[arg-type]
