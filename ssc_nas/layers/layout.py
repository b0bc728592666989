"""The dense layout: a model's SSC layers run as dense weights times fixed masks.

Where an :class:`~.ssc.SSCConv2d` runs its dense-weight path (on a GPU every layer, on a CPU
the layers its plan sends there), each call of the compact layer places the stored weights into
the dense weight and, in training, gathers its gradient back: on a GPU several kernels per layer
and step, where masked dense code runs one multiply. A layer whose structure fills the dense
weight (standard, groupwise, depthwise) has no mask: in the layout it is a plain convolution,
so it enters the layout wherever it runs. :func:`dense_layout` switches those layers
to a dense parameter times the structure's fixed 0/1 mask for the length of a ``with`` block,
and, given one, the optimizer with them (its parameter lists and its state: momentum, Adam
moments), and switches both back at the end, also when the block raises. Without gradients
(evaluation) the layer convolves with the dense weight as it is, built once per block. Outside
the block the model and the optimizer hold the compact weights as always, so checkpoints,
saved models and everything else that reads the model do not see the layout.

The training is the same: the masked entries of a dense weight get zero gradient, so under
SGD (momentum, Nesterov, weight decay) or AdamW they stay exactly zero, and the others take
the updates the stored weights would have taken.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from .ssc import SSCConv2d

__all__ = ["DenseLayoutBlock", "dense_layout", "dense_layout_layers"]


def dense_layout_layers(model: nn.Module, device_type: str, channels_last: bool,
                        training: bool = True) -> list[SSCConv2d]:
    """The SSC layers of ``model`` that run in the dense layout on ``device_type`` with input
    in that memory format, in training steps or in evaluation: those that run the dense-weight
    path there (:meth:`~.ssc.SSCConv2d.dense_path_for`) and those whose structure fills the
    dense weight (``SSCSpec.fills_dense_weight``: their layout is a plain convolution, with no
    mask to apply and no weight to place), if their stored weights are plain parameters (not,
    say, re-parametrized by ``torch.nn.utils.prune``)."""
    layers = []
    for module in model.modules():
        if isinstance(module, SSCConv2d) and (
                module.spec.fills_dense_weight
                or module.dense_path_for(device_type, channels_last, training)):
            own = dict(module.named_parameters(recurse=False))
            if (own.get("spatial_weight") is module.spatial_weight
                    and own.get("pointwise_weight") is module.pointwise_weight):
                layers.append(module)
    return layers


def dense_layout(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 device_type: str, channels_last: bool,
                 training: bool | None = None) -> DenseLayoutBlock:
    """A ``with`` block in which the layers of :func:`dense_layout_layers` run in their dense
    layout; ``as`` gives them. For training steps (``training``, by default when an
    ``optimizer`` is given), the layers whose training steps take the dense-weight path, else
    those whose inference does. With an ``optimizer``, only the layers whose stored weights it
    holds (in one parameter group), and it trains their dense weights."""
    if training is None:
        training = optimizer is not None
    return DenseLayoutBlock(model, optimizer, device_type, channels_last, training)


class DenseLayoutBlock(AbstractContextManager):
    """The context manager of :func:`dense_layout` (a class, not a generator: an abandoned
    block is never left, rather than left by the garbage collector at interpreter exit)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                 device_type: str, channels_last: bool, training: bool) -> None:
        self.optimizer = optimizer
        self.groups = {} if optimizer is None else {
            p: group for group in optimizer.param_groups for p in group["params"]}
        self.layers = [layer for layer in dense_layout_layers(model, device_type, channels_last,
                                                              training)
                       if optimizer is None or self._one_group(layer)]
        # Whether compact training gives a layer's ``pointwise_weight`` optimizer state: an
        # empty one gets a gradient only on the dense-weight path (the sparse path never uses
        # it); the state handed back after the layout matches.
        self.pointwise_state = {
            layer: bool(layer.pointwise_weight.numel())
            or layer.dense_path_for(device_type, channels_last, training)
            for layer in self.layers}
        # The dense weight in the input's memory format, as a masked dense model's weight is
        # after ``model.to(memory_format=...)``. On a CPU a channels_last input convolved with
        # an NCHW weight took about 1 % longer, and training still gives bit for bit the weights
        # of compact training, which builds an NCHW weight (tests/test_layout.py).
        self.weight_channels_last = channels_last
        self.saved: list[list[torch.Tensor]] = []
        self.entered: list[SSCConv2d] = []

    def _one_group(self, layer: SSCConv2d) -> bool:
        group = self.groups.get(layer.spatial_weight)
        return group is not None and group is self.groups.get(layer.pointwise_weight)

    def __enter__(self) -> list[SSCConv2d]:
        optimizer = self.optimizer
        if optimizer is not None:
            self.saved = [list(group["params"]) for group in optimizer.param_groups]
        try:
            for layer in self.layers:
                spatial, pointwise = layer.spatial_weight, layer.pointwise_weight
                dense = layer.enter_dense_layout(self.weight_channels_last)
                self.entered.append(layer)
                if optimizer is not None:
                    _enter(optimizer, self.groups[spatial], layer, spatial, pointwise, dense)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return list(self.entered)

    def __exit__(self, *exc: object) -> None:
        optimizer = self.optimizer
        for layer in self.entered:
            dense = layer.dense_weight
            layer.leave_dense_layout()
            if optimizer is not None:
                _leave(optimizer, layer, dense, self.pointwise_state[layer])
        self.entered = []
        if optimizer is not None:
            for group, params in zip(optimizer.param_groups, self.saved, strict=True):
                group["params"][:] = params  # the stored weights, in their order


