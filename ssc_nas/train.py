"""Training loops: the short proxy schedule a search runs per candidate, and full training.

Data live in memory as tensors (see :mod:`ssc_nas.data`), so batches are slices, not a
DataLoader: on a 2-core CPU that is several times faster for the small images of a proxy run.

Before each validation, BatchNorm statistics are re-estimated with the current weights on the
first ``BN_IMAGES`` training images (:meth:`Trainer.recalibrate_batchnorm`, torch's
``update_bn``). Statistics gathered while training lag the weights; after the first epoch of a
short proxy run they made designs that learn look like chance.

On CUDA training copies batches from pinned memory without blocking and can replay steps as
CUDA graphs. Forward passes can run under autocast (``TrainConfig.amp``): ``"bf16"`` on CUDA and
on CPU, ``"fp16"`` on CUDA only (with a gradient scaler; ignored on CPU); default ``"off"``.

Early stop of hopeless candidates (our rule, since Optuna's pruners do not apply to
multi-objective studies): after each epoch but the last, a run stops when its validation
accuracy is below ``hopeless_factor`` x chance (default 1.5 / num_classes), or when the
training loss is not finite. Such a candidate has not started to learn; its curve is kept.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import TensorDataset

from .data import augment_batch
from .errors import CheckpointError, SSCNasError
from .layers import layout
from .models import save_atomically
from .runtime import cpu_has_native_bf16
from .schedule import AMPS, TrainConfig, setting_differences

__all__ = [
    "AMP_MIN_SPEEDUP",
    "BN_IMAGES",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "autocast_speedup",
    "evaluate",
    "scores",
    "setting_differences",
    "resolve_amp",
    "resolve_device",
    "train_model",
    "train_with_checkpoints",
]

#: Each ``TrainConfig.amp`` and its autocast dtype.
AMP_MODES = dict(zip(AMPS, (None, torch.bfloat16, torch.float16), strict=True))
BN_IMAGES = 1024  # training images that re-estimate BatchNorm statistics before validation


@dataclass
class TrainResult:
    """Per-epoch curves and how the run ended."""

    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)  # mean cross-entropy on validation
    epochs_run: int = 0
    stopped_early: str | None = None
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.val_accuracy[-1] if self.val_accuracy else 0.0

    @property
    def final_loss(self) -> float | None:
        return self.val_loss[-1] if self.val_loss else None


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU; otherwise the named device, which
    must exist here (a user mistake otherwise)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SSCNasError("--device cuda was asked for, but this machine has no CUDA device; "
                          "use --device cpu")
    return resolved


# --amp auto trains a new study under bf16 only where a bf16 train step measured at least this
# much faster than float32 (a 2-core AMD EPYC: 1.2-1.5x; a 2-core Intel Xeon without AMX: 0.7x).
AMP_MIN_SPEEDUP = 1.1


def autocast_speedup(model: nn.Module, input_shape: tuple[int, int, int], num_classes: int,
                     batch_size: int, rounds: int = 3) -> float:
    """float32 time / bf16-autocast time of an SGD train step of ``model`` on the CPU.

    Random data, channels_last, learning rate 0; after one warm-up step each, the two precisions
    alternate and the median of the per-round ratios is returned (> 1: bf16 is faster).
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *input_shape, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,), generator=generator)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    cpu = torch.device("cpu")

    def step(amp: str) -> float:
        start = time.perf_counter()
        with autocast(cpu, amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for amp in ("off", "bf16"):  # warm-up
        step(amp)
    ratios = []
    for i in range(rounds):
        order = ("off", "bf16") if i % 2 == 0 else ("bf16", "off")
        times = {amp: step(amp) for amp in order}
        ratios.append(times["off"] / times["bf16"])
    return statistics.median(ratios)


def resolve_amp(amp: str, device: torch.device, stored: str | None = None,
                speedup: Callable[[], float] | None = None) -> str:
    """``"auto"``: ``stored`` (what a resumed study trains with) when given; else, on a CPU
    that computes bfloat16 in hardware, ``"bf16"`` if ``speedup()`` (see
    :func:`autocast_speedup`; not called elsewhere) is at least ``AMP_MIN_SPEEDUP``; else
    ``"off"`` (also on a GPU, where the CUDA graphs of ``TrainConfig.cuda_graphs`` pay off more,
    and they run without autocast). Other values are returned as they are."""
    if amp != "auto":
        return amp
    if stored is not None:
        return stored
    if device.type != "cpu" or not cpu_has_native_bf16() or speedup is None:
        return "off"
    return "bf16" if speedup() >= AMP_MIN_SPEEDUP else "off"


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; to CUDA through pinned memory, without blocking the host."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _model_input(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A batch on ``device``, in the memory format the model was put in."""
    x = _to_device(x, device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast to ``amp``'s dtype: bf16 on CUDA or CPU, fp16 on CUDA only; a no-op context
    otherwise (``amp="off"``, or fp16 on CPU)."""
    dtype = AMP_MODES[amp]
    if dtype is None or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype != torch.bfloat16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def scores(model: nn.Module, data: TensorDataset, batch_size: int = 256,
           device: torch.device | str = "cpu", channels_last: bool = False,
           amp: str = "off", dense_layout: bool = True) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of ``model`` on ``data``, in one pass (forward
    under ``amp`` autocast; SSC layers of the dense-weight path in their ``dense_layout``, so
    each builds its dense weight once, not per batch). The cross-entropy is the plain one,
    without the label smoothing of training."""
    device = torch.device(device)
    x_all, y_all = data.tensors
    model.eval()
    correct, loss = torch.zeros((), device=device), torch.zeros((), device=device)
    with torch.no_grad(), autocast(device, amp), _dense_layout(
            model, None, device, channels_last, dense_layout):
        for idx in _batches(len(y_all), batch_size, None):
            x = _model_input(x_all[idx], device, channels_last)
            y = _to_device(y_all[idx], device)
            logits = model(x).float()
            correct += (logits.argmax(1) == y).sum()  # summed on the device: one sync at the end
            loss += F.cross_entropy(logits, y, reduction="sum")
    n = max(1, len(y_all))
    return int(correct) / n, float(loss) / n


def _dense_layout(model: nn.Module, optimizer: torch.optim.Optimizer | None,
                  device: torch.device, channels_last: bool,
                  enabled: bool) -> contextlib.AbstractContextManager:
    """:func:`ssc_nas.layers.dense_layout` where ``enabled``, else nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return layout.dense_layout(model, optimizer, device_type=device.type,
                               channels_last=channels_last)


def evaluate(model: nn.Module, data: TensorDataset, batch_size: int = 256,
             device: torch.device | str = "cpu", channels_last: bool = False,
             amp: str = "off") -> float:
    """Top-1 accuracy of ``model`` on ``data`` (see :func:`scores`)."""
    return scores(model, data, batch_size, device, channels_last, amp)[0]


def graphed_forward(model: nn.Module, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model``'s training forward and backward captured as CUDA graphs for inputs shaped like
    ``x``; the module itself keeps its eager forward (evaluation, BatchNorm re-estimation).

    ``make_graphed_callables`` warms up on ``x`` first (3 forward and backward passes that only
    move the BatchNorm running statistics, which are re-estimated before every validation) and
    replaces ``model.forward``; that replacement is taken out and returned.
    """
    torch.cuda.make_graphed_callables(model, (x,), allow_unused_input=True)
    graphed = model.forward
    del model.forward  # the instance attribute the capture set: the class's forward again
    return graphed


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.learning_rate)


class Trainer:
    """One model, its optimizer, one-cycle cosine schedule and data order: epoch by epoch.

    Everything needed to continue exactly where it stopped is in :meth:`state_dict`, which is
    what a checkpoint holds.
    """

    def __init__(self, model: nn.Module, train: TensorDataset, config: TrainConfig, *,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.config = config
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        # fp16 autocast needs loss scaling; bf16 has fp32's range and does not.
        self.scaler = torch.amp.GradScaler("cuda") if (
            self.device.type == "cuda" and config.amp == "fp16") else None
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, config)
        self.train = train
        self.steps_per_epoch = math.ceil(len(train.tensors[1]) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.learning_rate, total_steps=self.total_steps,
            pct_start=0.15, anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0,
        ) if self.total_steps > 1 else None
        self.epoch = 0
        self.step = 0
        # The current epoch's batch order and how many of its batches are done: training can
        # stop mid-epoch (a rung of successive halving) and continue exactly (state_dict).
        self.order: torch.Tensor | None = None
        self.position = 0
        self.result = TrainResult()
        self._graphed: Callable[[torch.Tensor], torch.Tensor] | None = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward: a CUDA graph for full batches (``TrainConfig.cuda_graphs``;
        every full batch of the training set has one shape), the module itself otherwise."""
        if (self.device.type != "cuda" or not self.config.cuda_graphs
                or self.config.amp != "off" or x.shape[0] != self.config.batch_size):
            return self.model(x)
        if self._graphed is None:
            self._graphed = graphed_forward(self.model, x)
        return self._graphed(x)

    def run_epoch(
        self,
        on_batch: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> float:
        """Train to the end of the current epoch; returns the mean training loss of its steps."""
        end = (self.epoch + 1) * self.steps_per_epoch
        return self.train_steps(end, on_batch, should_stop)

    def train_steps(
        self,
        until: int,
        on_batch: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> float:
        """Train until ``self.step == until`` (capped at the schedule's ``total_steps``),
        across epoch ends, possibly stopping mid-epoch; returns the mean training loss of the
        steps run. Each epoch draws its batch order from ``generator`` when it starts, so
        stopping and continuing (through :meth:`state_dict`) trains exactly as one run."""
        with _dense_layout(self.model, self.optimizer, self.device, self.config.channels_last,
                           self.config.dense_layout):
            return self._train_steps(until, on_batch, should_stop)

    def _train_steps(
        self,
        until: int,
        on_batch: Callable[[int, int], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> float:
        config, device = self.config, self.device
        x_all, y_all = self.train.tensors
        until = min(until, self.total_steps)
        self.model.train()
        loss_sum, seen = 0.0, 0
        while self.step < until:
            if self.order is None:
                self.order = torch.randperm(len(y_all), generator=self.generator)
                self.position = 0
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            start = self.position * config.batch_size
            idx = self.order[start:start + config.batch_size]
            x = x_all[idx]
            if config.augment:
                x = augment_batch(x, self.generator)
            x = _model_input(x, device, config.channels_last)
            y = _to_device(y_all[idx], device)
            with autocast(device, config.amp):
                loss = F.cross_entropy(self._forward(x), y, label_smoothing=config.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            loss_sum = loss_sum + loss.detach() * len(idx)  # summed on the device: no sync
            seen += len(idx)
            self.step += 1
            self.position += 1
            if self.position == self.steps_per_epoch:
                self.epoch += 1
                self.order, self.position = None, 0
            if on_batch is not None:
                on_batch(self.step, self.total_steps)
        return float(loss_sum) / max(1, seen)

    def recalibrate_batchnorm(self, images: int = BN_IMAGES) -> None:
        """Running statistics = the plain average over the first ``images`` training images
        (unaugmented), computed with the current weights."""
        x = self.train.tensors[0][:images]
        with autocast(self.device, self.config.amp), _dense_layout(
                self.model, None, self.device, self.config.channels_last,
                self.config.dense_layout):
            update_bn([_model_input(b, self.device, self.config.channels_last)
                       for b in x.split(self.config.batch_size)], self.model)

    def evaluate(self, data: TensorDataset) -> float:
        return self.scores(data)[0]

    def scores(self, data: TensorDataset) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on ``data``."""
        return scores(self.model, data, 256, self.device, self.config.channels_last,
                      self.config.amp, self.config.dense_layout)

    def epoch_with_validation(
        self,
        val: TensorDataset,
        on_batch: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[float, float]:
        """One epoch, then validation; both recorded in ``result``. Returns (loss, val acc)."""
        train_loss = self.run_epoch(on_batch, should_stop)
        self.recalibrate_batchnorm()
        acc, loss = self.scores(val)
        self.result.train_loss.append(train_loss)
        self.result.val_accuracy.append(acc)
        self.result.val_loss.append(loss)
        self.result.epochs_run = self.epoch
        return train_loss, acc

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "order": self.order,
            "position": self.position,
            "result": asdict(self.result),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        # Random states and the batch order are CPU tensors, also when torch.load mapped the
        # checkpoint onto a GPU (map_location): set_state takes CPU ByteTensors only.
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.epoch, self.step = state["epoch"], state["step"]
        order = state.get("order")
        self.order = None if order is None else order.cpu()
        self.position = state.get("position", 0)
        self.result = TrainResult(**state["result"])


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
    """The proxy run: train, evaluate on ``val`` after each epoch, stop hopeless runs early.

    ``on_batch(done, total)`` and ``on_epoch(epoch, loss, val_acc)`` feed progress bars;
    ``should_stop()`` is checked between batches and raises ``KeyboardInterrupt`` when true,
    so an interrupt never lands inside a storage write.
    """
    trainer = Trainer(model, train, config, seed=seed, device=device)
    result = trainer.result
    start = time.perf_counter()
    while trainer.epoch < config.epochs:
        train_loss, acc = trainer.epoch_with_validation(val, on_batch, should_stop)
        if on_epoch is not None:
            on_epoch(trainer.epoch, train_loss, acc)
        if trainer.epoch < config.epochs:
            reason = hopeless(train_loss, acc, num_classes, config.hopeless_factor)
            if reason:
                result.stopped_early = reason
                break
    result.seconds = time.perf_counter() - start
    return result


def train_with_checkpoints(
    model: nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    config: TrainConfig,
    checkpoint: Path,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    run: Mapping[str, Any] | None = None,
) -> Trainer:
    """Full training that saves ``checkpoint`` after every epoch and resumes from it.

    A killed run started again with the same arguments continues after its last finished
    epoch (the file is replaced atomically, so a kill never leaves half a checkpoint). ``run``
    names the run (architecture, data, seed, schedule); it is saved with the checkpoint, and a
    checkpoint saved for another run is refused (:class:`CheckpointError`), never resumed or
    overwritten.
    """
    trainer = Trainer(model, train, config, seed=seed, device=device)
    checkpoint = Path(checkpoint)
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=trainer.device, weights_only=False)
        if state.get("run") is not None:
            _check_same_run(checkpoint, state["run"], run)
            trainer.load_state_dict(state)
        else:  # saved before runs were named: only loading it tells whether it fits
            try:
                trainer.load_state_dict(state)
            except (RuntimeError, KeyError) as exc:
                raise CheckpointError(
                    f"{checkpoint} does not fit this run ({str(exc)[:200]}); "
                    f"{_NEW_RUN_HINT.format(folder=checkpoint.parent)}") from None
    start = time.perf_counter() - trainer.result.seconds
    while trainer.epoch < config.epochs:
        train_loss, acc = trainer.epoch_with_validation(val, on_batch)
        trainer.result.seconds = time.perf_counter() - start
        save_atomically({**trainer.state_dict(), "run": None if run is None else dict(run)},
                        checkpoint)
        if on_epoch is not None:
            on_epoch(trainer.epoch, train_loss, acc)
    return trainer


_NEW_RUN_HINT = "train into a new folder (--out DIR), or delete {folder} to start over"


def _check_same_run(checkpoint: Path, stored: Mapping[str, Any],
                    asked: Mapping[str, Any] | None) -> None:
    """Refuse to resume ``checkpoint`` when it was saved for another run than ``asked``."""
    if asked is None or dict(stored) == dict(asked):
        return
    differences = []
    for key in sorted(set(stored) | set(asked)):
        old, new = stored.get(key), asked.get(key)
        if old == new:
            continue
        if key == "architecture":
            differences.append("another architecture")
        elif isinstance(old, Mapping) and isinstance(new, Mapping):
            differences += setting_differences(old, new, prefix=f"{key}.")
        else:
            differences += setting_differences({key: old}, {key: new})
    raise CheckpointError(f"{checkpoint} is another run's checkpoint ({'; '.join(differences)}); "
                          f"{_NEW_RUN_HINT.format(folder=checkpoint.parent)}")


def hopeless(train_loss: float, val_accuracy: float, num_classes: int, factor: float) -> str | None:
    """The early-stop rule: why a run should stop now, or None to go on."""
    if not math.isfinite(train_loss):
        return "training loss is not finite"
    if val_accuracy < factor / num_classes:
        return (f"validation accuracy {val_accuracy:.3f} < {factor:g} x chance "
                f"({factor / num_classes:.3f})")
    return None


@dataclass
class FullTrainingResult:
    model_path: Path
    checkpoint: Path
    test_accuracy: float
    result: TrainResult
    test_images: int  # how many images test_accuracy was measured on


def train_architecture(
    arch_file: str | Path,
    dataset: str,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    data_dir: str | Path = "data",
    seed: int = 0,
    device: str | None = None,
    download: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> FullTrainingResult:
    """Train an exported architecture on ``dataset``: checkpoint every epoch in ``out_dir``,
    resume after a kill, report test accuracy, save ``out_dir/model.pt`` (weights + arch).

    The architecture is built for the dataset's channels and classes, so a design searched on
    one dataset can be trained on another.
    """
    from .data import dataset_info, load_splits
    from .models import InputShape, build, read_architecture_file, save_model

    arch, _, source = read_architecture_file(arch_file)
    info = dataset_info(dataset)
    config = config.for_dataset(info.augment)
    splits = load_splits(dataset, data_dir, split_seed=seed, download=download)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a read-only place, ...
        why = "a file has that name" if out_dir.is_file() else exc.strerror or str(exc)
        raise SSCNasError(f"cannot use {out_dir} as the run folder: {why}") from None
    shape = InputShape(info.in_channels, tuple(info.input_size), splits.info.num_classes)
    torch.manual_seed(seed)  # the initial weights too: the same seed trains the same model
    model = build(arch, shape.in_channels, shape.num_classes, shape.input_size)
    checkpoint = out_dir / "checkpoint.pt"
    run = {"architecture": arch.to_dict(), "dataset": dataset, "seed": seed,
           "train": config.to_dict()}
    trainer = train_with_checkpoints(model, splits.train, splits.val, config, checkpoint,
                                     seed=seed, device=resolve_device(device),
                                     on_batch=on_batch, on_epoch=on_epoch, run=run)
    test_accuracy = trainer.evaluate(splits.test)
    model_path = save_model(
        out_dir / "model.pt", trainer.model, arch, shape, dataset=dataset,
        test_accuracy=test_accuracy, val_accuracy_curve=trainer.result.val_accuracy,
        train=config.to_dict(), source=source.get("source"),
    )
    return FullTrainingResult(model_path, checkpoint, test_accuracy, trainer.result,
                              test_images=len(splits.test.tensors[1]))
