"""Benchmark the package reservoir: index-page throughput and latency, and real installs.

    uv run python bench/reservoir.py                 # real requirement set (fetched from PyPI once, cached)
    uv run python bench/reservoir.py --synthetic     # no network at all: generated wheels, no install timings

What it measures, all on this machine over loopback:

* requests/s and p50/p99 latency of one index page at concurrency 1 and 32,
  with a small keep-alive HTTP/1.1 load generator (bounded in requests and time);
* ``uv pip install`` and ``pip install`` of the requirement set from the index, cold caches;
* the same against peers serving the same files: pypiserver and devpi-server (installed once into a
  bench-only venv with ``uv venv`` + ``uv pip install``; devpi gets the files by upload into an index
  with no upstream, in offline mode) and nginx (the Debian package) serving a static PEP 503 copy
  rendered from the reservoir: the physical limit. A peer that cannot be set up is listed with the reason.

The only traffic off the machine is the one-time sync of the requirement set from PyPI and the
one-time install of the peers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from _wrk import wrk_get

REQUIREMENTS = ["numpy", "pandas", "scikit-learn", "fastapi", "uvicorn", "requests", "pydantic", "httpx", "rich"]
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
PLATFORM = "manylinux_2_28_x86_64"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                if s.recv(12).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


# -- load generator ----------------------------------------------------------------------------------------


async def _worker(
    port: int, path: str, headers: str, budget: list[int], deadline: float, latencies: list[float]
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            start = time.perf_counter()
            try:
                writer.write(request)
                close = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                close = True  # the server dropped a kept-alive connection: the request counts as not served
            else:
                latencies.append(time.perf_counter() - start)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> bool:
    """Read one response (content-length or chunked); True when the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:60]!r}")
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n"):
        lower = line.lower().replace(b" ", b"")
        if lower.startswith(b"content-length:"):
            length = int(lower[15:])
        elif lower == b"transfer-encoding:chunked":
            chunked = True
        elif lower == b"connection:close":
            close = True
    if chunked:  # devpi answers index pages in chunks
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(length)
    return close


