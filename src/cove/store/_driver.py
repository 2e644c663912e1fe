"""SQL in the database driver's own dialect, for statements sent with ``exec_driver_sql``."""

from __future__ import annotations


def placeholders(paramstyle: str, count: int) -> list[str]:
    """The driver's own parameter markers: ``?`` (sqlite3) or ``$1`` (asyncpg)."""
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle in ("numeric_dollar", "numeric"):
        mark = "$" if paramstyle == "numeric_dollar" else ":"
        return [f"{mark}{n}" for n in range(1, count + 1)]
    raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r}")
