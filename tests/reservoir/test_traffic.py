"""Usage statistics and traffic limits, through real pip and uv installs against a live reservoir."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cove.reservoir import tokens
from cove.reservoir.limits import Bucket, Limits, set_limits
from cove.reservoir.server import create_app
from cove.reservoir.stats import report
from cove.reservoir.store import Store
from cove.reservoir.traffic import RELOAD_LIMITS, TrafficConfig

from .conftest import LiveServer, client_env, uv_bin

FAST = TrafficConfig(flush_interval=0.1)


def _pip(pip_venv: Path, index: str, target: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(pip_venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--target",
            str(target),
            "--index-url",
            index,
            *packages,
        ],
        capture_output=True,
        text=True,
        env=client_env(),
    )


def _until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_downloads_are_counted_per_project_file_index_and_token(filled: Store, pip_venv: Path, tmp_path: Path) -> None:
    token = tokens.create(filled, "ci")
    with LiveServer(create_app(filled.layout.root, store=filled, traffic=FAST)) as live:
        host = live.url.removeprefix("http://")
        done = _pip(pip_venv, f"http://__token__:{token}@{host}/simple/", tmp_path / "a", "cove-demo-alpha")
        assert done.returncode == 0, done.stderr
        # uv, anonymous
        venv = tmp_path / "venv"
        subprocess.run([uv_bin(), "venv", "--python", sys.executable, str(venv)], check=True, env=client_env())
        done = subprocess.run(
            [
                uv_bin(),
                "pip",
                "install",
                "--python",
                str(venv / "bin" / "python"),
                "--cache-dir",
                str(tmp_path / "c"),
                "--index-url",
                f"{live.url}/simple/",
                "cove-demo-alpha",
            ],
            capture_output=True,
            text=True,
            env=client_env(),
        )
        assert done.returncode == 0, done.stderr

        def counted() -> bool:
            rows = report(filled.conn, by="project")["rows"]
            return {r["project"]: r["requests"] for r in rows} == {"cove-demo-alpha": 2, "cove-demo-beta": 2}

        _until(counted)
        by_token = {r["token"]: r["requests"] for r in report(filled.conn, by="token")["rows"]}
        assert by_token == {"ci": 2, "": 2}
        by_file = report(filled.conn, by="file")["rows"]
        alpha = next(r for r in by_file if r["file"].startswith("cove_demo_alpha"))
        assert alpha["bytes"] == 2 * (filled.get_file(alpha["file"]).size)  # type: ignore[union-attr]
        assert {r["index"] for r in report(filled.conn, by="index")["rows"]} == {"pypi"}
        pages = {r["project"]: r["requests"] for r in report(filled.conn, by="project", kind="page")["rows"]}
        assert pages["cove-demo-alpha"] >= 2

        # The API: token holders only.
        assert httpx.get(f"{live.url}/stats").status_code == 401
        api = httpx.get(f"{live.url}/stats?by=token", auth=("__token__", token))
        assert api.status_code == 200
        assert {r["token"] for r in api.json()["rows"]} == {"ci", ""} and api.json()["limits"]["active"] is False
        assert httpx.get(f"{live.url}/stats?by=nothing", auth=("__token__", token)).status_code == 400
        metrics = httpx.get(f"{live.url}/metrics").text
        assert 'cove_reservoir_requests_total{kind="file",index="pypi"} 4' in metrics

    cli = subprocess.run(
        [sys.executable, "-m", "cove.reservoir", "stats", "--by", "token", "--json", "--root", str(filled.layout.root)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert {r["token"]: r["requests"] for r in json.loads(cli.stdout)["rows"]} == {"ci": 2, "": 2}


def test_stats_off_counts_nothing(filled: Store, pip_venv: Path, tmp_path: Path) -> None:
    with LiveServer(create_app(filled.layout.root, store=filled, traffic=TrafficConfig(stats=False))) as live:
        assert _pip(pip_venv, f"{live.url}/simple/", tmp_path / "t", "cove-demo-alpha").returncode == 0
        assert "off" in httpx.get(f"{live.url}/metrics").text
    assert report(filled.conn)["rows"] == []


def test_request_limit_gives_429_with_retry_after(filled: Store, pip_venv: Path, tmp_path: Path) -> None:
    set_limits(filled, Limits(address_requests=2, burst=1))
    token = tokens.create(filled, "ci")
    with LiveServer(create_app(filled.layout.root, store=filled, traffic=FAST)) as live:
        answers = [httpx.get(f"{live.url}/simple/cove-demo-alpha/") for _ in range(4)]
        assert [a.status_code for a in answers[:2]] == [200, 200]
        refused = answers[-1]
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # A token is limited as itself, not by the address (no token limit set: unlimited).
        assert httpx.get(f"{live.url}/simple/cove-demo-alpha/", auth=("__token__", token)).status_code == 200
        # pip retries 429 and gets through at 2 requests/s.
        done = _pip(pip_venv, f"{live.url}/simple/", tmp_path / "t", "cove-demo-alpha")
        assert done.returncode == 0, done.stderr
        _until(lambda: report(filled.conn, kind="limited", by="index")["rows"] != [])
        limited = report(filled.conn, kind="limited", by="index")["rows"]
        assert limited[0]["index"] == "address" and limited[0]["requests"] >= 2
    shown = subprocess.run(
        [sys.executable, "-m", "cove.reservoir", "stats", "--root", str(filled.layout.root)],
        capture_output=True,
        text=True,
    )
    assert "per address: 2 req/s" in shown.stdout


def test_bytes_limit_slows_the_download(filled: Store, tmp_path: Path) -> None:
    record = max(filled.files(), key=lambda r: r.size)
    url_path = f"/files/{record.sha256}/{record.filename}"
    rate = record.size / 2  # the whole file takes about two seconds
    set_limits(filled, Limits(address_bytes=rate, burst=0.25))
    with LiveServer(create_app(filled.layout.root, store=filled, traffic=FAST)) as live:
        start = time.monotonic()
        body = httpx.get(live.url + url_path, timeout=60).content
        took = time.monotonic() - start
        assert len(body) == record.size
        # A quarter second's worth is free (the burst); the rest arrives at the limit.
        assert took >= 1.5, (record.size, took)
        stats_page = httpx.get(f"{live.url}/metrics").text
        assert "cove_reservoir_throttled_seconds_total 0.000" not in stats_page
        set_limits(filled, Limits())  # off again: picked up on the next reload
        time.sleep(RELOAD_LIMITS + 0.2)
        start = time.monotonic()
        httpx.get(live.url + url_path)  # the reload happens on this request
        assert time.monotonic() - start < 1.0


def test_limits_cli_and_validation(store: Store) -> None:
    root = str(store.layout.root)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cove.reservoir", "limits", *args, "--root", root], capture_output=True, text=True
        )

    done = cli("set", "--token-requests", "20/s", "--address-bytes", "10M", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["address_bytes"] == 10 * 1024 * 1024
    assert "per token: 20 req/s" in cli("show").stdout
    bad = cli("set", "--token-requests", "lots")
    assert bad.returncode == 1 and "invalid rate" in bad.stderr
    assert cli("off").returncode == 0 and "off" in cli("show").stdout
    with pytest.raises(Exception, match="must be a number >= 0"):
        Limits(token_requests=-1)


def test_bucket_arithmetic() -> None:
    bucket = Bucket(rate=10, capacity=2, now=0.0)
    assert bucket.try_take(1, 0.0) == 0 and bucket.try_take(1, 0.0) == 0
    assert bucket.try_take(1, 0.0) == pytest.approx(0.1)
    assert bucket.try_take(1, 0.1) == 0
    assert bucket.take(5, 0.1) == pytest.approx(0.5)
