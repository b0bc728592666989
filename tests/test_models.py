"""Model families: published dense sizes, any input shape, SSC where searched, JSON, gradients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssc_nas.cost import count
from ssc_nas.layers import SSCConv2d
from ssc_nas.models import (
    FAMILIES,
    Architecture,
    InputShape,
    LayerSetting,
    architecture_cost,
    build,
    describe,
    get_family,
    layer_table,
    plan,
    read_architecture_file,
    slot_spec,
)
from ssc_nas.spaces import resolve_setting

FAMILY_NAMES = list(FAMILIES)

# Dense parameter counts as published for 3 x 32 x 32 inputs and 10 classes: He et al. 2016
# (Table 6: ResNet-20 0.27M, ResNet-56 0.85M); the CIFAR VGG-16 / ResNet-18 of SNIP, GraSP and
# SynFlow (14.7M, 11.2M); CIFAR VGG-11 with one linear layer (9.2M, e.g. kuangliu/pytorch-cifar).
PUBLISHED = {
    "resnet20": 0.27e6,
    "resnet56": 0.85e6,
    "vgg16": 14.7e6,
    "resnet18": 11.2e6,
    "vgg11": 9.2e6,
}


def _mixed(family: str, width: float = 1.0, input_size: tuple[int, int] = (32, 32),
           in_channels: int = 3) -> Architecture:
    """A non-standard architecture touching every searchable layer: grouped, sparse, HetConv."""
    layers = {}
    patterns = ("plus", "x", "checker", "full")
    for i, slot in enumerate(plan(family, width, in_channels, 10, input_size).searchable):
        groups = 2 if slot.in_channels % 2 == 0 and slot.out_channels % 2 == 0 else 1
        if slot.default.depthwise:
            groups = "depthwise"
        values = {"groups": groups, "pattern": patterns[i % 4], "spatial_fraction": 0.5,
                  "pointwise_fraction": (1.0, 0.5, 0.0)[i % 3], "phases": "cover"}
        layers[slot.name] = resolve_setting(slot, values)
    return Architecture(family, width, layers)


@pytest.mark.parametrize("family", list(PUBLISHED))
def test_standard_setting_matches_published_dense_size(family: str) -> None:
    arch = Architecture(family)
    cost = architecture_cost(arch, 3, 10, (32, 32))
    assert cost.params == pytest.approx(PUBLISHED[family], rel=0.02)
    assert count(build(arch, 3, 10, (32, 32)), (3, 32, 32)) == cost


def test_mobilenetv2_dense_size() -> None:
    arch = Architecture("mobilenetv2")
    cost = architecture_cost(arch, 3, 10, (32, 32))
    assert 2.2e6 <= cost.params <= 2.3e6  # Sandler et al.: 2.2M with a 10-class head
    assert count(build(arch, 3, 10, (32, 32)), (3, 32, 32)) == cost


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_count_of_built_model_equals_analytic_cost_for_non_standard_settings(family: str) -> None:
    for width, channels, size in ((1.0, 3, (32, 32)), (0.5, 1, (8, 8))):
        arch = _mixed(family, width, size, channels)
        model = build(arch, channels, 7, size)
        assert count(model, (channels, *size)) == architecture_cost(arch, channels, 7, size)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_any_input_shape(family: str) -> None:
    for channels in (1, 3):
        for size in (8, 28, 32, 64):
            model = build(Architecture(family), channels, 10, (size, size)).eval()
            with torch.no_grad():
                out = model(torch.randn(2, channels, size, size))
            assert out.shape == (2, 10), (channels, size)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_searched_convs_are_ssc_and_stem_and_classifier_are_dense(family: str) -> None:
    arch = _mixed(family)
    p = plan(family, 1.0, 3, 10, (32, 32))
    model = build(arch, 3, 10, (32, 32))
    ssc = [m for m in model.modules() if isinstance(m, SSCConv2d)]
    dense = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # Every slot (searched or not) is an SSC layer with exactly the spec the plan gives it.
    assert [m.spec for m in ssc] == [slot_spec(s, arch.setting(s)) for s in p.slots]
    assert {s.name for s in p.searchable} == set(arch.layers)
    assert any(m.spec.groups > 1 or m.spec.pattern != "full" for m in ssc)
    (stem,) = dense
    assert (stem.in_channels, stem.out_channels) == (3, p.stem.out_channels)
    assert stem.kernel_size == (3, 3) and not p.stem.searchable
    (classifier,) = linear
    assert (classifier.in_features, classifier.out_features) == (p.classifier_in, 10)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_forward_backward_gives_finite_gradients(family: str) -> None:
    torch.manual_seed(0)
    model = build(_mixed(family, 0.5, (16, 16)), 3, 10, (16, 16)).train()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    for name, param in model.named_parameters():
        if param.numel() == 0:  # an SSC layer without pointwise (or spatial) channels
            continue
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    grads = [m.spatial_weight.grad for m in model.modules()
             if isinstance(m, SSCConv2d) and m.spatial_weight.numel()]
    assert sum(int(g.abs().sum() > 0) for g in grads) >= len(grads) // 2


# -- architectures as data ---------------------------------------------------------------------


ARCH = Architecture("resnet20", 0.5, {
    "stage1.block0.conv1": LayerSetting(groups=2, spatial_channels=2, pointwise_channels=2,
                                        pattern="plus", phases=2),
    "stage3.block2.conv2": LayerSetting(groups="depthwise"),
})


def test_architecture_json_round_trip(tmp_path: Path) -> None:
    text = ARCH.to_json(indent=2)
    assert Architecture.from_json(text) == ARCH
    data = json.loads(text)
    assert data["layers"]["stage3.block2.conv2"] == {"groups": "depthwise"}  # defaults left out
    legacy = {**data, "layers": {**data["layers"], "stage3.block2.conv2": {"groups": 0}}}
    assert Architecture.from_dict(legacy) == ARCH  # groups 0: old files' depthwise
    plain = tmp_path / "arch.json"
    plain.write_text(text)
    wrapped = tmp_path / "result.json"
    wrapped.write_text(json.dumps({"score": 0.9, "architecture": data}))
    assert read_architecture_file(plain)[0] == ARCH
    assert read_architecture_file(wrapped)[0] == ARCH
    a = build(ARCH, 3, 10, (32, 32))
    b = build(read_architecture_file(plain)[0], 3, 10, (32, 32))
    assert count(a, (3, 32, 32)) == count(b, (3, 32, 32))
    assert Architecture.from_dict({"family": "vgg11"}) == Architecture("vgg11")
    assert ARCH.summary().startswith("ResNet-20 x0.5")


def test_depthwise_default_resolves_to_in_channels() -> None:
    assert LayerSetting(groups="depthwise").knobs(24)["groups"] == 24
    assert LayerSetting(groups=0) == LayerSetting(groups="depthwise")  # legacy spelling
    layer = dict(build(ARCH, 3, 10, (32, 32)).named_modules())["blocks.8.conv2"]
    assert layer.spec.groups == layer.spec.in_channels == 32


def test_architecture_errors() -> None:
    with pytest.raises(ValueError, match="unknown layer knob.*valid knobs: groups"):
        Architecture.from_dict({"family": "resnet20", "layers": {"x": {"group": 2}}})
    with pytest.raises(ValueError, match="needs a 'family'"):
        Architecture.from_dict({"width": 1.0})
    with pytest.raises(ValueError, match="unknown family 'resnet99'; valid families: vgg16"):
        build(Architecture("resnet99"), 3, 10, (32, 32))
    with pytest.raises(ValueError, match="unknown family"):
        architecture_cost(Architecture("resnet99"), 3, 10, (32, 32))
    with pytest.raises(ValueError, match="unknown family"):
        get_family("resnet99")
    with pytest.raises(ValueError, match="width must be > 0"):
        build(Architecture("resnet20", 0.0), 3, 10, (32, 32))


def test_build_rejects_layers_the_family_lacks() -> None:
    arch = Architecture("resnet20", 1.0, {"stage4.block0.conv1": LayerSetting(groups=2)})
    with pytest.raises(ValueError, match=r"resnet20 does not have.*stage4\.block0\.conv1"):
        build(arch, 3, 10, (32, 32))
    # resnet56 layer names are not resnet20's either.
    arch = Architecture("resnet20", 1.0, {"stage1.block8.conv1": LayerSetting()})
    with pytest.raises(ValueError, match="does not have"):
        build(arch, 3, 10, (32, 32))


def test_describe_says_the_dominant_settings_in_words() -> None:
    shape = InputShape(3, (32, 32), 10)
    assert describe(Architecture("resnet20", 0.5), shape) == (
        "ResNet-20 x0.5, ungrouped, full 3x3 on all channels")
    p = plan("resnet20", 1.0, 3, 10, (32, 32))
    stage1 = [s.name for s in p.searchable if s.in_channels == s.out_channels == 16]
    het = LayerSetting(spatial_channels=4, pointwise_channels=12, phases=4, pattern="plus")
    layers = {name: het for name in stage1}
    text = describe(Architecture("resnet20", 1.0, layers), shape)
    assert text == "ResNet-20 x1, ungrouped, mostly full 3x3 on all channels"  # 12 of 18
    layers = {s.name: LayerSetting(spatial_channels=s.in_channels // 4, pattern="plus",
                                   pointwise_channels=s.in_channels * 3 // 4, phases=4)
              for s in p.searchable[:12]}
    assert describe(Architecture("resnet20", 1.0, layers), shape) == (
        "ResNet-20 x1, ungrouped, mostly plus-pattern 3x3 on 1/4 of channels, mostly 1x1 on the "
        "rest, "
        "mostly 4 phases")
    rows = layer_table(Architecture("resnet20", 1.0, layers), shape)
    assert [r["layer"] for r in rows] == [s.name for s in p.searchable]
    assert all(r["params"] > 0 for r in rows)


def test_input_shape_reads_both_vocabularies() -> None:
    new = InputShape(1, (8, 8), 10)
    assert new.to_dict() == {"in_channels": 1, "input_size": [8, 8], "num_classes": 10}
    assert InputShape.from_dict(new.to_dict()) == new
    assert InputShape.from_dict({"channels": 1, "size": [8, 8], "classes": 10}) == new


def test_load_refuses_a_file_that_is_not_a_model_file(tmp_path: Path) -> None:
    """A bare state dict (or any other torch file) is named as such, not a KeyError."""
    from ssc_nas.models import load

    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"weights\.pt is not a model file of ssc-nas train "
                                         r"\(no architecture, input, state_dict\)"):
        load(path)
