"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Test folders (``tmp_path``) in RAM where there is room: the searches of the tests commit to
# SQLite thousands of times, and on a disk every commit waits for an fsync. On a 2-core Xeon
# this took the suite from 343 s to 307 s. Pytest's documented PYTEST_DEBUG_TEMPROOT is read when
# the first test folder is made (xdist workers inherit it); a value the user set, or
# ``--basetemp``, wins.
RAM_TEMPROOT = "/dev/shm"
RAM_TEMPROOT_MIN_FREE = 2**30


def _ram_temproot() -> str | None:
    try:
        stat = os.statvfs(RAM_TEMPROOT)
    except OSError:
        return None
    room = stat.f_bavail * stat.f_frsize >= RAM_TEMPROOT_MIN_FREE
    return RAM_TEMPROOT if room and os.access(RAM_TEMPROOT, os.W_OK) else None


if "PYTEST_DEBUG_TEMPROOT" not in os.environ and (_root := _ram_temproot()):
    os.environ["PYTEST_DEBUG_TEMPROOT"] = _root

# Processes the tests start (``python -m ssc_nas ...``) import this checkout's package, not
# whichever checkout the editable install points at (with two clones, or after the one it
# pointed at was removed, they would run other code or fail to import).
CHECKOUT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [CHECKOUT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


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


# Tests run tiny convolutions: one torch thread is faster, and much faster on a busy machine
# (two OpenMP threads spin against each other when another process holds a core). Set for the
# whole test process, so that module-scoped fixtures, which are set up before any function-scoped
# fixture, train at one thread too: test_bad_input's 2-trial study took 7 s alone and 80-100 s
# with the other pytest-xdist worker training its own at two threads beside it.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread in every test, whatever the test before it set (an in-process
    ``ssc-nas worker --threads N`` sets N)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
