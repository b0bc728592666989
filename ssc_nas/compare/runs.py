"""``run_compare``: train every method of a comparison under one schedule, per seed."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna
import torch
from torch import nn

from ..baselines import prunable, prune_at_init, pruned_param_count
from ..budget import format_count
from ..cost import count
from ..data import Splits, dataset_info, has_official_test, load_fold
from ..errors import BudgetError
from ..models import Architecture, build
from ..train import TrainConfig, evaluate, resolve_device, train_model
from .config import FOLD_SEED, PRUNING_METHODS, UNIFORM_PARTS, CompareConfig, study_name
from .designs import (
    bound_space,
    check_prunable,
    default_dense_width,
    dense_counts,
    reference_designs,
    search_design,
    trial_designs,
    uniform_design,
)
from .reporter import notify
from .store import Run, baselines_study, run_key, store_run, stored_run
from .table import Row

__all__ = ["equal_time_epochs", "run_compare", "sparse_macs"]


def sparse_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Nonzero effective weights x output positions, summed over every prunable weight.

    For a pruned network this is the work of a sparse implementation; an unpruned network
    gives its dense MACs (zero weights aside). One eval forward pass of a zero image finds each
    module's output size.
    """
    entries = prunable(model)
    positions: dict[int, int] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            positions[id(module)] = out[0].numel() // module.out_features
        else:
            positions[id(module)] = int(math.prod(out.shape[2:]))

    modules = {id(m): m for _, m, _ in entries}
    handles = [m.register_forward_hook(hook) for m in modules.values()]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    total = 0
    for _, module, attr in entries:
        if hasattr(module, f"{attr}_mask"):
            weight = getattr(module, f"{attr}_orig") * getattr(module, f"{attr}_mask")
        else:
            weight = getattr(module, attr)
        total += int(torch.count_nonzero(weight.detach())) * positions.get(id(module), 0)
    return total



def _train(model: nn.Module, splits: Splits, train_config: TrainConfig, seed: int,
           device: torch.device, reporter: Any) -> tuple[nn.Module, float, float, float, int]:
    """Train under ``train_config``; (model, test acc, val acc, seconds, epochs run)."""
    result = train_model(model, splits.train, splits.val, train_config,
                         num_classes=splits.info.num_classes, seed=seed, device=device,
                         on_batch=(lambda d, t: notify(reporter, "batch", d, t)))
    acc = evaluate(model, splits.test, 256, device, train_config.channels_last)
    return model, acc, result.final_accuracy, result.seconds, result.epochs_run


def equal_time_epochs(target_s: float, seconds_per_epoch: float) -> int:
    """The most whole epochs whose measured time fits in ``target_s`` (at least 1).

    Whole epochs, each run a complete one-cycle schedule: stopping a longer schedule at a time
    limit would leave the learning rate high and handicap the faster method.
    """
    if not seconds_per_epoch > 0:
        raise ValueError(f"seconds_per_epoch must be > 0, got {seconds_per_epoch}")
    return max(1, math.floor(target_s / seconds_per_epoch + 1e-9))


class _Folds:
    """The k folds, loaded once each and kept (fold ``i`` is the same for every method)."""

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self.loaded: dict[int, Splits] = {}

    def __getitem__(self, fold: int) -> Splits:
        if fold not in self.loaded:
            c = self.config
            self.loaded[fold] = load_fold(c.dataset, c.data_dir, fold=fold, folds=c.folds,
                                          subset=c.subset, seed=FOLD_SEED)
        return self.loaded[fold]


