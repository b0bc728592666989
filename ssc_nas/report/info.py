"""Pure report data: an Optuna study in, plain dataclasses out (no plotly).

Like Optuna's ``visualization`` modules, every figure of the report is computed here first, so
tests check the data without a browser and :mod:`ssc_nas.report.figures` only draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import moocore
import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ..budget import format_count
from ..models import Architecture, LayerSetting, plan, slot_spec
from ..search.results import OVER_BUDGET, TRAINED, front, trial_kind
from ..search.storage import sqlite_path

__all__ = [
    "KNOBS",
    "BaselinePoint",
    "FrontRow",
    "HypervolumeHistory",
    "Importances",
    "KnobMap",
    "StudyOverview",
    "TrialPoint",
    "baseline_points",
    "front_rows",
    "hypervolume_history",
    "knob_map",
    "param_importances",
    "study_overview",
    "trial_points",
]

# Per-layer values shown in the knob map; ``density`` is the layer's stored weights relative to
# a standard (dense, groups=1, full K x K) convolution of the same shape.
KNOBS = ("density", "groups", "pattern", "spatial_channels", "pointwise_channels", "phases")
# How many times the costliest feasible trial a cost objective's reference point sits at, when
# the study has no budget on that objective (so the costliest trial still adds volume).
UNBUDGETED_REFERENCE = 1.1


@dataclass(frozen=True)
class TrialPoint:
    """One trial as the front plots see it.

    ``state`` is ``feasible`` (trained, within budget), ``over-budget`` (costed, never trained),
    ``failed``, or Optuna's state name for anything else (``running``, ``waiting``, ``pruned``).
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


@dataclass(frozen=True)
class FrontRow:
    """One Pareto-front trial, best accuracy first (the order of :func:`ssc_nas.search.front`)."""

    number: int
    accuracy: float
    params: int
    macs: int
    design: str
    width: float | None
    reference: str | None
    latency_s: float | None = None


@dataclass(frozen=True)
class HypervolumeHistory:
    """Hypervolume of the feasible front after each finished trial, in normalized units.

    Every objective is mapped to [0, 1] to be minimized: ``1 - accuracy`` (reference: accuracy 0),
    and each cost divided by its reference (the budget when there is one, else
    ``UNBUDGETED_REFERENCE`` x the costliest feasible trial). The value is thus the fraction of the
    box "accuracy 0..1 x cost 0..reference" that the front dominates (1.0 = perfect accuracy at
    zero cost).
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
    """Parameter importances for accuracy, largest first; empty with a ``reason`` when unknown."""

    values: dict[str, float]
    reason: str | None = None


@dataclass(frozen=True)
class BaselinePoint:
    """A result of another method (pruning at init, a paper's number) to overlay on the front."""

    method: str
    params: float
    macs: float | None
    accuracy: float


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


def _objectives(study: optuna.Study) -> list[str]:
    stored = study.user_attrs.get("objectives")
    if stored:
        return list(stored)
    return ["accuracy", "params", "macs", "latency"][: len(study.directions)]


def _acc_index(study: optuna.Study) -> int:
    return _objectives(study).index("accuracy")


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0.0 for v in trial.constraints.values())


def _cost(trial: FrozenTrial, key: str, objectives: list[str]) -> int | None:
    value = trial.user_attrs.get(key)
    if value is None and trial.values is not None and key in objectives:
        value = trial.values[objectives.index(key)]
    return None if value is None else int(value)


def _design(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get("reference") or trial.user_attrs.get("summary") or "")


def _state(trial: FrozenTrial) -> str:
    """``search.results.trial_kind`` in the report's words: ``feasible`` for trained,
    ``over-budget``; the other kinds (``prescreened out``, ``surplus``, ``duplicate``,
    ``failed``, ``running``, ``waiting``) by their own names."""
    kind = trial_kind(trial)
    return {TRAINED: "feasible", OVER_BUDGET: "over-budget"}.get(kind, kind)


# -- trials and front -------------------------------------------------------------------------


def trial_points(study: optuna.Study) -> list[TrialPoint]:
    """Every trial with its accuracy (``None`` unless trained), costs, state and front flag."""
    objectives = _objectives(study)
    acc = objectives.index("accuracy")
    on_front = {t.number for t in study.best_trials}
    points = []
    for t in study.get_trials(deepcopy=False):
        state = _state(t)
        accuracy = t.values[acc] if state == "feasible" and t.values else None
        note = t.user_attrs.get("rejected") or t.user_attrs.get("stopped_early")
        points.append(TrialPoint(
            number=t.number, state=state, accuracy=accuracy,
            params=_cost(t, "params", objectives), macs=_cost(t, "macs", objectives),
            on_front=t.number in on_front, reference=t.user_attrs.get("reference"),
            design=_design(t), note=None if note is None else str(note),
        ))
    return points


