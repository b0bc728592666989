"""What a search is asked to do: :class:`SearchConfig`, its objectives and samplers' names,
durations, and study configs (``studies/*.yaml``) whose keys are the ``ssc-nas search`` flags."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..budget import Budget, exact_count
from ..choices import (
    AMP_CHOICES,
    CLI_DEFAULTS,
    DEFAULT_OBJECTIVES,
    DEFAULT_SCORE_SHARE,
    DEFAULT_TRIALS,
    OBJECTIVES,
    PROXIES,
    SAMPLERS,
    SCORES,
    STRATEGIES,
)
from ..errors import StudyError
from ..schedule import TrainConfig
from ..spaces import SearchSpace

__all__ = [
    "AMP_CHOICES",
    "ATTR_DEFAULTS",
    "BASELINES_SUFFIX",
    "CLAIM_MARK",
    "RUN_CLAIM_MARK",
    "CLI_DEFAULTS",
    "COMPATIBLE_KEYS",
    "JOINED_KEYS",
    "SCHEDULE_KEYS",
    "CONFIG_KEYS",
    "DEFAULT_SCORE_SHARE",
    "DEFAULT_STORAGE",
    "DEFAULT_TRIALS",
    "OBJECTIVES",
    "SAMPLERS",
    "STRATEGIES",
    "SearchConfig",
    "check_heartbeat",
    "check_rungs",
    "default_study_name",
    "is_claim",
    "load_study_config",
    "parse_duration",
    "shipped_study_configs",
]


DEFAULT_STORAGE = "sqlite:///ssc-nas.db"
# ssc-nas compare stores its pruning-at-init baselines in "<study>-baselines".
BASELINES_SUFFIX = "-baselines"
# --strategy sh claims a promotion by creating a study "<study>:promote:<trial>" (halving);
# claims are deleted at once, and hidden from every listing if a killed worker leaves one.
CLAIM_MARK = ":promote:"
# A worker that pops a queued trial claims it by creating "<study>:run:<trial>" (trials).
RUN_CLAIM_MARK = ":run:"


def is_claim(study_name: str) -> bool:
    """A transient claim (a promotion, ``halving.promote``, or a queued trial,
    ``trials.TrialRunner``), not a study of its own."""
    return CLAIM_MARK in study_name or RUN_CLAIM_MARK in study_name


def check_rungs(eta: Any, rungs: Any, score_share: Any = 0.0) -> None:
    """``--eta``, ``--rungs`` and ``--score-share`` of successive halving: integers >= 2 and
    >= 1, and a share in [0, 1]."""
    if not isinstance(eta, int) or eta < 2:
        raise StudyError(f"--eta must be an integer >= 2, but got {eta!r}")
    if not isinstance(rungs, int) or rungs < 1:
        raise StudyError(f"--rungs must be an integer >= 1, but got {rungs!r}")
    if not isinstance(score_share, (int, float)) or not 0.0 <= score_share <= 1.0:
        raise StudyError(f"--score-share must be a number from 0 to 1, but got {score_share!r}")


# Study attributes that must match for a run to join an existing study.
COMPATIBLE_KEYS = ("space", "budget", "dataset", "objectives", "subset", "strategy")
# Those of them that SearchConfig.joining takes from a study (the others name the study).
JOINED_KEYS = frozenset({"objectives", "subset", "strategy"})
# The proxy schedule (TrainConfig fields in the study's "train" attribute) that every trial of a
# study shares: a run that joins a study must keep it, or one front would mix trials trained
# differently (a promotion would even continue a parent under another schedule). The precision
# (amp) is the study's own and is taken from it (stored_settings).
SCHEDULE_KEYS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                 "label_smoothing", "augment", "hopeless_factor")
# What a study made before an attribute existed meant by it.
ATTR_DEFAULTS = {"strategy": "full"}


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search run needs; the CLI flags and ``studies/*.yaml`` keys map onto it."""

    budget: Budget
    space: str = "resnet20-ssc"
    dataset: str = "mnist-5k"
    data_dir: str = "data"
    download: bool = False
    trials: int | None = 20
    timeout: float | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    subset: float = 1.0
    sampler: str = "tpe"
    study: str | None = None
    storage: str = DEFAULT_STORAGE
    seed: int = 0
    device: str = "auto"
    #: None: the existing study's objectives, or ``DEFAULT_OBJECTIVES`` for a new study
    #: (``resolved``), so a study made before the default changed still resumes.
    objectives: tuple[str, ...] | None = None
    latency_batch: int = 32
    reference_designs: bool = True
    workers: int = 1
    heartbeat: float = 30.0
    prescreen: str | None = None
    prescreen_k: int = 10
    strategy: str = "full"
    eta: int = 3
    rungs: int = 3
    #: ``--strategy sh``: the share of each rung's promotions chosen by the score alone, the
    #: rest in Pareto order (``halving.promotion_order``); None: the resumed study's, or
    #: ``DEFAULT_SCORE_SHARE`` for a new study (``resolved``)
    score_share: float | None = None
    #: ``--strategy sh``: where checkpoints between rungs go (None: beside the SQLite file)
    checkpoint_dir: str | None = None
    #: Proxy training's autocast (``TrainConfig.amp``) or ``"auto"``: the resumed study's, else
    #: bf16 on a CPU with bf16 in hardware where it measures faster, else off
    #: (``train.resolve_amp``).
    amp: str = "auto"

    def __post_init__(self) -> None:
        objectives = self.objectives or DEFAULT_OBJECTIVES
        unknown = [o for o in objectives if o not in OBJECTIVES]
        scores = [o for o in objectives if o in SCORES]
        if unknown or len(scores) != 1 or len(set(objectives)) != len(objectives):
            raise StudyError(
                f"--objectives must be distinct names from {', '.join(OBJECTIVES)} with exactly "
                f"one of {' or '.join(SCORES)}, but got {','.join(objectives)}"
            )
        if self.sampler not in SAMPLERS:
            raise StudyError(f"--sampler must be one of {', '.join(SAMPLERS)}, "
                             f"but got {self.sampler!r}")
        if self.trials is not None and self.trials < 1:
            raise StudyError(f"--trials must be >= 1, but got {self.trials}")
        if self.prescreen is not None and self.prescreen not in PROXIES:
            raise StudyError(f"--prescreen must be one of {', '.join(PROXIES)}, "
                             f"but got {self.prescreen!r}")
        if self.prescreen_k < 1:
            raise StudyError(f"--prescreen-k must be >= 1, but got {self.prescreen_k}")
        if self.latency_batch < 1:
            raise StudyError(f"--latency-batch must be >= 1, but got {self.latency_batch}")
        check_heartbeat(self.heartbeat)
        if self.strategy not in STRATEGIES:
            raise StudyError(f"--strategy must be one of {', '.join(STRATEGIES)}, "
                             f"but got {self.strategy!r}")
        check_rungs(self.eta, self.rungs,
                    DEFAULT_SCORE_SHARE if self.score_share is None else self.score_share)
        if self.workers < 1:
            raise StudyError(f"--workers must be >= 1, but got {self.workers}")
        if self.amp not in AMP_CHOICES:
            raise StudyError(f"--amp must be one of {', '.join(AMP_CHOICES)}, "
                             f"but got {self.amp!r}")
        if self.study and (is_claim(self.study) or self.study.endswith(BASELINES_SUFFIX)):
            raise StudyError(f"--study {self.study!r}: names with {CLAIM_MARK!r} or "
                             f"{RUN_CLAIM_MARK!r} in them (claims of workers) or ending in "
                             f"{BASELINES_SUFFIX!r} (ssc-nas compare's runs) are reserved; "
                             "pick another name")
        if self.trials is None and self.timeout is None:
            raise StudyError("give --trials N or --timeout (e.g. 30m): a search needs a limit")

    @property
    def strategy_attr(self) -> str | dict[str, Any]:
        """The study attribute ``strategy``: ``"full"``, or ``{"name": "sh", "eta", "rungs"}``
        with ``"score_share"`` where it is not 0 (so studies made before it existed match)."""
        if self.strategy == "full":
            return "full"
        attr: dict[str, Any] = {"name": "sh", "eta": self.eta, "rungs": self.rungs}
        share = DEFAULT_SCORE_SHARE if self.score_share is None else self.score_share
        if share:
            attr["score_share"] = share
        return attr

    def joining(self, attrs: Mapping[str, Any]) -> SearchConfig:
        """This config with the settings of the existing study whose user attributes are
        ``attrs``: its proxy schedule, strategy, training subset, sampler, seed, objectives and
        pre-screen. A run that only adds trials to a study it did not make (``ssc-nas
        compare``'s short search) must keep them, or the study refuses it (``open_study``)."""
        strategy = attrs.get("strategy", ATTR_DEFAULTS["strategy"])
        halving = isinstance(strategy, dict) and strategy.get("name") == "sh"
        train = attrs.get("train")
        objectives = attrs.get("objectives")
        try:
            schedule = TrainConfig(**train) if isinstance(train, dict) else self.train
        except (TypeError, ValueError) as exc:  # another version's keys, or a refused value
            raise StudyError(f"this version cannot read the study's proxy schedule {train!r} "
                             f"({exc})") from None
        return replace(
            self,
            train=schedule,
            subset=float(attrs.get("subset", self.subset)),
            sampler=str(attrs.get("sampler", self.sampler)),
            seed=int(attrs.get("seed", self.seed)),
            objectives=tuple(objectives) if objectives else self.objectives,
            latency_batch=int(attrs.get("latency_batch", self.latency_batch)),
            prescreen=attrs.get("prescreen", self.prescreen),
            prescreen_k=int(attrs.get("prescreen_k", self.prescreen_k)),
            strategy="sh" if halving else "full",
            eta=int(strategy["eta"]) if halving else self.eta,
            rungs=int(strategy["rungs"]) if halving else self.rungs,
            score_share=float(strategy.get("score_share", 0.0)) if halving else self.score_share,
        )

    def command(self) -> str:
        """The ``ssc-nas search`` command line that runs (or resumes) this search: the flags
        whose values differ from the command's defaults, and always ``--space``,
        ``--budget`` and ``--dataset``. Schedule fields without a flag (momentum, ...) cannot
        be written."""
        train, default = self.train, TrainConfig()
        # The flags' defaults are this class's, but for the strategy and the trials (CLI_DEFAULTS).
        base = {f.name: f.default for f in fields(SearchConfig)}
        sh, prescreened = self.strategy == "sh", self.prescreen is not None
        flags: list[tuple[str, Any, Any]] = [
            ("--space", self.space, None),
            ("--budget", None if self.budget.params is None else exact_count(self.budget.params),
             None),
            ("--macs", None if self.budget.macs is None else exact_count(self.budget.macs),
             None),
            ("--dataset", self.dataset, None),
            ("--data-dir", self.data_dir, base["data_dir"]),
            ("--strategy", self.strategy, CLI_DEFAULTS["strategy"]),
            ("--trials", self.trials, DEFAULT_TRIALS[self.strategy] if self.timeout is None
             else None),
            ("--timeout", self.timeout, None),
            ("--eta", self.eta if sh else base["eta"], base["eta"]),
            ("--rungs", self.rungs if sh else base["rungs"], base["rungs"]),
            ("--score-share", self.score_share if sh else None, DEFAULT_SCORE_SHARE),
            ("--epochs", train.epochs, default.epochs),
            ("--batch-size", train.batch_size, default.batch_size),
            ("--optimizer", train.optimizer, default.optimizer),
            ("--lr", train.lr, default.lr),
            ("--subset", self.subset, base["subset"]),
            ("--sampler", self.sampler, base["sampler"]),
            ("--seed", self.seed, base["seed"]),
            ("--objectives", ",".join(self.objectives or DEFAULT_OBJECTIVES),
             ",".join(DEFAULT_OBJECTIVES)),
            ("--latency-batch", self.latency_batch, base["latency_batch"]),
            ("--prescreen", self.prescreen, None),
            ("--prescreen-k", self.prescreen_k if prescreened else base["prescreen_k"],
             base["prescreen_k"]),
            ("--study", self.study, None),
            ("--storage", self.storage, base["storage"]),
        ]
        parts = ["ssc-nas search"]
        parts += [f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
                  for flag, value, skip in flags if value is not None and value != skip]
        return " ".join(parts)

    def resolved(self, existing: Sequence[str] | None,
                 existing_share: float | None = None) -> SearchConfig:
        """This config with its objectives and score share settled: as given, else those of
        the study it resumes (``existing``, ``existing_share``), else ``DEFAULT_OBJECTIVES``
        and ``DEFAULT_SCORE_SHARE``."""
        objectives = self.objectives or tuple(existing or DEFAULT_OBJECTIVES)
        share = self.score_share
        if share is None:
            share = DEFAULT_SCORE_SHARE if existing_share is None else existing_share
        return replace(self, objectives=objectives, score_share=share)


