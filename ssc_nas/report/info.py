"""Pure report data: an Optuna study in, plain dataclasses out (no plotly).

Like Optuna's ``visualization`` modules, every figure of the report is computed here first, so
tests check the data without a browser and :mod:`ssc_nas.report.figures` only draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import moocore
import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ..budget import format_count, within_limits
from ..models import Architecture, InputShape, LayerSetting, plan, slot_spec
from ..search.objectives import score_name, seed_stds_text, trial_accuracy, trial_val_loss
from ..search.results import (
    OVER_BUDGET,
    PROMOTED,
    STOPPED,
    TRAINED,
    FrontRow,
    accuracy_se,
    against_references,
    best_accuracy,
    best_val_loss,
    front,
    front_rows,
    promoted_numbers,
    reference_name,
    study_input_shape,
    study_objectives,
    trial_design,
    trial_kind,
)
from ..search.storage import sqlite_path

__all__ = [
    "KNOB_MAP_COLUMNS",
    "LOWER_RUNG_STATES",
    "AccuracyAxis",
    "BaselinePoint",
    "FrontRow",
    "HypervolumeHistory",
    "Importances",
    "KnobMap",
    "StudyOverview",
    "TrialPoint",
    "accuracy_axis",
    "baseline_points",
    "front_rows",
    "hypervolume_history",
    "knob_map",
    "param_importances",
    "proxy_label",
    "study_overview",
    "trial_points",
]

# Per-layer values shown in the knob map; ``density`` is the layer's stored weights relative to
# a standard (dense, groups=1, full K x K) convolution of the same shape.
KNOB_MAP_COLUMNS = ("density", "groups", "pattern", "spatial_channels", "pointwise_channels",
                    "phases")
# The states of lower-rung trials (``--strategy sh``): scored on part of the proxy schedule, so
# the front plots leave them out rather than mix them with whole-schedule results.
LOWER_RUNG_STATES = (STOPPED, PROMOTED)
# How many times the costliest feasible trial a cost objective's reference point sits at, when
# the study has no budget on that objective (so the costliest trial still adds volume).
UNBUDGETED_REFERENCE = 1.1


@dataclass(frozen=True)
class TrialPoint:
    """One trial as the front plots see it.

    ``state`` is ``feasible`` (trained, within budget), ``over-budget`` (costed, never trained),
    or another ``search.results.trial_kind`` by its name (``stopped at a lower rung``,
    ``promoted``, ``prescreened out``, ``failed``, ``running``, ...).
    """

    number: int
    state: str
    accuracy: float | None
    params: int | None
    macs: int | None
    on_front: bool
    reference: str | None
    design: str
    note: str | None = None
    val_loss: float | None = None  # None: untrained, or an old study that did not keep it


@dataclass(frozen=True)
class HypervolumeHistory:
    """Hypervolume of the feasible front after each finished trial, in normalized units.

    Every objective is mapped to [0, 1] to be minimized: ``1 - accuracy`` (reference: accuracy 0)
    or ``val_loss / ln(classes)`` (reference: the loss of a uniform guess), and each cost
    divided by its reference (the budget when there is one, else ``UNBUDGETED_REFERENCE`` x the
    costliest feasible trial). Points outside the box count nothing. The value is thus the
    fraction of the box "score x cost 0..reference" that the front dominates (1.0 = perfect
    score at zero cost).
    """

    trial_numbers: list[int]
    values: list[float]
    objectives: list[str]
    reference: dict[str, float]


@dataclass(frozen=True)
class KnobMap:
    """Per-layer knobs of the front's architectures: ``values[knob][layer][column]``.

    Columns are the front trials in :func:`front_rows` order; a cell is ``None`` where the
    architecture has no such layer. ``density`` is ``None`` when the study lacks the input
    shape needed to plan the network.
    """

    layers: list[str]
    trials: list[int]
    labels: list[str]
    values: dict[str, list[list[Any]]]
    note: str | None = None


@dataclass(frozen=True)
class Importances:
    """Parameter importances for the score, largest first; empty with a ``reason`` when unknown."""

    values: dict[str, float]
    reason: str | None = None


@dataclass(frozen=True)
class BaselinePoint:
    """A result of another method (pruning at init, a paper's number) to overlay on the front.

    ``accuracy`` is the mean over ``runs`` runs (folds or seeds), ``accuracy_std`` their sample
    standard deviation (None with one run); ``label`` says what was measured, e.g. "compare:
    test accuracy, 4 epochs, mean ± std over 5 folds", since it is not the search's proxy.
    """

    method: str
    params: float
    macs: float | None
    accuracy: float
    accuracy_std: float | None = None
    runs: int = 1
    label: str = "compare: test accuracy"


@dataclass(frozen=True)
class AccuracyAxis:
    """The accuracy range the front plots show, zoomed to the points (and their error bars);
    trials without an accuracy (over budget, failed) are drawn at ``untrained_y``, the
    bottom of the range."""

    low: float
    high: float
    untrained_y: float


@dataclass(frozen=True)
class StudyOverview:
    """What the report header says about a study."""

    name: str
    dataset: str
    space: str
    family: str
    budget: str
    objectives: list[str]
    version: str
    counts: dict[str, int]
    front_size: int
    details: dict[str, str] = field(default_factory=dict)


# -- helpers ----------------------------------------------------------------------------------


def _cost(trial: FrozenTrial, key: str, objectives: list[str]) -> int | None:
    value = trial.user_attrs.get(key)
    if value is None and trial.values is not None and key in objectives:
        value = trial.values[objectives.index(key)]
    return None if value is None else int(value)


def _state(trial: FrozenTrial, promoted: Collection[int]) -> str:
    """``search.results.trial_kind`` in the report's words: ``feasible`` for trained,
    ``over-budget``; the other kinds (``stopped at a lower rung``, ``promoted``, ``prescreened
    out``, ``surplus``, ``duplicate``, ``failed``, ``running``, ``waiting``) by their own
    names."""
    kind = trial_kind(trial, promoted)
    return {TRAINED: "feasible", OVER_BUDGET: "over-budget"}.get(kind, kind)


# -- trials and front -------------------------------------------------------------------------


def trial_points(study: optuna.Study) -> list[TrialPoint]:
    """Every trial with its accuracy (``None`` unless trained), costs, state and front flag."""
    objectives = study_objectives(study)
    on_front = {t.number for t in study.best_trials}
    shape = study_input_shape(study)
    points = []
    trials = study.get_trials(deepcopy=False)
    promoted = promoted_numbers(trials)
    for t in trials:
        state = _state(t, promoted)
        trained = state == "feasible" and bool(t.values)
        accuracy = trial_accuracy(t, objectives) if trained else None
        val_loss = trial_val_loss(t, objectives) if trained else None
        note = t.user_attrs.get("rejected") or t.user_attrs.get("stopped_early")
        points.append(TrialPoint(
            number=t.number, state=state, accuracy=accuracy, val_loss=val_loss,
            params=_cost(t, "params", objectives), macs=_cost(t, "macs", objectives),
            on_front=t.number in on_front, reference=reference_name(t),
            design=trial_design(t, shape), note=None if note is None else str(note),
        ))
    return points


# -- hypervolume ------------------------------------------------------------------------------


def hypervolume_history(study: optuna.Study) -> HypervolumeHistory:
    """Hypervolume of the feasible front seen so far, after each finished trial (by number).

    Modelled on ``optuna.visualization.plot_hypervolume_history``, with the objectives
    normalized as :class:`HypervolumeHistory` describes, so studies of different budgets compare.
    """
    objectives = study_objectives(study)
    budget = study.user_attrs.get("budget") or {}
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    finished.sort(key=lambda t: t.number)
    good = [t for t in finished
            if t.state == TrialState.COMPLETE and within_limits(t.constraints) and t.values]
    good_numbers = {t.number for t in good}
    reference: dict[str, float] = {}
    shape = study_input_shape(study)
    for i, name in enumerate(objectives):
        if name == "accuracy":
            reference[name] = 0.0
        elif name == "val_loss":  # the loss of guessing: uniform over the classes
            reference[name] = math.log(shape.num_classes if shape else 10)
        elif budget.get(name):
            reference[name] = float(budget[name])
        else:
            worst = max((t.values[i] for t in good), default=0.0)
            reference[name] = UNBUDGETED_REFERENCE * worst if worst > 0 else 1.0

    def normalized(t: FrozenTrial) -> list[float]:
        return [1.0 - v if name == "accuracy" else v / reference[name]
                for name, v in zip(objectives, t.values, strict=True)]

    ref = np.ones(len(objectives))
    kept = np.empty((0, len(objectives)))  # the non-dominated points so far
    numbers, values = [], []
    hv = 0.0
    for t in finished:
        p = np.asarray(normalized(t)) if t.number in good_numbers else None
        if (p is not None and np.isfinite(p).all() and (p <= 1.0).all()
                and not (kept <= p).all(axis=1).any()):
            kept = np.vstack([kept[~(p <= kept).all(axis=1)], p])
            hv = float(moocore.hypervolume(kept, ref=ref))
        numbers.append(t.number)
        values.append(hv)
    return HypervolumeHistory(numbers, values, objectives, reference)


# -- knob map ---------------------------------------------------------------------------------


def _layer_knobs(arch: Architecture, shape: InputShape | None) -> dict[str, dict[str, Any]]:
    """Resolved knobs of every searched layer (as ``SSCConv2d`` has them: a depthwise layer's
    ``groups`` is its in_channels); the stored knobs when it cannot be planned."""
    if shape:
        try:
            p = plan(arch.family, arch.width, shape.in_channels, shape.num_classes,
                     shape.input_size)
            out = {}
            for slot in p.searchable:
                spec = slot_spec(slot, arch.setting(slot))
                dense = slot_spec(slot, LayerSetting()).params
                out[slot.name] = {
                    "density": spec.params / dense, "groups": spec.groups,
                    "pattern": spec.pattern, "spatial_channels": spec.spatial_channels,
                    "pointwise_channels": spec.pointwise_channels, "phases": spec.phases,
                }
            return out
        except (KeyError, TypeError, ValueError):
            pass
    # Without channel counts a depthwise layer's groups are unknown (its cell stays empty).
    return {name: {"density": None, "groups": None if s.depthwise else s.groups,
                   "pattern": s.pattern,
                   "spatial_channels": s.spatial_channels,
                   "pointwise_channels": s.pointwise_channels, "phases": s.phases}
            for name, s in arch.layers.items()}


def knob_map(study: optuna.Study) -> KnobMap:
    """Layers x front trials -> each knob's value (see :data:`KNOB_MAP_COLUMNS`)."""
    shape = study_input_shape(study)
    columns: list[dict[str, dict[str, Any]]] = []
    trials, labels = [], []
    note = None
    for trial in front(study):
        try:
            arch = Architecture.from_dict(trial.user_attrs.get("architecture") or {})
        except (ValueError, TypeError):
            note = f"trial {trial.number} has no readable architecture; left out"
            continue
        layers = _layer_knobs(arch, shape)
        if layers and next(iter(layers.values()))["density"] is None:
            note = "density needs the study's input shape (user attr 'input'); not shown"
        columns.append(layers)
        trials.append(trial.number)
        labels.append(f"#{trial.number} x{arch.width:g}")
    names: list[str] = []
    for col in columns:
        names.extend(n for n in col if n not in names)
    values = {k: [[col.get(n, {}).get(k) for col in columns] for n in names]
              for k in KNOB_MAP_COLUMNS}
    return KnobMap(names, trials, labels, values, note)


# -- importances ------------------------------------------------------------------------------


def param_importances(study: optuna.Study,
                      evaluator: optuna.importance.BaseImportanceEvaluator | None = None
                      ) -> Importances:
    """Importance of each Optuna parameter for the study's score (val loss or accuracy;
    Optuna's default evaluator), over the trained trials only: over-budget candidates are
    COMPLETE too, with a score never measured, so they are left out through an in-memory copy
    of the trained trials."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if trial_kind(t) == TRAINED]
    if len(complete) < 2:
        return Importances({}, f"needs at least 2 trained trials, but the study has "
                               f"{len(complete)}")
    seen: dict[str, set[str]] = {}
    for t in complete:
        for name, value in t.params.items():
            seen.setdefault(name, set()).add(repr(value))
    varying = [name for name, vals in seen.items() if len(vals) > 1]
    if not varying:
        return Importances({}, "no parameter varies across the complete trials")
    objectives = study_objectives(study)
    score = objectives.index(score_name(objectives))
    target: Callable[[FrozenTrial], float] = lambda t: t.values[score]  # noqa: E731
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy = optuna.create_study(directions=study.directions)
            copy.add_trials(complete)
            values = optuna.importance.get_param_importances(
                copy, evaluator=evaluator, params=varying, target=target)
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return Importances({}, f"Optuna could not compute importances: {exc}")
    if not values or not all(math.isfinite(v) for v in values.values()):
        return Importances({}, "Optuna returned no finite importances")
    return Importances(dict(sorted(values.items(), key=lambda kv: -kv[1])))


# -- baselines --------------------------------------------------------------------------------


def baseline_points(storage: str | BaseStorage, study_name: str) -> list[BaselinePoint]:
    """One point per method (and epochs, folds) of study ``<study_name>-baselines``: the mean
    and sample std of its runs' accuracies, or [] when there is no such study.

    Runs of ``ssc-nas compare``'s equal-time schedule (user attr ``equal_time``) are left out:
    the points are the common schedule, whose epochs the label names.
    """
    name = f"{study_name}-baselines"
    path = sqlite_path(storage) if isinstance(storage, str) else None
    if path is not None and not path.exists():
        return []
    try:
        if name not in optuna.get_all_study_names(storage):
            return []
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception:  # an unreadable storage has no baselines for the report
        return []
    objectives = study_objectives(study)
    groups: dict[tuple[str, Any, Any], list[tuple[float, float, float | None]]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        values = dict(zip(objectives, t.values or [], strict=False))
        attrs = t.user_attrs
        accuracy = attrs.get("accuracy", values.get("accuracy"))
        params = attrs.get("params", values.get("params"))
        if "method" not in attrs or accuracy is None or params is None or attrs.get(
                "equal_time"):
            continue
        macs = attrs.get("macs", values.get("macs"))
        key = (str(attrs["method"]), attrs.get("epochs"), attrs.get("folds"))
        groups.setdefault(key, []).append(
            (float(accuracy), float(params), None if macs is None else float(macs)))
    out = []
    for (method, epochs, folds), runs in groups.items():
        accs = [a for a, _, _ in runs]
        macs_all = [m for _, _, m in runs]
        out.append(BaselinePoint(
            method, float(np.mean([p for _, p, _ in runs])),
            None if None in macs_all else float(np.mean(macs_all)), float(np.mean(accs)),
            float(np.std(accs, ddof=1)) if len(accs) > 1 else None, len(accs),
            _baseline_label(epochs, folds, len(accs))))
    return out


def _baseline_label(epochs: Any, folds: Any, runs: int) -> str:
    label = "compare: test accuracy"
    if epochs is not None:
        label += f", {epochs} epoch{'' if epochs == 1 else 's'}"
    if runs > 1:
        label += f", mean ± std over {runs} {'folds' if folds is not None else 'seeds'}"
    else:
        label += ", 1 run"
    return label


def proxy_label(study: optuna.Study) -> str:
    """What the search's accuracy is: "search: proxy val accuracy, 2 epochs"."""
    epochs = (study.user_attrs.get("train") or {}).get("epochs")
    label = "search: proxy val accuracy"
    return label if epochs is None else f"{label}, {epochs} epoch{'' if epochs == 1 else 's'}"


def accuracy_axis(points: list[TrialPoint] | tuple[TrialPoint, ...],
                  baselines: list[BaselinePoint] | tuple[BaselinePoint, ...] = ()
                  ) -> AccuracyAxis:
    """The accuracy range around the trained trials and the baselines' mean ± std.

    A margin of 8 % of the spread (at least 0.01) on top; below, room for one more margin and
    the untrained trials' row. Without any accuracy: the whole range [0, 1].
    """
    values = [p.accuracy for p in points if p.accuracy is not None]
    for b in baselines:
        std = b.accuracy_std or 0.0
        values += [b.accuracy - std, b.accuracy + std]
    if not values:
        return AccuracyAxis(-0.06, 1.02, -0.03)
    low, high = min(values), max(values)
    pad = max(0.01, 0.08 * (high - low))
    return AccuracyAxis(max(-0.06, low - 3 * pad), min(1.02, high + pad),
                        max(-0.03, low - 2 * pad))


# -- header -----------------------------------------------------------------------------------


def study_overview(study: optuna.Study) -> StudyOverview:
    """Study name, dataset, space, budget, objectives, version and trial counts."""
    attrs = study.user_attrs
    space = attrs.get("space") or {}
    budget = attrs.get("budget") or {}
    parts = [f"{format_count(budget['params'])} params"] if budget.get("params") else []
    if budget.get("macs"):
        parts.append(f"{format_count(budget['macs'])} MACs")
    counts: dict[str, int] = {}
    for p in trial_points(study):
        counts[p.state] = counts.get(p.state, 0) + 1
    details = {}
    train = attrs.get("train") or {}
    if train:
        epochs = train.get("epochs")
        details["proxy training"] = (f"{epochs} epoch{'' if epochs == 1 else 's'}, "
                                     f"{train.get('optimizer')}, batch {train.get('batch_size')}")
    score = score_name(study_objectives(study))
    details["score"] = ("proxy validation loss (mean cross-entropy), lower is better"
                        if score == "val_loss" else "proxy validation accuracy")
    best = best_accuracy(study)
    se = accuracy_se(study, best) if best is not None else None
    loss = best_val_loss(study)
    if se is not None:
        details["validation"] = (f"{attrs['val_images']} images: the best accuracy "
                                 f"{best:.4f} ± {se:.4f} (binomial standard error)"
                                 + ("" if loss is None else f", the best val loss {loss:.4f}"))
    noise = attrs.get("seed_noise") or {}
    if noise:
        details["seed noise"] = (f"{seed_stds_text(noise)} (seed-to-seed std of this proxy; "
                                 f"{noise.get('source', 'measured')})")
    against = against_references(study)
    if against is not None:
        details["best searched design against the best reference design"] = against.describe()
    strategy = attrs.get("strategy")
    if isinstance(strategy, dict) and strategy.get("name") == "sh":
        details["strategy"] = (
            f"successive halving, eta {strategy.get('eta')}, {strategy.get('rungs')} rungs"
            + (f", {float(strategy['score_share']):g} of each rung's promotions by the score "
               "alone" if strategy.get("score_share") else "") + ": "
            "the front and its table hold top-rung trials only (the whole proxy schedule); "
            "lower rungs' results are kept on their trials (state 'promoted' where the "
            "candidate went on, else 'stopped at a lower rung')")
    for key in ("sampler", "seed", "subset"):
        if key in attrs:
            details[key] = str(attrs[key])
    return StudyOverview(
        name=study.study_name, dataset=str(attrs.get("dataset", "?")),
        space=str(space.get("name", "?")), family=str(space.get("family", "?")),
        budget=" and ".join(parts) or "no budget", objectives=study_objectives(study),
        version=str(attrs.get("ssc_nas_version", "?")), counts=counts,
        front_size=len(study.best_trials), details=details,
    )
