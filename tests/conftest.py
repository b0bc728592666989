"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database in a throwaway PostgreSQL cluster on 127.0.0.1 (removed at the end).

    Without the server binaries the test is skipped locally and fails in CI (env ``CI`` set),
    where ``.ci/run`` installs Debian's postgresql package.
    """
    from tests.postgres import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; CI must install it")
        pytest.skip(str(exc))
    try:
        import sqlalchemy

        sqlalchemy.create_engine(cluster.url).dispose()  # imports the driver SQLAlchemy picks
    except ImportError as exc:
        message = f"no PostgreSQL driver for SQLAlchemy: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tests run tiny convolutions: one torch thread is faster, and much faster on a busy
    machine (two OpenMP threads spin against each other when another process holds a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
