"""Working out a distribution's license as an SPDX expression, and judging it against allow/deny lists.

Sources, best first: PEP 639 ``License-Expression``; the legacy ``License``
field when it is a known name; trove classifiers. When none gives an answer
the license is ``unknown``, which the policy can allow or send for review.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

_LEGACY = {
    "mit": "MIT",
    "mit license": "MIT",
    "the mit license": "MIT",
    "expat": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "asl 2": "Apache-2.0",
    "bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd-2-clause": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause",
    "isc": "ISC",
    "isc license": "ISC",
    "mpl-2.0": "MPL-2.0",
    "mpl 2.0": "MPL-2.0",
    "psf": "PSF-2.0",
    "psf license": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "lgpl": "LGPL-2.1-or-later",
    "lgplv3": "LGPL-3.0-only",
    "lgplv3+": "LGPL-3.0-or-later",
    "lgplv2+": "LGPL-2.1-or-later",
    "gpl": "GPL-2.0-or-later",
    "gplv2": "GPL-2.0-only",
    "gplv2+": "GPL-2.0-or-later",
    "gplv3": "GPL-3.0-only",
    "gplv3+": "GPL-3.0-or-later",
    "agplv3": "AGPL-3.0-only",
    "agplv3+": "AGPL-3.0-or-later",
    "unlicense": "Unlicense",
    "the unlicense": "Unlicense",
    "zlib": "Zlib",
    "cc0": "CC0-1.0",
    "cc0 1.0": "CC0-1.0",
    "public domain": "LicenseRef-Public-Domain",
}

_CLASSIFIERS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Apache Software License": "Apache-2.0",
    "BSD License": "BSD-3-Clause",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
}

_SPDX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)\s*")


@dataclasses.dataclass(frozen=True)
class License:
    """``expression`` is an SPDX expression, or None when unknown; ``source`` says where it came from."""

    expression: str | None
    source: str  # "expression", "license", "classifier" or "unknown"


def detect(expression: str | None, legacy: str | None, classifiers: Iterable[str]) -> License:
    if expression:
        return License(expression.strip(), "expression")
    if legacy:
        first = legacy.strip().splitlines()[0].strip() if legacy.strip() else ""
        mapped = _LEGACY.get(first.lower())
        if mapped:
            return License(mapped, "license")
        if _SPDX_ID.match(first) and "-" in first and len(first) < 40:
            return License(first, "license")  # already an SPDX identifier such as "BSD-2-Clause"
    found = []
    for classifier in classifiers:
        if classifier.startswith("License ::"):
            mapped = _CLASSIFIERS.get(classifier.rsplit(" :: ", 1)[-1])
            if mapped and mapped not in found:
                found.append(mapped)
    if found:
        return License(" OR ".join(found) if len(found) > 1 else found[0], "classifier")
    return License(None, "unknown")


class _Parser:
    """SPDX expressions: ``id``, ``id WITH exception``, ``AND``, ``OR`` and parentheses (AND binds tighter)."""

    def __init__(self, text: str) -> None:
        self.tokens = _TOKEN.findall(text)
        if "".join(self.tokens).replace(" ", "") != re.sub(r"\s+", "", text):
            raise ValueError(f"invalid SPDX expression {text!r}")
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end of SPDX expression")
        self.pos += 1
        return token

    def parse(self) -> object:
        node = self.parse_or()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r} in SPDX expression")
        return node

    def parse_or(self) -> object:
        nodes = [self.parse_and()]
        while (self.peek() or "").upper() == "OR":
            self.take()
            nodes.append(self.parse_and())
        return ("OR", nodes) if len(nodes) > 1 else nodes[0]

    def parse_and(self) -> object:
        nodes = [self.parse_atom()]
        while (self.peek() or "").upper() == "AND":
            self.take()
            nodes.append(self.parse_atom())
        return ("AND", nodes) if len(nodes) > 1 else nodes[0]

    def parse_atom(self) -> object:
        token = self.take()
        if token == "(":
            node = self.parse_or()
            if self.take() != ")":
                raise ValueError("unbalanced parentheses in SPDX expression")
            return node
        if token.upper() in ("AND", "OR", "WITH") or token == ")":
            raise ValueError(f"unexpected {token!r} in SPDX expression")
        if (self.peek() or "").upper() == "WITH":
            self.take()
            self.take()  # the exception narrows a license; it never makes one unacceptable on its own
        return token


def license_ids(expression: str) -> set[str]:
    def walk(node: object) -> set[str]:
        if isinstance(node, str):
            return {node}
        assert isinstance(node, tuple)
        return set().union(*(walk(n) for n in node[1]))

    return walk(_Parser(expression).parse())


def judge(expression: str, allow: Iterable[str], deny: Iterable[str]) -> str | None:
    """None when the expression can be satisfied with acceptable licenses, else the reason it cannot."""
    allowed = {a.lower() for a in allow}
    denied = {d.lower() for d in deny}

    def ok(node: object) -> bool:
        if isinstance(node, str):
            lid = node.lower()
            return lid not in denied and (not allowed or lid in allowed)
        assert isinstance(node, tuple)
        op, nodes = node
        return any(ok(n) for n in nodes) if op == "OR" else all(ok(n) for n in nodes)

    try:
        tree = _Parser(expression).parse()
    except ValueError as exc:
        return str(exc)
    if ok(tree):
        return None
    bad = sorted(i for i in license_ids(expression) if i.lower() in denied)
    if bad:
        return f"license {expression} is denied ({', '.join(bad)})"
    return f"license {expression} is not on the allow list"
