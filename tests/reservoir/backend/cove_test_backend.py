"""A minimal PEP 517 build backend for the reservoir tests.

It lets the tests build real wheels and sdists with the ``build`` frontend
without any backend from an index (tests never leave the machine). It reads
``[project]`` from ``pyproject.toml`` and packs one module that records its
own version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import tomllib
import zipfile
from typing import Any


def _project() -> dict[str, Any]:
    with open("pyproject.toml", "rb") as fh:
        project: dict[str, Any] = tomllib.load(fh)["project"]
    return project


def _metadata(project: dict[str, Any]) -> str:
    lines = ["Metadata-Version: 2.4", f"Name: {project['name']}", f"Version: {project['version']}"]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if isinstance(project.get("license"), str):
        lines.append(f"License-Expression: {project['license']}")
    if project.get("license-text"):
        lines.append(f"License: {project['license-text']}")
    for classifier in project.get("classifiers", []):
        lines.append(f"Classifier: {classifier}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    for dep in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {dep}")
    return "\n".join(lines) + "\n\n"


def _module(project: dict[str, Any]) -> tuple[str, str]:
    module = project["name"].replace("-", "_").replace(".", "_").lower()
    return module, f"VERSION = {project['version']!r}\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    project = _project()
    dist = project["name"].replace("-", "_").replace(".", "_")
    version = project["version"]
    tag = project.get("wheel-tag", "py3-none-any")
    name = f"{dist}-{version}-{tag}.whl"
    module, code = _module(project)
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": code.encode(),
        f"{info}/METADATA": _metadata(project).encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: cove-test\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    padding = int(project.get("padding-bytes", 0))
    if padding:
        files[f"{module}/data.bin"] = os.urandom(padding)
    record = [_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return name


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    project = _project()
    dist = project["name"].replace("-", "_").replace(".", "_").lower()
    base = f"{dist}-{project['version']}"
    name = f"{base}.tar.gz"
    module, code = _module(project)
    with open("pyproject.toml", "rb") as fh:
        pyproject = fh.read()
    with open(__file__, "rb") as fh:
        backend = fh.read()
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tf:
        for path, data in {
            f"{base}/PKG-INFO": _metadata(project).encode(),
            f"{base}/{module}/__init__.py": code.encode(),
            f"{base}/pyproject.toml": pyproject,
            f"{base}/cove_test_backend.py": backend,
        }.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return name
