"""The package manifest of an image, read from installed metadata and dpkg's status file only."""

from __future__ import annotations

import json
from pathlib import Path

from cove.images import MARKER, PACKAGES_FILE, packages_of
from cove.images._packages import collect, debian_packages, parse_dpkg_status

STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit
 a continuation line: Version: 9.9

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib (1:1.2.13.dfsg-1)
Version: 1:1.2.13.dfsg-1+b1

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def _dist(env: Path, name: str, version: str, extra: str = "") -> None:
    info = env / "lib" / "python3.11" / "site-packages" / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{extra}\nREADME body\n")


def test_dpkg_status_lists_installed_packages_with_their_source() -> None:
    packages = parse_dpkg_status(STATUS)
    assert packages == [
        {
            "package": "libssl3",
            "version": "3.0.11-1~deb12u2",
            "architecture": "amd64",
            "source": "openssl",
            "source_version": "3.0.11-1~deb12u2",
        },
        {
            "package": "zlib1g",
            "version": "1:1.2.13.dfsg-1+b1",
            "architecture": "amd64",
            "source": "zlib",
            "source_version": "1:1.2.13.dfsg-1",  # a binNMU: advisories name the source's version
        },
    ]


def test_the_topmost_layer_with_a_status_file_wins(tmp_path: Path) -> None:
    base, layer, empty = tmp_path / "base", tmp_path / "layer", tmp_path / "empty"
    for root, text in ((base, "Package: old\nStatus: install ok installed\nVersion: 1\n"), (layer, STATUS)):
        (root / "var/lib/dpkg").mkdir(parents=True)
        (root / "var/lib/dpkg/status").write_text(text)
    empty.mkdir()
    assert [p["package"] for p in debian_packages([empty, layer, base]) or []] == ["libssl3", "zlib1g"]
    assert [p["package"] for p in debian_packages([empty, base]) or []] == ["old"]
    assert debian_packages([empty]) is None


def test_manifest_of_an_environment_and_its_root(tmp_path: Path) -> None:
    env = tmp_path / "env"
    _dist(env, "tiny-pkg", "1.5", "License-Expression: MIT")
    _dist(
        env,
        "old-style",
        "0.2",
        "License: BSD\nClassifier: License :: OSI Approved :: BSD License\nClassifier: Topic :: X",
    )
    broken = env / "lib" / "python3.11" / "site-packages" / "broken-1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\n")  # no version: left out
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    manifest = collect(env, "3.11.2", [root], "bookworm")
    assert manifest["python"] == [
        {
            "name": "old-style",
            "version": "0.2",
            "license": "BSD",
            "classifiers": ["License :: OSI Approved :: BSD License"],
        },
        {"name": "tiny-pkg", "version": "1.5", "license_expression": "MIT"},
    ]
    assert manifest["debian"]["suite"] == "bookworm" and len(manifest["debian"]["packages"]) == 2
    assert "debian" not in collect(env, "3.11.2")


def test_stored_manifest_is_read_back_and_old_images_get_one(tmp_path: Path) -> None:
    image = tmp_path / "image"
    _dist(image, "tiny-pkg", "1.5")
    (image / MARKER).write_text(json.dumps({"id": "x", "python_version": "3.11.2"}))
    computed = packages_of(image)  # built before manifests were stored: read from its metadata now
    assert computed is not None and [p["name"] for p in computed["python"]] == ["tiny-pkg"]
    (image / PACKAGES_FILE).write_text(json.dumps({"format": 1, "python_version": "3.11.2", "python": []}))
    assert packages_of(image) == {"format": 1, "python_version": "3.11.2", "python": []}
    assert packages_of(tmp_path / "missing") is None
