"""``run_compare``: train every method of a comparison under one schedule, per seed."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import optuna
import torch
from torch import nn

from ..baselines import prunable, prune_at_init, pruned_param_count
from ..budget import format_count
from ..cost import count
from ..data import Splits, dataset_info, load_splits
from ..errors import BudgetError
from ..models import Architecture, build
from ..train import evaluate, resolve_device, train_model
from .config import PRUNING_METHODS, SPLIT_SEED, UNIFORM_PARTS, CompareConfig, study_name
from .designs import (
    bound_space,
    check_prunable,
    default_dense_width,
    dense_counts,
    search_design,
    uniform_design,
)
from .reporter import notify
from .store import Run, baselines_study, run_key, store_run, stored_run
from .table import Row

__all__ = ["run_compare", "sparse_macs"]


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



def _train(model: nn.Module, splits: Splits, config: CompareConfig, seed: int,
           device: torch.device, reporter: Any) -> tuple[nn.Module, float, float, float, int]:
    """Train under the compare schedule; (model, test acc, val acc, seconds, epochs run)."""
    train_config = config.train_config(splits.info.augment)
    result = train_model(model, splits.train, splits.val, train_config,
                         num_classes=splits.info.num_classes, seed=seed, device=device,
                         on_batch=(lambda d, t: notify(reporter, "batch", d, t)))
    acc = evaluate(model, splits.test, 256, device, train_config.channels_last)
    return model, acc, result.final_accuracy, result.seconds, result.epochs_run



def run_compare(config: CompareConfig, reporter: Any | None = None,
                splits: Splits | None = None) -> list[Row]:
    """Train every method of ``config`` under one schedule; one :class:`Row` per method.

    ``reporter`` (optional) receives ``message``, ``run_started``, ``batch`` and
    ``run_finished`` calls (see :class:`Reporter`); its attribute ``search``, if any, is passed
    to :func:`ssc_nas.search.run_search`. ``splits`` lets tests reuse loaded data.
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
    if splits is None:
        splits = load_splits(config.dataset, config.data_dir, subset=config.subset,
                             split_seed=SPLIT_SEED)
    ssc_study = study_name(config)
    schedule = {"dataset": config.dataset, "subset": config.subset, "epochs": config.epochs,
                "batch_size": config.batch_size, "split_seed": SPLIT_SEED,
                "budget": config.budget.params, "family": config.family}
    designs: dict[str, tuple[Architecture | None, str, dict[str, Any]]] = {}
    for method in config.methods:
        if method == "ssc-uniform":
            assert uniform is not None
            designs[method] = (uniform[0], uniform[1], {})
        elif method == "ssc-search":
            # ssc-nas search trains on all training images of split seed 0: reuse them if so.
            same_data = config.subset == 1.0
            designs[method] = search_design(config, bound, splits if same_data else None,
                                             reporter)
        else:
            assert width is not None
            fixed, total = dense_counts(config.family, width, config.dataset)
            sparsity = 1 - (config.budget.params - fixed) / max(1, total - fixed)
            designs[method] = (None, f"x{width:g} dense ({format_count(total)}), "
                                     f"{sparsity:.1%} sparse", {})
    baselines = baselines_study(config, ssc_study)
    rows = []
    for method in config.methods:
        arch, design, extra = designs[method]
        runs = []
        for seed in range(config.seeds):
            key = run_key(method, seed, config.train_config(info.augment), schedule,
                          arch.to_dict() if arch is not None else {"dense_width": width})
            stored = stored_run(baselines, key)
            if stored is not None:
                runs.append(stored)
                notify(reporter, "run_finished", stored)
                continue
            notify(reporter, "run_started", method, seed, design)
            run, attrs = _run_one(method, seed, arch, design, width, config, splits, shape,
                                  device, reporter)
            store_run(baselines, run, key, {**extra, **attrs, "family": config.family,
                                         "dataset": config.dataset, "subset": config.subset,
                                         "batch_size": config.batch_size})
            runs.append(run)
            notify(reporter, "run_finished", run)
        rows.append(Row(method, design, tuple(runs)))
    return rows


def _run_one(method: str, seed: int, arch: Architecture | None, design: str,
             width: float | None, config: CompareConfig, splits: Splits,
             shape: tuple[int, ...], device: torch.device,
             reporter: Any) -> tuple[Run, dict[str, Any]]:
    info = splits.info
    attrs: dict[str, Any] = {}
    if arch is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build(arch, info.in_channels, info.num_classes, info.input_size)
        cost = count(model, shape)
        model, acc, val, seconds, epochs = _train(model, splits, config, seed, device,
                                                  reporter)
        attrs["architecture"] = arch.to_dict()
        return Run(method, seed, design, cost.params, cost.macs, None, acc, val, seconds,
                   epochs), attrs
    assert width is not None and config.budget.params is not None
    start = time.perf_counter()
    model = prune_at_init(config.family, width, method, config.budget.params, splits,
                          seed=seed)
    attrs["prune_time_s"] = round(time.perf_counter() - start, 3)
    attrs["dense_width"] = width
    model, acc, val, seconds, epochs = _train(model, splits, config, seed, device, reporter)
    params = pruned_param_count(model)
    if params != config.budget.params:  # pruning is exact; training must keep it so
        raise AssertionError(f"{method} kept {params} params, not {config.budget.params}")
    dense = count(model, shape).macs
    return Run(method, seed, design, params, sparse_macs(model, shape), dense, acc, val,
               seconds, epochs), attrs


