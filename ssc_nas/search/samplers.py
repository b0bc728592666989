"""Optuna samplers by name, and the sampler seed of each worker."""

from __future__ import annotations

import os
import socket
import zlib

import optuna

from ..errors import StudyError
from .config import SAMPLERS

__all__ = ["make_sampler", "worker_id", "worker_seed"]


def make_sampler(name: str, seed: int, trials: int | None = None) -> optuna.samplers.BaseSampler:
    """Optuna's samplers; each trial's budget constraints reach them via ``set_constraint``.

    ``tpe`` (default) starts modelling after 10 trials, which suits short searches; ``nsga2``
    uses generations of ``min(50, max(8, trials // 3))``.
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)
    if name == "nsga2":
        population = min(50, max(8, (trials or 60) // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyError(f"--sampler must be one of {', '.join(SAMPLERS)}, but got {name!r}")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_seed(seed: int, worker_index: int | None = None) -> int:
    """The sampler seed of one worker: fixed for a given ``--worker-index``; otherwise drawn
    from host and pid, so workers started by hand on many machines sample different candidates.
    """
    key = worker_id() if worker_index is None else f"index {worker_index}"
    return zlib.crc32(f"{seed}/{key}".encode())

