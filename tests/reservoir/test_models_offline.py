"""The real ``huggingface_hub`` and ``transformers`` against the reservoir, in a network namespace with no route out.

The test makes its own namespace (only ``lo`` up, no route), starts ``cove
reservoir serve`` on that namespace's loopback and runs the clients there with
``HF_ENDPOINT`` pointing at it, an empty ``HF_HOME`` and no token: the
reservoir is the only thing they can reach, so every byte they get came from
it. It needs root (or CAP_NET_ADMIN) and iproute2 and is skipped, with the
reason, without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cove.reservoir.models import ingest
from cove.reservoir.store import Store

from .test_airgap import PORT, _serve, assert_closed, netns
from .test_models import CLIENT_HELPERS, make_repo

__all__ = ["netns"]  # the fixture, shared with the package air-gap test

CLIENT = (
    CLIENT_HELPERS
    + r"""
out = {}
main = hf.snapshot_download("acme/offline")
out["main"] = {"path": main, "files": digests(main)}
v1 = hf.snapshot_download("acme/offline", revision="v1")
out["v1"] = {"path": v1, "files": digests(v1)}
one = hf.hf_hub_download("acme/offline", "model.safetensors", revision="v1")
out["big_v1"] = hashlib.sha256(Path(one).read_bytes()).hexdigest()
out["no_file"] = attempt(lambda: hf.hf_hub_download("acme/offline", "missing.json"))
out["no_rev"] = attempt(lambda: hf.snapshot_download("acme/offline", revision="v9"))
out["no_repo"] = attempt(lambda: hf.snapshot_download("acme/elsewhere"))

from transformers import AutoConfig, AutoTokenizer
config = AutoConfig.from_pretrained("acme/offline")
tokenizer = AutoTokenizer.from_pretrained("acme/offline", revision="v1")
out["config"] = [type(config).__name__, config.hidden_size, config.num_hidden_layers]
out["tokens"] = tokenizer("hello cove world")["input_ids"]
print(json.dumps(out))
"""
)

VOCAB = {"[UNK]": 0, "hello": 1, "cove": 2, "world": 3}


def _write_model_files(folder: Path, *, layers: int) -> None:
    """A BERT config transformers knows, and a word-level tokenizer built with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    config = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": layers, "num_attention_heads": 2}
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"})
    )


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _client(ns: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{PORT}",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hub_clients_download_from_the_reservoir_with_no_route_out(netns: str, store: Store, tmp_path: Path) -> None:
    # Two revisions sharing the large file (over 100 MiB, an LFS-style file on the Hub).
    v1 = tmp_path / "v1"
    make_repo(v1, seed=b"1")
    _write_model_files(v1, layers=1)
    main = tmp_path / "main"
    main.mkdir()
    for path in v1.iterdir():
        if path.is_file():
            shutil.copyfile(path, main / path.name)
    (main / "sub").mkdir()
    (main / "sub" / "extra.bin").write_bytes(b"main only")
    _write_model_files(main, layers=3)
    first = ingest.add_folder(store, "acme/offline", v1, revision="v1")
    second = ingest.add_folder(store, "acme/offline", main, revision="main")
    assert json.loads((v1 / "config.json").read_text())["num_hidden_layers"] == 1
    assert second.new_bytes < 64 * 1024  # the large file is stored once for both revisions
    store.close()

    assert_closed(netns)

    server = _serve(netns, store.layout.root, tmp_path / "serve.log")
    try:
        done = _client(netns, tmp_path / "hf")
    finally:
        server.terminate()
        server.wait(10)
    assert done.returncode == 0, done.stderr[-4000:]
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])

    assert got["main"]["files"] == _digests(main)  # byte-identical, every file of each revision
    assert got["main"]["path"].endswith(f"/snapshots/{second.commit}")
    assert got["v1"]["files"] == _digests(v1)
    assert got["v1"]["path"].endswith(f"/snapshots/{first.commit}")
    assert got["big_v1"] == _digests(v1)["model.safetensors"]
    assert got["no_file"] in ("EntryNotFoundError", "RemoteEntryNotFoundError")
    assert got["no_rev"] == "RevisionNotFoundError"
    assert got["no_repo"] == "RepositoryNotFoundError"
    assert got["config"] == ["BertConfig", 16, 3]  # main's config, not v1's
    assert got["tokens"] == [VOCAB["hello"], VOCAB["cove"], VOCAB["world"]]
