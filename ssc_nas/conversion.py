"""Turn any ``nn.Module`` (torchvision or your own) into its SSC version.

:func:`convert` swaps every eligible ``nn.Conv2d`` of a deep copy for an
:class:`~ssc_nas.SSCConv2d` made by :meth:`SSCConv2d.from_conv2d`, which keeps the dense
weights where the structure keeps them. A setting is given in the vocabulary of
``search_spaces/*.yaml`` (``groups``, ``pattern``, ``spatial_fraction``, ``pointwise_fraction``,
``phases``) and resolved per layer by :func:`ssc_nas.spaces.resolve_setting`, the same rule the
search spaces use, so a converted network and a searched one mean the same thing by a setting.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from torch import nn

from .layers import SSCConv2d
from .models import ConvSlot
from .spaces import SPACE_KNOBS, resolve_setting
from .spaces.schema import DEFAULT_CHOICES, _choices

__all__ = ["Setting", "convert", "is_eligible"]

STANDARD = "standard"

#: What one layer gets: ``"standard"``, a mapping of knobs, or ``None`` (leave it dense).
LayerChoice: TypeAlias = str | Mapping[str, Any] | None
#: What :func:`convert` takes: one choice for every layer, or a function of (name, conv).
Setting: TypeAlias = str | Mapping[str, Any] | Callable[[str, nn.Conv2d], LayerChoice]


def is_eligible(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` an SSC layer can represent exactly.

    That is: a square odd kernel, dilation 1, ``zeros`` padding mode, and the same stride and
    padding on both axes (integers, or ``"same"``). Subclasses of ``nn.Conv2d`` are not
    eligible, since they may compute something else in ``forward``.
    """
    if type(conv) is not nn.Conv2d:
        return False
    kh, kw = conv.kernel_size
    padding = conv.padding
    if padding == "same":
        padding = (kh // 2, kw // 2)
    return (
        kh == kw
        and kh % 2 == 1
        and conv.dilation == (1, 1)
        and conv.padding_mode == "zeros"
        and not isinstance(padding, str)
        and padding[0] == padding[1]
        and conv.stride[0] == conv.stride[1]
    )


def _validate(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a knob mapping (one value per knob) with the search-space schema's rules."""
    unknown = [k for k in values if k not in SPACE_KNOBS]
    if unknown:
        raise ValueError(f"unknown SSC knob(s) {unknown}; valid knobs: {', '.join(SPACE_KNOBS)}")
    out = {}
    for knob, value in values.items():
        if isinstance(value, list | tuple):
            raise ValueError(f"{knob} takes one value in a convert setting, but got {value!r}")
        (out[knob],) = _choices("convert setting", knob, knob, value)
    return out


def _knobs_for(conv: nn.Conv2d, name: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """``SSCConv2d`` knobs for ``conv`` under ``values``, or ``None`` when groups do not fit.

    Knobs left out keep the convolution's own structure: its ``groups``, all channels spatial
    with the ``full`` pattern (the schema's defaults for the other knobs).
    """
    full = {k: DEFAULT_CHOICES[k][0] for k in SPACE_KNOBS}
    full["groups"] = conv.groups
    full.update(values)
    c_in, c_out = conv.in_channels, conv.out_channels
    g = c_in if full["groups"] == "depthwise" else full["groups"]
    if c_in % g or c_out % g or g % conv.groups:
        return None
    slot = ConvSlot(name, "", c_in, c_out, conv.kernel_size[0], conv.stride[0], (0, 0))
    return resolve_setting(slot, full).knobs(c_in)


class _Misfit(Exception):
    """The setting's ``groups`` cannot apply to this convolution's channels."""


def _choose(setting: Setting, name: str, conv: nn.Conv2d) -> dict[str, Any] | None:
    """The ``from_conv2d`` knobs for one convolution, or ``None`` to leave it as it is (raises
    :class:`_Misfit` where the setting asks for groups that do not fit)."""
    choice = setting(name, conv) if callable(setting) else setting
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice != STANDARD:
            raise ValueError(
                f"a setting is {STANDARD!r}, a mapping of knobs ({', '.join(SPACE_KNOBS)}) or a "
                f"callable (name, conv) -> setting | None, but got {choice!r} for {name!r}"
            )
        return {}
    if not isinstance(choice, Mapping):
        raise ValueError(f"a layer setting must be {STANDARD!r}, a mapping or None, but got "
                         f"{type(choice).__name__} for {name!r}")
    knobs = _knobs_for(conv, name, _validate(choice))
    if knobs is None:
        raise _Misfit(name)
    return knobs


def convert(
    model: nn.Module,
    setting: Setting = STANDARD,
    *,
    skip: Iterable[str] | None = None,
) -> nn.Module:
    """A deep copy of ``model`` with every eligible ``nn.Conv2d`` replaced by an SSC layer.

    Args:
        model: any module; it is not modified.
        setting: ``"standard"`` (exact: dense SSC layers with the same weights, so outputs are
            unchanged); a mapping of search-space knobs applied to every layer, each knob left
            out keeping the convolution's own structure (``groups`` int or ``"depthwise"``,
            ``pattern``, ``spatial_fraction``, ``pointwise_fraction``, ``phases`` int or
            ``"cover"``), resolved per layer exactly as a search space resolves it; or a
            callable ``(name, conv) -> "standard" | mapping | None`` deciding per layer, where
            ``None`` leaves that convolution dense.
        skip: module names (``fnmatch`` globs such as ``"conv1"`` or ``"layer4.*"``) to leave
            dense.

    A convolution is left unchanged, silently, when it is not eligible (see
    :func:`is_eligible`: e.g. a (3, 1) kernel or a dilated one; a 7 x 7 stride-2 stem is
    eligible), or when the requested ``groups`` does not divide its input and output channels
    or is not a multiple of its own ``groups`` (an SSC layer cannot connect channels the dense
    one keeps apart; an RGB stem, say); a ``UserWarning`` says so when that leaves no layer
    converted. Non-standard settings project the dense weights onto the structure
    (``SSCConv2d.from_conv2d``): the result needs fine-tuning. Each new layer keeps the
    convolution's device, dtype, training mode and ``requires_grad``; a convolution shared by
    several parents becomes one shared SSC layer.
    """
    patterns = tuple(skip or ())
    model = copy.deepcopy(model)
    replaced: dict[int, SSCConv2d] = {}
    misfits: list[str] = []
    for name, module in model.named_modules():
        if not is_eligible(module) or any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        try:
            knobs = _choose(setting, name, module)
        except _Misfit:
            misfits.append(name or "the model")
            continue
        if knobs is None:
            continue
        layer = SSCConv2d.from_conv2d(module, **knobs)
        layer.train(module.training)
        layer.requires_grad_(module.weight.requires_grad)
        replaced[id(module)] = layer
    if misfits and not replaced:  # a model returned unchanged is a surprise worth a word
        shown = ", ".join(misfits[:5]) + (f" and {len(misfits) - 5} more" if len(misfits) > 5
                                           else "")
        warnings.warn(f"convert: the setting's groups fit none of the {len(misfits)} "
                      f"convolution(s) it applies to ({shown}); the model is unchanged",
                      stacklevel=2)
    if id(model) in replaced:
        return replaced[id(model)]
    for parent in list(model.modules()):
        for child_name, child in list(parent._modules.items()):  # shared children too
            if child is not None and id(child) in replaced:
                setattr(parent, child_name, replaced[id(child)])
    return model
