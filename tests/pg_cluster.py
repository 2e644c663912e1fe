"""A throwaway PostgreSQL for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder, unix socket only.

``postgres`` starts one cluster per test session (as the ``postgres`` user when
the tests run as root: the server refuses to run as root) and removes it at
the end; ``pg_url`` gives each test a fresh database; ``store_url`` runs a
store test once on SQLite and once on PostgreSQL. Without PostgreSQL's server
binaries the PostgreSQL cases are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest


def _bin_dir() -> Path | None:
    """Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclasses.dataclass
class PgCluster:
    """A running PostgreSQL reachable only through the unix socket in ``socket_dir``."""

    bin_dir: Path
    root: Path
    run_as: list[str]

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        async def run() -> None:
            conn = await asyncpg.connect(host=str(self.socket_dir), user="postgres", database=database)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def create_database(self) -> str:
        name = "t_" + secrets.token_hex(6)
        self.execute(f"CREATE DATABASE {name}")
        return name

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), *args],
            check=True,
            capture_output=True,
        )


def start_cluster() -> PgCluster:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="cove-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    cluster = PgCluster(bin_dir, root, run_as)
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses='' -c unix_socket_directories={root} -c max_connections=200 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    cluster.pg_ctl("-l", str(root / "server.log"), "-w", "-o", options, "start")
    return cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        try:
            cluster.pg_ctl("-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: PgCluster) -> str:
    """A fresh, empty database of the session's PostgreSQL."""
    return postgres.url(postgres.create_database())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL: the test runs once on SQLite and once on PostgreSQL (a server: that run is e2e)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cove.db'}"
    cluster: PgCluster = request.getfixturevalue("postgres")
    return cluster.url(cluster.create_database())
