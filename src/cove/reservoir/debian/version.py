"""Debian version ordering, as the Debian Policy Manual (section 5.6.12) defines it.

Debian advisories say "fixed in 2.36-9+deb12u4"; whether a held package is
older than that is a question of dpkg's ordering, which PEP 440 cannot answer
(``~`` sorts before the empty string, letters before other symbols, epochs
override everything). The rules, implemented here from the policy text:

- ``[epoch:]upstream_version[-debian_revision]``; a missing epoch is 0, a
  missing revision compares equal to ``0``. The revision is everything after
  the last hyphen.
- Epochs compare as integers; then the upstream versions, then the revisions,
  each with the same string comparison.
- That comparison takes, from the left, alternately the longest run of
  non-digits and the longest run of digits. Non-digit runs compare character
  by character where ``~`` sorts before anything (even the end of the run),
  the end of the run comes next, then letters (in ASCII order), then all
  other characters (in ASCII order). Digit runs compare as numbers, an empty
  run counting as 0.
"""

from __future__ import annotations

import functools
import re

from ..errors import ReservoirError

_EPOCH = re.compile(r"^[0-9]+$")
_UPSTREAM = re.compile(r"^[0-9A-Za-z.+~:-]*$")
_REVISION = re.compile(r"^[0-9A-Za-z.+~]*$")


def _weight(char: str | None) -> int:
    """Sort weight of one character of a non-digit run; ``None`` is the end of the run."""
    if char == "~":
        return -1
    if char is None:
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_fragment(a: str, b: str) -> int:
    """Compare an upstream version or a revision by the policy's alternating runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        # The non-digit run.
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = a[i] if i < len(a) and not a[i].isdigit() else None
            cb = b[j] if j < len(b) and not b[j].isdigit() else None
            diff = _weight(ca) - _weight(cb)
            if diff:
                return -1 if diff < 0 else 1
            i += ca is not None
            j += cb is not None
        # The digit run, compared as a number.
        start_a, start_b = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_a:i] or 0), int(b[start_b:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0


@functools.total_ordering
class DebianVersion:
    """A parsed Debian version; instances order and compare equal the way dpkg does."""

    __slots__ = ("epoch", "revision", "text", "upstream")

    def __init__(self, text: str) -> None:
        self.text = text
        value = text.strip()
        epoch, colon, rest = value.partition(":")
        if not colon:
            epoch, rest = "0", value
        elif not _EPOCH.match(epoch):
            raise ReservoirError(f"invalid Debian version {text!r}: the epoch must be a number")
        upstream, hyphen, revision = rest.rpartition("-")
        if not hyphen:
            upstream, revision = rest, ""
        if not upstream or not upstream[0].isdigit() or not _UPSTREAM.match(upstream):
            raise ReservoirError(f"invalid Debian version {text!r}: the upstream version must start with a digit")
        if hyphen and (not revision or not _REVISION.match(revision)):
            raise ReservoirError(f"invalid Debian version {text!r}: malformed revision")
        self.epoch = int(epoch)
        self.upstream = upstream
        self.revision = revision

    def compare(self, other: DebianVersion) -> int:
        """-1, 0 or 1 as ``self`` sorts before, equal to or after ``other``."""
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return _compare_fragment(self.upstream, other.upstream) or _compare_fragment(self.revision, other.revision)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebianVersion) and self.compare(other) == 0

    def __lt__(self, other: DebianVersion) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:
        # Equal versions may be spelled differently ("1.0" and "0:1.0-0"), so only the epoch is hashed.
        return hash(self.epoch)

    def __repr__(self) -> str:
        return f"DebianVersion({self.text!r})"


def compare(a: str, b: str) -> int:
    """dpkg's ``--compare-versions`` as -1, 0 or 1."""
    return DebianVersion(a).compare(DebianVersion(b))
