"""Opening Optuna RDB storages (SQLite or any RDB URL) and the studies in them."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from ..errors import SSCNasError, StudyError
from ..schedule import setting_differences
from ..spaces import SearchSpace
from .config import (
    ATTR_DEFAULTS,
    BASELINES_SUFFIX,
    COMPATIBLE_KEYS,
    JOINED_KEYS,
    SCHEDULE_KEYS,
    SearchConfig,
    check_heartbeat,
    is_claim,
)
from .objectives import direction, objective_names
from .rungs import rungs_from_attr
from .samplers import make_sampler, resume_seed

__all__ = [
    "SCHEMA_RACE_RETRIES",
    "Heartbeats",
    "claim",
    "load_existing_study",
    "make_storage",
    "open_study",
    "release",
    "sqlite_path",
    "StoredSettings",
    "stored_settings",
]


def claim(storage: BaseStorage, name: str) -> bool:
    """Claim ``name`` for this process by creating a study of that name: study names are
    unique in every Optuna RDB storage, so of many workers one wins. False if taken."""
    try:
        optuna.create_study(storage=storage, study_name=name)
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def release(storage: BaseStorage, name: str) -> None:
    """Drop a :func:`claim` (gone already is fine)."""
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (plain or ``file:...?uri=true``); None otherwise."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: RDBStorage will say so
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    database = parsed.database
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database).expanduser()



SCHEMA_RACE_RETRIES = 5  # opening a fresh database that another process is creating


def make_storage(url: str, heartbeat: float = 30.0, must_exist: bool = False) -> RDBStorage:
    """An RDB storage with heartbeats, so a trial whose worker dies is failed, not left RUNNING.

    ``must_exist``: a SQLite file that is not there is an error (never create an empty one).
    """
    check_heartbeat(heartbeat)
    if "://" not in url:  # a bare file name: SQLAlchemy's "Could not parse ... URL" says little
        raise StudyError(f"--storage {url!r} is not a database URL; for a SQLite file pass "
                         f"sqlite:///{url}")
    kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        if must_exist and not path.exists():
            raise StudyError(f"{url}: no such database file (run ssc-nas search first, or "
                             "pass --storage)")
        if not path.resolve().parent.is_dir():
            raise StudyError(f"--storage {url}: folder {path.resolve().parent} does not exist")
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    retry = RetryHeartbeatStaleTrialCallback(max_retry=2)
    attempt = 0
    while True:
        try:
            return RDBStorage(url, heartbeat_interval=round(heartbeat),
                              heartbeat_stale_trial_callback=retry, **kwargs)
        except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use this URL"
            if attempt < SCHEMA_RACE_RETRIES and _lost_schema_race(exc):
                attempt += 1
                time.sleep(0.2 * attempt)  # another process is creating the tables
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StudyError(f"cannot open storage {url}: {reason}") from None


def _lost_schema_race(exc: Exception) -> bool:
    """Two processes opening a fresh database at once both try to create Optuna's tables.

    The loser sees a duplicate alembic version row or an existing table; the tables are fine,
    so opening again succeeds.
    """
    text = str(exc)
    return any(s in text for s in ("alembic_version", "already exists", "duplicate key"))


class Heartbeats:
    """Heartbeats for every trial this process holds, however it was created.

    ``study.optimize`` beats only for the trial it runs; trials made by ``study.ask()`` (the
    runner asks for all of its trials) get none, and Optuna's stale-trial check skips a trial
    without a heartbeat, so a killed worker would leave it RUNNING for good. ``hold(number)``
    records one at once and then every ``heartbeat_interval`` seconds from a thread, through
    the storage's public ``record_heartbeat``, until ``release(number)``.
    """

    def __init__(self, storage: RDBStorage | None, study: optuna.Study) -> None:
        self._storage = storage
        self._study_id = None if storage is None else storage.get_study_id_from_name(
            study.study_name)
        self._interval = None if storage is None else storage.get_heartbeat_interval()
        self._held: dict[int, int] = {}  # trial number -> trial id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self, trial_id: int) -> None:
        assert self._storage is not None
        # A lost beat is retried at the next interval; the trial goes on.
        with contextlib.suppress(Exception):
            self._storage.record_heartbeat(trial_id)

    def hold(self, number: int) -> None:
        if self._storage is None or self._interval is None:
            return
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        with self._lock:
            self._held[number] = trial_id
        self._beat(trial_id)

    def release(self, number: int) -> None:
        with self._lock:
            self._held.pop(number, None)

    def _loop(self) -> None:
        assert self._interval is not None
        while not self._stop.wait(self._interval):
            with self._lock:
                ids = list(self._held.values())
            for trial_id in ids:
                self._beat(trial_id)

    @contextlib.contextmanager
    def running(self) -> Iterator[Heartbeats]:
        """The beating thread runs while the context is open."""
        if self._interval is not None:
            self._thread = threading.Thread(target=self._loop, name="ssc-nas-heartbeat",
                                            daemon=True)
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()


def _resume_hint(config: SearchConfig, attrs: dict[str, Any]) -> str:
    """``; to resume it: <command>`` with the study's own settings (which do not include the
    space, budget or dataset that name it); empty where its stored schedule is not one this
    version can build (a study from another version, or an lr this version refuses)."""
    try:
        return f"; to resume it: {config.joining(attrs).command()}"
    except SSCNasError:
        return ""


def open_study(config: SearchConfig, space: SearchSpace, study_name: str,
               attrs: dict[str, Any], storage: RDBStorage | None = None) -> optuna.Study:
    """Create the study, or load it after checking it was made for the same search."""
    storage = storage or make_storage(config.storage, config.heartbeat)
    if config.objectives is None or config.score_share is None:  # run_search resolves them
        stored = stored_settings(storage, study_name)  # first; direct callers may not
        config = (config.resolved(None) if stored is None
                  else config.resolved(stored.objectives, stored.score_share))
    assert config.objectives is not None
    attrs = {**attrs, "objectives": list(config.objectives), "strategy": config.strategy_attr}
    directions = [direction(o) for o in config.objectives]
    existing = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    sampler = make_sampler(config.sampler, resume_seed(config.seed, existing.get(study_name, 0)),
                           config.trials, halving=config.strategy == "sh")
    if study_name in existing:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        stored = {k: study.user_attrs.get(k, ATTR_DEFAULTS.get(k)) for k in COMPATIBLE_KEYS}
        mismatched = [k for k in COMPATIBLE_KEYS if stored[k] != attrs[k]]
        if mismatched:
            were = "; ".join(f"{k}: {stored[k]!r}" for k in mismatched)
            raise StudyError(
                f"study {study_name!r} in {config.storage} was created for another search "
                f"({were}); pass --study NEW_NAME to start a new one"
                + (_resume_hint(config, study.user_attrs) if set(mismatched) <= JOINED_KEYS
                   else "")
            )
        stored_train, asked_train = study.user_attrs.get("train"), attrs.get("train")
        schedule = "; ".join(setting_differences(stored_train, asked_train, SCHEDULE_KEYS)) if (
            isinstance(stored_train, dict) and isinstance(asked_train, dict)) else ""
        if schedule:
            raise StudyError(
                f"study {study_name!r} in {config.storage} trains its proxy on another schedule "
                f"({schedule}); pass --study NEW_NAME to start a new one"
                f"{_resume_hint(config, study.user_attrs)}"
            )
        return study
    try:
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    directions=directions, sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyError(f"another process created study {study_name!r} in {config.storage} "
                         "just now; run the same command again to join it") from None
    study.set_metric_names(list(config.objectives))  # names in optuna-dashboard
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


@dataclass(frozen=True)
class StoredSettings:
    """What an existing study fixes for every later run of it: its objectives, the proxy's
    autocast (``TrainConfig.amp``; ``"off"`` for a study made before it was stored) and, for
    successive halving, its score share (0 for a study made before it existed; None: ``full``)."""

    objectives: list[str]
    amp: str
    score_share: float | None = None


def stored_settings(storage: RDBStorage, study_name: str) -> StoredSettings | None:
    """The settings of study ``study_name`` (one load); None when there is no such study."""
    if study_name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        return None
    study = optuna.load_study(study_name=study_name, storage=storage)
    attrs = study.user_attrs
    rungs = rungs_from_attr(attrs.get("strategy"))
    return StoredSettings(
        objectives=objective_names(attrs.get("objectives"), len(study.directions)),
        amp=str(attrs.get("train", {}).get("amp", "off")),
        score_share=None if rungs is None else rungs.score_share,
    )


def load_existing_study(name: str | None, storage: str) -> optuna.Study:
    """Load a study by name; with no name, the only study in the storage."""
    store = make_storage(storage, must_exist=True)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)
             if not s.study_name.endswith(BASELINES_SUFFIX) and not is_claim(s.study_name)]
    if name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StudyError(f"{storage} holds {len(names)} studies ({listing}); pass --study NAME")
        name = names[0]
    if name not in names and not name.endswith(BASELINES_SUFFIX):
        raise StudyError(f"no study {name!r} in {storage}; studies there: "
                         f"{', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=store)


