"""Pruning at initialization to an exact parameter count: the baselines of the SSC paper.

Verma et al. (WACV 2023) compare SSC networks with dense networks pruned at initialization to
the *same parameter count*: SNIP, GraSP, SynFlow, random and ERK sparsity. This module builds
those masks for any network of ``ssc_nas.models`` (or any ``nn.Module``).

What is pruned (:func:`prunable`): every convolution and linear weight: ``weight`` of
``nn.Conv*d`` / ``nn.Linear`` and the compact ``spatial_weight`` / ``pointwise_weight`` of
:class:`~ssc_nas.layers.SSCConv2d` (in the dense setting only ``spatial_weight``, shape
(C_out, C_in / groups, K * K), is non-empty). Biases and BatchNorm affine parameters stay dense
and count toward the total, as in the papers' parameter counts.

The count is exact: a mask set for ``target_params`` keeps exactly
``target_params - unprunable_param_count(model)`` weights, so nonzero prunable weights plus all
unprunable parameters equal ``target_params``. How each method meets it:

* score methods (``snip``, ``grasp``, ``synflow``, ``magnitude``): one *global* top-k over all
  layers' scores; ties at the threshold go to the lower flat index (earlier layer in
  :func:`prunable` order, then row-major position), so the result is deterministic;
* ``random``: exactly k positions drawn uniformly without replacement (seeded);
* ``erk``: per-layer counts from the ERK densities, rounded by largest remainder so they sum to
  exactly k with no layer over density 1 (see :func:`_erk_counts`), random within each layer.

:func:`apply_masks` makes masks permanent with ``torch.nn.utils.prune.custom_from_mask`` (a
forward pre-hook multiplies ``<name>_orig`` by the buffer ``<name>_mask``); count the result
with :func:`pruned_param_count`, not :func:`ssc_nas.cost.count`, which sees the dense
``<name>_orig`` tensors. Note that ``copy.deepcopy`` fails on such a pruned model (a PyTorch
limitation: the pruned weight is a non-leaf tensor attribute).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.data import TensorDataset

from ..choices import PRUNING_METHODS as METHODS
from ..data import Splits
from ..layers import SSCConv2d
from ..models import Architecture, build
from .saliency import (
    effective_weight,
    grasp_scores,
    is_pruned,
    magnitude_scores,
    prunable,
    prunable_weights,
    snip_scores,
    synflow_scores,
    weight_parameter,
)

__all__ = [
    "DATA_METHODS",
    "METHODS",
    "apply_masks",
    "mask_scores",
    "masks_for",
    "prunable",
    "prune_at_init",
    "pruned_param_count",
    "unprunable_param_count",
]

#: Methods whose masks depend on a data batch (the others use at most the input shape).
DATA_METHODS: tuple[str, ...] = ("snip", "grasp")

Batch = tuple[torch.Tensor, torch.Tensor]
Data = Splits | TensorDataset | Sequence[torch.Tensor]



def unprunable_param_count(model: nn.Module) -> int:
    """Parameters that are never pruned: biases, BatchNorm affine weights, anything else."""
    ids = {id(p) for _, _, p in prunable_weights(model)}
    return sum(p.numel() for p in model.parameters() if id(p) not in ids)


def pruned_param_count(model: nn.Module) -> int:
    """Nonzero effective prunable weights plus every unprunable parameter.

    For a model pruned by :func:`apply_masks` this is the parameter count of the sparse network;
    it stays exact during training because masked weights are multiplied by zero in every
    forward pass (their gradients are zero too).
    """
    kept = sum(int(torch.count_nonzero(effective_weight(m, a))) for _, m, a in prunable(model))
    return kept + unprunable_param_count(model)


def _keep_count(model: nn.Module, target_params: int) -> int:
    """Prunable weights to keep so the pruned model has exactly ``target_params`` parameters."""
    if isinstance(target_params, bool) or not isinstance(target_params, int):
        raise ValueError(f"target_params must be an integer, but got {target_params!r}")
    fixed = unprunable_param_count(model)
    total = fixed + sum(p.numel() for _, _, p in prunable_weights(model))
    if not fixed <= target_params <= total:
        raise ValueError(
            f"target_params must be in [{fixed}, {total}] for this model (unprunable params: "
            f"{fixed}; all params: {total}), but got {target_params}"
        )
    return target_params - fixed



def _batch(data: Data | None, batch_size: int, seed: int) -> Batch:
    """One (inputs, targets) batch: a given pair as is, else ``batch_size`` seeded samples."""
    if isinstance(data, Splits):
        data = data.train
    if isinstance(data, TensorDataset):
        x, y = data.tensors[0], data.tensors[1]
        if len(x) > batch_size:
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(x), generator=g)[:batch_size]
            x, y = x[idx], y[idx]
        return x, y
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ValueError(
        "data must be an (inputs, targets) pair, a TensorDataset or Splits, but got "
        f"{type(data).__name__}"
    )


def _input_shape(data: Data | None, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """Per-sample (C, H, W) for data-free scoring: from ``data`` if given, else ``input_shape``."""
    if data is not None:
        if isinstance(data, Splits):
            data = data.train
        x = data.tensors[0] if isinstance(data, TensorDataset) else data[0]
        return tuple(x.shape[1:])
    if input_shape is None:
        raise ValueError("synflow needs the input shape: pass data or input_shape=(C, H, W)")
    return tuple(int(s) for s in input_shape)



def mask_scores(model: nn.Module, method: str, data: Data | None = None, *, seed: int = 0,
                input_shape: Sequence[int] | None = None, batch_size: int = 128,
                temperature: float = 200.0) -> dict[str, torch.Tensor]:
    """One-shot per-weight scores of a score method (``synflow``: its first round, no mask).

    For ``grasp`` low scores are kept; for the others high ones.
    """
    if method in DATA_METHODS:
        if data is None:
            raise ValueError(f"{method} needs data: an (inputs, targets) batch or a dataset")
        x, y = _batch(data, batch_size, seed)
        if method == "snip":
            return snip_scores(model, x, y)
        return grasp_scores(model, x, y, temperature)
    if method == "synflow":
        return synflow_scores(model, _input_shape(data, input_shape))
    if method == "magnitude":
        return magnitude_scores(model)
    raise ValueError(f"{method!r} has no scores; score methods: snip, grasp, synflow, magnitude")


# -- masks ------------------------------------------------------------------------------------


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the k highest of flat ``scores``; ties at the threshold go to lower
    indices, so the choice is deterministic. NaN counts as lowest."""
    n = scores.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    s = torch.nan_to_num(scores.double(), nan=-math.inf)
    threshold = torch.kthvalue(s.cpu(), n - k + 1).values.to(s.device)
    keep = s > threshold
    need = k - int(keep.sum())
    ties = torch.nonzero(s == threshold).flatten()[:need]
    keep[ties] = True
    return keep


