"""An RPM's ``License`` tag as an SPDX expression, for the site's license policy.

Fedora and its relatives write SPDX expressions since 2023 (``MIT AND
GPL-2.0-or-later``); older packages and other distributions use Fedora's
short names (``GPLv2+``, ``ASL 2.0``, ``BSD``) joined with ``and``/``or``.
Both are read; a term that is neither is unknown, and so is the whole tag
(the policy's ``[licenses] unknown`` decides), because guessing one part of
an expression could let a denied license through.
"""

from __future__ import annotations

import re

from .. import licenses

# Fedora's legacy short names (the ones common enough to matter) -> SPDX; the PyPI names in ..licenses also apply.
_FEDORA = {
    "asl 2.0": "Apache-2.0",
    "asl 1.1": "Apache-1.1",
    "gplv2+ with exceptions": "GPL-2.0-or-later WITH Classpath-exception-2.0",
    "gplv3+ with exceptions": "GPL-3.0-or-later WITH GCC-exception-3.1",
    "lgplv2": "LGPL-2.0-only",
    "lgplv2.1": "LGPL-2.1-only",
    "lgplv2+": "LGPL-2.0-or-later",
    "lgplv3": "LGPL-3.0-only",
    "mplv2.0": "MPL-2.0",
    "mplv1.1": "MPL-1.1",
    "python": "PSF-2.0",
    "openssl": "OpenSSL",
    "boost": "BSL-1.0",
    "zlib": "Zlib",
    "isc": "ISC",
    "mit": "MIT",
    "public domain": "LicenseRef-Fedora-Public-Domain",
}
# SPDX identifiers without a dash (most have one: a bare word is usually a legacy name such as "BSD").
_BARE_SPDX = frozenset({"MIT", "ISC", "Zlib", "Unlicense", "OpenSSL", "Beerware", "curl", "Libpng", "NTP", "Vim"})
_OPERATOR = re.compile(r"\s+(and|or|AND|OR)\s+")


def _spdx_id(term: str) -> bool:
    return term in _BARE_SPDX or ("-" in term and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", term) is not None)


def spdx_license(text: str) -> str | None:
    """The SPDX expression for an RPM ``License`` tag, None when any part of it is not a known license."""
    text = " ".join(text.split())
    if not text:
        return None
    if licenses.judge(text, [], []) is None and all(_spdx_id(t) for t in licenses.license_ids(text)):
        return text
    pieces = _OPERATOR.split(text.replace("(", " ").replace(")", " ").strip())
    out: list[str] = []
    for position, piece in enumerate(pieces):
        if position % 2:
            out.append(piece.upper())
            continue
        term = piece.strip()
        mapped = _FEDORA.get(term.lower()) or licenses.detect(None, term, []).expression
        if not mapped:
            return None
        out.append(mapped)
    return " ".join(out)
