"""Training loops: the short proxy schedule a search runs per candidate, and full training.

Data live in memory as tensors (see :mod:`ssc_nas.data`), so batches are slices, not a
DataLoader: on a 2-core CPU that is several times faster for the small images of a proxy run.

Early stop of hopeless candidates (our rule, since Optuna's pruners do not apply to
multi-objective studies): after each epoch but the last, a run stops when its validation
accuracy is below ``hopeless_factor`` x chance (default 1.5 / num_classes), or when the
training loss is not finite. Such a candidate has not started to learn; its curve is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from .data import augment_batch

__all__ = ["TrainConfig", "TrainResult", "evaluate", "resolve_device", "train_model"]

OPTIMIZERS = ("sgd", "adamw")


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

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, but got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, but got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"but got {self.optimizer!r}")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.optimizer == "sgd" else 2e-3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """Per-epoch curves and how the run ended."""

    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    epochs_run: int = 0
    stopped_early: str | None = None
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.val_accuracy[-1] if self.val_accuracy else 0.0


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU; otherwise the named device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def evaluate(model: nn.Module, data: TensorDataset, batch_size: int = 256,
             device: torch.device | str = "cpu", channels_last: bool = False) -> float:
    """Top-1 accuracy of ``model`` on ``data``."""
    device = torch.device(device)
    x_all, y_all = data.tensors
    model.eval()
    correct = 0
    with torch.no_grad():
        for idx in _batches(len(y_all), batch_size, None):
            x = x_all[idx].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1) == y_all[idx].to(device)).sum())
    return correct / max(1, len(y_all))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def train_model(
    model: nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    config: TrainConfig,
    *,
    num_classes: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train with a per-step cosine schedule; evaluate on ``val`` after each epoch.

    ``on_batch(done, total)`` and ``on_epoch(epoch, loss, val_acc)`` feed progress bars;
    ``should_stop()`` is checked between batches and raises ``KeyboardInterrupt`` when true,
    so an interrupt never lands inside a storage write.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    x_all, y_all = train.tensors
    steps_per_epoch = math.ceil(len(y_all) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=total, pct_start=0.15,
        anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0,
    ) if total > 1 else None
    result = TrainResult()
    start = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        for idx in _batches(len(y_all), config.batch_size, generator):
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            x = x_all[idx]
            if config.augment:
                x = augment_batch(x, generator)
            x = x.to(device, non_blocking=True)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_all[idx].to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
            step += 1
            if on_batch is not None:
                on_batch(step, total)
        train_loss = loss_sum / max(1, seen)
        acc = evaluate(model, val, 256, device, config.channels_last)
        result.train_loss.append(train_loss)
        result.val_accuracy.append(acc)
        result.epochs_run = epoch + 1
        if on_epoch is not None:
            on_epoch(epoch + 1, train_loss, acc)
        if epoch + 1 < config.epochs:
            reason = hopeless(train_loss, acc, num_classes, config.hopeless_factor)
            if reason:
                result.stopped_early = reason
                break
    result.seconds = time.perf_counter() - start
    return result


def hopeless(train_loss: float, val_accuracy: float, num_classes: int, factor: float) -> str | None:
    """The early-stop rule: why a run should stop now, or None to go on."""
    if not math.isfinite(train_loss):
        return "training loss is not finite"
    if val_accuracy < factor / num_classes:
        return (f"validation accuracy {val_accuracy:.3f} < {factor:g} x chance "
                f"({factor / num_classes:.3f})")
    return None
