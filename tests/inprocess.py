"""Run the ``ssc-nas`` command line in this process, as a real process would see it.

``run_cli(args)`` calls ``ssc_nas.cli.main(args)`` (the console entry point, with its error
handling: exit code 2 and one ``error:`` line for user mistakes) inside ``click.testing.CliRunner``
isolation, so stdout and stderr are captured and the exit code comes from ``SystemExit``. What a
real process would also print on stderr is kept too: Optuna's log lines and Python warnings (with
the filters of a fresh interpreter), and an escaping exception as its traceback with exit code 1.
Colour codes are stripped (rich picks colours when ``ssc_nas.cli`` is imported, so ``pytest -s``
in a terminal would add them). A ``python -m ssc_nas`` process pays seconds of imports per case
(torch, Optuna, torch._dynamo on the first optimizer); in-process a validation error takes about
0.1 s once those are imported.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from optuna.exceptions import ExperimentalWarning

from ssc_nas.cli import main

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(logging.getLogger(name)
                                      for name in list(logging.Logger.manager.loggerDict))]
    return [h for lg in loggers for h in lg.handlers
            if type(h) is logging.StreamHandler]


def run_cli(args: list[str] | tuple[str, ...], cwd: Path | None = None) -> CliResult:
    """``ssc-nas ARGS`` in-process, in ``cwd`` (default: the current working folder)."""
    if cwd is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(cwd)
            return run_cli(args)
    runner = CliRunner()
    with runner.isolation() as (out, err, _), warnings.catch_warnings(record=True) as caught:
        # A fresh interpreter hides these; everything else is printed once on stderr.
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        # ssc_nas.search hides these process-wide when imported, but pytest restores the warning
        # filters after collecting and after each test, which drops that filter here.
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        handlers = [(h, h.stream) for h in _stream_handlers()]
        for handler, _ in handlers:
            handler.setStream(sys.stderr)
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # what the interpreter would print for an escaping exception
            sys.stderr.write(traceback.format_exc())
            code = 1
        finally:
            for handler, stream in handlers:
                handler.setStream(stream)
        for w in caught:
            sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno,
                                                    w.line))
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return CliResult(code, ANSI.sub("", stdout), ANSI.sub("", stderr))
