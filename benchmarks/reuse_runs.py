"""Reuse stored ``compare`` runs in another storage, so only a new searched design trains.

``ssc-nas compare`` keeps every trained run in the study ``<ssc study>-baselines`` and reuses
a run whose key (method, fold, code version, training settings, data, budget, device type and
design) matches. This script adds the runs of ``--methods`` (prefixes: ``reference`` takes every
``reference:<design>`` row) from one storage's baselines study to another's, skipping keys
already there; the target study is created when missing. Then ``compare`` on the target storage
retrains only what is new and pairs it by fold with the copied runs; ``--to-study`` names the
target study when it differs (the baselines of a search in another space, whose ``compare
--study`` differs, paired with the same reference runs). Uses Optuna's public API.

    python benchmarks/reuse_runs.py --from sqlite:///a.db --to sqlite:///b.db \\
        --study mnist-5k-resnet20-ssc-stage-500k-baselines --methods reference
"""

from __future__ import annotations

import argparse

import optuna
from optuna.trial import TrialState


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", required=True, help="storage URL to read")
    parser.add_argument("--to", dest="target", required=True, help="storage URL to add to")
    parser.add_argument("--study", required=True, help="the baselines study's name")
    parser.add_argument("--to-study", default=None,
                        help="the target baselines study's name (default: --study)")
    parser.add_argument("--methods", default="reference",
                        help="comma-separated method prefixes (default: reference)")
    args = parser.parse_args()
    prefixes = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    source = optuna.load_study(study_name=args.study, storage=args.source)
    runs = [t for t in source.get_trials(states=(TrialState.COMPLETE,))
            if str(t.user_attrs.get("method", "")).startswith(prefixes)]
    name = args.to_study or args.study
    target = optuna.create_study(study_name=name, storage=args.target,
                                 direction="maximize", load_if_exists=True)
    if not target.user_attrs:  # a new study: the attributes compare reads
        for key, value in source.user_attrs.items():
            target.set_user_attr(key, value)
    have = {t.user_attrs.get("run_key") for t in target.get_trials(deepcopy=False)}
    new = [t for t in runs if t.user_attrs.get("run_key") not in have]
    target.add_trials(new)
    print(f"{len(new)} of {len(runs)} runs added to {name} in {args.target}")


if __name__ == "__main__":
    main()
