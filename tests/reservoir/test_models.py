"""Model repositories: the real ``huggingface_hub`` client against the reservoir over loopback.

The client runs in its own process with ``HF_ENDPOINT`` set to the reservoir
(its settings are read at import), an empty ``HF_HOME`` and no token.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.reservoir import keys, tokens
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.errors import BundleError, ReservoirError
from cove.reservoir.models import card, ingest, records
from cove.reservoir.models.names import COMMIT
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer

BIG = 101 * 1024 * 1024  # over 100 MiB: an LFS-style file on the Hub

# What every client script starts with: the imports, a folder's digests, and a download's outcome by error type.
CLIENT_HELPERS = r"""
import hashlib, json, os, sys
from pathlib import Path
import huggingface_hub as hf
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

def digests(folder):
    root = Path(folder)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".cache" not in p.parts}

def attempt(fn):
    try:
        fn()
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        return type(exc).__name__
    except Exception as exc:
        return "other:" + type(exc).__name__ + ":" + str(exc)[:300]
    return "ok"
"""

CLIENT = (
    CLIENT_HELPERS
    + r"""
args = json.loads(sys.argv[1])
out = {}
for name, call in args["calls"]:
    if name == "snapshot":
        path = hf.snapshot_download(call["repo"], revision=call.get("revision"))
        out[call["key"]] = {"path": path, "files": digests(path)}
    elif name == "file":
        path = hf.hf_hub_download(call["repo"], call["filename"], revision=call.get("revision"))
        out[call["key"]] = {"path": path, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
    elif name == "error":
        if "filename" in call:
            fn = lambda: hf.hf_hub_download(call["repo"], call["filename"], revision=call.get("revision"))
        else:
            fn = lambda: hf.snapshot_download(call["repo"], revision=call.get("revision"))
        out[call["key"]] = attempt(fn)
print(json.dumps(out))
"""
)


def hub_client(url: str, home: Path, *calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Run ``huggingface_hub`` in a fresh process against ``url``; return what each call gave."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, json.dumps({"calls": list(calls)})],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_repo(folder: Path, *, license: str = "apache-2.0", big: int = BIG, seed: bytes = b"a") -> dict[str, str]:
    """A small model repository: config, tokenizer, card, a nested file and one large safetensors file."""
    folder.mkdir(parents=True)
    files = {
        "config.json": json.dumps({"model_type": "test", "hidden_size": 8, "seed": seed.decode()}).encode(),
        "tokenizer.json": b'{"version": "1.0"}' + seed,
        "README.md": f"---\nlicense: {license}\ntags:\n- test\n---\n# A test model\n".encode(),
        "sub/extra.bin": os.urandom(4096),
    }
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    digest = {rel: _sha(data) for rel, data in files.items()}
    big_hash = hashlib.sha256()
    with (folder / "model.safetensors").open("wb") as fh:
        block = os.urandom(1024 * 1024)
        for index in range(big // len(block) + 1):
            chunk = block[: min(len(block), big - index * len(block))] if index * len(block) < big else b""
            fh.write(chunk)
            big_hash.update(chunk)
    digest["model.safetensors"] = big_hash.hexdigest()
    return digest


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    return folder, make_repo(folder)


def _cli(root: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "cove.reservoir", *args, "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_card_license() -> None:
    assert card.card_license("---\nlicense: apache-2.0\n---\n") == "Apache-2.0"
    assert card.card_license("---\nlanguage: en\nlicense:\n  - mit\n  - cc-by-4.0\n---\n") == "MIT AND cc-by-4.0"
    assert card.card_license("---\nlicense: other\nlicense_name: acme-1\n---\n") == "LicenseRef-acme-1"
    assert card.card_license("# no front matter\nlicense: mit\n") is None
    assert card.card_license("---\nlicense: 'mit'  # quoted\n---\n") == "MIT"


def test_names_are_checked(store: Store, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("x")
    for bad in ("noslash", "../etc", "a/b/c", "a/..", "-a/b"):
        with pytest.raises(ReservoirError, match="invalid model repository"):
            ingest.add_folder(store, bad, tmp_path / "m")
    for bad in ("", "..", "a..b", "0" * 40):
        with pytest.raises(ReservoirError):
            ingest.add_folder(store, "org/name", tmp_path / "m", revision=bad)
    (tmp_path / "m" / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ReservoirError, match="symlinked folder"):
        ingest.add_folder(store, "org/name", tmp_path / "m")


def test_snapshot_and_file_downloads(
    store: Store, served: LiveServer, repo_dir: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, digests = repo_dir
    added = _cli(store.layout.root, "model", "add", "acme/tiny", str(folder), "--revision", "main")
    assert added["added"] and added["files"] == 5 and added["license"] == "Apache-2.0"
    commit = added["commit"]
    assert COMMIT.match(commit)
    again = _cli(store.layout.root, "model", "add", "acme/tiny", str(folder), "--revision", "main")
    assert not again["added"] and again["commit"] == commit and again["new_bytes"] == 0

    got = hub_client(
        served.url,
        tmp_path / "hf",
        ("snapshot", {"key": "snap", "repo": "acme/tiny"}),
        ("snapshot", {"key": "pinned", "repo": "acme/tiny", "revision": commit}),
        ("file", {"key": "big", "repo": "acme/tiny", "filename": "model.safetensors"}),
        ("file", {"key": "nested", "repo": "acme/tiny", "filename": "sub/extra.bin", "revision": commit}),
        ("error", {"key": "no_repo", "repo": "acme/missing"}),
        ("error", {"key": "no_rev", "repo": "acme/tiny", "revision": "v9"}),
        ("error", {"key": "no_file", "repo": "acme/tiny", "filename": "missing.json"}),
        ("error", {"key": "no_rev_file", "repo": "acme/tiny", "filename": "config.json", "revision": "v9"}),
    )
    assert got["snap"]["files"] == digests  # byte-identical, every file
    assert got["snap"]["path"].endswith(f"/snapshots/{commit}")
    assert got["pinned"]["files"] == digests
    assert got["big"]["sha256"] == digests["model.safetensors"]
    assert got["nested"]["sha256"] == digests["sub/extra.bin"]
    assert got["no_repo"] == "RepositoryNotFoundError"
    assert got["no_rev"] == "RevisionNotFoundError"
    assert got["no_file"] in ("EntryNotFoundError", "RemoteEntryNotFoundError")
    assert got["no_rev_file"] == "RevisionNotFoundError"
    # The client's cache keeps the large file under its sha256, as it does for the Hub's LFS files.
    blobs = Path(got["big"]["path"]).resolve()
    assert blobs.name == digests["model.safetensors"]


def test_resolve_headers_ranges_and_traversal(
    store: Store, served: LiveServer, repo_dir: tuple[Path, dict[str, str]]
) -> None:
    folder, digests = repo_dir
    commit = ingest.add_folder(store, "acme/tiny", folder).commit
    with httpx.Client(base_url=served.url) as client:
        moved = client.head("/acme/tiny/resolve/main/sub/extra.bin")
        assert moved.status_code == 307
        assert moved.headers["location"] == f"../../{commit}/sub/extra.bin"
        assert moved.headers["x-repo-commit"] == commit
        small = client.head(f"/acme/tiny/resolve/{commit}/config.json")
        assert small.status_code == 200 and small.headers["x-repo-commit"] == commit
        config = (folder / "config.json").read_bytes()
        assert small.headers["etag"] == f'"{records.git_blob_id(config)}"' and "x-linked-etag" not in small.headers
        big = client.head(f"/acme/tiny/resolve/{commit}/model.safetensors")
        assert big.headers["x-linked-etag"] == f'"{digests["model.safetensors"]}"'
        assert big.headers["x-linked-size"] == str(BIG) == big.headers["content-length"]
        part = client.get(f"/acme/tiny/resolve/{commit}/model.safetensors", headers={"Range": "bytes=10-19"})
        with (folder / "model.safetensors").open("rb") as fh:
            fh.seek(10)
            assert part.status_code == 206 and part.content == fh.read(10)
        assert part.headers["content-range"] == f"bytes 10-19/{BIG}"
        for path in (
            f"/acme/tiny/resolve/{commit}/..%2F..%2F..%2Freservoir.db",
            f"/acme/tiny/resolve/{commit}/sub/%2E%2E/config.json",
            f"/acme/tiny/resolve/{commit}/%2Fetc%2Fpasswd",
            "/acme/tiny/resolve/main/.git/config",
        ):
            answer = client.get(path)
            assert answer.status_code == 400, path
            assert "invalid file path" in answer.json()["error"]
        info = client.get("/api/models/acme/tiny", params={"blobs": "true"}).json()
        assert info["sha"] == commit and info["cardData"] == {"license": "Apache-2.0"}
        sizes = {s["rfilename"]: s.get("lfs") for s in info["siblings"]}
        assert sizes["model.safetensors"]["sha256"] == digests["model.safetensors"] and sizes["config.json"] is None
        tree = client.get(f"/api/models/acme/tiny/tree/{commit}").json()
        assert {(e["type"], e["path"]) for e in tree} == {
            ("directory", "sub"),
            ("file", "README.md"),
            ("file", "config.json"),
            ("file", "model.safetensors"),
            ("file", "tokenizer.json"),
        }
        assert client.get("/api/models/acme/nope").headers["x-error-code"] == "RepoNotFound"


def test_revisions_share_content(store: Store, served: LiveServer, tmp_path: Path) -> None:
    first = tmp_path / "v1"
    make_repo(first, big=1024)
    v1 = ingest.add_folder(store, "acme/small", first, revision="v1")
    second = tmp_path / "v2"
    second.mkdir()
    for path in first.rglob("*"):
        if path.is_file():
            (second / path.relative_to(first)).parent.mkdir(parents=True, exist_ok=True)
            (second / path.relative_to(first)).write_bytes(path.read_bytes())
    (second / "config.json").write_text('{"changed": true}')
    v2 = ingest.add_folder(store, "acme/small", second, revision="main")
    assert v2.commit != v1.commit and v2.new_bytes == len('{"changed": true}')  # only the changed file is new
    got = hub_client(
        served.url,
        tmp_path / "hf",
        ("file", {"key": "old", "repo": "acme/small", "filename": "config.json", "revision": "v1"}),
        ("file", {"key": "new", "repo": "acme/small", "filename": "config.json"}),
    )
    assert got["old"]["sha256"] == _sha((first / "config.json").read_bytes())
    assert got["new"]["sha256"] == _sha(b'{"changed": true}')
    ingest.remove(store, "acme/small", "v1")
    assert records.resolve(store.conn, "acme/small", v1.commit) is None


def test_denied_license_is_quarantined(store: Store, served: LiveServer, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["AGPL-3.0-only"]\n')
    from cove.reservoir.policy import set_policy

    set_policy(store, policy)
    make_repo(tmp_path / "m", license="agpl-3.0-only", big=1024)
    result = ingest.add_folder(store, "acme/copyleft", tmp_path / "m")
    assert result.status == "quarantined" and "denied" in (result.reason or "")
    with httpx.Client(base_url=served.url) as client:
        answer = client.get(f"/acme/copyleft/resolve/{result.commit}/config.json")
        assert answer.status_code == 403 and "quarantined" in answer.json()["error"]
        assert client.get("/api/models/acme/copyleft").status_code == 403
        ingest.set_quarantine(store, "acme/copyleft", "main", None)
        assert client.get(f"/acme/copyleft/resolve/{result.commit}/config.json").status_code == 200
        audit = ingest.audit(store)
        assert audit[0]["action"] == "quarantined"
        assert client.get(f"/acme/copyleft/resolve/{result.commit}/config.json").status_code == 403


def test_upload(store: Store, served: LiveServer, tmp_path: Path) -> None:
    token = tokens.create(store, "ci")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, data in {"config.json": b"{}", "weights/model.safetensors": b"\x00" * 2048}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    body = buffer.getvalue()
    url = "/api/models/acme/uploaded/upload/main"
    with httpx.Client(base_url=served.url) as client:
        assert client.post(url, content=body).status_code == 401
        assert client.post(url, content=body, headers={"Authorization": "Bearer nope"}).status_code == 403
        done = client.post(url, content=body, headers={"Authorization": f"Bearer {token}"})
        assert done.status_code == 201, done.text
        commit = done.json()["commit"]
        got = client.get(f"/acme/uploaded/resolve/{commit}/weights/model.safetensors")
        assert got.content == b"\x00" * 2048
        evil = io.BytesIO()
        with tarfile.open(fileobj=evil, mode="w") as tf:
            info = tarfile.TarInfo("../escape.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
        refused = client.post(url, content=evil.getvalue(), headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 400 and "invalid file path" in refused.json()["error"]


def test_bundle_round_trip(tmp_path: Path, repo_dir: tuple[Path, dict[str, str]]) -> None:
    folder, digests = repo_dir
    online = Store(tmp_path / "online")
    added = ingest.add_folder(online, "acme/tiny", folder)
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(online.layout))
    export_bundle(online, tmp_path / "bundle", chunk_size=32 * 1024 * 1024)
    chunks = list((tmp_path / "bundle" / "blobs" / digests["model.safetensors"]).iterdir())
    assert len(chunks) == 4  # the large file travels in chunks
    # A tampered chunk is refused before anything is applied.
    tampered = tmp_path / "tampered"
    import shutil

    shutil.copytree(tmp_path / "bundle", tampered)
    victim = tampered / "blobs" / digests["config.json"] / "000000"
    victim.write_bytes(victim.read_bytes().replace(b"test", b"evil"))
    with pytest.raises(BundleError, match="tampered"):
        import_bundle(closed, tampered)
    assert records.refs(closed.conn) == []
    report = import_bundle(closed, tmp_path / "bundle")
    assert report.applied_events == 1
    assert records.refs(closed.conn) == [("acme/tiny", "main", added.commit)]
    assert import_bundle(closed, tmp_path / "bundle").already_imported
    with LiveServer(create_app(closed.layout.root, store=closed)) as live:
        got = hub_client(live.url, tmp_path / "hf", ("snapshot", {"key": "snap", "repo": "acme/tiny"}))
    assert got["snap"]["files"] == digests
