"""Thin plotly renderers: one function per report figure, drawing data from :mod:`.info`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..budget import format_count
from .info import (
    KNOB_MAP_COLUMNS,
    LOWER_RUNG_STATES,
    BaselinePoint,
    FrontRow,
    HypervolumeHistory,
    Importances,
    KnobMap,
    TrialPoint,
    accuracy_axis,
)

__all__ = [
    "COLORS",
    "front_figure",
    "front_table_figure",
    "hypervolume_figure",
    "importances_figure",
    "knob_map_figure",
]

COLORS = {
    "front": "#1f5fbf",
    "feasible": "#9db4d6",
    "over-budget": "#e8731c",
    "prescreened out": "#b59ad6",
    "failed": "#8c8c8c",
    "baseline": "#2ca02c",
    "reference": "#6a3d9a",
    "budget": "#c0392b",
}
_FONT = {"family": "Helvetica, Arial, sans-serif", "size": 13}
_AXIS_LABEL = {"params": "parameters", "macs": "MACs per image"}
_BASELINE_SYMBOLS = ("diamond", "square", "triangle-up", "triangle-down", "pentagon", "hexagon",
                     "star", "cross")


def _layout(fig: go.Figure, height: int, margin: dict[str, int] | None = None,
            **kwargs: object) -> go.Figure:
    fig.update_layout(template="plotly_white", font=_FONT, height=height,
                      margin=margin or {"l": 70, "r": 30, "t": 40, "b": 60}, **kwargs)
    return fig


def front_figure(points: Sequence[TrialPoint], x: str = "params", *,
                 budget: float | None = None,
                 baselines: Sequence[BaselinePoint] = (),
                 proxy: str = "search: proxy val accuracy") -> go.Figure:
    """Accuracy vs ``x`` (``params`` or ``macs``) for every trial, and the compare baselines.

    Two kinds of accuracy share the y axis, so the legend groups say which is which: the
    search's trials (``proxy``, e.g. "search: proxy val accuracy, 2 epochs") and the baselines
    (each point's ``label``, e.g. "compare: test accuracy, 4 epochs, mean ± std over 5 folds",
    drawn as the mean with ± std error bars, one point per method). The accuracy axis is zoomed
    to the points (:func:`~ssc_nas.report.info.accuracy_axis`); over-budget candidates (costed,
    never trained) and failed ones have no accuracy and are drawn as crosses at its bottom.
    Reference designs are ringed, their names on hover (labels would overlap). ``budget``
    draws a dashed line. Lower-rung trials of successive halving (``LOWER_RUNG_STATES``) are
    left out: their scores come from part of the proxy schedule.
    """
    fig = go.Figure()
    points = [p for p in points if p.state not in LOWER_RUNG_STATES]  # partial-schedule scores
    axis = accuracy_axis(points, list(baselines))
    groups = [
        ("feasible", "trained, within budget",
         lambda p: p.state == "feasible" and not p.on_front, "circle", 9),
        ("front", "Pareto front (all objectives)", lambda p: p.on_front, "circle", 13),
        ("over-budget", "over budget (not trained; at the bottom)",
         lambda p: p.state == "over-budget", "x", 12),
        ("prescreened out", "prescreened out (not trained; at accuracy 0)",
         lambda p: p.state == "prescreened out", "x", 10),
        ("failed", "failed / not finished (at accuracy 0)",
         lambda p: p.state not in ("feasible", "over-budget", "prescreened out"), "x-thin", 10),
    ]

    def hover(chosen: list[TrialPoint]) -> dict:
        return {
            "customdata": [[p.number, p.design, p.state, format_count(p.params or 0),
                            format_count(p.macs or 0),
                            "-" if p.accuracy is None else f"{p.accuracy:.4f}",
                            f"reference design {p.reference}<br>" if p.reference else "",
                            "" if p.val_loss is None else f", val loss {p.val_loss:.4f}"]
                           for p in chosen],
            "hovertemplate": ("%{customdata[6]}trial %{customdata[0]} (%{customdata[2]})<br>"
                              "%{customdata[1]}<br>" + proxy + " %{customdata[5]}"
                              "%{customdata[7]}<br>"
                              "params %{customdata[3]}, MACs %{customdata[4]}<extra></extra>"),
        }

    for key, name, keep, symbol, size in groups:
        chosen = [p for p in points if keep(p) and getattr(p, x) is not None]
        if not chosen:
            continue
        fig.add_trace(go.Scatter(
            x=[getattr(p, x) for p in chosen],
            y=[p.accuracy if p.accuracy is not None else axis.untrained_y for p in chosen],
            mode="markers", name=name, legendgroup="search", legendgrouptitle_text=proxy,
            marker={"color": COLORS[key], "symbol": symbol, "size": size,
                    # a "-thin" symbol is drawn by its line alone
                    "line": {"width": 1.5, "color": COLORS[key]} if symbol.endswith("-thin")
                    else {"width": 1.5 if key == "front" else 0, "color": "#0b2f66"}},
            **hover(chosen),
        ))
    refs = [p for p in points if p.reference and getattr(p, x) is not None]
    if refs:
        fig.add_trace(go.Scatter(
            x=[getattr(p, x) for p in refs],
            y=[p.accuracy if p.accuracy is not None else axis.untrained_y for p in refs],
            mode="markers", name="reference design (name on hover)", legendgroup="search",
            legendgrouptitle_text=proxy,
            marker={"color": COLORS["reference"], "symbol": "circle-open", "size": 20,
                    "line": {"width": 2}},
            **hover(refs),
        ))
    shown = [b for b in baselines if getattr(b, x) is not None]
    for i, b in enumerate(shown):
        fig.add_trace(go.Scatter(
            x=[getattr(b, x)], y=[b.accuracy], mode="markers", name=b.method,
            legendgroup=b.label, legendgrouptitle_text=b.label,
            error_y={"type": "data", "array": [b.accuracy_std or 0.0],
                     "visible": b.accuracy_std is not None, "color": COLORS["baseline"]},
            marker={"color": COLORS["baseline"], "size": 11,
                    "symbol": _BASELINE_SYMBOLS[i % len(_BASELINE_SYMBOLS)]},
            customdata=[[b.method, b.label, format_count(getattr(b, x)),
                         "" if b.accuracy_std is None else f" ± {b.accuracy_std:.4f}"]],
            hovertemplate=("%{customdata[0]}<br>%{customdata[1]}<br>accuracy %{y:.4f}"
                           "%{customdata[3]}<br>" + _AXIS_LABEL.get(x, x)
                           + " %{customdata[2]}<extra></extra>"),
        ))
    xs = [getattr(p, x) for p in points if getattr(p, x)] + [getattr(b, x) for b in shown]
    xs += [budget] if budget else []
    log = bool(xs) and max(xs) / max(min(xs), 1) > 10
    if budget:
        fig.add_vline(x=budget, line={"color": COLORS["budget"], "dash": "dash", "width": 1.5})
        # Annotations on a log axis take log10 coordinates (shapes take data values).
        fig.add_annotation(x=math.log10(budget) if log else budget, y=1.0, xref="x",
                           yref="paper", text=f"budget {format_count(budget)}", showarrow=False,
                           xanchor="left", yanchor="bottom", font={"color": COLORS["budget"]})
    _layout(fig, 520, legend={"orientation": "h", "y": -0.2, "groupclick": "toggleitem"})
    fig.update_xaxes(title=_AXIS_LABEL.get(x, x), type="log" if log else "linear",
                     tickformat="~s", **(_log_ticks(min(xs), max(xs)) if log else {}))
    fig.update_yaxes(title="accuracy (split: see legend)",
                     range=[axis.low, axis.high], zeroline=False)
    return fig


def _log_ticks(low: float, high: float) -> dict[str, list]:
    """1-2-5 ticks labelled like ``format_count`` (plotly's own log ticks mix styles)."""
    vals = [m * 10.0**e for e in range(int(math.log10(low)) - 1, int(math.log10(high)) + 2)
            for m in (1, 2, 5) if low / 1.5 <= m * 10.0**e <= high * 1.5]
    return {"tickvals": vals, "ticktext": [format_count(v) for v in vals]}


def hypervolume_figure(history: HypervolumeHistory) -> go.Figure:
    """Hypervolume of the feasible front after each trial (normalized; see the info docstring)."""
    fig = go.Figure(go.Scatter(
        x=history.trial_numbers, y=history.values, mode="lines+markers",
        line={"shape": "hv", "color": COLORS["front"]}, marker={"size": 6},
        hovertemplate="after trial %{x}: %{y:.4f}<extra></extra>", name="hypervolume",
    ))
    _layout(fig, 380)
    fig.update_xaxes(title="trial number")
    fig.update_yaxes(title="hypervolume (fraction of box)", rangemode="tozero")
    return fig


def _cell(knob: str, value: object) -> str:
    if value is None:
        return ""
    if knob == "density":
        return f"{value:.2f}"
    return str(value)


def knob_map_figure(data: KnobMap) -> go.Figure:
    """One heatmap per knob: rows are layers, columns the front's trials (best score left)."""
    knobs = [k for k in KNOB_MAP_COLUMNS
             if any(v is not None for row in data.values[k] for v in row)]
    if not data.layers or not knobs:
        return _empty("no front architectures to show", 200)
    fig = make_subplots(rows=1, cols=len(knobs), shared_yaxes=True, subplot_titles=knobs,
                        horizontal_spacing=0.012)
    for i, knob in enumerate(knobs, start=1):
        rows = data.values[knob]
        if knob == "pattern":
            names = sorted({v for row in rows for v in row if v is not None})
            z = [[None if v is None else names.index(v) for v in row] for row in rows]
        else:
            z = [[None if v is None else float(v) for v in row] for row in rows]
        fig.add_trace(go.Heatmap(
            z=z, x=data.labels, y=data.layers, text=[[_cell(knob, v) for v in row] for row in rows],
            texttemplate="%{text}", textfont={"size": 10}, showscale=False, xgap=1, ygap=1,
            colorscale="Blues" if knob != "pattern" else "Viridis",
            zmin=0 if knob == "density" else None, zmax=1 if knob == "density" else None,
            hovertemplate=f"%{{y}}<br>trial %{{x}}<br>{knob} = %{{text}}<extra></extra>",
        ), row=1, col=i)
    _layout(fig, 140 + 24 * len(data.layers), margin={"l": 150, "r": 20, "t": 50, "b": 50})
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    fig.update_xaxes(tickangle=-45, tickfont={"size": 10})
    return fig


def importances_figure(data: Importances) -> go.Figure:
    """Horizontal bars, most important parameter on top."""
    if not data.values:
        return _empty(f"importances not available: {data.reason}", 200)
    names = list(data.values)[::-1]
    fig = go.Figure(go.Bar(
        x=[data.values[n] for n in names], y=names, orientation="h",
        marker={"color": COLORS["front"]}, hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    _layout(fig, 120 + 24 * len(names), margin={"l": 190, "r": 30, "t": 30, "b": 50})
    fig.update_xaxes(title="importance for the score (normalized)", rangemode="tozero")
    return fig


def front_table_figure(rows: Sequence[FrontRow]) -> go.Figure:
    """The Pareto front as a table, best score first (as :func:`~ssc_nas.search.front`)."""
    latency = any(r.latency_s is not None for r in rows)
    loss = any(r.val_loss is not None for r in rows)
    header = ["trial", "accuracy", *(["val loss"] if loss else []), "params", "MACs",
              *(["latency (ms)"] if latency else []), "width", "design"]
    columns = [
        [r.number for r in rows],
        ["-" if r.accuracy is None else f"{r.accuracy:.4f}" for r in rows],
        *([["" if r.val_loss is None else f"{r.val_loss:.4f}" for r in rows]] if loss else []),
        [format_count(r.params) for r in rows], [format_count(r.macs) for r in rows],
        *([[f"{1e3 * (r.latency_s or 0):.2f}" for r in rows]] if latency else []),
        ["" if r.width is None else f"{r.width:g}" for r in rows], [r.design for r in rows],
    ]
    widths = [40, 60, *([60] if loss else []), 60, 60, *([70] if latency else []), 45, 300]
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header={"values": header, "fill_color": COLORS["front"], "font": {"color": "white"},
                "align": "left"},
        cells={"values": columns, "align": "left", "height": 26,
               "fill_color": [["#f4f7fb" if i % 2 else "white" for i in range(len(rows))]]},
    ))
    return _layout(fig, 70 + 27 * max(len(rows), 1), margin={"l": 10, "r": 10, "t": 10, "b": 10})


def _empty(message: str, height: int) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "#555"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height)
