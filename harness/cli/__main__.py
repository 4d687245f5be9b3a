"""``python -m harness.cli``: the same as the ``rhin`` console script."""

from . import main

main()
