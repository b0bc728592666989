"""What one comparison is asked to do: methods, budget, data and the one schedule."""

from __future__ import annotations

from dataclasses import dataclass

from ..budget import Budget
from ..choices import COMPARE_METHODS as METHODS
from ..choices import DEFAULT_COMPARE_METHODS as DEFAULT_METHODS
from ..choices import PRUNING_METHODS, SSC_METHODS
from ..errors import BudgetError, SSCNasError
from ..models import FAMILIES
from ..schedule import TrainConfig
from ..search import DEFAULT_STORAGE, SearchConfig, default_study_name
from ..spaces import load_space

__all__ = [
    "DEFAULT_METHODS",
    "DENSE_OVER_BUDGET",
    "METHODS",
    "PRUNING_METHODS",
    "DEFAULT_FOLDS",
    "FOLD_SEED",
    "SSC_METHODS",
    "UNIFORM_PARTS",
    "CompareConfig",
    "study_name",
]


#: The default dense width is the smallest whose dense network has this many x the budget.
DENSE_OVER_BUDGET = 4.0
#: HetConv parts P tried by ``ssc-uniform`` (spatial fraction 1/P).
UNIFORM_PARTS: tuple[int, ...] = (2, 4, 8)
#: Seed of the k-fold split every method shares.
FOLD_SEED = 0
#: Folds of ``ssc-nas compare`` (mnist-5k: 1,000 held-out images per fold, 5,000 in all).
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class CompareConfig:
    """One comparison: methods, budget, data and the one training schedule all methods get.

    Defaults are those of ``ssc-nas compare``: 5-fold cross-validation over all 5,000 mnist-5k
    images (per fold 1,000 test images, 3,600 training and 400 validation images), fold ``i``
    trained with seed ``i`` for every method; 4 epochs, batch 64; a search of 8 trials when the
    SSC study has no front yet; and (``equal_time``) the SSC methods trained again for the
    pruned runs' mean training time, or every method for ``equal_time_s`` seconds when given.
    ``trials``: trial numbers of the SSC study retrained too, one row each (``trial:<n>``).
    """

    budget: Budget
    family: str = "vgg16"
    methods: tuple[str, ...] = DEFAULT_METHODS
    dataset: str = "mnist-5k"
    data_dir: str = "data"
    epochs: int = 4
    folds: int = DEFAULT_FOLDS
    batch_size: int = 64
    subset: float = 1.0
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    space: str | None = None
    search_trials: int = 8
    width: float | None = None
    device: str = "auto"
    equal_time: bool = True
    equal_time_s: float | None = None
    trials: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise SSCNasError(f"unknown method {unknown[0]!r}; valid methods: "
                              f"{', '.join(METHODS)}")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise SSCNasError(f"--methods must be distinct names from {', '.join(METHODS)}")
        if self.family not in FAMILIES:
            raise SSCNasError(f"unknown family {self.family!r}; valid families: "
                              f"{', '.join(FAMILIES)}")
        if self.budget.params is None:
            raise BudgetError("compare needs a parameter budget (--budget 0.5M): the pruning "
                              "baselines are matched to it exactly")
        if self.budget.macs is not None:
            raise BudgetError("compare matches parameter counts only; a MACs budget is not "
                              "supported (MACs are reported in the table)")
        if self.folds < 2:
            raise SSCNasError(f"--folds must be >= 2 (the images are split into that many "
                              f"folds, each held out once), but got {self.folds}")
        for name, value in (("epochs", self.epochs), ("batch-size", self.batch_size),
                            ("search-trials", self.search_trials)):
            if value < 1:
                raise SSCNasError(f"--{name} must be >= 1, but got {value}")
        if len(set(self.trials)) != len(self.trials) or any(n < 0 for n in self.trials):
            raise SSCNasError(f"--trial must name distinct trial numbers >= 0, but got "
                              f"{list(self.trials)}")
        if self.equal_time_s is not None and not self.equal_time_s > 0:
            raise SSCNasError(f"--equal-time-s must be > 0, but got {self.equal_time_s}")
        if self.width is not None and not self.width > 0:
            raise SSCNasError(f"--width must be > 0, but got {self.width}")
        if not 0.0 < self.subset <= 1.0:
            raise SSCNasError(f"--subset must be in (0, 1], but got {self.subset}")

    @property
    def space_name(self) -> str:
        return self.space or f"{self.family}-ssc"

    def train_config(self, augment: bool) -> TrainConfig:
        """The schedule every method gets: no early stop of "hopeless" runs."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, augment=augment,
                           hopeless_factor=0.0)



def study_name(config: CompareConfig) -> str:
    """The SSC study compared against: ``config.study`` or what ``ssc-nas search`` names it."""
    if config.study:
        return config.study
    search = SearchConfig(budget=config.budget, space=config.space_name, dataset=config.dataset)
    return default_study_name(search, load_space(config.space_name))

