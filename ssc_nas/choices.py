"""The names a user chooses among: datasets, model families, samplers, methods and the rest.

One tuple each, in a module that imports nothing, so that the command line starts, prints its
``--help`` and checks its options without importing torch (``ssc-nas --help`` took 3 s, 2.4 s
of it ``import torch``). Each concept's module re-exports its own names (``data.DATASETS``,
``search.SAMPLERS``, ``baselines.METHODS``, ...); code outside the command line imports them
from there.
"""

from __future__ import annotations

__all__ = [
    "AMP_CHOICES",
    "CLI_DEFAULTS",
    "COMPARE_METHODS",
    "DATASETS",
    "DEFAULT_COMPARE_METHODS",
    "DEFAULT_OBJECTIVES",
    "DEFAULT_SCORE_SHARE",
    "DEFAULT_TRIALS",
    "FAMILY_NAMES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "PROXIES",
    "PRUNING_METHODS",
    "REFERENCE_DESIGNS",
    "SAMPLERS",
    "SCORES",
    "SSC_METHODS",
    "STRATEGIES",
]

#: ``--dataset``: what ``data.load_splits`` loads.
DATASETS: tuple[str, ...] = ("mnist-5k", "digits", "fashion-mnist", "cifar10", "cifar100",
                             "tiny-imagenet")
#: ``--family``: the keys of ``models.FAMILIES``, in its order.
FAMILY_NAMES: tuple[str, ...] = ("vgg16", "vgg11", "resnet20", "resnet56", "resnet18",
                                 "mobilenetv2")
#: ``--optimizer`` of the proxy training.
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")

#: The score objectives (exactly one per study), then the cost objectives.
SCORES: tuple[str, ...] = ("val_loss", "accuracy")
OBJECTIVES: tuple[str, ...] = (*SCORES, "params", "macs", "latency")
DEFAULT_OBJECTIVES: tuple[str, ...] = ("val_loss", "params", "macs")

SAMPLERS: tuple[str, ...] = ("tpe", "nsga2", "random")
#: ``--amp``: ``auto`` or one of ``TrainConfig.amp``'s values.
AMP_CHOICES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
#: ``full``: every candidate trains the whole proxy schedule; ``sh``: successive halving over
#: rungs (``search.halving``), where only the top ``1 / eta`` of each rung trains on.
STRATEGIES: tuple[str, ...] = ("full", "sh")
#: What ``ssc-nas search`` runs without flags (studies/default.yaml): the stage-shared space,
#: successive halving and 60 candidates won benchmarks/search_efficiency.py against the
#: per-layer space, full training and 20 trials (mnist-5k, 5 seeds; docs/evidence.md).
CLI_DEFAULTS: dict[str, str] = {"space": "resnet20-ssc-stage", "strategy": "sh"}
#: ``--score-share`` of a new ``sh`` study: the share of each rung's promotions chosen by the
#: score alone before the Pareto order (``search.halving.promotion_order``).
DEFAULT_SCORE_SHARE: float = 0.5
#: ``--trials`` when not given: trained trials (full), or candidates (sh: 3 x 20, the factor
#: the benchmark compared at).
DEFAULT_TRIALS: dict[str, int] = {"full": 20, "sh": 60}
#: The names of ``search.reference_designs``, in enqueue order.
REFERENCE_DESIGNS: tuple[str, ...] = ("standard", "groupwise", "depthwise-separable",
                                      "hetconv-p4", "ssc-uniform")

#: Every zero-cost proxy of ``baselines.score`` (``--prescreen``).
PROXIES: tuple[str, ...] = ("synflow", "snip", "grad_norm", "naswot")
#: Every pruning method of ``baselines.masks_for``.
PRUNING_METHODS: tuple[str, ...] = ("snip", "grasp", "synflow", "random", "erk", "magnitude")
#: SSC methods of ``compare.run_compare``.
SSC_METHODS: tuple[str, ...] = ("ssc-search", "ssc-uniform", "reference")
#: Every method ``ssc-nas compare --methods`` accepts.
COMPARE_METHODS: tuple[str, ...] = (*SSC_METHODS, *PRUNING_METHODS)
#: What ``ssc-nas compare`` runs when ``--methods`` is not given (the paper's baselines).
DEFAULT_COMPARE_METHODS: tuple[str, ...] = (
    "ssc-search", "ssc-uniform", "snip", "grasp", "synflow", "erk", "random",
)
