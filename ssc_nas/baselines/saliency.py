"""Per-weight saliency on substitute tensors: what pruning at init and zero-cost proxies share.

Which weights count (:func:`prunable`: conv/linear weights and the compact weights of
:class:`~ssc_nas.layers.SSCConv2d`), a forward pass with substitute parameters
(:func:`functional_forward`, through ``torch.func.functional_call``, so the model's weights,
``.grad`` and BatchNorm statistics are never touched), the scoring mode
(:func:`scoring_mode`) and the scores themselves (SNIP, GraSP, SynFlow, magnitude).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import SSCConv2d

__all__ = [
    "effective_weight",
    "functional_forward",
    "grasp_scores",
    "is_pruned",
    "loss_gradients",
    "magnitude_scores",
    "model_device",
    "prunable",
    "prunable_weights",
    "scoring_mode",
    "snip_scores",
    "synflow_scores",
    "weight_parameter",
]

# -- what is prunable -------------------------------------------------------------------------


def prunable(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """Every prunable weight as ``(name, module, attribute)``; ``name`` keys the masks.

    ``name`` is ``"<module path>.<attribute>"`` (e.g. ``"blocks.0.conv1.spatial_weight"``),
    the parameter's own name in an unpruned model. Empty tensors (an SSC layer's
    ``pointwise_weight`` of shape (C_out, 0)) are left out.
    """
    out: list[tuple[str, nn.Module, str]] = []
    for path, module in model.named_modules():
        if isinstance(module, SSCConv2d):
            attrs: tuple[str, ...] = ("spatial_weight", "pointwise_weight")
        elif isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            attrs = ("weight",)
        else:
            continue
        for attr in attrs:
            param = weight_parameter(module, attr)
            if param is not None and param.numel() > 0:
                out.append((f"{path}.{attr}" if path else attr, module, attr))
    return out


def is_pruned(module: nn.Module, attr: str) -> bool:
    """Whether ``torch.nn.utils.prune`` reparametrized ``module.<attr>`` (``_orig`` + ``_mask``)."""
    return f"{attr}_orig" in module._parameters and f"{attr}_mask" in module._buffers


def weight_parameter(module: nn.Module, attr: str) -> nn.Parameter | None:
    """The parameter holding ``attr``'s values: ``<attr>_orig`` once pruned, else ``<attr>``."""
    if is_pruned(module, attr):
        return module._parameters[f"{attr}_orig"]
    return module._parameters.get(attr)


def effective_weight(module: nn.Module, attr: str) -> torch.Tensor:
    """The weight the forward pass uses, recomputed (the pruned attribute can be stale)."""
    param = weight_parameter(module, attr)
    assert param is not None
    if is_pruned(module, attr):
        mask = module._buffers[f"{attr}_mask"]
        return param.detach() * mask.to(param.dtype)
    return param.detach()


def prunable_weights(model: nn.Module) -> list[tuple[str, str, torch.Tensor]]:
    """``(mask name, parameter name, parameter)`` of every prunable weight."""
    out = []
    for name, module, attr in prunable(model):
        suffix = "_orig" if is_pruned(module, attr) else ""
        out.append((name, name + suffix, weight_parameter(module, attr)))
    return out



# -- scoring helpers --------------------------------------------------------------------------


