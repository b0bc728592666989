"""Baselines the SSC paper compares against: pruning at initialization and zero-cost proxies.

:mod:`.saliency` scores each weight (shared by both); :mod:`.pruning` prunes a dense network at
initialization to an exact parameter count (SNIP, GraSP, SynFlow, random, ERK, magnitude);
:mod:`.proxies` scores any network without training (SynFlow, SNIP, gradient norm, NASWOT).
``search`` (prescreening) and ``compare`` use them.
"""

from __future__ import annotations

from .proxies import PROXIES, score
from .pruning import (
    METHODS,
    apply_masks,
    mask_scores,
    masks_for,
    prunable,
    prune_at_init,
    pruned_param_count,
    unprunable_param_count,
)
from .saliency import is_pruned

__all__ = [
    "METHODS",
    "PROXIES",
    "apply_masks",
    "is_pruned",
    "mask_scores",
    "masks_for",
    "prunable",
    "prune_at_init",
    "pruned_param_count",
    "score",
    "unprunable_param_count",
]
