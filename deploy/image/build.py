#!/usr/bin/env python3
"""Build Cove's image (and the trial PostgreSQL image) as OCI tarballs, offline from any container engine.

What ``deploy/image/Containerfile`` does for registries, done with debootstrap, uv and ``ociimage.py``:

- a Debian 12 base layer (debootstrap minbase: Python 3.11, crun, iproute2, nftables, PostgreSQL 15), cached
  in ``$COVE_K8S_CACHE/image-base-<key>.tar`` (the key hashes the package list);
- Cove's layer: the wheel built from this checkout with the locked dependencies (``uv export --frozen``,
  extras ``server`` and ``kubernetes``) in a relocatable venv at ``/opt/cove``, and the native front compiled
  static into its package (``cove server --native-front`` needs no compiler there);
- ``cove:TAG`` = base + Cove's layer; ``cove-postgres:15`` = base + an entrypoint that honours ``POSTGRES_USER``,
  ``POSTGRES_PASSWORD``, ``POSTGRES_DB`` and ``PGDATA`` as the official image does, running as uid 999.

    sudo deploy/image/build.py [--out DIR] [--tag TAG]

Run as root on Debian 12 (debootstrap, chroot). Load the results with ``ctr -n k8s.io images import FILE``.
Prints one line per image: the tarball and its name.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from ociimage import write_image  # noqa: E402

SUITE = "bookworm"
MIRROR = os.environ.get("COVE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = [
    "python3",
    "ca-certificates",
    "crun",
    "iproute2",
    "nftables",
    "postgresql-15",
]
PG_UID = 999
PYTHON = "/usr/bin/python3.11"  # Debian 12's; the venv at /opt/cove links to it

PG_ENTRYPOINT = r"""#!/bin/sh
# The trial database: initialise PGDATA once from POSTGRES_USER/PASSWORD/DB (as the official image does), then run
# PostgreSQL in the foreground. Runs as uid 999 (the image's postgres user).
set -eu
export PATH=/usr/lib/postgresql/15/bin:$PATH
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is required" >&2; exit 1; }
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pw=$(mktemp) && printf '%s' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" -A scram-sha-256 --auth-local=trust -E UTF8 >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >/dev/null
    createdb -h /tmp -U "$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "initialised $PGDATA for $POSTGRES_USER/$POSTGRES_DB"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