def _enter(optimizer: torch.optim.Optimizer, group: dict[str, Any], layer: SSCConv2d,
           spatial: torch.Tensor, pointwise: torch.Tensor, dense: torch.Tensor) -> None:
    """In ``group`` and the optimizer state, ``layer``'s dense weight takes the place of its
    stored weights."""
    group["params"][:] = [dense if p is spatial else p for p in group["params"]
                          if p is not pointwise]
    state_s, state_p = optimizer.state.pop(spatial, {}), optimizer.state.pop(pointwise, {})
    if state_s:
        with torch.no_grad():
            optimizer.state[dense] = {
                key: _dense_state(layer, dense, value, state_p.get(key))
                for key, value in state_s.items()}


def _dense_state(layer: SSCConv2d, dense: torch.Tensor, spatial: Any, pointwise: Any) -> Any:
    """One optimizer state entry of the stored weights as the dense weight's entry: tensors
    shaped like the weights are placed (zeros where masked), others (a step count) kept."""
    if not (isinstance(spatial, torch.Tensor) and spatial.shape == layer.spatial_weight.shape):
        return spatial
    if pointwise is None:
        pointwise = torch.zeros_like(layer.pointwise_weight)
    placed = layer._placed(spatial, pointwise)
    return torch.empty_like(dense).copy_(placed)  # in the dense weight's memory format


def _leave(optimizer: torch.optim.Optimizer, layer: SSCConv2d, dense: torch.Tensor,
           pointwise_state: bool = True) -> None:
    """The dense weight's optimizer state back to ``layer``'s stored weights (the caller
    restores the parameter lists); none for ``pointwise_weight`` unless ``pointwise_state``."""
    state = optimizer.state.pop(dense, {})
    if not state:
        return
    state_s, state_p = {}, {}
    with torch.no_grad():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == dense.shape:
                state_s[key], state_p[key] = layer._gathered(value)
            else:
                state_s[key] = value
                state_p[key] = value.clone() if isinstance(value, torch.Tensor) else value
    optimizer.state[layer.spatial_weight] = state_s
    if pointwise_state:
        optimizer.state[layer.pointwise_weight] = state_p
