"""Rung ranks of a successive-halving study: does the first rung stop the designs that end best?

Reads a finished ``--strategy sh`` study and prints every candidate's rank by val loss at rung 0
for the five best there, the wide ones (``--width-from``) and the reference designs (the first
candidates): its place in rung 0's promotion order (the search's own rule, ``promotion_order``:
the study's ``--score-share`` by the score alone, then Pareto rank of the score and the study's
cost objectives; the top ``1 / eta`` go on, reference designs always), the furthest rung it
reached and its loss at the top rung; then the size of rung 0's first Pareto front and the
Spearman correlation of each lower rung's loss with the top rung's over the candidates that
reached it. Reads only; trains nothing.

    python benchmarks/rung_ranks.py --storage sqlite:///ssc-nas.db --study NAME
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import moocore  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from ssc_nas.search.halving import promotion_ranking  # noqa: E402
from ssc_nas.search.rungs import (  # noqa: E402
    _points,  # the promotion rule's own (score, *costs) rows
    cost_objectives,
    is_rung_result,
    rungs_from_attr,
    score_objective,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="Optuna storage URL")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--width-from", type=float, default=2.0,
                        help="list candidates at least this wide (default 2)")
    parser.add_argument("--references", type=int, default=5,
                        help="the first N candidates are the reference designs (default 5)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.study, storage=args.storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(args.storage))
        raise SystemExit(f"no study {args.study!r} in {args.storage} (it has: {names})") from None
    by: dict[int, dict[int, tuple[float, float]]] = {}
    for t in study.trials:
        if t.user_attrs.get("rung") is not None and t.user_attrs.get("val_loss") is not None:
            by.setdefault(t.user_attrs["candidate"], {})[int(t.user_attrs["rung"])] = (
                t.user_attrs["val_loss"], float(t.params.get("width", 1.0)))
    if not by:
        raise SystemExit(f"study {args.study} has no successive-halving rung results")
    top = max(r for rungs in by.values() for r in rungs)
    objectives = study.user_attrs.get("objectives") or ["val_loss", "params", "macs"]
    score, costs = score_objective(objectives), cost_objectives(objectives)
    rungs = rungs_from_attr(study.user_attrs.get("strategy"))
    eta = rungs.eta if rungs else 3
    results = [t for t in study.trials if is_rung_result(t, 0, top)]
    share = rungs.score_share if rungs else 0.0
    k = len(results) // eta
    order = promotion_ranking(results, score, k, costs, share)
    place = {t.user_attrs["candidate"]: i for i, t in enumerate(order, 1)}
    rule = f"Pareto rank of ({', '.join([score, *costs])})"
    if share and costs:
        rule = f"{score} alone for the first {share:g} of the top {k}, then {rule}"
    first = sorted((c for c in by if 0 in by[c]), key=lambda c: by[c][0][0])
    print(f"{len(first)} candidates at rung 0; by rung-0 val loss, the 5 best, the wide ones "
          f"(x >= {args.width_from:g}) and the reference designs (candidates "
          f"0-{args.references - 1}); 'place': in rung 0's final promotion order by {rule}, "
          f"the top {k} go on (asynchronous: a result is "
          f"promoted when it is in the top 1/{eta} of the results there at the time):")
    for rank, c in enumerate(first, 1):
        loss, width = by[c][0]
        if rank <= 5 or c < args.references or width >= args.width_from:
            reached = max(by[c])
            end = (f"top rung {by[c][top][0]:.4f}" if reached == top
                   else f"stopped at rung {reached}")
            print(f"  rank {rank:3d}  candidate {c:3d}  x{width:g}  rung 0 {loss:.4f}  "
                  f"place {place.get(c, 0):3d}  {end}")
    if costs:
        fronts = np.bincount(moocore.pareto_rank(_points(results, score, costs)))
        print(f"rung 0's first Pareto front holds {fronts[0]} of {len(results)} results "
              f"(the next: {', '.join(map(str, fronts[1:4]))})")
    done = [c for c in by if all(r in by[c] for r in range(top + 1))]
    losses = np.array([[by[c][r][0] for r in range(top + 1)] for c in done])
    if len(done) >= 3:
        rho = ", ".join(f"rung {r} {spearmanr(losses[:, r], losses[:, top])[0]:.2f}"
                        for r in range(top))
        print(f"{len(done)} reached the top rung; Spearman with its val loss: {rho}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
