"""The study report: info data on a real digits study, the HTML file, and a headless render."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import TrialState, create_trial
from plotly.offline import get_plotlyjs

from ssc_nas.budget import Budget
from ssc_nas.report import (
    BaselinePoint,
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
    write_report,
)
from ssc_nas.report.figures import front_figure
from ssc_nas.report.html import ERROR_COLLECTOR_JS, SECTIONS, _lower_rungs_note
from ssc_nas.report.info import KNOB_MAP_COLUMNS
from ssc_nas.search import SearchConfig, run_search
from ssc_nas.search.objectives import direction
from ssc_nas.train import TrainConfig

BUDGET = 80_000
DIRECTIONS = ["maximize", "minimize", "minimize"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('report') / 'x.db'}"


@pytest.fixture(scope="module")
def study(storage: str) -> optuna.Study:
    """A real 4-trial digits study, plus a ``-baselines`` study with one point beside it."""
    config = SearchConfig(budget=Budget(BUDGET), space="digits-tiny", dataset="digits", trials=4,
                          train=TrainConfig(epochs=1), sampler="random", storage=storage)
    run = run_search(config)
    baselines = optuna.create_study(storage=storage, study_name=f"{run.study_name}-baselines",
                                    directions=DIRECTIONS)
    baselines.set_user_attr("objectives", ["accuracy", "params", "macs"])
    baselines.add_trial(create_trial(values=[0.5, 30_000, 200_000],
                                     user_attrs={"method": "snip"}))
    return run.study


@pytest.fixture(scope="module")
def report(study: optuna.Study, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(study, tmp_path_factory.mktemp("html") / "report.html")


def synthetic_study() -> optuna.Study:
    """Every trial state the report distinguishes, without training anything."""
    study = optuna.create_study(directions=DIRECTIONS)
    study.set_user_attr("objectives", ["accuracy", "params", "macs"])
    study.set_user_attr("budget", {"params": BUDGET, "macs": None})
    study.add_trial(create_trial(values=[0.6, 50_000, 4e5], constraints={"params": -0.375},
                                 user_attrs={"params": 50_000, "macs": 400_000,
                                             "reference": "standard"}))
    study.add_trial(create_trial(state=TrialState.PRUNED, constraints={"params": 0.5},
                                 user_attrs={"params": 120_000, "macs": 900_000,
                                             "rejected": "over budget"}))
    study.add_trial(create_trial(state=TrialState.FAIL, constraints={"params": -0.5},
                                 user_attrs={"params": 40_000, "macs": 300_000}))
    study.add_trial(create_trial(values=[0.7, 70_000, 5e5], constraints={"params": -0.125},
                                 user_attrs={"params": 70_000, "macs": 500_000}))
    return study


# -- info -------------------------------------------------------------------------------------


def test_the_overview_says_how_the_best_searched_design_stands_against_the_references() -> None:
    details = study_overview(synthetic_study()).details
    assert details["best searched design against the best reference design"].startswith(
        "trial 3 at 0.7000, standard (trial 0) at 0.6000 (proxy acc): ahead by 0.1000 (this "
        "proxy's seed noise was never measured;")


def test_front_rows_are_best_trials(study: optuna.Study) -> None:
    rows = front_rows(study)
    best = {t.number: t for t in study.best_trials}
    assert rows and {r.number for r in rows} == set(best)
    # The default score is the val loss: lowest first; the accuracy comes from its attribute.
    assert study.user_attrs["objectives"] == ["val_loss", "params", "macs"]
    assert [r.val_loss for r in rows] == sorted(r.val_loss for r in rows)
    for r in rows:
        assert r.val_loss == best[r.number].values[0] > 0
        assert r.val_loss == pytest.approx(best[r.number].user_attrs["val_loss"], abs=1e-5)
        assert r.accuracy == best[r.number].user_attrs["val_accuracy"]
        assert 0 <= r.accuracy <= 1
        assert (r.params, r.macs) == tuple(int(v) for v in best[r.number].values[1:])
        assert r.design


def test_front_table_shows_val_loss_when_recorded(study: optuna.Study) -> None:
    from ssc_nas.report.figures import front_table_figure

    rows = front_rows(study)
    table = front_table_figure(rows).data[0]
    assert "val loss" in table.header.values
    column = table.cells.values[table.header.values.index("val loss")]
    assert list(column) == [f"{r.val_loss:.4f}" for r in rows]
    old = [replace(r, val_loss=None) for r in rows]
    assert "val loss" not in front_table_figure(old).data[0].header.values


def test_every_trial_in_scatter_data_with_its_state(study: optuna.Study) -> None:
    points = {p.number: p for p in trial_points(study)}
    trials = study.get_trials()
    assert sorted(points) == [t.number for t in trials]
    front = {t.number for t in study.best_trials}
    for t in trials:
        p = points[t.number]
        assert p.on_front == (t.number in front)
        assert p.params == t.user_attrs["params"] and p.macs == t.user_attrs["macs"]
        if t.state == TrialState.COMPLETE and "rejected" not in t.user_attrs:
            assert p.state == "feasible" and p.val_loss == t.values[0]
            assert p.accuracy == t.user_attrs["val_accuracy"]
        else:
            assert p.state == "over-budget" and p.accuracy is None and p.params > BUDGET
    assert any(p.reference == "standard" for p in points.values())


def test_states_of_a_synthetic_study() -> None:
    points = trial_points(synthetic_study())
    assert [p.state for p in points] == ["feasible", "over-budget", "failed", "feasible"]
    assert [p.on_front for p in points] == [True, False, False, True]
    assert points[1].accuracy is None and points[1].note == "over budget"
    assert points[0].reference == "standard"


def test_hypervolume_never_decreases(study: optuna.Study) -> None:
    history = hypervolume_history(study)
    finished = [t.number for t in study.get_trials() if t.state.is_finished()]
    assert history.trial_numbers == finished
    assert all(b >= a for a, b in zip(history.values, history.values[1:], strict=False))
    assert 0 < history.values[-1] <= 1
    assert history.reference["params"] == BUDGET
    assert history.reference["val_loss"] == pytest.approx(math.log(10))  # a uniform guess


def test_hypervolume_ignores_infeasible_and_failed() -> None:
    history = hypervolume_history(synthetic_study())
    assert history.trial_numbers == [0, 1, 2, 3]
    v = history.values
    assert v[0] > 0 and v[1] == v[0] == v[2] and v[3] >= v[2]


def test_knob_map_has_one_column_per_front_trial(study: optuna.Study) -> None:
    data = knob_map(study)
    assert data.trials == [r.number for r in front_rows(study)]
    assert len(data.labels) == len(data.trials) and data.layers
    for knob in KNOB_MAP_COLUMNS:
        grid = data.values[knob]
        assert len(grid) == len(data.layers)
        assert all(len(row) == len(data.trials) for row in grid)
    densities = [v for row in data.values["density"] for v in row]
    assert all(0 < v <= 1 for v in densities)
    assert {v for row in data.values["pattern"] for v in row} <= {"full", "plus", "x"}


def test_importances_of_the_real_study(study: optuna.Study) -> None:
    """The 4-trial study has complete trials whose parameters vary: importances, not a reason."""
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    names = {name for t in complete for name in t.params}
    varying = {n for n in names if len({repr(t.params.get(n)) for t in complete}) > 1}
    assert len(complete) >= 2 and varying
    imp = param_importances(study)
    assert imp.reason is None, imp.reason
    assert imp.values and set(imp.values) <= varying
    assert abs(sum(imp.values.values()) - 1) < 1e-6 and all(v >= 0 for v in imp.values.values())
    assert list(imp.values.values()) == sorted(imp.values.values(), reverse=True)


@pytest.mark.parametrize("objectives", [["accuracy", "params", "macs"],
                                        ["params", "accuracy"],
                                        ["val_loss", "params", "macs"],
                                        ["params", "val_loss"]])
def test_importances_are_those_of_the_score(objectives: list[str]) -> None:
    """The score (accuracy or val loss) depends on x only, the cost objectives on y only: x
    must come first, whichever score the study has and wherever it sits."""
    directions = [direction(o) for o in objectives]
    study = optuna.create_study(directions=directions)
    study.set_user_attr("objectives", objectives)
    dist = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    rng = random.Random(0)
    for _ in range(24):
        x, y = rng.random(), rng.random()
        by_name = {"accuracy": x, "val_loss": 2 - x, "params": 1e5 * y, "macs": 1e6 * y}
        study.add_trial(create_trial(values=[by_name[o] for o in objectives],
                                     params={"x": x, "y": y}, distributions=dist))
    imp = param_importances(study, FanovaImportanceEvaluator(seed=0))
    assert imp.reason is None and imp.values["x"] > 0.8 > imp.values["y"], imp.values


def test_importances_give_a_reason_when_there_are_none() -> None:
    few = optuna.create_study(directions=DIRECTIONS)
    few.add_trial(create_trial(values=[0.5, 1.0, 1.0], params={}, distributions={}))
    assert param_importances(few).values == {}
    assert "at least 2" in param_importances(few).reason
    same = optuna.create_study(directions=DIRECTIONS)
    same.set_user_attr("objectives", ["accuracy", "params", "macs"])
    for acc in (0.5, 0.6):
        same.add_trial(create_trial(values=[acc, 1.0, 1.0], params={"x": 0.3},
                                    distributions={"x": FloatDistribution(0, 1)}))
    imp = param_importances(same)
    assert imp.values == {} and "no parameter varies" in imp.reason


def test_baseline_points(study: optuna.Study, storage: str, tmp_path: Path) -> None:
    (point,) = baseline_points(storage, study.study_name)
    assert (point.method, point.params, point.macs, point.accuracy) == ("snip", 3e4, 2e5, 0.5)
    assert point.runs == 1 and point.accuracy_std is None
    assert point.label == "compare: test accuracy, 1 run"
    assert baseline_points(storage, "no-such-study") == []
    missing = tmp_path / "missing.db"
    assert baseline_points(f"sqlite:///{missing}", "x") == [] and not missing.exists()


def test_baseline_points_are_mean_and_std_per_method(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'b.db'}"
    baselines = optuna.create_study(storage=storage, study_name="s-baselines",
                                    direction="maximize")
    common = {"params": 20_000, "macs": 1000, "epochs": 4, "folds": 3}
    for fold, acc in enumerate((0.90, 0.92, 0.94)):
        baselines.add_trial(create_trial(value=acc, user_attrs={
            **common, "method": "snip", "seed": fold, "accuracy": acc}))
    baselines.add_trial(create_trial(value=0.99, user_attrs={  # equal-time: not a point
        **common, "method": "ssc-uniform", "seed": 0, "accuracy": 0.99, "epochs": 12,
        "equal_time": True}))
    baselines.add_trial(create_trial(value=0.8, user_attrs={
        **common, "method": "ssc-uniform", "seed": 0, "accuracy": 0.8, "folds": 3}))
    points = {p.method: p for p in baseline_points(storage, "s")}
    assert set(points) == {"snip", "ssc-uniform"}
    snip = points["snip"]
    assert snip.runs == 3 and snip.accuracy == pytest.approx(0.92)
    assert snip.accuracy_std == pytest.approx(0.02)
    assert snip.label == "compare: test accuracy, 4 epochs, mean ± std over 3 folds"
    assert points["ssc-uniform"].accuracy == 0.8 and points["ssc-uniform"].runs == 1


def test_proxy_label_names_the_search_epochs(study: optuna.Study) -> None:
    assert proxy_label(study) == "search: proxy val accuracy, 1 epoch"


def _point(number: int, acc: float | None, state: str = "feasible",
           reference: str | None = None) -> TrialPoint:
    return TrialPoint(number, state, acc, 10_000 + number, 50_000, number == 0, reference, "d")


def test_accuracy_axis_is_zoomed_to_the_points_and_error_bars() -> None:
    points = [_point(0, 0.975), _point(1, 0.83), _point(2, None, "over-budget")]
    axis = accuracy_axis(points)
    assert 0.75 < axis.low < axis.untrained_y < 0.83 and 0.975 < axis.high <= 1.02
    wide = accuracy_axis(points, [BaselinePoint("snip", 2e4, None, 0.80, 0.05, 3, "c")])
    assert wide.low < 0.75 and wide.high > axis.high - 1e-9  # the bar 0.75..0.85 fits
    assert accuracy_axis([]).low < 0 and accuracy_axis([]).high >= 1.0


def test_front_figure_labels_both_accuracies_and_draws_error_bars() -> None:
    points = [_point(0, 0.975, reference="standard"), _point(1, 0.83, reference="groupwise"),
              _point(2, None, "over-budget")]
    label = "compare: test accuracy, 4 epochs, mean ± std over 5 folds"
    baselines = [BaselinePoint("snip", 20_000, 1000, 0.9, 0.01, 5, label),
                 BaselinePoint("erk", 20_000, 1000, 0.91, 0.02, 5, label)]
    fig = front_figure(points, "params", budget=20_000, baselines=baselines,
                       proxy="search: proxy val accuracy, 2 epochs")
    axis = accuracy_axis(points, baselines)
    assert list(fig.layout.yaxis.range) == [axis.low, axis.high]
    assert axis.low > 0.7  # zoomed, not 0..1
    titles = {t.legendgrouptitle.text for t in fig.data}
    assert titles == {label, "search: proxy val accuracy, 2 epochs"}
    drawn = {t.name: t for t in fig.data}
    assert list(drawn["snip"].error_y.array) == [0.01] and drawn["snip"].error_y.visible
    assert list(drawn["erk"].y) == [0.91]
    assert all("text" not in t.mode for t in fig.data)  # no labels to overlap
    rings = drawn["reference design (name on hover)"]
    assert [row[6] for row in rings.customdata] == ["reference design standard<br>",
                                                    "reference design groupwise<br>"]
    crosses = drawn["over budget (not trained; at the bottom)"]
    assert list(crosses.y) == [axis.untrained_y]


def test_front_figure_leaves_out_lower_rungs_and_draws_failed_crosses() -> None:
    """Successive halving's lower-rung trials (scored on part of the schedule) are not drawn,
    not even as a reference design's ring; failed trials' thin crosses have a visible line."""
    points = [_point(0, 0.975, reference="standard"), _point(1, None, "failed"),
              _point(2, None, "stopped at a lower rung", reference="groupwise"),
              _point(3, None, "promoted", reference="standard"), _point(4, None, "promoted")]
    fig = front_figure(points, "params")
    numbers = {row[0] for t in fig.data for row in t.customdata}
    assert numbers == {0, 1}
    failed = {t.name: t for t in fig.data}["failed / not finished (at accuracy 0)"]
    assert failed.marker.symbol == "x-thin" and failed.marker.line.width > 0
    assert _lower_rungs_note(points) == (
        " Lower-rung trials of successive halving (1 stopped at a lower rung and 2 promoted) "
        "are not drawn: their scores come from part of the proxy schedule, so of each "
        "candidate only a top-rung trial is drawn.")
    assert _lower_rungs_note(points[:2]) == ""


# -- the HTML file ----------------------------------------------------------------------------


def test_report_is_one_offline_file(report: Path) -> None:
    text = report.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in text
    assert text.count(get_plotlyjs()[:400]) == 1
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=\"?https?:", text)
    assert '<pre id="js-errors"></pre>' in text


def test_report_of_an_empty_study(tmp_path: Path) -> None:
    empty = optuna.create_study(directions=DIRECTIONS)
    path = write_report(empty, tmp_path / "sub" / "empty.html", baselines=[])
    text = path.read_text()
    assert all(f'id="{s}"' in text for s in SECTIONS)


# -- headless Chromium ------------------------------------------------------------------------


def _chromium() -> str:
    found = next((c for c in ("/usr/bin/chromium", shutil.which("chromium"),
                              shutil.which("chromium-browser")) if c and Path(c).exists()), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is missing: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return found


def dump_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (offline, no sandbox)."""
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def js_errors(dom: str) -> str:
    match = re.search(r'<pre id="js-errors">(.*?)</pre>', dom, re.DOTALL)
    assert match, "the error collector's <pre> is missing from the DOM"
    return match.group(1)


def test_error_collector_sees_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(f'<html><head><script>{ERROR_COLLECTOR_JS}</script></head><body>'
                    '<pre id="js-errors"></pre><script>notDefinedAnywhere();</script>'
                    '<script>console.error("boom")</script></body></html>')
    errors = js_errors(dump_dom(page, tmp_path))
    assert "notDefinedAnywhere" in errors and "boom" in errors


def test_report_renders_in_chromium_without_errors(report: Path, tmp_path: Path) -> None:
    dom = dump_dom(report, tmp_path)
    assert js_errors(dom) == ""
    for section in SECTIONS:
        start = dom.index(f'<section id="{section}">')
        body = dom[start:dom.index("</section>", start)]
        assert 'class="main-svg"' in body, f"{section} did not render"
    assert dom.count('class="main-svg"') >= len(SECTIONS)
    assert "snip" in dom  # the baseline point is drawn on the front plots
