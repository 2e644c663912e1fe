"""``python -m cove`` is the ``cove`` command."""

from .cli import main

main()