async def _load(
    port: int, path: str, concurrency: int, requests: int, seconds: float, headers: str
) -> dict[str, float]:
    latencies: list[float] = []
    budget = [requests]
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_worker(port, path, headers, budget, deadline, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def load(port: int, path: str, concurrency: int, requests: int, seconds: float, accept: str = "") -> dict[str, float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    headers = f"Accept: {accept}\r\n" if accept else ""
    asyncio.run(_load(port, path, concurrency, min(200, requests), 2.0, headers))  # warm up
    return asyncio.run(_load(port, path, concurrency, requests, seconds, headers))


# -- data --------------------------------------------------------------------------------------------------


def real_store(cache: Path) -> Path | None:
    """A reservoir root holding the requirement set, synced from PyPI once and kept in ``cache``."""
    root = cache / "reservoir"
    marker = cache / "synced.json"
    if marker.exists():
        return root
    reqs = cache / "requirements.txt"
    cache.mkdir(parents=True, exist_ok=True)
    reqs.write_text("\n".join(REQUIREMENTS) + "\n")
    print(f"syncing the requirement set from PyPI into {root} (once) ...", flush=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cove.reservoir",
            "sync",
            "-r",
            str(reqs),
            "--python",
            PYTHON,
            "--platform",
            PLATFORM,
            "--index-url",
            "https://pypi.org/simple/",
            "--root",
            str(root),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        print(f"sync failed, falling back to synthetic data: {result.stderr.strip()[-300:]}")
        return None
    marker.write_text(result.stdout)
    return root


def synthetic_store(work: Path, files: int = 600) -> Path:
    """A store with one project of ``files`` small wheels (an index page the size of a busy project's)."""
    from cove.reservoir.store import Store

    store = Store(work / "synthetic")
    src = work / "wheels"
    src.mkdir()
    for i in range(files):
        version = f"1.{i // 20}.{i % 20}"
        name = f"numpy-{version}-py3-none-any.whl"
        with zipfile.ZipFile(src / name, "w") as zf:
            zf.writestr(
                f"numpy-{version}.dist-info/METADATA",
                f"Metadata-Version: 2.1\nName: numpy\nVersion: {version}\nRequires-Python: >=3.9\n\n",
            )
            zf.writestr("numpy/__init__.py", "")
        store.add_file(src / name, name, origin="bench")
    store.close()
    return Path(store.layout.root)


def static_tree(root: Path, out: Path) -> Path:
    """A static PEP 503 copy of the store for nginx and pypiserver (hard links, no extra space)."""
    from cove.reservoir.store import Store

    store = Store(root)
    for name, _display in store.projects():
        page = store.page(name)
        if page is None:
            continue
        folder = out / "simple" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_bytes(page[0])
    page = store.page("/")
    (out / "simple" / "index.html").write_bytes(page[0] if page else b"")
    flat = out / "packages"
    flat.mkdir(exist_ok=True)
    for record in store.files(status="active"):
        target = out / "files" / record.sha256
        target.mkdir(parents=True, exist_ok=True)
        for dest in (target / record.filename, flat / record.filename):
            if not dest.exists():
                try:
                    os.link(store.blobs.path(record.sha256), dest)
                except OSError:
                    shutil.copy(store.blobs.path(record.sha256), dest)
        if record.metadata_sha256:
            meta = target / f"{record.filename}.metadata"
            if not meta.exists():
                shutil.copy(store.blobs.path(record.metadata_sha256), meta)
    store.close()
    return out


# -- servers -----------------------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, prefix: str, check: str) -> None:
        self.name, self.cmd, self.port, self.prefix, self.check = name, cmd, port, prefix, check
        self.proc: subprocess.Popen[bytes] | None = None
        self.setup: list[list[str]] = []  # commands run before the server starts (and their undo after it)
        self.undo: list[list[str]] = []

    def __enter__(self) -> Server:
        for command in self.setup:
            subprocess.run(command, check=True, capture_output=True)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(self.port, self.check)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for command in self.undo:
            subprocess.run(command, check=True, capture_output=True)

    @property
    def index(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.simple}"

    @property
    def simple(self) -> str:
        """Path of the simple index; ``prefix`` is what comes before ``/simple/``."""
        return f"{self.prefix}/simple/"


PEERS = ["pypiserver[cache]", "waitress", "devpi-server", "devpi-client"]


def peers_venv(cache: Path) -> tuple[Path | None, str]:
    """A bench-only venv holding the Python peers (created once); ``(bin folder, why not)``."""
    import uv

    venv = cache / "peers"
    bindir = venv / "bin"
    if (bindir / "pypi-server").exists() and (bindir / "devpi-server").exists():
        return bindir, ""
    for cmd in (
        [uv.find_uv_bin(), "venv", "-q", "--python", sys.executable, str(venv)],
        [uv.find_uv_bin(), "pip", "install", "-q", "--python", str(bindir / "python"), *PEERS],
    ):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return None, f"could not install {', '.join(PEERS)}: {result.stderr.strip()[-200:]}"
    return bindir, ""


class Devpi(Server):
    """devpi-server in offline mode with one index (no bases) that the benchmark uploads the files into."""

    def __init__(self, bindir: Path, work: Path, packages: Path) -> None:
        port = free_port()
        self.bindir, self.serverdir, self.clientdir, self.packages = (
            bindir,
            work / "devpi",
            work / "devpi-client",
            packages,
        )
        cmd = [str(bindir / "devpi-server"), "--serverdir", str(self.serverdir), "--host", "127.0.0.1"]
        super().__init__("devpi-server", [*cmd, "--port", str(port), "--offline-mode"], port, "/bench/dev", "/+api")

    @property
    def simple(self) -> str:
        return f"{self.prefix}/+simple/"

    def __enter__(self) -> Server:
        init = [str(self.bindir / "devpi-init"), "--serverdir", str(self.serverdir), "--no-root-pypi"]
        subprocess.run(init, check=True, capture_output=True, timeout=120)
        super().__enter__()
        try:
            self._fill()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _fill(self) -> None:
        url = f"http://127.0.0.1:{self.port}"
        devpi = [str(self.bindir / "devpi"), "--clientdir", str(self.clientdir)]
        for args in (
            ["use", url],
            ["user", "-c", "bench", "password=bench"],
            ["login", "bench", "--password", "bench"],
            ["index", "-c", "dev", "bases=", "volatile=False"],
        ):
            subprocess.run([*devpi, *args], check=True, capture_output=True, timeout=120)
        files = sorted(str(f) for f in self.packages.iterdir())
        twine = [sys.executable, "-m", "twine", "upload", "--disable-progress-bar", "--non-interactive"]
        upload = [*twine, "--repository-url", f"{url}/bench/dev/", "-u", "bench", "-p", "bench", *files]
        subprocess.run(upload, check=True, capture_output=True, timeout=900)


def reservoir_variants(root: Path) -> list[Server]:
    """The reservoir as shipped (usage statistics on, no limits), with statistics off, and with limits on.

    The limits are set far above what the load reaches, so every request pays for the check and none is refused.
    """
    cli = [sys.executable, "-m", "cove.reservoir"]
    out = []
    for name, extra in (("cove-reservoir", []), ("  stats off", ["--no-stats"]), ("  limits on", [])):
        port = free_port()
        server = Server(name, [*cli, "serve", "--port", str(port), "--root", str(root), *extra], port, "", "/health")
        if name == "  limits on":
            server.setup = [[*cli, "limits", "set", "--address-requests", "1e9", "--address-bytes", "1T"]]
            server.setup[0] += ["--root", str(root)]
            server.undo = [[*cli, "limits", "off", "--root", str(root)]]
        out.append(server)
    return out


def servers(root: Path, tree: Path, work: Path, cache: Path) -> tuple[list[Server], list[str]]:
    found = reservoir_variants(root)
    skipped = []
    bindir, why = peers_venv(cache)
    if bindir is not None:
        p = free_port()
        cmd = [str(bindir / "pypi-server"), "run", "-p", str(p), "-i", "127.0.0.1", "-a", ".", "-P", "."]
        # "auto" picks waitress when it is installed, as pypiserver's docs recommend for real use.
        cmd += ["--server", "auto", "--backend", "cached-dir", str(tree / "packages")]
        found.append(Server("pypiserver", cmd, p, "", "/simple/"))
        found.append(Devpi(bindir, work, tree / "packages"))
    else:
        skipped += [f"pypiserver ({why})", f"devpi-server ({why})"]
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx:
        p = free_port()
        conf = work / "nginx.conf"
        # As root, nginx's workers would drop to "nobody", who cannot enter the private temp folder.
        user = "user root; " if os.geteuid() == 0 else ""
        conf.write_text(f"""{user}worker_processes auto; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; default_type application/octet-stream; sendfile on;
  client_body_temp_path {work}/nb; proxy_temp_path {work}/np; fastcgi_temp_path {work}/nf;
  uwsgi_temp_path {work}/nu; scgi_temp_path {work}/ns;
  server {{ listen 127.0.0.1:{p}; root {tree}; location /simple/ {{ default_type text/html; index index.html; }} }}
}}""")
        found.append(Server("nginx (static)", [nginx, "-c", str(conf), "-p", str(work)], p, "", "/simple/"))
    else:
        skipped.append("nginx (not installed)")
    return found, skipped


# -- installs ----------------------------------------------------------------------------------------------


def installs(index: str, work: Path, pip_python: Path) -> dict[str, float]:
    import uv

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        UV_NO_CONFIG="1", PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_PYTHON_DOWNLOADS="never"
    )
    times = {}
    for tool, cmd in (
        (
            "uv pip install",
            [
                uv.find_uv_bin(),
                "pip",
                "install",
                "--python",
                str(pip_python),
                "--no-cache",
                "--target",
                "{target}",
                "--index-url",
                index,
                *REQUIREMENTS,
            ],
        ),
        (
            "pip install",
            [
                str(pip_python),
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--target",
                "{target}",
                "--index-url",
                index,
                "--only-binary",
                ":all:",
                *REQUIREMENTS,
            ],
        ),
    ):
        target = Path(tempfile.mkdtemp(dir=work, prefix="target-"))
        start = time.perf_counter()
        result = subprocess.run(
            [c.replace("{target}", str(target)) for c in cmd], capture_output=True, text=True, env=env, timeout=600
        )
        times[tool] = time.perf_counter() - start
        if result.returncode != 0:
            print(f"  {tool} failed: {result.stderr.strip()[-400:]}")
            times[tool] = float("nan")
        shutil.rmtree(target, ignore_errors=True)
    return times


def print_table(results: dict[str, dict[str, object]]) -> None:
    """Side by side, and the ratios the issue sets targets for."""
    print()
    head = f"{'server':16s} {'c=1 req/s':>10s} {'p50':>6s} {'p99':>6s} {'c=32 req/s':>11s} {'p50':>6s} {'p99':>6s}"
    print(head + f" {'uv install':>11s} {'pip install':>12s}")
    for name, entry in results.items():
        c1, c32 = entry["c1"], entry["c32"]
        assert isinstance(c1, dict) and isinstance(c32, dict)
        inst = entry.get("install_s") or {}
        assert isinstance(inst, dict)
        uv_s, pip_s = inst.get("uv pip install", float("nan")), inst.get("pip install", float("nan"))
        print(
            f"{name:16s} {c1['rps']:10.0f} {c1['p50_ms']:6.2f} {c1['p99_ms']:6.2f} {c32['rps']:11.0f} "
            f"{c32['p50_ms']:6.2f} {c32['p99_ms']:6.2f} {uv_s:10.1f}s {pip_s:11.1f}s"
        )

    def rps(name: str) -> float:
        c32 = results.get(name, {}).get("c32")
        return float(c32["rps"]) if isinstance(c32, dict) else float("nan")

    ours = rps("cove-reservoir")
    if "  stats off" in results and "  limits on" in results:
        print(
            f"c=32 req/s, usage statistics on / off: {ours / rps('  stats off'):.3f}; "
            f"limits on / off: {rps('  limits on') / ours:.3f} (target >= 0.95)"
        )
    peers = [rps(n) for n in ("pypiserver", "devpi-server") if n in results]
    if peers:
        print(f"reservoir / best Python peer at c=32: {ours / max(peers):.1f}x (target >= 5x)")
    if "nginx (static)" in results:
        print(f"reservoir / static nginx at c=32: {ours / rps('nginx (static)'):.2f}x")
        ng = results["nginx (static)"].get("install_s") or {}
        me = results["cove-reservoir"].get("install_s") or {}
        assert isinstance(ng, dict) and isinstance(me, dict)
        for tool in ("uv pip install", "pip install"):
            if tool in ng and tool in me:
                print(
                    f"{tool}: reservoir {me[tool]:.1f}s vs nginx {ng[tool]:.1f}s "
                    f"({(me[tool] / ng[tool] - 1) * 100:+.0f}%; target within 10%)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="No network: generated wheels, no installs.")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cove-bench")
    parser.add_argument("--requests", type=int, default=30000, help="Most requests per measurement.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Longest time per measurement.")
    parser.add_argument("--no-install", action="store_true", help="Skip the install timings.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON at the end.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cove-bench-") as tmp:
        work = Path(tmp)
        root = None if args.synthetic else real_store(args.cache)
        real = root is not None
        if root is None:
            root = synthetic_store(work)
        tree = static_tree(root, work / "static")
        found, skipped = servers(root, tree, work, args.cache)
        pip_python = None
        if real and not args.no_install:
            subprocess.run([sys.executable, "-m", "venv", str(work / "pipvenv")], check=True)
            pip_python = work / "pipvenv" / "bin" / "python"
        results: dict[str, dict[str, object]] = {}
        page = "numpy/"
        print(
            f"index page .../simple/{page} ({'real' if real else 'synthetic'} data); load: keep-alive HTTP/1.1, "
            f"<= {args.requests} requests or {args.seconds:g}s per run"
        )
        for server in found:
            try:
                server.__enter__()
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                skipped.append(f"{server.name} (could not be started: {str(exc)[:200]})")
                continue
            try:
                entry: dict[str, object] = {}
                for conc in (1, 32):
                    r = load(server.port, server.simple + page, conc, args.requests, args.seconds)
                    entry[f"c{conc}"] = r
                    print(
                        f"  {server.name:16s} c={conc:<3d} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                        f"p99 {r['p99_ms']:6.2f} ms  ({int(r['requests'])} requests)",
                        flush=True,
                    )
                if server.name.startswith(("cove-reservoir", "  ")):
                    print(f"  {'':16s} " + wrk_get(f"http://127.0.0.1:{server.port}{server.simple}{page}", 32, 5))
                if server.name == "cove-reservoir":
                    r = load(
                        server.port,
                        server.simple + page,
                        32,
                        args.requests,
                        args.seconds,
                        accept="application/vnd.pypi.simple.v1+json",
                    )
                    entry["c32_json"] = r
                    print(
                        f"  {'  (PEP 691 JSON)':16s} c=32  {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                        f"p99 {r['p99_ms']:6.2f} ms",
                        flush=True,
                    )
                if pip_python is not None and not server.name.startswith("  "):
                    entry["install_s"] = t = installs(server.index, work, pip_python)
                    print("  " + "  ".join(f"{k}: {v:.1f} s" for k, v in t.items()), flush=True)
                results[server.name] = entry
            finally:
                server.__exit__()
        if not real or args.no_install:
            print("install timings: skipped (" + ("synthetic data" if not real else "--no-install") + ")")
        print_table(results)
        print("skipped peers: " + (", ".join(skipped) or "none"))
        if args.json:
            print(json.dumps({"results": results, "skipped": skipped}, indent=2))


if __name__ == "__main__":
    main()
