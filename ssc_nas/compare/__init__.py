"""``ssc-nas compare``: SSC designs against pruning at initialization, at the same budget.

Evaluation is k-fold cross-validation (``folds``, default 5): the images are split into k
disjoint, stratified folds (:func:`ssc_nas.data.load_fold`; mnist-5k: all 5,000 images, 1,000
per fold), and fold ``i`` is held out as the test set while the other folds give the training
and validation images. Every method is trained on every fold under the same schedule
(:class:`~ssc_nas.train.TrainConfig` with ``epochs``/``batch_size`` of the config, SGD
one-cycle, ``hopeless_factor=0`` so no run is cut short by the search's early-stop rule) with
seed ``i`` on fold ``i``, so the methods are compared paired by fold. Over all folds every image
is scored once, and no method selects on the test fold. (Datasets with an official test split
keep it in every fold; the folds then only differ in train/val split and seed.)

:mod:`.stats` gives each method's mean with a 95 % Student-t interval over folds, and the
verdict: the most accurate method and its margin over every other one as a paired difference
with its 95 % t interval, "not distinguishable" where that interval covers zero.

Equal training time (``equal_time``, on by default): SSC networks train several times faster
than pruned networks run as masked dense ones. After the common schedule, the target time is
the mean training time of all pruned runs; every SSC method is trained again per fold for the
largest whole number of epochs whose measured time (its mean seconds per epoch under the
common schedule) fits in that target (:func:`equal_time_epochs`), each a complete one-cycle
schedule stretched over those epochs. The pruned methods' own runs are their equal-time runs.

Methods:

* ``snip``, ``grasp``, ``synflow``, ``erk``, ``random`` (and ``magnitude``): the dense
  ``Architecture(family, width)`` initialized under the seed and pruned at initialization to
  *exactly* the budget's parameter count (:func:`ssc_nas.baselines.prune_at_init`). The dense
  width defaults to the smallest width of the family's shipped SSC space whose dense network has
  at least :data:`DENSE_OVER_BUDGET` (4) x the budget's parameters (VGG-16 at 0.5M on mnist-5k:
  width 0.375, 2.07M params, 76 % sparsity, 29M dense MACs per 28 x 28 image; full width would
  run ~205M MACs per image as masked dense, too slow on a CPU).
* ``ssc-uniform``: a hand-set SSC with the same knob values in every layer, HetConv-style
  (groups 1, full 3 x 3 kernels on a fraction 1/P of each filter's input channels with
  ``phases: cover``, 1 x 1 kernels on all the others), P in {2, 4, 8} and the width of the
  shipped space chosen together: the design with the most parameters within the budget (ties:
  wider, then smaller P). See :func:`uniform_design`.
* ``ssc-search``: the best-scored searched architecture (lowest proxy val loss; highest
  accuracy in an accuracy study; never a reference design) within budget in the SSC study
  (``<dataset>-<family>-ssc-<budget>``, what ``ssc-nas search --space <family>-ssc`` makes)
  in the same storage; when that study does not exist or has no searched design, a short
  search of ``search_trials`` trials without reference designs is run first (``ssc-nas
  search`` can resume it). Until 2026-11-27 it was the best of the whole front, which was
  often a reference design.
* ``reference``: every reference design (``standard``, ``groupwise``, ...) trained within
  budget in the same study, one row each (``reference:standard``, ...), the yardsticks
  ``ssc-search`` must beat; the study must hold one. All are retrained, so the search is judged
  against the best of them after retraining, not against the one the proxy ranked first (until
  2026-11-27 ``reference`` was that one alone).

All are retrained under the compare schedule, per fold. The search selected them on its own
validation images (split seed 0 of ``load_splits``), which lie in some compare test folds: a
small selection effect on their numbers only.

Each (method, fold) run is stored as a COMPLETE trial of the single-objective study
``<study>-baselines`` (value: test accuracy; user attributes ``method``, ``seed`` (= fold),
``fold``, ``folds``, ``params``, ``macs``, ``accuracy``, ``train_time_s``, ``epochs``,
``equal_time`` and more), which ``ssc-nas report``
overlays on the SSC front. The SSC study's trials are never modified. A run already stored with
the same key is reused, not retrained (the runs are seeded, so retraining would give the same
numbers); the key (:func:`~ssc_nas.compare.store.run_key`) holds every setting that changes the
result: method, seed, the toolkit version, the whole ``TrainConfig`` used (optimizer, learning
rate, momentum, weight decay, label smoothing, ...), the BatchNorm handling, data, budget,
design and device type. Use another ``storage`` to start afresh.

MACs: for SSC networks the structural MACs of :func:`ssc_nas.cost.count`; for pruned networks
both the MACs they run as masked dense networks (``dense_macs``) and their sparse MACs (nonzero
weights x output pixels, ``macs``), the figure the pruning papers' FLOP counts use.

One concept per module: ``config`` (what a comparison is asked to do), ``designs`` (what each
method trains), ``store`` (runs kept and reused), ``stats`` (intervals and the verdict),
``runs`` (``run_compare``), ``table`` (rows and their text forms), ``reporter`` (progress
events).
"""

from __future__ import annotations

from .config import (
    DEFAULT_FOLDS,
    DEFAULT_METHODS,
    DENSE_OVER_BUDGET,
    METHODS,
    SSC_METHODS,
    UNIFORM_PARTS,
    CompareConfig,
    study_name,
)
from .designs import bound_space, default_dense_width, uniform_design
from .reporter import Reporter
from .runs import equal_time_epochs, run_compare, sparse_macs
from .stats import CONFIDENCE, Interval, Margin, Verdict, paired_difference, t_interval, verdict
from .store import Run, run_key
from .table import (
    Row,
    format_accuracy,
    format_equal_time,
    format_interval,
    markdown_table,
    table_note,
    verdict_lines,
    verdicts,
)

__all__ = [
    "CONFIDENCE",
    "DEFAULT_FOLDS",
    "DEFAULT_METHODS",
    "DENSE_OVER_BUDGET",
    "METHODS",
    "SSC_METHODS",
    "UNIFORM_PARTS",
    "CompareConfig",
    "Interval",
    "Margin",
    "Reporter",
    "Row",
    "Run",
    "Verdict",
    "bound_space",
    "default_dense_width",
    "equal_time_epochs",
    "format_accuracy",
    "format_equal_time",
    "format_interval",
    "markdown_table",
    "paired_difference",
    "run_compare",
    "run_key",
    "sparse_macs",
    "study_name",
    "t_interval",
    "table_note",
    "uniform_design",
    "verdict",
    "verdict_lines",
    "verdicts",
]
