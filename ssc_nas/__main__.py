"""``python -m ssc_nas`` is the ``ssc-nas`` command."""

from .cli import main

main()
