"""Re-audit of deployed images: package manifests judged by today's advisories and license policy."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from cove.reservoir.deployed import audit_images, judge_manifest, rules_serial
from cove.reservoir.policy import import_vulndb, set_policy
from cove.reservoir.store import Store

ADVISORIES: dict[str, list[dict[str, Any]]] = {
    "PyPI": [
        {
            "id": "PYSEC-2099-10",
            "summary": "tiny before 2 leaks",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "Tiny_Pkg"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
                }
            ],
        }
    ],
    "Debian": [
        {
            "id": "DSA-9999-1",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": "openssl"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.99-1"}]}],
                }
            ],
        },
        {
            "id": "DSA-9999-2",  # another release's advisory: not for a bookworm image
            "affected": [{"package": {"ecosystem": "Debian:11", "name": "zlib"}, "versions": ["1:1.2.13.dfsg-1"]}],
        },
    ],
}

MANIFEST: dict[str, Any] = {
    "format": 1,
    "python_version": "3.11.2",
    "python": [
        {"name": "tiny-pkg", "version": "1.5", "license_expression": "MIT"},
        {"name": "tiny-pkg-fixed", "version": "1.0", "license_expression": "MIT"},
        {"name": "copyleft", "version": "0.1", "license": "GPL-3.0-only"},
        {"name": "mystery", "version": "1"},
        {"name": "classified", "version": "2", "classifiers": ["License :: OSI Approved :: MIT License"]},
    ],
    "debian": {
        "suite": "bookworm",
        "packages": [
            {
                "package": "libssl3",
                "version": "3.0.11-1~deb12u2",
                "architecture": "amd64",
                "source": "openssl",
                "source_version": "3.0.11-1~deb12u2",
            },
            {
                "package": "zlib1g",
                "version": "1:1.2.13.dfsg-1",
                "architecture": "amd64",
                "source": "zlib",
                "source_version": "1:1.2.13.dfsg-1",
            },
            {"package": "telnet", "version": "0.17+2.4-2", "architecture": "amd64", "source": "inetutils"},
        ],
    },
}


def _osv(path: Path, records: list[dict[str, Any]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for record in records:
            zf.writestr(f"{record['id']}.json", json.dumps(record))
    return path


def test_nothing_flagged_without_rules(store: Store) -> None:
    assert judge_manifest(store, MANIFEST) == []
    assert rules_serial(store) == 0


def test_advisories_and_policy_flag_installed_packages(store: Store, tmp_path: Path) -> None:
    import_vulndb(store, _osv(tmp_path / "pypi.zip", ADVISORIES["PyPI"]))
    import_vulndb(store, _osv(tmp_path / "debian.zip", ADVISORIES["Debian"]), ecosystem="Debian")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[licenses]\ndeny = ["GPL-3.0-only"]\nunknown = "quarantine"\n[block]\ndebian = ["telnet"]\n'
        "[age]\nminimum_days = 30\n"  # the age rule guards what enters, never what runs
    )
    serial = set_policy(store, policy)
    found = {(f.ecosystem, f.name): f for f in judge_manifest(store, MANIFEST)}
    assert set(found) == {
        ("PyPI", "tiny-pkg"),
        ("PyPI", "copyleft"),
        ("PyPI", "mystery"),
        ("Debian", "libssl3"),
        ("Debian", "telnet"),
    }
    assert found["PyPI", "tiny-pkg"].advisories == ("PYSEC-2099-10",)
    assert found["PyPI", "copyleft"].reasons == ("license GPL-3.0-only is denied (GPL-3.0-only)",)
    assert found["PyPI", "mystery"].reasons == ("license unknown (needs review)",)
    assert found["Debian", "libssl3"].advisories == ("DSA-9999-1",)
    assert found["Debian", "telnet"].reasons == ("blocked by rule 'telnet'",)
    assert rules_serial(store) == serial

    report = audit_images(
        store,
        [
            {"image_id": "a" * 64, "packages": MANIFEST, "deployments": [{"name": "web", "version": 3}]},
            {"image_id": "b" * 64, "packages": {"format": 1, "python": []}, "deployments": []},
            {"image_id": "c" * 64, "packages": None, "deployments": [{"name": "old", "version": 1}]},
        ],
    )
    assert [image["image_id"] for image in report["flagged"]] == ["a" * 64]
    assert report["flagged"][0]["deployments"] == [{"name": "web", "version": 3}]
    assert report["checked_images"] == 2 and report["unknown"][0]["image_id"] == "c" * 64
    assert report["rules_serial"] == serial and report["advisories"] == 3


def test_a_fixed_version_is_not_flagged(store: Store, tmp_path: Path) -> None:
    import_vulndb(store, _osv(tmp_path / "pypi.zip", ADVISORIES["PyPI"]))
    fixed = {"format": 1, "python": [{"name": "tiny-pkg", "version": "2.0", "license_expression": "MIT"}]}
    assert judge_manifest(store, fixed) == []
