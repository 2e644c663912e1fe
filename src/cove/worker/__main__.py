"""``python -m cove.worker``: another spelling of ``cove worker``, for hosts that start the module.

It runs the CLI's command itself rather than a parser of its own, so both
spellings take the same options with the same defaults and the same help
(a second parser once defaulted to another gateway port and to no isolation).
"""

from __future__ import annotations

from cove.cli import worker_app

PROG_NAME = "python -m cove.worker"


def main(argv: list[str] | None = None) -> None:
    """Run ``cove worker`` with ``argv`` (default: this process's arguments); exits like the CLI does."""
    worker_app(args=argv, prog_name=PROG_NAME)


if __name__ == "__main__":
    main()
