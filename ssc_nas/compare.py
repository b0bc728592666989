"""``ssc-nas compare``: SSC designs against pruning at initialization, at the same budget.

Every method gets the same data (one split, ``split_seed`` 0), the same training schedule
(:class:`~ssc_nas.train.TrainConfig` with ``epochs``/``batch_size`` of the config, SGD one-cycle,
and ``hopeless_factor=0`` so no run is cut short by the search's early-stop rule) and the same
seeds; accuracy is measured on the held-out **test** split, which no method selects on.

Methods:

* ``snip``, ``grasp``, ``synflow``, ``erk``, ``random`` (and ``magnitude``): the dense
  ``Architecture(family, width)`` initialized under the seed and pruned at initialization to
  *exactly* the budget's parameter count (:func:`ssc_nas.baselines.prune_at_init`). The dense
  width defaults to the smallest width of the family's shipped SSC space whose dense network has
  at least :data:`DENSE_OVER_BUDGET` (4) x the budget's parameters (VGG-16 at 0.5M on mnist-5k:
  width 0.375, 2.07M params, 76 % sparsity, 29M dense MACs per 28 x 28 image; full width would
  run ~205M MACs per image as masked dense, too slow on a CPU).
* ``ssc-uniform``: a hand-set SSC with the same knob values in every layer, HetConv-style
  (groups 1, full 3 x 3 kernels on a fraction 1/P of each filter's input channels with
  ``phases: cover``, 1 x 1 kernels on all the others), P in {2, 4, 8} and the width of the
  shipped space chosen together: the design with the most parameters within the budget (ties:
  wider, then smaller P). See :func:`uniform_design`.
* ``ssc-search``: the most accurate architecture within budget on the Pareto front of the SSC
  study (``<dataset>-<family>-ssc-<budget>``, what ``ssc-nas search --space <family>-ssc`` makes)
  in the same storage; when that study does not exist or has no front, a short search of
  ``search_trials`` trials is run first with the defaults of ``ssc-nas search`` (so that command
  can resume it). The architecture is retrained under the compare schedule, per seed.

Each (method, seed) run is stored as a COMPLETE trial of the single-objective study
``<study>-baselines`` (value: test accuracy; user attributes ``method``, ``seed``, ``params``,
``macs``, ``accuracy``, ``train_time_s``, ``epochs`` and more), which ``ssc-nas report``
overlays on the SSC front. The SSC study's trials are never modified. A run already stored with
the same method, seed, schedule and design is reused, not retrained (the runs are seeded, so
retraining would give the same numbers); use another ``storage`` to start afresh.

MACs: for SSC networks the structural MACs of :func:`ssc_nas.cost.count`; for pruned networks
both the MACs they run as masked dense networks (``dense_macs``) and their sparse MACs (nonzero
weights x output pixels, ``macs``), the figure the pruning papers' FLOP counts use.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import optuna
import torch
from optuna.trial import TrialState, create_trial
from torch import nn

from .baselines import METHODS as PRUNING_METHODS
from .baselines import prunable, prune_at_init, pruned_param_count, unprunable_param_count
from .budget import Budget, format_count
from .cost import Cost, count
from .data import Splits, dataset_info, load_splits
from .errors import BudgetError, SSCNasError, StudyError
from .models import FAMILIES, Architecture, build
from .search import (
    BASELINES_SUFFIX,
    DEFAULT_STORAGE,
    SearchConfig,
    default_study_name,
    front,
    make_storage,
    run_search,
)
from .spaces import BoundSpace, SearchSpace, load_space
from .train import TrainConfig, evaluate, resolve_device, train_model

__all__ = [
    "DEFAULT_METHODS",
    "DENSE_OVER_BUDGET",
    "METHODS",
    "CompareConfig",
    "Row",
    "Run",
    "bound_space",
    "default_dense_width",
    "markdown_table",
    "run_compare",
    "sparse_macs",
    "study_name",
    "uniform_design",
]

#: SSC methods of :func:`run_compare`.
SSC_METHODS: tuple[str, ...] = ("ssc-search", "ssc-uniform")
#: Every method ``--methods`` accepts.
METHODS: tuple[str, ...] = (*SSC_METHODS, *PRUNING_METHODS)
#: What ``ssc-nas compare`` runs when ``--methods`` is not given (the paper's baselines).
DEFAULT_METHODS: tuple[str, ...] = (
    "ssc-search", "ssc-uniform", "snip", "grasp", "synflow", "erk", "random",
)
#: The default dense width is the smallest whose dense network has this many x the budget.
DENSE_OVER_BUDGET = 4.0
#: HetConv parts P tried by ``ssc-uniform`` (spatial fraction 1/P).
UNIFORM_PARTS: tuple[int, ...] = (2, 4, 8)
#: Seed of the train/val split every method shares.
SPLIT_SEED = 0


@dataclass(frozen=True)
class CompareConfig:
    """One comparison: methods, budget, data and the one training schedule all methods get.

    Defaults are those of ``ssc-nas compare`` (4 epochs on all 3,600 mnist-5k training images,
    batch 64, 1 seed, a search of 8 trials when the SSC study has no front yet).
    """

    budget: Budget
    family: str = "vgg16"
    methods: tuple[str, ...] = DEFAULT_METHODS
    dataset: str = "mnist-5k"
    data_dir: str = "data"
    epochs: int = 4
    seeds: int = 1
    batch_size: int = 64
    subset: float = 1.0
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    space: str | None = None
    search_trials: int = 8
    width: float | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise SSCNasError(f"unknown method {unknown[0]!r}; valid methods: "
                              f"{', '.join(METHODS)}")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise SSCNasError(f"--methods must be distinct names from {', '.join(METHODS)}")
        if self.family not in FAMILIES:
            raise SSCNasError(f"unknown family {self.family!r}; valid families: "
                              f"{', '.join(FAMILIES)}")
        if self.budget.params is None:
            raise BudgetError("compare needs a parameter budget (--budget 0.5M): the pruning "
                              "baselines are matched to it exactly")
        if self.budget.macs is not None:
            raise BudgetError("compare matches parameter counts only; a MACs budget is not "
                              "supported (MACs are reported in the table)")
        for name, value in (("epochs", self.epochs), ("seeds", self.seeds),
                            ("batch-size", self.batch_size),
                            ("search-trials", self.search_trials)):
            if value < 1:
                raise SSCNasError(f"--{name} must be >= 1, but got {value}")
        if self.width is not None and not self.width > 0:
            raise SSCNasError(f"--width must be > 0, but got {self.width}")
        if not 0.0 < self.subset <= 1.0:
            raise SSCNasError(f"--subset must be in (0, 1], but got {self.subset}")

    @property
    def space_name(self) -> str:
        return self.space or f"{self.family}-ssc"

    def train_config(self, augment: bool) -> TrainConfig:
        """The schedule every method gets: no early stop of "hopeless" runs."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, augment=augment,
                           hopeless_factor=0.0)