def _unflatten(flat: torch.Tensor, weights: list[tuple[str, str, torch.Tensor]]
               ) -> dict[str, torch.Tensor]:
    masks, start = {}, 0
    for name, _, p in weights:
        chunk = flat[start : start + p.numel()]
        masks[name] = chunk.view(p.shape).to(device=p.device, dtype=p.dtype)
        start += p.numel()
    return masks


def _flat(scores: Mapping[str, torch.Tensor], weights: list[tuple[str, str, torch.Tensor]]
          ) -> torch.Tensor:
    return torch.cat([scores[name].flatten().double().cpu() for name, _, _ in weights])


def _erk_shape(module: nn.Module, attr: str, weight: torch.Tensor) -> tuple[int, ...]:
    """The shape whose dims enter the ERK formula: (C_out, C_in, K_h, K_w) for convolutions.

    An SSC layer's compact (C_out, n_k, K * K) spatial weight counts as the dense
    (C_out, n_k, K, K) convolution it equals; a 1 x 1 (pointwise) weight as (C_out, n_1, 1, 1).
    """
    if isinstance(module, SSCConv2d):
        k, taps = module.spec.kernel_size, module.spec.taps
        c_out, c_in = weight.shape[0], weight.shape[1]
        if attr == "pointwise_weight" or taps == 1:
            return (c_out, c_in, 1, 1)
        return (c_out, c_in, k, k) if taps == k * k else (c_out, c_in, taps)
    return tuple(weight.shape)


