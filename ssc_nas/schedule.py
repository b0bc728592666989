"""A training schedule (:class:`TrainConfig`) and how two runs' settings differ, in pure Python.

The schedule is what a study stores and every trial of it shares; reading it needs no torch,
so the commands that only read a study do not import it. The loops that train with it are in
``train.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from .choices import OPTIMIZERS

__all__ = ["AMPS", "TrainConfig", "setting_differences"]

#: ``TrainConfig.amp``: no autocast, bf16 (CUDA or CPU) or fp16 (CUDA; ignored on CPU).
AMPS: tuple[str, ...] = ("off", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """A training schedule. ``lr=None`` picks 0.05 for SGD and 2e-3 for AdamW."""

    epochs: int = 2
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: bool = False
    hopeless_factor: float = 1.5
    channels_last: bool = True
    amp: str = "off"  # autocast: "off", "bf16" (CUDA or CPU) or "fp16" (CUDA; ignored on CPU)
    # CUDA: autotune convolution kernels per new shape. Off: in a 2-epoch proxy the autotuning
    # cost more than it saved (H100, benchmarks/trial_phases.py: 1.6x slower trials with it).
    cudnn_benchmark: bool = False
    # CUDA: replay each full batch's forward and backward as a CUDA graph (the last, smaller
    # batch of an epoch runs eagerly). These small networks are bound by per-operator dispatch
    # on a GPU: on an H100 the graphed train step took 0.20x the eager one
    # (benchmarks/dense_weight_paths.py). Ignored on CPU and under ``amp``.
    cuda_graphs: bool = True
    # Train the SSC layers that run the dense-weight path (on a GPU all of them) as a dense
    # weight times a fixed mask, as masked dense code does, instead of placing the stored
    # weights into a dense weight every step, and evaluate them with that weight built once
    # per pass; full layers (no mask) likewise, wherever they run (ssc_nas.layers.dense_layout;
    # the same training, the same function).
    dense_layout: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, but got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, but got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"but got {self.optimizer!r}")
        if self.amp not in AMPS:
            raise ValueError(f"amp must be one of {', '.join(AMPS)}, but got {self.amp!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, but got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, but got {self.weight_decay}")
        for name in ("momentum", "label_smoothing"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), but got {value}")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.optimizer == "sgd" else 2e-3

    def to_dict(self) -> dict:
        return asdict(self)

    def for_dataset(self, augment: bool) -> TrainConfig:
        """This schedule with augmentation turned on where the dataset calls for it (CIFAR-style
        images); a schedule that already augments stays as it is."""
        return replace(self, augment=True) if augment and not self.augment else self


def setting_differences(stored: Mapping[str, Any], asked: Mapping[str, Any],
                        keys: Iterable[str] | None = None, prefix: str = "") -> list[str]:
    """Each setting in which ``asked`` differs from ``stored``, as "<key> <stored> there, <asked>
    now"; with ``keys``, only those of them ``stored`` holds (saved before a key existed)."""
    names = (sorted(set(stored) | set(asked)) if keys is None
             else [key for key in keys if key in stored])
    return [f"{prefix}{key} {stored.get(key)!r} there, {asked.get(key)!r} now"
            for key in names if stored.get(key) != asked.get(key)]
