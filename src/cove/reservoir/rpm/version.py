"""RPM version ordering: ``rpmvercmp`` and epoch:version-release comparison.

RPM compares versions segment by segment (runs of digits numerically, runs of
letters as strings, a digit run newer than a letter run), with ``~`` sorting
before anything (pre-releases: ``1.0~rc1`` < ``1.0``) and ``^`` after the
version it follows but before the next one (snapshots). The advisories of
RPM distributions (OSV ``Red Hat``, ``AlmaLinux``, ``Rocky Linux``, ``SUSE``...)
are matched with this order, since their versions are not PEP 440.
"""

from __future__ import annotations

import dataclasses
import functools

from ..errors import ReservoirError

_DIGITS = frozenset("0123456789")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") | _DIGITS


def vercmp(a: str, b: str) -> int:
    """``rpmvercmp``: -1, 0 or 1 as ``a`` is older than, the same as or newer than ``b``."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and a[i] not in _ALNUM and a[i] not in "~^":
            i += 1
        while j < len(b) and b[j] not in _ALNUM and b[j] not in "~^":
            j += 1
        ca, cb = a[i : i + 1], b[j : j + 1]
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not ca or not cb:
            break
        kind = _DIGITS if ca in _DIGITS else _ALNUM - _DIGITS
        si, sj = i, j
        while i < len(a) and a[i] in kind:
            i += 1
        while j < len(b) and b[j] in kind:
            j += 1
        one, two = a[si:i], b[sj:j]
        if not two:
            return 1 if kind is _DIGITS else -1  # a digit run is newer than a letter run
        if kind is _DIGITS:
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return 1 if len(one) > len(two) else -1
        if one != two:
            return 1 if one > two else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class Evr:
    """An epoch, version and release, ordered the way rpm orders installed packages."""

    epoch: int
    version: str
    release: str = ""

    @classmethod
    def parse(cls, text: str) -> Evr:
        """``[epoch:]version[-release]``, the form advisories and ``rpm -q`` print."""
        text = text.strip()
        epoch = 0
        if ":" in text:
            head, text = text.split(":", 1)
            if not head.isdigit():
                raise ReservoirError(f"invalid RPM epoch in {text!r}")
            epoch = int(head)
        version, _, release = text.rpartition("-") if "-" in text else (text, "", "")
        if not version:
            raise ReservoirError(f"invalid RPM version {text!r}")
        return cls(epoch, version, release)

    def compare(self, other: Evr) -> int:
        if self.epoch != other.epoch:
            return 1 if self.epoch > other.epoch else -1
        return vercmp(self.version, other.version) or (
            vercmp(self.release, other.release) if self.release and other.release else 0
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Evr):
            return NotImplemented
        return self.compare(other) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Evr):
            return NotImplemented
        return self.compare(other) == 0

    def __hash__(self) -> int:
        return hash(self.epoch)

    def __str__(self) -> str:
        text = f"{self.epoch}:{self.version}" if self.epoch else self.version
        return f"{text}-{self.release}" if self.release else text