def erk_densities(shapes: Sequence[Sequence[int]], keep: int) -> list[float]:
    """ERK layer densities for ``keep`` kept weights (Evci et al., ICML 2020, Sec. 3).

    Density of layer l is ``ε (n^{l-1} + n^l + w^l + h^l) / (n^{l-1} n^l w^l h^l)`` (the sum of
    the weight's dims over their product), with ε solved so the expected kept count is
    ``keep``. A layer whose density would exceed 1 is made fully dense and ε is solved again
    over the other layers, until none exceeds 1 (as in the RigL code).
    """
    sizes = [math.prod(s) for s in shapes]
    raw = [sum(s) / math.prod(s) for s in shapes]
    dense: set[int] = set()
    eps = 0.0
    while True:
        budget = keep - sum(sizes[i] for i in dense)
        weight = sum(raw[i] * sizes[i] for i in range(len(sizes)) if i not in dense)
        if weight <= 0:
            break
        eps = budget / weight
        over = {i for i in range(len(sizes)) if i not in dense and eps * raw[i] > 1.0}
        if not over:
            break
        dense |= over
    return [1.0 if i in dense else min(1.0, eps * raw[i]) for i in range(len(sizes))]


def _erk_counts(sizes: Sequence[int], densities: Sequence[float], keep: int) -> list[int]:
    """Integer kept counts with sum exactly ``keep`` and none above its layer's size.

    Floors of ``density * size``, then the remainder one by one to the layers with the largest
    fractional parts (lower index first on ties) that are not yet full; float rounding that
    overshoots is taken back from the smallest fractional parts.
    """
    expected = [min(float(n), d * n) for n, d in zip(sizes, densities, strict=True)]
    counts = [min(n, max(0, math.floor(e))) for n, e in zip(sizes, expected, strict=True)]
    frac = [e - c for e, c in zip(expected, counts, strict=True)]
    rest = keep - sum(counts)
    order = sorted(range(len(sizes)), key=lambda i: (-frac[i], i))
    if not 0 <= keep <= sum(sizes):
        raise ValueError(f"cannot keep {keep} of {sum(sizes)} weights")
    while rest > 0:
        for i in order:
            if rest and counts[i] < sizes[i]:
                counts[i] += 1
                rest -= 1
    while rest < 0:
        for i in reversed(order):
            if rest and counts[i] > 0:
                counts[i] -= 1
                rest += 1
    return counts