def front_rows(study: optuna.Study) -> list[FrontRow]:
    """The Pareto front (``study.best_trials``), best accuracy first."""
    objectives = _objectives(study)
    acc = objectives.index("accuracy")
    rows = []
    for t in front(study):
        arch = t.user_attrs.get("architecture") or {}
        latency = t.values[objectives.index("latency")] if "latency" in objectives else None
        rows.append(FrontRow(
            number=t.number, accuracy=float(t.values[acc]),
            params=_cost(t, "params", objectives) or 0, macs=_cost(t, "macs", objectives) or 0,
            design=_design(t), width=arch.get("width"), reference=t.user_attrs.get("reference"),
            latency_s=latency,
        ))
    return rows


# -- hypervolume ------------------------------------------------------------------------------


def hypervolume_history(study: optuna.Study) -> HypervolumeHistory:
    """Hypervolume of the feasible front seen so far, after each finished trial (by number).

    Modelled on ``optuna.visualization.plot_hypervolume_history``, with the objectives
    normalized as :class:`HypervolumeHistory` describes, so studies of different budgets compare.
    """
    objectives = _objectives(study)
    budget = study.user_attrs.get("budget") or {}
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    finished.sort(key=lambda t: t.number)
    good = [t for t in finished if t.state == TrialState.COMPLETE and _feasible(t) and t.values]
    good_numbers = {t.number for t in good}
    reference: dict[str, float] = {}
    for i, name in enumerate(objectives):
        if name == "accuracy":
            reference[name] = 0.0
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


def _layer_knobs(arch: Architecture, shape: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Resolved knobs of every searched layer; the stored knobs when it cannot be planned."""
    if shape:
        try:
            p = plan(arch.family, arch.width, int(shape["channels"]), int(shape["classes"]),
                     tuple(shape["size"]))
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
    return {name: {"density": None, "groups": s.groups, "pattern": s.pattern,
                   "spatial_channels": s.spatial_channels,
                   "pointwise_channels": s.pointwise_channels, "phases": s.phases}
            for name, s in arch.layers.items()}


def knob_map(study: optuna.Study) -> KnobMap:
    """Layers x front trials -> each knob's value (see :data:`KNOBS`)."""
    shape = study.user_attrs.get("input")
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
    values = {k: [[col.get(n, {}).get(k) for col in columns] for n in names] for k in KNOBS}
    return KnobMap(names, trials, labels, values, note)


# -- importances ------------------------------------------------------------------------------


def param_importances(study: optuna.Study,
                      evaluator: optuna.importance.BaseImportanceEvaluator | None = None
                      ) -> Importances:
    """Importance of each Optuna parameter for accuracy (Optuna's default evaluator), over the
    trained trials only: over-budget candidates are COMPLETE too, with an accuracy never
    measured, so they are left out through an in-memory copy of the trained trials."""
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
    acc = _acc_index(study)
    target: Callable[[FrozenTrial], float] = lambda t: t.values[acc]  # noqa: E731
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
    """Points of study ``<study_name>-baselines`` (trials with user attr ``method``), or []."""
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
    objectives = _objectives(study)
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        values = dict(zip(objectives, t.values or [], strict=False))
        attrs = t.user_attrs
        accuracy = attrs.get("accuracy", values.get("accuracy"))
        params = attrs.get("params", values.get("params"))
        if "method" not in attrs or accuracy is None or params is None:
            continue
        macs = attrs.get("macs", values.get("macs"))
        out.append(BaselinePoint(str(attrs["method"]), float(params),
                                 None if macs is None else float(macs), float(accuracy)))
    return out


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
    for key in ("sampler", "seed", "subset"):
        if key in attrs:
            details[key] = str(attrs[key])
    return StudyOverview(
        name=study.study_name, dataset=str(attrs.get("dataset", "?")),
        space=str(space.get("name", "?")), family=str(space.get("family", "?")),
        budget=" and ".join(parts) or "no budget", objectives=_objectives(study),
        version=str(attrs.get("ssc_nas_version", "?")), counts=counts,
        front_size=len(study.best_trials), details=details,
    )