"""


def run(*cmd: str, **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def uv() -> str:
    for cand in (shutil.which("uv"), str(ROOT / ".venv/bin/uv"), str(ROOT / ".tools/bin/uv")):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("uv not found: run `make` once (it installs uv) or put uv on PATH")


def tar_dir(src: Path, out: Path) -> Path:
    """An uncompressed, reproducible layer of everything under src (numeric owners kept)."""
    tmp = out.with_name(out.name + ".part")
    run("tar", "-C", str(src), "--numeric-owner", "--sort=name", "--mtime=@0", "--xattrs", "-cf", str(tmp), ".")
    os.replace(tmp, out)
    return out


def base_layer(cache: Path) -> Path:
    key = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)} pg{PG_UID} v1".encode()).hexdigest()[:12]
    out = cache / f"image-base-{key}.tar"
    if out.exists():
        return out
    if not shutil.which("debootstrap"):
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap")
    with tempfile.TemporaryDirectory(dir=cache, prefix="base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        t0 = time.monotonic()
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            MIRROR,
            stdout=subprocess.DEVNULL,
        )
        # The postgres user gets uid/gid 999, as the official image's (the chart runs the database as 999).
        old_uid = int(subprocess.check_output(["chroot", str(rootfs), "id", "-u", "postgres"]).decode())
        old_gid = int(subprocess.check_output(["chroot", str(rootfs), "id", "-g", "postgres"]).decode())
        run("chroot", str(rootfs), "groupmod", "-g", str(PG_UID), "postgres")
        run("chroot", str(rootfs), "usermod", "-u", str(PG_UID), "-g", str(PG_UID), "postgres")
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if st.st_uid == old_uid or st.st_gid == old_gid:
                    os.lchown(
                        path,
                        PG_UID if st.st_uid == old_uid else st.st_uid,
                        PG_UID if st.st_gid == old_gid else st.st_gid,
                    )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for child in (rootfs / junk).glob("*"):
                if child.is_file():
                    child.unlink()
        print(f"debootstrap {SUITE}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        tar_dir(rootfs, out)
    return out


def cove_layer(cache: Path, work: Path) -> Path:
    stage = work / "cove"
    dist = work / "dist"
    run(uv(), "build", "--wheel", "--out-dir", str(dist), str(ROOT), stdout=subprocess.DEVNULL)
    wheel = next(dist.glob("cove-*.whl"))
    reqs = work / "requirements.txt"
    run(
        uv(),
        "export",
        "--project",
        str(ROOT),
        "--frozen",
        "--no-dev",
        "--extra",
        "server",
        "--extra",
        "kubernetes",
        "--no-emit-project",
        "--no-hashes",
        "-o",
        str(reqs),
        stdout=subprocess.DEVNULL,
    )
    venv = stage / "opt/cove"
    run(uv(), "venv", "--relocatable", "--python", PYTHON, str(venv), stdout=subprocess.DEVNULL)
    py = str(venv / "bin/python")
    run(uv(), "pip", "install", "--python", py, "--no-deps", "-r", str(reqs), stdout=subprocess.DEVNULL)
    run(uv(), "pip", "install", "--python", py, "--no-deps", str(wheel), stdout=subprocess.DEVNULL)
    # The native front (``cove server --native-front``), prebuilt static: the image has no compiler.
    native = next(venv.glob("lib/python3*/site-packages/cove/_native"))
    run(str(ROOT / ".venv/bin/python"), "-m", "cove.server._front", str(native), stdout=subprocess.DEVNULL)
    (stage / "usr/local/bin").mkdir(parents=True)
    for name in ("cove", "uv"):
        (stage / "usr/local/bin" / name).symlink_to(f"/opt/cove/bin/{name}")
    return tar_dir(stage, work / "cove-layer.tar")


def pg_layer(work: Path) -> Path:
    stage = work / "pg"
    bin_dir = stage / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    entry = bin_dir / "cove-postgres-entrypoint"
    entry.write_text(PG_ENTRYPOINT)
    entry.chmod(0o755)
    return tar_dir(stage, work / "pg-layer.tar")


def main() -> None:
    parser = argparse.ArgumentParser(description="Build cove:TAG and cove-postgres:15 as OCI tarballs.")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("COVE_K8S_CACHE", "/var/tmp/cove-k8s")))
    parser.add_argument("--tag", default="0.1.0")
    parser.add_argument("--only", choices=["cove", "postgres"], help="build one of the two")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (debootstrap, chroot)")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    base = base_layer(args.out)
    with tempfile.TemporaryDirectory(dir=args.out, prefix="image-") as tmp:
        work = Path(tmp)
        if args.only != "postgres":
            out = args.out / f"cove-{args.tag}.oci.tar"
            write_image(
                out,
                f"cove:{args.tag}",
                [base, cove_layer(args.out, work)],
                env=["PYTHONUNBUFFERED=1"],
            )
            print(out, f"docker.io/library/cove:{args.tag}")
        if args.only != "cove":
            out = args.out / "cove-postgres-15.oci.tar"
            write_image(
                out,
                "cove-postgres:15",
                [base, pg_layer(work)],
                entrypoint=["/usr/local/bin/cove-postgres-entrypoint"],
                user=str(PG_UID),
                env=["PGDATA=/var/lib/postgresql/data"],
            )
            print(out, "docker.io/library/cove-postgres:15")
    print(f"images built in {time.monotonic() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