def masks_for(
    model: nn.Module,
    method: str,
    target_params: int,
    data: Data | None = None,
    *,
    seed: int = 0,
    iterations: int = 100,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 128,
    temperature: float = 200.0,
) -> dict[str, torch.Tensor]:
    """0/1 masks (keyed by :func:`prunable` names) leaving exactly ``target_params`` params.

    Args:
        model: an unpruned network at initialization; it is not modified.
        method: one of :data:`METHODS`.
        target_params: total parameters after pruning (kept weights + unprunable params).
        data: ``snip``/``grasp``: an (inputs, targets) batch, a ``TensorDataset`` or ``Splits``
            (then ``batch_size`` training samples drawn with ``seed``). ``synflow`` uses only
            its per-sample shape; the other methods ignore it.
        seed: random and ERK masks; the batch drawn from a dataset.
        iterations: ``synflow`` rounds (Tanaka et al. use 100); the kept count after round r
            of n is ``round(N * d^(r/n))`` (exponential schedule, Algorithm 1), exactly the
            target after the last round.
        input_shape: (C, H, W) for ``synflow`` when ``data`` is None.

    Raises:
        ValueError: unknown method, target outside [unprunable, all] params, missing data.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; valid methods: {', '.join(METHODS)}")
    if any(is_pruned(m, a) for _, m, a in prunable(model)):
        raise ValueError("masks_for needs an unpruned model; this one already has pruning masks")
    keep = _keep_count(model, target_params)
    weights = prunable_weights(model)
    sizes = [p.numel() for _, _, p in weights]
    n = sum(sizes)
    if method == "random":
        g = torch.Generator().manual_seed(seed)
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=g)[:keep]] = True
        return _unflatten(flat, weights)
    if method == "erk":
        modules = {name: (m, a) for name, m, a in prunable(model)}
        shapes = [_erk_shape(*modules[name], p) for name, _, p in weights]
        counts = _erk_counts(sizes, erk_densities(shapes, keep), keep)
        g = torch.Generator().manual_seed(seed)
        parts = []
        for size, count in zip(sizes, counts, strict=True):
            part = torch.zeros(size, dtype=torch.bool)
            part[torch.randperm(size, generator=g)[:count]] = True
            parts.append(part)
        return _unflatten(torch.cat(parts), weights)
    if method == "synflow":
        return _synflow_masks(model, weights, keep, _input_shape(data, input_shape), iterations)
    scores = _flat(mask_scores(model, method, data, seed=seed, batch_size=batch_size,
                               temperature=temperature), weights)
    if method == "grasp":
        scores = -scores  # GraSP removes the highest scores: keep the k lowest
    return _unflatten(_top_k(scores, keep), weights)


def _synflow_masks(model: nn.Module, weights: list[tuple[str, str, torch.Tensor]], keep: int,
                   input_shape: tuple[int, ...], iterations: int) -> dict[str, torch.Tensor]:
    """Iterative SynFlow (Tanaka et al. 2020, Algorithm 1): re-score the masked network and
    prune globally ``iterations`` times on an exponential schedule; pruned weights never return."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, but got {iterations}")
    n = sum(p.numel() for _, _, p in weights)
    flat = torch.ones(n, dtype=torch.bool)
    if keep == n:
        return _unflatten(flat, weights)
    density = keep / n
    for r in range(1, iterations + 1):
        k = keep if r == iterations else min(n, max(keep, round(n * density ** (r / iterations))))
        if keep == 0:
            flat = torch.zeros(n, dtype=torch.bool)
            break
        scores = _flat(synflow_scores(model, input_shape, _unflatten(flat, weights)), weights)
        scores[~flat] = -math.inf
        flat = _top_k(scores, k)
    return _unflatten(flat, weights)


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Prune ``model`` in place with ``torch.nn.utils.prune.custom_from_mask``; return it.

    Every prunable weight must have a mask of its shape with values 0/1. Afterwards
    ``<attr>_orig`` is the trained parameter and a forward pre-hook multiplies it by the
    ``<attr>_mask`` buffer, so masked weights stay exactly zero through training.
    """
    entries = {name: (m, a) for name, m, a in prunable(model)}
    missing, unknown = set(entries) - set(masks), set(masks) - set(entries)
    if missing or unknown:
        raise ValueError(
            f"masks must name every prunable weight; missing {sorted(missing)[:3]}, "
            f"unknown {sorted(unknown)[:3]}"
        )
    for name, (module, attr) in entries.items():
        param = weight_parameter(module, attr)
        mask = masks[name]
        if tuple(mask.shape) != tuple(param.shape):
            raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)}, "
                             f"the weight has {tuple(param.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask {name!r} must contain only 0 and 1")
    for name, (module, attr) in entries.items():
        param = weight_parameter(module, attr)
        torch_prune.custom_from_mask(module, attr, masks[name].to(param.device, param.dtype))
    return model


def prune_at_init(
    family: str,
    width: float,
    method: str,
    target_params: int,
    data: Data,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    iterations: int = 100,
    batch_size: int = 128,
) -> nn.Module:
    """Build the dense ``family`` x ``width`` network (initialized under ``seed``), prune it
    with ``method`` to exactly ``target_params`` and return it (see :func:`masks_for`).

    ``data`` is ``Splits`` (shapes and classes come from its info) or an (inputs, targets)
    batch / ``TensorDataset`` (then ``num_classes`` is required).
    """
    if isinstance(data, Splits):
        info = data.info
        in_channels, size, classes = info.in_channels, info.input_size, info.num_classes
    else:
        x = data.tensors[0] if isinstance(data, TensorDataset) else data[0]
        in_channels, size = int(x.shape[1]), (int(x.shape[2]), int(x.shape[3]))
        if num_classes is None:
            raise ValueError("num_classes is required when data is not Splits")
        classes = num_classes
    if num_classes is not None:
        classes = num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(Architecture(family, width), in_channels, classes, size)
    masks = masks_for(model, method, target_params, data, seed=seed, iterations=iterations,
                      batch_size=batch_size)
    return apply_masks(model, masks)