@dataclass(frozen=True)
class Run:
    """One trained (method, seed)."""

    method: str
    seed: int
    design: str
    params: int
    macs: int
    dense_macs: int | None
    accuracy: float
    val_accuracy: float
    train_time_s: float
    epochs: int
    reused: bool = False


@dataclass(frozen=True)
class Row:
    """One method over its seeds: what a line of the table shows."""

    method: str
    design: str
    runs: tuple[Run, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def params(self) -> int:
        return round(statistics.fmean(r.params for r in self.runs))

    @property
    def macs(self) -> int:
        return round(statistics.fmean(r.macs for r in self.runs))

    @property
    def dense_macs(self) -> int | None:
        values = [r.dense_macs for r in self.runs if r.dense_macs is not None]
        return round(statistics.fmean(values)) if values else None

    @property
    def accuracy(self) -> float:
        return statistics.fmean(r.accuracy for r in self.runs)

    @property
    def accuracy_std(self) -> float | None:
        """Sample standard deviation over seeds; None with one seed."""
        if len(self.runs) < 2:
            return None
        return statistics.stdev(r.accuracy for r in self.runs)

    @property
    def train_time_s(self) -> float:
        return statistics.fmean(r.train_time_s for r in self.runs)


class Reporter(Protocol):
    """What :func:`run_compare` tells about its progress (every method is optional)."""

    def message(self, text: str) -> None: ...
    def run_started(self, method: str, seed: int, design: str) -> None: ...
    def batch(self, done: int, total: int) -> None: ...
    def run_finished(self, run: Run) -> None: ...


def _call(reporter: Any, name: str, *args: Any) -> None:
    fn = getattr(reporter, name, None) if reporter is not None else None
    if fn is not None:
        fn(*args)


# -- designs ----------------------------------------------------------------------------------


def bound_space(config: CompareConfig) -> BoundSpace:
    """The SSC space of ``ssc-uniform`` (and the widths the dense width is chosen from)."""
    space = load_space(config.space_name)
    if space.family != config.family:
        raise SSCNasError(f"space {space.name!r} is for family {space.family}, not "
                          f"{config.family}")
    info = dataset_info(config.dataset)
    return BoundSpace(space, info.in_channels, info.num_classes, info.input_size)


def _dense_counts(family: str, width: float, dataset: str) -> tuple[int, int]:
    """(unprunable, all) parameters of the dense ``family`` x ``width`` network."""
    info = dataset_info(dataset)
    model = build(Architecture(family, width), info.in_channels, info.num_classes,
                  info.input_size)
    return unprunable_param_count(model), sum(p.numel() for p in model.parameters())


def default_dense_width(config: CompareConfig, widths: Sequence[float]) -> float:
    """The smallest of ``widths`` whose dense network has >= 4 x the budget's params, else the
    widest one (then the budget only has to be below its parameter count)."""
    assert config.budget.params is not None
    ordered = sorted(widths)
    for width in ordered:
        if _dense_counts(config.family, width, config.dataset)[1] >= (
                DENSE_OVER_BUDGET * config.budget.params):
            return width
    return ordered[-1]


def _check_prunable(config: CompareConfig, width: float) -> None:
    fixed, total = _dense_counts(config.family, width, config.dataset)
    target = config.budget.params
    assert target is not None
    if not fixed <= target <= total:
        raise BudgetError(
            f"--budget {format_count(target)} cannot be reached by pruning the dense "
            f"{config.family} x{width:g} ({format_count(total)} params, {format_count(fixed)} "
            f"never pruned): the reachable range is [{fixed}, {total}] params"
            + ("; pass a larger --width" if target > total else "")
        )


def uniform_design(bound: BoundSpace, budget: Budget) -> tuple[Architecture, str] | None:
    """``ssc-uniform``: HetConv-P{2,4,8}-style knobs in every layer at a width of the space.

    Knobs: groups 1, pattern full, spatial_fraction 1/P, pointwise_fraction 1.0, phases cover
    (where the space offers those values). Among all (width, P) that fit, the one with the most
    parameters; ties go to the wider network, then the smaller P. None when none fits.
    """
    best: tuple[int, float, int, Architecture] | None = None
    for part in UNIFORM_PARTS:
        knobs = {"groups": 1, "pattern": "full", "spatial_fraction": 1.0 / part,
                 "pointwise_fraction": 1.0, "phases": "cover"}
        for width in bound.space.width:
            params = bound.params_for(width, knobs)
            if params is None:
                continue
            arch = bound.from_params(params)
            cost = bound.cost(arch)
            if not budget.fits(cost):
                continue
            key = (cost.params, width, -part)
            if best is None or key > best[:3]:
                best = (cost.params, width, -part, arch)
    if best is None:
        return None
    _, width, part, arch = best
    return arch, f"HetConv-P{-part} x{width:g} (uniform)"


def _search_design(config: CompareConfig, bound: BoundSpace, splits: Splits | None,
                   reporter: Any) -> tuple[Architecture, str, dict[str, Any]]:
    """The front's most accurate architecture within budget, searching first if needed."""
    space: SearchSpace = bound.space
    search = SearchConfig(budget=config.budget, space=config.space_name,
                          dataset=config.dataset, data_dir=config.data_dir,
                          trials=config.search_trials, storage=config.storage,
                          device=config.device)
    name = config.study or default_study_name(search, space)
    search = replace(search, study=name)
    storage = make_storage(config.storage)
    extra: dict[str, Any] = {"ssc_study": name}
    study = None
    if name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
    candidate = _best_within(study, config) if study is not None else None
    if candidate is None:
        _call(reporter, "message", f"ssc-search: no front within budget in study {name!r}; "
                                   f"searching {config.search_trials} trials (resume or extend "
                                   f"it with: ssc-nas search --space {config.space_name} "
                                   f"--budget {format_count(config.budget.params or 0)} "
                                   f"--dataset {config.dataset})")
        # The search uses ssc-nas search's own data (all training images, split seed 0).
        start = time.perf_counter()
        result = run_search(search, reporter=getattr(reporter, "search", None), splits=splits)
        extra["search_time_s"] = round(time.perf_counter() - start, 3)
        study = result.study
        candidate = _best_within(study, config)
        if candidate is None:
            raise StudyError(f"study {name!r} has no trained architecture within "
                             f"{config.budget.describe()}; run more --search-trials")
    trial = candidate
    arch = Architecture.from_dict(trial.user_attrs["architecture"])
    if arch.family != config.family:
        raise StudyError(f"study {name!r} searched family {arch.family}, not {config.family}; "
                         "pass --study for a study of this family")
    label = trial.user_attrs.get("reference") or arch.summary()
    objectives = study.user_attrs.get("objectives", ["accuracy"])
    extra["ssc_trial"] = trial.number
    extra["proxy_accuracy"] = trial.values[objectives.index("accuracy")]
    return arch, f"{label} (trial {trial.number})", extra


def _best_within(study: optuna.Study, config: CompareConfig) -> Any:
    """The most accurate front trial of ``study`` within the budget, or None."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    for t in front(study):
        params = t.user_attrs.get("params")
        if "architecture" in t.user_attrs and params is not None and config.budget.fits(
                Cost(int(params), int(t.user_attrs.get("macs") or 0))):
            return t
    return None


# -- MACs of pruned networks ------------------------------------------------------------------


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


# -- storing runs -----------------------------------------------------------------------------


def _baselines_study(config: CompareConfig, ssc_study: str) -> optuna.Study:
    storage = make_storage(config.storage)
    name = ssc_study + BASELINES_SUFFIX
    if name in optuna.get_all_study_names(storage):
        return optuna.load_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    if "kind" not in study.user_attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["accuracy"])
        study.set_user_attr("kind", "ssc-nas compare")
        study.set_user_attr("ssc_study", ssc_study)
        study.set_user_attr("objectives", ["accuracy"])
        study.set_user_attr("dataset", config.dataset)
        study.set_user_attr("budget", config.budget.to_dict())
    return study


def _stored(study: optuna.Study, key: str) -> Run | None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if a.get("run_key") == key:
            return Run(a["method"], int(a["seed"]), a.get("design", ""), int(a["params"]),
                       int(a["macs"]), a.get("dense_macs"), float(a["accuracy"]),
                       float(a.get("val_accuracy", math.nan)), float(a["train_time_s"]),
                       int(a["epochs"]), reused=True)
    return None


def _store(study: optuna.Study, run: Run, key: str, extra: dict[str, Any]) -> None:
    attrs = {
        "method": run.method, "seed": run.seed, "design": run.design, "params": run.params,
        "macs": run.macs, "dense_macs": run.dense_macs, "accuracy": run.accuracy,
        "val_accuracy": run.val_accuracy, "train_time_s": round(run.train_time_s, 3),
        "epochs": run.epochs, "run_key": key, **extra,
    }
    study.add_trial(create_trial(value=run.accuracy, user_attrs=attrs,
                                 state=TrialState.COMPLETE))


# -- running ----------------------------------------------------------------------------------


def _train(model: nn.Module, splits: Splits, config: CompareConfig, seed: int,
           device: torch.device, reporter: Any) -> tuple[nn.Module, float, float, float, int]:
    """Train under the compare schedule; (model, test acc, val acc, seconds, epochs run)."""
    train_config = config.train_config(splits.info.augment)
    result = train_model(model, splits.train, splits.val, train_config,
                         num_classes=splits.info.num_classes, seed=seed, device=device,
                         on_batch=(lambda d, t: _call(reporter, "batch", d, t)))
    acc = evaluate(model, splits.test, 256, device, train_config.channels_last)
    return model, acc, result.final_accuracy, result.seconds, result.epochs_run


def study_name(config: CompareConfig) -> str:
    """The SSC study compared against: ``config.study`` or what ``ssc-nas search`` names it."""
    if config.study:
        return config.study
    search = SearchConfig(budget=config.budget, space=config.space_name, dataset=config.dataset)
    return default_study_name(search, load_space(config.space_name))


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
        _check_prunable(config, width)
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
            designs[method] = _search_design(config, bound, splits if same_data else None,
                                             reporter)
        else:
            assert width is not None
            fixed, total = _dense_counts(config.family, width, config.dataset)
            sparsity = 1 - (config.budget.params - fixed) / max(1, total - fixed)
            designs[method] = (None, f"x{width:g} dense ({format_count(total)}), "
                                     f"{sparsity:.1%} sparse", {})
    baselines = _baselines_study(config, ssc_study)
    rows = []
    for method in config.methods:
        arch, design, extra = designs[method]
        runs = []
        for seed in range(config.seeds):
            ident = {"method": method, "seed": seed, **schedule,
                     "design": arch.to_dict() if arch is not None else {"dense_width": width}}
            key = json.dumps(ident, sort_keys=True)
            stored = _stored(baselines, key)
            if stored is not None:
                runs.append(stored)
                _call(reporter, "run_finished", stored)
                continue
            _call(reporter, "run_started", method, seed, design)
            run, attrs = _run_one(method, seed, arch, design, width, config, splits, shape,
                                  device, reporter)
            _store(baselines, run, key, {**extra, **attrs, "family": config.family,
                                         "dataset": config.dataset, "subset": config.subset,
                                         "batch_size": config.batch_size})
            runs.append(run)
            _call(reporter, "run_finished", run)
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


# -- tables -----------------------------------------------------------------------------------


def format_accuracy(row: Row) -> str:
    std = row.accuracy_std
    return f"{row.accuracy:.4f}" if std is None else f"{row.accuracy:.4f} ± {std:.4f}"


def table_note(rows: Sequence[Row]) -> str:
    """The footnote on MACs (and seeds) under a table."""
    pruned = [r for r in rows if r.dense_macs is not None]
    seeds = max((len(r.runs) for r in rows), default=0)
    note = (f"accuracy: test split, mean ± sample std over {seeds} seeds"
            if seeds > 1 else "accuracy: test split, 1 seed")
    if pruned:
        dense = ", ".join(sorted({format_count(r.dense_macs or 0) for r in pruned}))
        note += ("; MACs of pruned networks are sparse MACs (nonzero weights x output "
                 f"pixels); as masked dense networks they run {dense} MACs per image")
    return note


def markdown_table(rows: Sequence[Row]) -> str:
    """The table as GitHub markdown, with the note underneath."""
    lines = ["| method | design | params | MACs | accuracy | train time |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.design} | {format_count(r.params)} | "
                     f"{format_count(r.macs)} | {format_accuracy(r)} | {r.train_time_s:.1f} s |")
    return "\n".join(lines) + "\n\n" + table_note(rows)