def run_compare(config: CompareConfig, reporter: Any | None = None) -> list[Row]:
    """Train every method of ``config`` on every fold under one schedule; one :class:`Row` per
    method, except ``reference``: one per reference design (``reference:<design>``), and one
    per trial of ``config.trials`` (``trial:<number>``).

    Fold ``i`` of :func:`ssc_nas.data.load_fold` (its test images, training images and seed
    ``i``) is the same for every method, so results pair by fold. With ``config.equal_time``
    and at least one pruning method, the SSC methods are then trained again per fold for
    :func:`equal_time_epochs` of the pruned runs' mean training time (``Row.equal_runs``);
    with ``config.equal_time_s``, every method for that many seconds.

    ``reporter`` (optional) receives ``message``, ``run_started``, ``batch`` and
    ``run_finished`` calls (see :class:`Reporter`); its attribute ``search``, if any, is passed
    to :func:`ssc_nas.search.run_search`.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    device = resolve_device(config.device)
    bound = bound_space(config)
    info = dataset_info(config.dataset)
    shape = (info.in_channels, *info.input_size)
    pruning = [m for m in config.methods if m in PRUNING_METHODS]
    width = config.width
    if pruning:
        width = width if width is not None else default_dense_width(config, bound.space.width)
        check_prunable(config, width)
    uniform = None
    if "ssc-uniform" in config.methods:
        uniform = uniform_design(bound, config.budget)
        if uniform is None:
            raise BudgetError(f"--budget {config.budget.describe()}: no uniform SSC design "
                              f"(HetConv-P{{{','.join(map(str, UNIFORM_PARTS))}}} at a width "
                              f"of {bound.space.name}) fits; raise the budget or leave "
                              "ssc-uniform out of --methods")
    folds = _Folds(config)
    folds[0]  # a data mistake is reported before any search or training
    picked = trial_designs(config, bound)  # and a --trial mistake
    ssc_study = study_name(config)
    setup = {"dataset": config.dataset, "subset": config.subset, "folds": config.folds,
             "fold_seed": FOLD_SEED, "split": "kfold" if not has_official_test(config.dataset)
             else "official test, fold seeds train/val", "budget": config.budget.params,
             "family": config.family,
             "device": device.type}  # CPU and GPU runs are not bit-identical: kept apart
    designs: dict[str, tuple[Architecture | None, str, dict[str, Any]]] = {}
    for method in config.methods:
        if method == "ssc-uniform":
            assert uniform is not None
            designs[method] = (uniform[0], uniform[1], {})
        elif method == "ssc-search":
            # The search uses ssc-nas search's own data (its split seed 0 train/val split).
            designs[method] = search_design(config, bound, None, reporter)
        elif method == "reference":
            designs.update(reference_designs(config, bound))
        else:
            assert width is not None
            fixed, total = dense_counts(config.family, width, config.dataset)
            sparsity = 1 - (config.budget.params - fixed) / max(1, total - fixed)
            designs[method] = (None, f"x{width:g} dense ({format_count(total)}), "
                                     f"{sparsity:.1%} sparse", {})
    designs.update(picked)
    baselines = baselines_study(config, ssc_study)
    schedule = config.train_config(info.augment)

    def runs_of(method: str, train_config: TrainConfig, equal: float | None) -> tuple[Run, ...]:
        arch, design, extra = designs[method]
        runs = []
        for fold in range(config.folds):
            key = run_key(method, fold, train_config, setup,
                          arch.to_dict() if arch is not None else {"dense_width": width})
            stored = stored_run(baselines, key)
            if stored is not None:
                runs.append(stored)
                notify(reporter, "run_finished", stored)
                continue
            label = design if equal is None else f"{design}, equal time {train_config.epochs} ep"
            notify(reporter, "run_started", method, fold, label)
            run, attrs = _run_one(method, fold, arch, design, width, config, folds[fold],
                                  train_config, shape, device, reporter)
            extra_equal = {} if equal is None else {"equal_time_target_s": round(equal, 3)}
            store_run(baselines, run, key, {**extra, **attrs, **extra_equal,
                                         "equal_time": equal is not None, "fold": fold,
                                         "folds": config.folds, "family": config.family,
                                         "dataset": config.dataset, "subset": config.subset,
                                         "device": device.type,
                                         "batch_size": config.batch_size})
            runs.append(run)
            notify(reporter, "run_finished", run)
        return tuple(runs)

    rows = [Row(method, design, runs_of(method, schedule, None))
            for method, (_, design, _) in designs.items()]
    pruned = [run for row in rows if row.method in PRUNING_METHODS for run in row.runs]
    fit_all = config.equal_time_s is not None
    if not config.equal_time or not (pruned or fit_all):
        return rows
    target = (config.equal_time_s if config.equal_time_s is not None
              else statistics.fmean(run.train_time_s for run in pruned))
    out = []
    for row in rows:
        equal_runs = row.runs
        if fit_all or row.method not in PRUNING_METHODS:
            epochs = equal_time_epochs(target, row.seconds_per_epoch)
            if epochs != config.epochs:
                notify(reporter, "message", f"{row.method}: {row.seconds_per_epoch:.2f} s per "
                       f"epoch; equal time {target:.1f} s -> {epochs} epochs")
                equal_runs = runs_of(row.method, replace(schedule, epochs=epochs), target)
        out.append(replace(row, equal_runs=equal_runs, equal_time_s=target))
    return out


def _run_one(method: str, seed: int, arch: Architecture | None, design: str,
             width: float | None, config: CompareConfig, splits: Splits,
             train_config: TrainConfig, shape: tuple[int, ...], device: torch.device,
             reporter: Any) -> tuple[Run, dict[str, Any]]:
    info = splits.info
    attrs: dict[str, Any] = {}
    if arch is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build(arch, info.in_channels, info.num_classes, info.input_size)
        cost = count(model, shape)
        model, acc, val, seconds, epochs = _train(model, splits, train_config, seed,
                                                  device, reporter)
        attrs["architecture"] = arch.to_dict()
        return Run(method, seed, design, cost.params, cost.macs, None, acc, val, seconds,
                   epochs), attrs
    assert width is not None and config.budget.params is not None
    start = time.perf_counter()
    model = prune_at_init(config.family, width, method, config.budget.params, splits,
                          seed=seed)
    attrs["prune_time_s"] = round(time.perf_counter() - start, 3)
    attrs["dense_width"] = width
    model, acc, val, seconds, epochs = _train(model, splits, train_config, seed, device,
                                                  reporter)
    params = pruned_param_count(model)
    if params != config.budget.params:  # pruning is exact; training must keep it so
        raise AssertionError(f"{method} kept {params} params, not {config.budget.params}")
    dense = count(model, shape).macs
    return Run(method, seed, design, params, sparse_macs(model, shape), dense, acc, val,
               seconds, epochs), attrs


