"""rpm's version order (``rpmvercmp``), which the RPM advisories match by: cases from rpm's own test suite."""

from __future__ import annotations

import pytest

from cove.reservoir.rpm.version import Evr, vercmp

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0.1", "2.0", 1),
        ("5.5p10", "5.5p1", 1),
        ("10xyz", "10.1xyz", -1),
        ("xyz10", "xyz10.1", -1),
        ("1.0010", "1.9", 1),
        ("1.05", "1.5", 0),
        ("2.0a", "2.0", 1),
        ("6.0.rc1", "6.0", 1),
        ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~rc1~git123", "1.0~rc1", -1),
        ("1.0^", "1.0", 1),
        ("1.0^git1", "1.01", -1),
        ("1.0^20160101", "1.0.1", -1),
        ("1.0~rc1^git1", "1.0~rc1", 1),
        ("a+", "a_", 0),
        ("+.", "+_", 0),
    ],
)
def test_vercmp_matches_rpm(a: str, b: str, expected: int) -> None:
    assert vercmp(a, b) == expected
    assert vercmp(b, a) == -expected


def test_epoch_wins_and_a_missing_release_matches_any() -> None:
    assert Evr.parse("1:1.0-1") > Evr.parse("2.0-1")
    assert Evr.parse("0:1.2.3-1") < Evr.parse("0:1.2.4-1.el9")
    assert Evr.parse("1.2.3") == Evr.parse("1.2.3-7")
    assert str(Evr.parse("2:1.0-3")) == "2:1.0-3"