def default_study_name(config: SearchConfig, space: SearchSpace) -> str:
    """``<dataset>-<space>-<budget>``, so the same command resumes the same study.

    Budgets are written exactly (``exact_count``): ``500k`` for 500,000 as before, but
    ``1234567`` rather than ``1.23M``, so two budgets never share a study.
    """
    parts = [config.dataset, space.name]
    if config.budget.params is not None:
        parts.append(exact_count(config.budget.params))
    if config.budget.macs is not None:
        parts.append(f"{exact_count(config.budget.macs)}macs")
    return "-".join(parts)



def check_heartbeat(heartbeat: float) -> None:
    if not (isinstance(heartbeat, int | float) and math.isfinite(heartbeat) and heartbeat >= 1):
        raise StudyError(f"--heartbeat must be a number of seconds >= 1, but got {heartbeat!r}")


def parse_duration(text: str | float | int | None) -> float | None:
    """``90``, ``90s``, ``30m``, ``2h`` -> seconds."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    units = {"s": 1, "m": 60, "h": 3600}
    t = str(text).strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise StudyError(f"--timeout must be a duration like 90s, 30m or 2h, but got {text!r}")
    return value


# -- study configs (studies/*.yaml) -----------------------------------------------------------

CONFIG_KEYS = ("budget", "macs", "flops", "space", "dataset", "data_dir", "download", "trials",
               "timeout", "epochs", "subset", "batch_size", "optimizer", "lr", "sampler", "study",
               "storage", "seed", "device", "objectives", "latency_batch", "reference_designs",
               "workers", "heartbeat", "prescreen", "prescreen_k", "strategy", "eta", "rungs",
               "score_share", "checkpoint_dir", "amp", "description")


def shipped_study_configs() -> dict[str, Path]:
    """Ready study configs that ship with ssc-nas, by name (``default``, ``cifar10-vgg16``...)."""
    from importlib import resources

    root = resources.files("ssc_nas") / "studies"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def load_study_config(path_or_name: str | Path) -> dict[str, Any]:
    """Read a study config: keys are the ``ssc-nas search`` flags with ``_`` for ``-``
    (``flops``, the old name of ``macs``, is still read)."""
    import yaml

    path = Path(path_or_name)
    if not path.exists():
        shipped = shipped_study_configs()
        key = path.stem if path.suffix == ".yaml" else str(path_or_name)
        key = Path(key).name
        if key not in shipped:
            raise StudyError(f"study config {str(path_or_name)!r} not found: give a YAML file or "
                             f"one of: {', '.join(sorted(shipped))}")
        path = shipped[key]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, OSError) as exc:
        raise StudyError(f"{path}: cannot read study config: "
                         f"{getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:  # a database or model file, say
        raise StudyError(f"{path}: not a study config (not YAML text)") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: a study config must be a YAML mapping of flag -> value")
    unknown = [k for k in data if k not in CONFIG_KEYS]
    if unknown:
        raise StudyError(f"{path}: unknown key {unknown[0]!r}; valid keys: "
                         f"{', '.join(CONFIG_KEYS)}")
    if "macs" in data and "flops" in data:
        raise StudyError(f"{path}: give the MAC budget once: 'macs' ('flops' is its old name)")
    return data