@contextmanager
def scoring_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Set train/eval mode for a scoring pass, then restore every module's mode and the
    tensors that pruning hooks write onto modules during a forward pass."""
    modes = [(m, m.training) for m in model.modules()]
    stale = [(m, a, m.__dict__.get(a)) for _, m, a in prunable(model) if is_pruned(m, a)]
    model.train(training)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for module, attr, value in stale:
            setattr(module, attr, value)


def functional_forward(model: nn.Module, overrides: Mapping[str, torch.Tensor], x: torch.Tensor,
          buffers: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """``model(x)`` with parameters replaced by ``overrides`` and buffers by copies.

    Uses ``torch.func.functional_call``, so the model's own parameters, gradients and
    BatchNorm running statistics are never touched.
    """
    state: dict[str, torch.Tensor] = (
        dict(buffers) if buffers is not None
        else {n: b.clone() for n, b in model.named_buffers()}
    )
    state.update(overrides)
    return torch.func.functional_call(model, state, (x,), strict=False)


def _grads(output: torch.Tensor, inputs: Sequence[torch.Tensor],
           create_graph: bool = False) -> list[torch.Tensor]:
    grads = torch.autograd.grad(output, list(inputs), create_graph=create_graph,
                                allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, inputs, strict=True)]


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")



# -- scores -----------------------------------------------------------------------------------


def loss_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                   temperature: float = 1.0, create_graph: bool = False
                   ) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    """(names, weights, gradients) of the cross-entropy of ``logits / temperature`` on one
    batch w.r.t. every prunable weight, BatchNorm in train mode (batch statistics), as at the
    start of training. With ``create_graph`` the gradients can be differentiated again (the
    returned weights are then the leaves of that graph).

    The model's parameters, ``.grad`` and running statistics are left untouched.
    """
    weights = prunable_weights(model)
    ws = [p.detach().requires_grad_(True) for _, _, p in weights]
    with scoring_mode(model, training=True):
        device = model_device(model)
        out = functional_forward(model, {pn: w for (_, pn, _), w in zip(weights, ws, strict=True)},
                    x.to(device))
        loss = F.cross_entropy(out / temperature, y.to(device))
        grads = _grads(loss, ws, create_graph=create_graph)
    return [n for n, _, _ in weights], ws, grads


def snip_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity |g ⊙ w| (Lee et al., ICLR 2019, Eq. 6).

    ``g_j = dL/dc_j`` at mask ``c = 1`` equals ``w_j dL/dw_j``; the paper's normalization by
    ``sum_k |g_k|`` does not change a top-k, so it is left out. Cross-entropy on one batch
    (see :func:`loss_gradients`).
    """
    names, ws, grads = loss_gradients(model, x, y)
    return {n: (g * w.detach()).abs() for n, g, w in zip(names, grads, ws, strict=True)}


def grasp_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 temperature: float = 200.0) -> dict[str, torch.Tensor]:
    """GraSP scores ``S(-θ) = -θ ⊙ Hg`` (Wang et al., ICLR 2020, Eq. 8); *low* is important.

    ``g`` is the loss gradient and ``H`` the Hessian, both on one batch; ``Hg`` comes from
    differentiating ``g.detach() · g`` (double backpropagation). Logits are divided by
    ``temperature`` (200, as in the authors' code for CIFAR) before the cross-entropy.
    Algorithm 1 removes the weights with the *highest* scores, i.e. keeps the lowest.
    """
    names, ws, grads = loss_gradients(model, x, y, temperature=temperature, create_graph=True)
    z = sum((g.detach() * g).sum() for g in grads if g.requires_grad)
    hg = _grads(z, ws) if isinstance(z, torch.Tensor) else [torch.zeros_like(w) for w in ws]
    return {n: (-w * h).detach() for n, w, h in zip(names, ws, hg, strict=True)}


def synflow_scores(model: nn.Module, input_shape: Sequence[int],
                   masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """SynFlow saliency ``|dR/dθ ⊙ θ|`` (Tanaka et al., NeurIPS 2020, Eq. 2 and Sec. 6).

    Data-free: ``R = 1ᵀ (Π_l |θ^[l]|) 1`` is the summed output of the network with every
    parameter and floating buffer replaced by its absolute value, on one all-ones input of
    ``input_shape``, in float64 (to avoid overflow), BatchNorm in eval mode (at initialization
    a positive per-channel scale). ``masks`` zero pruned weights (their scores are 0).
    """
    device = model_device(model)
    weights = prunable_weights(model)
    names = {pn for _, pn, _ in weights}
    ws = []
    for name, _, p in weights:
        w = p.detach().abs().double()
        if masks is not None:
            w = w * masks[name].to(device=w.device, dtype=w.dtype)
        ws.append(w.requires_grad_(True))
    state = {n: p.detach().abs().double() for n, p in model.named_parameters() if n not in names}
    state.update({pn: w for (_, pn, _), w in zip(weights, ws, strict=True)})
    buffers = {n: b.detach().abs().double() if b.is_floating_point() else b.clone()
               for n, b in model.named_buffers()}
    with scoring_mode(model, training=False):
        x = torch.ones(1, *input_shape, dtype=torch.float64, device=device)
        r = functional_forward(model, state, x, buffers).sum()
        grads = _grads(r, ws)
    return {n: (g * w).detach().abs() for (n, _, _), g, w in zip(weights, grads, ws, strict=True)}


def magnitude_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """|w|: one-shot global magnitude pruning at initialization (Han et al., NeurIPS 2015),
    the data-free baseline that SynFlow's layer-collapse analysis starts from."""
    return {name: p.detach().abs() for name, _, p in prunable_weights(model)}


