"""The study report: pure info functions -> plotly figures -> one offline HTML file."""

from __future__ import annotations

from .html import write_report
from .info import (
    AccuracyAxis,
    BaselinePoint,
    FrontRow,
    HypervolumeHistory,
    Importances,
    KnobMap,
    StudyOverview,
    TrialPoint,
    accuracy_axis,
    baseline_points,
    front_rows,
    hypervolume_history,
    knob_map,
    param_importances,
    proxy_label,
    study_overview,
    trial_points,
)

__all__ = [
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
    "write_report",
]
