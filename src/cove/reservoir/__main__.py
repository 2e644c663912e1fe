"""``python -m cove.reservoir``: the reservoir CLI without the rest of Cove."""

from .cli import main

main()
