"""How long ``ssc-nas`` takes to answer commands that train nothing: this tree against an
earlier commit, side by side.

The commands: help, the version, a mistake in the options, and the commands that read a study
(``front``, ``studies``, ``export``) on a small study that this tree's code makes first in the
working folder (``search`` on digits, 2 trials of 1 epoch; a few seconds).

Each command is a fresh ``python -m ssc_nas ...`` process started the way a user starts one
(the interpreter, the imports, the answer, the exit), timed from start to exit, with this
working tree's code and with the code of ``--baseline`` (a git revision exported with ``git
archive``, as ``trial_throughput.py`` does), alternating over ``--rounds``. Printed: the median
seconds per command for each code, and the ratio baseline / new (above 1: the new code answers
faster).

Usage::

    python benchmarks/cli_startup.py                  # 7 rounds against 8d4186a: ~2 min
    python benchmarks/cli_startup.py --baseline HEAD~3 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trial_throughput import export  # noqa: E402  (a sibling benchmark script)

#: The last commit whose ``import ssc_nas.cli`` imported torch.
DEFAULT_BASELINE = "8d4186a"
#: What a user types before (or instead of) a search: help, the version, a mistake.
COMMANDS = (
    ("--help",),
    ("--version",),
    ("search", "--help"),
    ("search", "--budget", "abc"),
    ("front",),
    ("studies",),
    ("export", "--trial", "0", "-o", "arch.json"),
)
#: The study the reading commands read (``ssc-nas.db`` in the working folder).
STUDY = ("search", "--dataset", "digits", "--space", "digits-tiny", "--budget", "80k",
         "--epochs", "1", "--trials", "2", "--strategy", "full", "--quiet")


def one_run(tree: Path, args: tuple[str, ...], workdir: Path) -> float:
    """Seconds from start to exit of ``python -m ssc_nas ARGS`` with ``tree``'s code; a run
    that exits otherwise than the command should (2 for the mistake, else 0) stops the script."""
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ssc_nas", *args], env=env, cwd=workdir,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != (2 if "abc" in args else 0):
        sys.exit(f"ssc-nas {' '.join(args)} ({tree}) exited {done.returncode}:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help=f"git revision to compare with (default {DEFAULT_BASELINE})")
    parser.add_argument("--rounds", type=int, default=7, help="runs per command and code")
    args = parser.parse_args()

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="ssc-cli-startup-") as tmp:
        work = Path(tmp)
        trees = {"baseline": export(args.baseline, work / "baseline"), "new": root}
        one_run(root, STUDY, work)
        times: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        for _ in range(args.rounds):
            for command in COMMANDS:
                for name, tree in trees.items():  # alternating: a slow spell hits both
                    times.setdefault((name, command), []).append(one_run(tree, command, work))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"average {load}; baseline {args.baseline}, {args.rounds} rounds, median seconds")
    print("| command | baseline | new | baseline / new |\n|---|--:|--:|--:|")
    for command in COMMANDS:
        old = statistics.median(times["baseline", command])
        new = statistics.median(times["new", command])
        print(f"| `ssc-nas {' '.join(command)}` | {old:.2f} | {new:.2f} | {old / new:.1f}x |")


if __name__ == "__main__":
    main()
