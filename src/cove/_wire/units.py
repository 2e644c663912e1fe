"""Sizes for people to read, in messages about limits."""

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(size: int) -> str:
    """``512 bytes``, ``3.4 MiB``: binary units, one decimal, TiB at most."""
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    index = 0
    while value >= 1024 and index < len(_UNITS) - 1:
        value /= 1024
        index += 1
    return f"{value:.1f} {_UNITS[index]}"
