"""Zero-cost proxies: score an untrained network (SSC or dense) from one batch, no training.

The four proxies of Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021),
that apply to any network here. Sign convention: for all four, **higher = predicted better**;
each is a sum (or norm, or log-determinant) that grows with how much signal the network
carries, so no sign flip is needed:

* ``synflow``: sum of SynFlow saliencies (Tanaka et al., NeurIPS 2020, Eq. 2), data-free: only
  the inputs' per-sample shape is used (an all-ones float64 input, |parameters|).
* ``snip``: sum of |g ⊙ w| (Lee et al., ICLR 2019, Eq. 6) on the batch.
* ``grad_norm``: L2 norm of the cross-entropy gradient over all conv/linear weights together
  (Abdelfattah et al. sum per-layer norms instead; the global norm is the plain definition).
* ``naswot``: log|K_H| (Mellor et al., ICML 2021, Eq. 2), K_H[i, j] = N_A - Hamming distance
  between the binary ReLU codes of inputs i and j; ``-inf`` when K_H is singular (two inputs
  with one code: the network cannot tell them apart).

Weights are those of :func:`ssc_nas.baselines.saliency.prunable` (a pruned model's masks are
honoured). Every proxy runs through ``torch.func.functional_call`` on substitute tensors, so the
model's weights, ``.grad``, ``requires_grad``, BatchNorm statistics, train/eval mode and hooks
are exactly as before.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..choices import PROXIES
from .saliency import (
    functional_forward,
    loss_gradients,
    model_device,
    scoring_mode,
    snip_scores,
    synflow_scores,
)

__all__ = ["PROXIES", "score"]


# Functions whose output is a ReLU (or ReLU6, which ``nn.ReLU6`` runs as hardtanh(0, 6)).
_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_,
          F.relu6, F.hardtanh, F.hardtanh_}


class _ReluCodes(TorchFunctionMode):
    """Records ``output > 0`` per sample of every ReLU call, module or functional (ResNet
    blocks call ``F.relu``, so forward hooks on ``nn.ReLU`` modules would miss them)."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in _RELUS and isinstance(out, torch.Tensor) and out.dim() >= 2:
            self.codes.append((out.detach() > 0).flatten(1))
        return out


def naswot(model: nn.Module, inputs: torch.Tensor) -> float:
    """log-determinant of the NASWOT kernel (Mellor et al. 2021) of a batch; BN in train mode."""
    with scoring_mode(model, training=True), torch.no_grad():
        recorder = _ReluCodes()
        with recorder:
            functional_forward(model, {}, inputs.to(model_device(model)))
    if not recorder.codes:
        raise ValueError("naswot needs ReLU activations, but the model ran none")
    codes = torch.cat(recorder.codes, dim=1).double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


def score(model: nn.Module, method: str, inputs: torch.Tensor,
          targets: torch.Tensor | None = None) -> float:
    """The zero-cost proxy ``method`` of ``model`` on one batch; higher = predicted better.

    ``targets`` (class indices) are needed by ``snip`` and ``grad_norm``; ``synflow`` uses only
    ``inputs.shape[1:]``. The model is left exactly as it was.
    """
    if method not in PROXIES:
        raise ValueError(f"unknown proxy {method!r}; valid proxies: {', '.join(PROXIES)}")
    if method == "synflow":
        return float(sum(s.sum() for s in synflow_scores(model, inputs.shape[1:]).values()))
    if method == "naswot":
        return naswot(model, inputs)
    if targets is None:
        raise ValueError(f"{method} needs targets (class indices of the inputs)")
    if method == "snip":
        return float(sum(s.double().sum() for s in snip_scores(model, inputs, targets).values()))
    _, _, grads = loss_gradients(model, inputs, targets)
    return float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))
