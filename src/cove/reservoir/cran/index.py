"""The repository index R reads: ``src/contrib/PACKAGES`` and ``PACKAGES.gz``.

One stanza per package (its newest active version), with the fields R's own
``tools::write_PACKAGES`` writes and the ``MD5sum`` of the file. R asks for
``PACKAGES.rds`` first and falls back to ``PACKAGES.gz`` when that is
missing, so the RDS form (R's serialization format) is not produced.
"""

from __future__ import annotations

import gzip
import sqlite3

from . import description, records


def render(conn: sqlite3.Connection) -> bytes:
    stanzas = []
    for record in records.latest(conn):
        fields = record.fields
        lines = []
        for name in description.INDEX_FIELDS:
            value = fields.get(name, "").strip()
            if value:
                # One logical line per field: R's read.dcf joins continuation lines anyway.
                lines.append(f"{name}: {' '.join(value.split())}")
        lines.append(f"MD5sum: {record.md5}")
        stanzas.append("\n".join(lines) + "\n")
    return "\n".join(stanzas).encode()


def render_gz(text: bytes) -> bytes:
    """Gzip with a fixed mtime, so the same index gives the same bytes (and ETag)."""
    return gzip.compress(text, compresslevel=6, mtime=0)
