"""Rung ranks of a successive-halving study: does the first rung stop the designs that end best?

Reads a finished ``--strategy sh`` study and prints every candidate's rank by val loss at rung 0
for the wide ones (``--width-from``) and the reference designs (the first candidates), whether
it reached the top rung and its loss there, and the Spearman correlation of each lower rung's
loss with the top rung's over the candidates that reached it. Reads only; trains nothing.

    python benchmarks/rung_ranks.py --storage sqlite:///ssc-nas.db --study NAME
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
from scipy.stats import spearmanr


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
    first = sorted((c for c in by if 0 in by[c]), key=lambda c: by[c][0][0])
    print(f"{len(first)} candidates at rung 0; by rung-0 val loss, the wide ones (x >= "
          f"{args.width_from:g}) and the reference designs (candidates 0-{args.references - 1}):")
    for rank, c in enumerate(first, 1):
        loss, width = by[c][0]
        if c < args.references or width >= args.width_from:
            end = f"top rung {by[c][top][0]:.4f}" if top in by[c] else "stopped"
            print(f"  rank {rank:3d}  candidate {c:3d}  x{width:g}  rung 0 {loss:.4f}  {end}")
    done = [c for c in by if all(r in by[c] for r in range(top + 1))]
    losses = np.array([[by[c][r][0] for r in range(top + 1)] for c in done])
    if len(done) >= 3:
        rho = ", ".join(f"rung {r} {spearmanr(losses[:, r], losses[:, top])[0]:.2f}"
                        for r in range(top))
        print(f"{len(done)} reached the top rung; Spearman with its val loss: {rho}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
