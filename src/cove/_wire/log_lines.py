"""A container's output line printed during a request: the request's id in front, between two separator bytes.

The runner writes ``MARK`` id ``END`` text; the worker reading the output
takes the id off (``split``) and ships it as the line's ``request_id``.
"""

from __future__ import annotations

MARK = "\x1e"  # ASCII record separator: never in text a person prints
END = "\x1f"  # ASCII unit separator


def split(line: str) -> tuple[str | None, str]:
    """A container's output line: its request id (None when printed outside a request) and its text."""
    if line.startswith(MARK):
        rid, sep, text = line[1:].partition(END)
        if sep:
            return rid, text
    return None, line
