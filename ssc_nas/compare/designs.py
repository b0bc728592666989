"""What each method trains: the dense width pruned, the hand-set ``ssc-uniform`` design, the
searched ``ssc-search`` design (searching first when the SSC study has none) and the study's
``reference`` designs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import TrialState

from ..baselines import unprunable_param_count
from ..budget import Budget, format_count
from ..cost import Cost
from ..data import Splits, dataset_info
from ..errors import BudgetError, SSCNasError, StudyError
from ..models import Architecture, build
from ..search import (
    CLI_DEFAULTS,
    DEFAULT_TRIALS,
    SearchConfig,
    default_study_name,
    make_storage,
    run_search,
)
from ..search.halving import study_progress_count
from ..search.objectives import sort_key
from ..search.results import (
    is_trained,
    study_input_shape,
    study_objectives,
    trial_accuracy,
    trial_design,
    trial_val_loss,
)
from ..spaces import BoundSpace, SearchSpace, load_space
from .config import DENSE_OVER_BUDGET, UNIFORM_PARTS, CompareConfig
from .reporter import notify

__all__ = [
    "REFERENCE_PREFIX",
    "TRIAL_PREFIX",
    "bound_space",
    "check_prunable",
    "default_dense_width",
    "dense_counts",
    "reference_designs",
    "search_design",
    "trial_designs",
    "uniform_design",
]


def bound_space(config: CompareConfig) -> BoundSpace:
    """The SSC space of ``ssc-uniform`` (and the widths the dense width is chosen from)."""
    space = load_space(config.space_name)
    if space.family != config.family:
        raise SSCNasError(f"space {space.name!r} is for family {space.family}, not "
                          f"{config.family}")
    info = dataset_info(config.dataset)
    return BoundSpace(space, info.in_channels, info.num_classes, info.input_size)


def dense_counts(family: str, width: float, dataset: str) -> tuple[int, int]:
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
        if dense_counts(config.family, width, config.dataset)[1] >= (
                DENSE_OVER_BUDGET * config.budget.params):
            return width
    return ordered[-1]


def check_prunable(config: CompareConfig, width: float) -> None:
    fixed, total = dense_counts(config.family, width, config.dataset)
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
            arch = bound.from_params(params, width)
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


Design = tuple[Architecture, str, dict[str, Any]]

REFERENCE_PREFIX = "reference:"  # the rows of the ``reference`` method: reference:<design>
TRIAL_PREFIX = "trial:"  # the rows of ``--trial``: trial:<number>


def _ssc_study(config: CompareConfig, space: SearchSpace) -> tuple[
        SearchConfig, optuna.Study | None]:
    """The search settings of the SSC study compare reads, and that study if it exists: an
    existing study's own settings (schedule, strategy, ...), so the short search extends it."""
    search = SearchConfig(budget=config.budget, space=config.space_name,
                          dataset=config.dataset, data_dir=config.data_dir,
                          trials=config.search_trials, storage=config.storage,
                          device=config.device, reference_designs=False)
    search = replace(search, study=config.study or default_study_name(search, space))
    storage = make_storage(config.storage)
    if search.study in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=search.study, storage=storage)
        if "space" not in study.user_attrs:  # (a <study>-baselines name is refused earlier)
            raise StudyError(f"study {search.study!r} in {config.storage} was not made by "
                             "ssc-nas search; pass --study with the name of a search study")
        return search.joining(study.user_attrs), study
    return search, None


def _other_space_hint(config: CompareConfig, name: str) -> str:
    """Where the storage holds a study of this dataset, family and budget in another space (the
    default search's stage space, say): how to compare against that one instead."""
    if config.study is not None:
        return ""
    hints = []
    for summary in optuna.get_all_study_summaries(make_storage(config.storage),
                                                  include_best_trial=False):
        attrs = summary.user_attrs
        space = attrs.get("space")
        if (summary.study_name != name and isinstance(space, dict)
                and space.get("family") == config.family
                and attrs.get("dataset") == config.dataset
                and attrs.get("budget", {}).get("params") == config.budget.params):
            hints.append(f"; the storage also has study {summary.study_name!r} (space "
                         f"{space.get('name')}): to compare against it, pass --study "
                         f"{summary.study_name} --space {space.get('name')}")
    return "".join(hints)


