"""The ``ssc-nas`` command line: subcommands only, each a thin wrapper over the Python API."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import SSCNasError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ssc-nas")
def cli() -> None:
    """Neural architecture search for structured sparse convolutions (SSC).

    Finds the most accurate CNNs under a parameter and MAC budget by searching per-layer SSC
    settings with Optuna. Start with: ssc-nas search --budget 0.5M
    """


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except SSCNasError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
