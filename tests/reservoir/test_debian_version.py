"""dpkg version ordering, checked against the Debian policy's rules and against dpkg itself."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cove.reservoir.debian.version import DebianVersion, compare
from cove.reservoir.errors import ReservoirError

# Each pair is strictly increasing under dpkg's rules.
ASCENDING = [
    ("1.0~rc1", "1.0"),  # a tilde sorts before the end of the string
    ("1.0~~", "1.0~"),
    ("1.0~", "1.0"),
    ("1.0", "1.0a"),  # the end sorts before a letter
    ("1.0a", "1.0+"),  # letters sort before other characters
    ("1.0+", "1.0."),  # non-letters by ASCII
    ("1.0", "1.0.1"),
    ("1.9", "1.10"),  # digit runs compare as numbers
    ("1.0-1", "1.0-2"),
    ("1.0-9", "1.0-10"),
    ("2.36-9", "2.36-9+deb12u4"),
    ("2.36-9+deb12u3", "2.36-9+deb12u4"),
    ("2.36-9+deb12u4", "2.37-1"),
    ("9.9-9", "1:0.1-1"),  # an epoch outweighs everything
    ("1:2.0", "2:1.0"),
    ("1.2.3-1ubuntu1", "1.2.3-1ubuntu2"),
    ("0.0.0", "0.0.0.0"),
    ("1.0-1~bpo12+1", "1.0-1"),
    ("1a", "1b"),
]

EQUAL = [
    ("1.0", "0:1.0"),  # a missing epoch is 0
    ("1.0", "1.0-0"),  # a missing revision equals revision 0
    ("1.01", "1.1"),  # leading zeros do not count
    ("1.0-1", "0:1.0-1"),
]


@pytest.mark.parametrize(("low", "high"), ASCENDING)
def test_ascending_pairs(low: str, high: str) -> None:
    assert compare(low, high) == -1
    assert compare(high, low) == 1
    assert DebianVersion(low) < DebianVersion(high)


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_spellings(a: str, b: str) -> None:
    assert compare(a, b) == 0
    assert DebianVersion(a) == DebianVersion(b)
    assert hash(DebianVersion(a)) == hash(DebianVersion(b))


def test_parts_and_upstream_hyphens() -> None:
    v = DebianVersion("2:1.2-rc3-4ubuntu1")
    assert (v.epoch, v.upstream, v.revision) == (2, "1.2-rc3", "4ubuntu1")  # the revision follows the last hyphen
    assert sorted(["1.0", "1.0~rc1", "1:0.5", "1.0-1", "0.9"], key=DebianVersion) == [
        "0.9",
        "1.0~rc1",
        "1.0",
        "1.0-1",
        "1:0.5",
    ]


@pytest.mark.parametrize("bad", ["", "abc", "x:1.0", "1.0-", "-1", "1.0-r$v", "1.0_1"])
def test_invalid_versions_are_refused(bad: str) -> None:
    with pytest.raises(ReservoirError):
        DebianVersion(bad)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_agrees_with_dpkg() -> None:
    """The same answers as ``dpkg --compare-versions`` for every pair of a mixed list."""
    versions = ["1.0~rc1", "1.0", "1.0-1", "1.0a", "1.0+b1", "1:0.1", "1.10", "1.9", "2.36-9+deb12u4", "0.0.0.0"]
    for a in versions:
        for b in versions:
            lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
            eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
            expected = -1 if lt else (0 if eq else 1)
            assert compare(a, b) == expected, (a, b)
