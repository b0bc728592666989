"""What a layer or a network costs: parameters, multiply-accumulates (MACs) and measured latency.

Conventions, as in the efficient-network literature (MobileNet, ShuffleNet):

* ``params`` counts every trainable parameter (BatchNorm's affine weights included, its running
  statistics not);
* ``macs`` counts multiply-accumulates per image of convolutions and linear layers only.
  BatchNorm folds into the preceding convolution at inference, and activations and pooling
  multiply nothing, so they add no MACs. The CLI's ``--macs`` budget is in these MACs.

Analytic costs (:func:`layer_cost`) need no module (nor torch), so a search can reject a
candidate in microseconds; :func:`count` walks a built model and must agree with them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .layers import SSCSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "Cost",
    "conv_cost",
    "count",
    "layer_cost",
    "linear_cost",
    "measure_latency",
]


@dataclass(frozen=True)
class Cost:
    """Parameters and multiply-accumulates per image."""

    params: int = 0
    macs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


def layer_cost(input_size: tuple[int, int], **knobs: Any) -> Cost:
    """Analytic cost of one SSC layer from its knobs (those of ``SSCConv2d``) and (H, W).

    >>> layer_cost((32, 32), in_channels=16, out_channels=16)
    Cost(params=2304, macs=2359296)
    """
    spec = SSCSpec(**knobs)
    return Cost(spec.params, spec.macs(input_size))


def conv_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    output_size: tuple[int, int],
    groups: int = 1,
    bias: bool = False,
) -> Cost:
    """Cost of a dense ``nn.Conv2d`` with a square kernel, given its output (H, W)."""
    weights = out_channels * (in_channels // groups) * kernel_size * kernel_size
    h, w = output_size
    return Cost(weights + (out_channels if bias else 0), weights * h * w)


def linear_cost(in_features: int, out_features: int, bias: bool = True) -> Cost:
    """Cost of an ``nn.Linear`` applied once per image."""
    return Cost(in_features * out_features + (out_features if bias else 0),
                in_features * out_features)


def _traced_macs(model: nn.Module, input_size: Sequence[int]) -> int:
    """MACs summed over every costed module call in one eval forward of a zero (1, C, H, W)."""
    import torch
    from torch import nn

    from .layers import SSCConv2d

    macs = 0

    def hook(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, SSCConv2d):
            macs += module.spec.macs((args[0].shape[2], args[0].shape[3]))
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_pixel = module.out_channels * (module.in_channels // module.groups) * kh * kw
            macs += per_pixel * out.shape[2] * out.shape[3]
        else:  # nn.Linear
            macs += module.in_features * module.out_features * (
                out[0].numel() // module.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (SSCConv2d, nn.Conv2d, nn.Linear))]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return macs


def count(model: nn.Module, input_size: Sequence[int]) -> Cost:
    """Params and MACs per image of ``model`` for one (C, H, W) input, by a traced forward pass.

    MACs come from SSC, Conv2d and Linear modules (a module called twice counts twice);
    params are the trainable ``model.parameters()``.
    """
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Cost(params, _traced_macs(model, input_size))


def measure_latency(
    model: nn.Module,
    input_size: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device | None = None,
    warmup: int = 5,
    repeats: int = 20,
    channels_last: bool = False,
) -> float:
    """Median seconds of one inference forward pass of a (batch_size, C, H, W) input.

    Runs under ``torch.no_grad`` in eval mode after ``warmup`` untimed passes; on CUDA each
    pass is synchronized. ``device`` defaults to where the model's parameters are.
    """
    import torch

    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn(batch_size, *input_size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)
