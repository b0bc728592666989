"""One self-contained HTML report per study: plotly.js inlined once, no network needed to open it.

A tiny script at the top of the page collects JavaScript errors (uncaught errors, failed
resource loads, unhandled promise rejections, ``console.error``) into ``<pre id="js-errors">``,
so a headless browser's DOM dump tells whether the page rendered cleanly.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import optuna
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from .. import __version__
from ..budget import format_count
from ..search.objectives import SCORES, score_name
from . import figures
from .info import (
    LOWER_RUNG_STATES,
    BaselinePoint,
    TrialPoint,
    baseline_points,
    front_rows,
    hypervolume_history,
    knob_map,
    param_importances,
    proxy_label,
    study_overview,
    trial_points,
)

__all__ = ["ERROR_COLLECTOR_JS", "SECTIONS", "write_report"]

SECTIONS = ("front-params", "front-macs", "hypervolume", "knob-map", "importances", "front-table")

ERROR_COLLECTOR_JS = """
(function () {
  var errors = [];
  function show() {
    var el = document.getElementById("js-errors");
    if (el) { el.textContent = errors.join("\\n"); }
  }
  function add(text) { errors.push(String(text)); show(); }
  window.addEventListener("error", function (e) {
    var where = e.filename ? " (" + e.filename + ":" + e.lineno + ")" : "";
    var what = e.message || (e.target && (e.target.src || e.target.href)) || "unknown";
    add("error: " + what + where);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    add("unhandled rejection: " + ((e.reason && e.reason.stack) || e.reason));
  });
  var original = console.error;
  console.error = function () {
    add("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", show);
})();
"""

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0 auto; padding: 16px 28px;
       max-width: 1400px; }
h1 { font-size: 24px; margin: 8px 0 12px; }
h2 { font-size: 19px; margin: 28px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.caption { color: #555; font-size: 13px; margin: 4px 0 8px; max-width: 1100px; }
table.overview { border-collapse: collapse; font-size: 14px; }
table.overview th { text-align: left; padding: 2px 18px 2px 0; color: #555; font-weight: normal; }
table.overview td { padding: 2px 0; }
pre#js-errors { color: #b00020; white-space: pre-wrap; }
pre#js-errors:empty { display: none; }
"""

_CONFIG = {"displaylogo": False, "responsive": True}


def _overview_html(study: optuna.Study, baselines: int) -> str:
    o = study_overview(study)
    counts = o.counts
    trained = counts.get("feasible", 0)
    others = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())
                       if state != "feasible")
    rows = {
        "dataset": o.dataset,
        "search space": f"{o.space} ({o.family})",
        "budget": o.budget,
        "objectives": ", ".join(o.objectives),
        "trials": f"{sum(counts.values())} in all: {trained} trained within budget"
                  + (f", {others}" if others else "") + f"; {o.front_size} on the Pareto front",
        **o.details,
        **({"baselines": f"{baselines} points from study {o.name}-baselines"} if baselines else {}),
        "ssc-nas version": f"{o.version} (study), {__version__} (report)",
    }
    body = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                     for k, v in rows.items())
    return (f"<h1>ssc-nas report: {html.escape(o.name)}</h1>\n"
            f'<table class="overview">\n{body}\n</table>')


def _section(section_id: str, title: str, caption: str, fig: go.Figure,
             modebar: bool = True) -> str:
    config = {**_CONFIG, **({} if modebar else {"displayModeBar": False})}
    div = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=config,
                      div_id=f"{section_id}-plot", default_height=f"{fig.layout.height}px")
    return (f'<section id="{section_id}">\n<h2>{html.escape(title)}</h2>\n'
            f'<p class="caption">{html.escape(caption)}</p>\n{div}\n</section>')


def _lower_rungs_note(points: Sequence[TrialPoint]) -> str:
    """What the front plots leave out of a successive-halving study, or ""."""
    counts = [sum(p.state == state for p in points) for state in LOWER_RUNG_STATES]
    if not any(counts):
        return ""
    said = " and ".join(f"{n} {state}" for n, state in zip(counts, LOWER_RUNG_STATES,
                                                              strict=True) if n)
    return (f" Lower-rung trials of successive halving ({said}) are not drawn: their scores "
            "come from part of the proxy schedule, so of each candidate only a top-rung trial "
            "is drawn.")


def write_report(study: optuna.Study, path: str | Path, *,
                 baselines: Sequence[BaselinePoint] | None = None) -> Path:
    """Write the study's report to ``path`` (one offline HTML file) and return the path.

    ``baselines`` are extra points for the front plots; ``None`` reads them from the study
    ``<study>-baselines`` in the same storage, when it exists.
    """
    path = Path(path)
    if baselines is None:
        storage = getattr(study, "_storage", None)
        baselines = [] if storage is None else baseline_points(storage, study.study_name)
    points = trial_points(study)
    budget = study.user_attrs.get("budget") or {}
    history = hypervolume_history(study)
    ref = ", ".join(f"{k} {v:.4g}" if k in SCORES else f"{k} {format_count(v)}"
                    for k, v in history.reference.items())
    score = "val loss" if score_name(history.objectives) == "val_loss" else "accuracy"
    knobs = knob_map(study)
    importances = param_importances(study)
    proxy = proxy_label(study)
    cross = (f"Two kinds of accuracy share the axis: the search's trials ({proxy}) and, when "
             "ssc-nas compare has run, its baselines (retrained, scored on held-out test folds; "
             "mean ± std per method, see their legend group). The axis is zoomed to the points. "
             "Over-budget candidates are costed but never trained and failed ones have no "
             "accuracy: both are crosses at the bottom of the axis. Front trials are "
             f"non-dominated in all objectives ({', '.join(history.objectives)}), so in this "
             "2-D view of accuracy some may look dominated; hover for each trial's val loss. "
             "Reference designs are ringed; hover for their names."
             + _lower_rungs_note(points))
    sections = [
        _section("front-params", "Accuracy vs parameters", cross,
                 figures.front_figure(points, "params", budget=budget.get("params"),
                                      baselines=baselines, proxy=proxy)),
        _section("front-macs", "Accuracy vs MACs", cross,
                 figures.front_figure(points, "macs", budget=budget.get("macs"),
                                      baselines=baselines, proxy=proxy)),
        _section("hypervolume", "Hypervolume over trials",
                 "Hypervolume of the feasible front after each finished trial, with 1 - accuracy "
                 "or val loss / ln(classes) and each cost divided by its reference point ("
                 + ref + "): the fraction of that box the front dominates.",
                 figures.hypervolume_figure(history)),
        _section("knob-map", "Per-layer knobs of the front",
                 f"Columns are the front's trials (best {score} first, with width); density is the "
                 "layer's weights relative to a standard dense convolution of the same shape."
                 + (f" Note: {knobs.note}." if knobs.note else ""),
                 figures.knob_map_figure(knobs)),
        _section("importances", f"Parameter importances for {score}",
                 f"Optuna's get_param_importances with the {score} as the target, over trained "
                 "trials.", figures.importances_figure(importances)),
        _section("front-table", "Pareto front", f"Feasible, non-dominated trials, best {score} "
                 "first.", figures.front_table_figure(front_rows(study)), modebar=False),
    ]
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>ssc-nas report: {html.escape(study.study_name)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{ERROR_COLLECTOR_JS}</script>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head>",
        "<body>",
        '<pre id="js-errors"></pre>',
        _overview_html(study, len(baselines)),
        *sections,
        "</body>",
        "</html>",
        "",
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
