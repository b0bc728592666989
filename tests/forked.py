"""Real ``ssc-nas`` processes that start in milliseconds: forked from a server process that has
already imported what every ``ssc-nas`` process imports.

A ``python -m ssc_nas`` process spent about 7 CPU seconds on a 2-core EPYC before its first
trial: torch 2.5 s, scikit-learn 2.1 s and ``torch._dynamo`` 2.1 s (imported by torch on the
first optimizer). The suite started some 40 of them. Here a process is forked from
``multiprocessing``'s fork server, which imports those once (:mod:`tests._preload`) and
never computes or opens a database, and then runs the console entry point ``ssc_nas.cli.main``
with the given arguments, working folder and environment, its stdout and stderr in files. It
is a process of its own: its own pid, exit code, signals (SIGINT, SIGKILL), database
connections and child processes. What it does not show is what happens before ``main`` in a
real ``python -m ssc_nas`` process (the interpreter's start, the imports, the environment read
at start-up: ``OMP_NUM_THREADS`` is applied with ``torch.set_num_threads`` instead); tests of
those start real processes.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ForkedProcess", "run", "start"]

# Imported by the server from the checkout, which tests/conftest.py puts first on PYTHONPATH
# (Python 3.11's server ignores the sys.path it is given, and skips a preload it cannot import).
PRELOAD = "tests._preload"
_context: multiprocessing.context.ForkServerContext | None = None


def _server() -> multiprocessing.context.ForkServerContext:
    """The fork server's context (the server starts with the first process)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([PRELOAD])
    return _context


def _child(args: list[str], cwd: str, env: dict[str, str], out: str, err: str,
           file_size_limit: int | None) -> None:
    """The forked process: ``ssc-nas ARGS`` in ``cwd`` with environment ``env``."""
    for path, fd in ((out, 1), (err, 2)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    if file_size_limit is not None:  # ``ulimit -f``; Python ignores SIGXFSZ, a write gets EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    if PRELOAD not in sys.modules:  # then this process would start as slowly as a real one
        raise RuntimeError(f"the fork server did not import {PRELOAD}")
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))
    sys.argv = ["ssc-nas", *args]
    from ssc_nas.cli import main

    main()  # ends the process with its exit code


class ForkedProcess:
    """The part of :class:`subprocess.Popen` the tests use, for a forked ``ssc-nas`` process
    (text output). ``file_size_limit`` (bytes) is the process's ``ulimit -f``; it applies to its
    stdout and stderr files too."""

    def __init__(self, args: Sequence[str], cwd: Path | str, env: Mapping[str, str],
                 file_size_limit: int | None = None) -> None:
        self.args = list(args)
        self._folder = tempfile.TemporaryDirectory(prefix="forked-")
        self._out = os.path.join(self._folder.name, "stdout")
        self._err = os.path.join(self._folder.name, "stderr")
        self._process = _server().Process(
            target=_child,
            args=(self.args, str(cwd), dict(env), self._out, self._err, file_size_limit))
        Path(self._out).touch()
        Path(self._err).touch()
        self._process.start()
        self.pid: int = self._process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not self._process.is_alive():
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return (Path(self._out).read_text(errors="replace"),
                Path(self._err).read_text(errors="replace"))

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(args: Sequence[str], cwd: Path | str, env: Mapping[str, str] | None = None,
          file_size_limit: int | None = None) -> ForkedProcess:
    """``ssc-nas ARGS`` as a forked process, running."""
    return ForkedProcess(args, cwd, os.environ if env is None else env, file_size_limit)


def run(args: Sequence[str], cwd: Path | str, env: Mapping[str, str] | None = None,
        timeout: float | None = None, file_size_limit: int | None = None
        ) -> subprocess.CompletedProcess:
    """``ssc-nas ARGS`` as a forked process, to its end (the process is killed past
    ``timeout``, raising :class:`subprocess.TimeoutExpired` as ``subprocess.run`` does)."""
    proc = start(args, cwd, env, file_size_limit)
    try:
        out, err = proc.communicate(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