def search_design(config: CompareConfig, bound: BoundSpace, splits: Splits | None,
                  reporter: Any) -> Design:
    """``ssc-search``: the best-scored searched architecture within budget in the SSC study,
    never a reference design (searching first if there is none)."""
    search, study = _ssc_study(config, bound.space)
    name = search.study
    extra: dict[str, Any] = {"ssc_study": name}
    candidates = _trained_within(study, config, reference=False) if study is not None else []
    if not candidates:
        # The search uses ssc-nas search's own data (all training images, split seed 0).
        if study is not None:  # its trials so far (reference designs) count towards --trials
            search = replace(search, trials=study_progress_count(study) + config.search_trials)
        settings = "" if study is None else " with the study's own settings"
        notify(reporter, "message", f"ssc-search: no searched design within budget in study "
                                   f"{name!r}; searching {config.search_trials} "
                                   f"{'candidates' if search.strategy == 'sh' else 'trials'}"
                                   f"{settings} (resume or extend it with: {search.command()})"
                                   f"{_other_space_hint(config, name)}")
        start = time.perf_counter()
        result = run_search(search, reporter=getattr(reporter, "search", None), splits=splits)
        extra["search_time_s"] = round(time.perf_counter() - start, 3)
        study = result.study
        candidates = _trained_within(study, config, reference=False)
        if not candidates:
            raise StudyError(f"study {name!r} has no trained searched architecture within "
                             f"{config.budget.describe()}; run more --search-trials")
    return _design(candidates[0], study, config, extra)


def reference_designs(config: CompareConfig, bound: BoundSpace) -> dict[str, Design]:
    """``reference``: every reference design (``standard``, ``groupwise``, ...) trained within
    budget in the SSC study, one row each named ``reference:<design>``, best-scored first:
    the yardsticks ``ssc-search`` must beat, all retrained, so the search is judged against the
    best of them after retraining, not against the one its proxy ranked first."""
    search, study = _ssc_study(config, bound.space)
    candidates = _trained_within(study, config, reference=True) if study is not None else []
    if not candidates:
        # A new study: the search's own strategy; the study name only where --study gave one.
        strategy = CLI_DEFAULTS["strategy"]
        run = search if study is not None else replace(
            search, strategy=strategy, trials=DEFAULT_TRIALS[strategy], study=config.study)
        raise StudyError(f"study {search.study!r} has no trained reference design within "
                         f"{config.budget.describe()}; run {run.command()} first (it "
                         "trains them)"
                         f"{_other_space_hint(config, search.study)}")
    assert study is not None
    out: dict[str, Design] = {}
    for trial in candidates:  # best first: a design run at several rungs keeps its best
        row = REFERENCE_PREFIX + str(trial.user_attrs["reference"])
        if row not in out:
            out[row] = _design(trial, study, config, {"ssc_study": search.study})
    return out


def trial_designs(config: CompareConfig, bound: BoundSpace) -> dict[str, Design]:
    """``--trial``: each named trial of the SSC study (a design picked from its front, a
    cheaper one say), one row each named ``trial:<number>``, retrained and paired by fold like
    every method. A trial must have an architecture and fit the budget."""
    if not config.trials:
        return {}
    search, study = _ssc_study(config, bound.space)
    if study is None:
        raise StudyError(f"--trial {config.trials[0]}: there is no study {search.study!r} in "
                         f"{config.storage}; pass --study (ssc-nas studies lists them)"
                         f"{_other_space_hint(config, search.study)}")
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    out: dict[str, Design] = {}
    for number in config.trials:
        trial = by_number.get(number)
        if trial is None or "architecture" not in trial.user_attrs:
            front = [t.number for t in _trained_within(study, config, reference=False)][:10]
            raise StudyError(f"--trial {number}: study {search.study!r} has no trial {number} "
                             f"with an architecture (its best-scored searched trials within "
                             f"budget: {front})")
        cost = Cost(int(trial.user_attrs["params"]), int(trial.user_attrs.get("macs") or 0))
        if not config.budget.fits(cost):
            raise BudgetError(f"--trial {number} has {format_count(cost.params)} params, over "
                              f"--budget {config.budget.describe()}: every method of a "
                              "comparison is trained at one budget")
        out[TRIAL_PREFIX + str(number)] = _design(trial, study, config,
                                                  {"ssc_study": search.study})
    return out


def _design(trial: Any, study: optuna.Study, config: CompareConfig,
            extra: dict[str, Any]) -> Design:
    """The architecture of an SSC study's trial, its label and where it came from."""
    arch = Architecture.from_dict(trial.user_attrs["architecture"])
    if arch.family != config.family:
        raise StudyError(f"study {study.study_name!r} searched family {arch.family}, not "
                         f"{config.family}; pass --study for a study of this family")
    objectives = study_objectives(study)
    extra = {**extra, "ssc_trial": trial.number,
             "proxy_accuracy": trial_accuracy(trial, objectives),
             "proxy_val_loss": trial_val_loss(trial, objectives)}
    label = trial_design(trial, study_input_shape(study))
    return arch, f"{label} (trial {trial.number})", extra


def _trained_within(study: optuna.Study, config: CompareConfig, reference: bool) -> list[Any]:
    """The trained trials of ``study`` within the budget that are reference designs
    (``reference``) or searched ones, best-scored first (lowest val loss, or highest accuracy
    in an accuracy study)."""
    objectives = study_objectives(study)
    kind = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if is_trained(t) and "architecture" in t.user_attrs
            and bool(t.user_attrs.get("reference")) == reference
            and config.budget.fits(Cost(int(t.user_attrs["params"]),
                                        int(t.user_attrs.get("macs") or 0)))]
    return sorted(kind, key=lambda t: sort_key(t, objectives))
