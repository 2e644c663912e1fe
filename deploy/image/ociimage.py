#!/usr/bin/env python3
"""Write an OCI image-layout tarball (what ``ctr images import`` and ``skopeo copy oci-archive:`` read) from
uncompressed layer tarballs, with no container engine.

    ociimage.py OUT.tar NAME:TAG --layer L1.tar [--layer L2.tar ...] [--file SRC:DEST ...]
                [--entrypoint JSON] [--env K=V ...] [--user UID] [--workdir DIR]

``--file`` adds a layer holding single files (e.g. the static pause binary). Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

CHUNK = 1 << 20


def _digest_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return "sha256:" + h.hexdigest(), path.stat().st_size


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def files_layer(files: Sequence[tuple[Path, str]], out: Path) -> Path:
    """A layer tarball holding ``src`` at ``dest`` for each pair, owned by root, mode kept."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for src, dest in files:
            info = tar.gettarinfo(str(src), dest.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with src.open("rb") as fh:
                tar.addfile(info, fh)
    return out


def normalize(ref: str) -> str:
    """The name Kubernetes and containerd give ``ref``: ``cove:1`` is ``docker.io/library/cove:1``."""
    first = ref.split("/")[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return ("docker.io/" if "/" in ref else "docker.io/library/") + ref


def write_image(
    out: Path,
    ref: str,
    layers: Sequence[Path],
    entrypoint: list[str] | None = None,
    env: Sequence[str] = (),
    user: str = "",
    workdir: str = "",
) -> str:
    """Write the image; returns its manifest digest."""
    layer_info = [_digest_file(p) for p in layers]
    config: dict[str, object] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *env],
    }
    if entrypoint:
        config["Entrypoint"] = entrypoint
    if user:
        config["User"] = user
    if workdir:
        config["WorkingDir"] = workdir
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layer_info]},
        "history": [{"created_by": "deploy/image/ociimage.py"} for _ in layers],
    }
    cfgb = json.dumps(cfg, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(cfgb), "size": len(cfgb)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n} for d, n in layer_info
        ],
    }
    manb = json.dumps(manifest, separators=(",", ":")).encode()
    name = normalize(ref)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": _digest(manb),
                "size": len(manb),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                },
            }
        ],
    }
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w") as tar:

        def add_bytes(arc: str, data: bytes) -> None:
            info = tarfile.TarInfo(arc)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_bytes("index.json", json.dumps(index).encode())
        add_bytes("blobs/sha256/" + _digest(cfgb)[7:], cfgb)
        add_bytes("blobs/sha256/" + _digest(manb)[7:], manb)
        seen = set()
        for path, (digest, _) in zip(layers, layer_info, strict=True):
            if digest not in seen:
                seen.add(digest)
                tar.add(str(path), "blobs/sha256/" + digest[7:])
    os.replace(tmp, out)
    return _digest(manb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("ref")
    parser.add_argument("--layer", action="append", type=Path, default=[])
    parser.add_argument("--file", action="append", default=[], help="SRC:DEST")
    parser.add_argument("--entrypoint", type=json.loads)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--user", default="")
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    layers = list(args.layer)
    with tempfile.TemporaryDirectory() as tmp:
        if args.file:
            pairs = [(Path(s), d) for s, d in (f.split(":", 1) for f in args.file)]
            layers.append(files_layer(pairs, Path(tmp) / "files.tar"))
        digest = write_image(args.out, args.ref, layers, args.entrypoint, args.env, args.user, args.workdir)
    print(args.out, args.ref, digest)


if __name__ == "__main__":
    main()
