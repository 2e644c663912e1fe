"""The guide's samples 1 (an inference endpoint on an A10G) and 6 (an LLM endpoint that imports torch).

Sample 1 is deployed as written on a cluster whose only GPU is a T4 and refused there, naming
the A10G it asks for; once a worker with an A10G joins (a fake GPU: the container gets its
variables, no device), it deploys and answers a JSON body of its one parameter. Sample 6 imports
``transformers`` and ``torch`` at its top, which this machine does not have: ``cove deploy``
refuses it with what to do. The rewrite that ``docs/packages.md`` shows (the imports inside the
function, or in a class's ``@cove.enter``) deploys and answers, with ``transformers``, ``torch``
and ``accelerate`` installed into the image from a package index on disk, whose wheels are
small stand-ins (a tokenizer of characters and a model that continues a prompt by repeating
it), written below.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Server, start_server

from cove.exceptions import ConfigError
from cove.sdk.deploy import import_target, parse_target

pytestmark = pytest.mark.timeout(300)

T4 = [{"name": "Tesla T4", "memory": "16Gi", "uuid": "GPU-t4-0"}]
A10G = [{"name": "NVIDIA A10G", "memory": "24Gi", "uuid": "GPU-a10g-0"}]
A100 = [{"name": "NVIDIA A100-SXM4-80GB", "memory": "80Gi", "uuid": "GPU-a100-0"}]

# Sample 1 of the guide as a user's file. The decorator and the function are as written; `result`, which the
# guide leaves to "existing ML code", is computed by `predict`, a stand-in that adds up the numbers it is given
# and says which GPU the container was given.
SAMPLE_1 = """
import os

from cove import endpoint, Image


def predict(input_data):
    return {"sum": sum(input_data["values"]), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}


@endpoint(
    image=Image(python_version="python3.11"),
    gpu="A10G",
    cpu=2,
    memory="16Gi"
)
def my_model_inference(input_data: dict) -> dict:
    # existing ML code
    result = predict(input_data)
    return {"prediction": result}
"""

# Sample 6 of the guide, exactly as written.
SAMPLE_6 = """
from cove import endpoint, Image
from transformers import AutoTokenizer, AutoModelForCausalLM
import torch

@endpoint(
    image=Image(
        python_packages=["transformers", "torch", "accelerate"],
        system_packages=["git"]
    ),
    gpu="A100",
    memory="80Gi",
    keep_warm_seconds=300  # keep the model loaded for 5 minutes
)
def llm_inference(prompt: str, max_tokens: int = 100) -> dict:
    # load the model (cached after the first call)
    model_name = "meta-llama/Llama-2-7b-chat-hf"
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model = AutoModelForCausalLM.from_pretrained(
        model_name,
        torch_dtype=torch.float16,
        device_map="auto"
    )

    # generate the response
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        outputs = model.generate(
            inputs.input_ids,
            max_new_tokens=max_tokens,
            temperature=0.7,
            do_sample=True
        )

    response = tokenizer.decode(outputs[0], skip_special_tokens=True)
    return {
        "response": response,
        "tokens_generated": len(outputs[0]) - len(inputs.input_ids[0])
    }
"""

# The stand-ins the image installs under the real names: only what sample 6 uses of each.
TORCH = '''
"""Stands in for torch: a dtype's name and a no_grad context."""

float16 = "float16"


class no_grad:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
'''

TRANSFORMERS = '''
"""Stands in for transformers: a tokenizer of characters, and a model that continues a prompt by repeating it."""

import torch


class _Encoding:
    def __init__(self, ids):
        self.input_ids = [ids]


class AutoTokenizer:
    @classmethod
    def from_pretrained(cls, name):
        return cls()

    def __call__(self, text, return_tensors=None):
        return _Encoding([ord(c) for c in text])

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


class AutoModelForCausalLM:
    @classmethod
    def from_pretrained(cls, name, torch_dtype=None, device_map=None):
        assert torch_dtype is torch.float16, torch_dtype
        print(f"loading {name} as {torch_dtype} (device_map={device_map})", flush=True)
        return cls()

    def generate(self, input_ids, max_new_tokens, temperature, do_sample):
        prompt = list(input_ids[0])
        return [prompt + (prompt * max_new_tokens)[:max_new_tokens]]
'''

WHEELS = {
    "torch": {"torch/__init__.py": TORCH},
    "transformers": {"transformers/__init__.py": TRANSFORMERS},
    "accelerate": {"accelerate/__init__.py": '"""Stands in for accelerate: nothing of it is used."""\n'},
}
REQUIRES = {"transformers": ("torch",)}

# What this machine lacks, as the guide's user's laptop does: sample 6's premise.
lacks_torch = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is not None for name in ("torch", "transformers")),
    reason="this machine has torch or transformers: sample 6 would import here",
)


def _write_wheel(index: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> None:
    """A pure-Python wheel of ``files`` written by hand (no build backend, no network), listed in ``index``."""
    version = "0.0.1"
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        **files,
        f"{dist}/METADATA": metadata,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: cove-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    project = index / name
    project.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(project / filename, "w") as wheel:
        for path, content in files.items():
            wheel.writestr(path, content)
    (project / "index.html").write_text(f'<a href="{filename}">{filename}</a>\n')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose local worker's only GPU is a (fake) T4; its builds install from the stand-ins' index."""
    base = tmp_path_factory.mktemp("guide-models")
    index = base / "simple"
    for name, files in WHEELS.items():
        _write_wheel(index, name, files, REQUIRES.get(name, ()))
    srv = start_server(
        base / "cove", None, {"COVE_FAKE_GPUS": json.dumps(T4)}, "--worker-cpu", "4", "--index-url", index.as_uri()
    )
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def gpu_worker(srv: Server, name: str, gpus: list[dict[str, str]], memory: str) -> Iterator[None]:
    """A second worker, ``name``, with these (fake) GPUs and this much memory, for as long as the block runs."""
    with srv.http() as http:
        reply = http.post("/api/v1/tokens", json={"name": name, "role": "worker"})
        assert reply.status_code == 201, reply.text
        token = reply.json()["token"]
    env = {k: v for k, v in srv.env.items() if k != "COVE_TOKEN"}
    env["COVE_FAKE_GPUS"] = json.dumps(gpus)
    log = (srv.home / f"worker-{name}.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cove", "worker", "--gateway", srv.url, "--token", token, "--name", name,
         "--cpu", "4", "--memory", memory, "--home", str(srv.home)],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        srv.wait_for(lambda: any(w["name"] == name and w["alive"] for w in srv.cli_json("worker", "list")), 30)
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's output as one line, however the terminal wrapped it."""
    return " ".join((done.stdout + done.stderr).split())


# -- sample 1: an inference endpoint on an A10G ------------------------------------------------------------


def test_sample_1_is_refused_without_an_a10g_and_answers_once_a_worker_has_one(cluster: Server, tmp_path: Path) -> None:
    path = _write(tmp_path / "inference", "model.py", SAMPLE_1)
    refused = cluster.cli("deploy", str(path), check=False)
    assert refused.returncode != 0, refused.stdout
    said = _one_line(refused)
    assert "gpu A10G: the workers have 1×Tesla T4, none of type A10G" in said, said
    assert "--force" in said
    assert "my-model-inference" not in {d["name"] for d in cluster.cli_json("deployment", "list")}

    with gpu_worker(cluster, "a10g-node", A10G, "32Gi"):
        deployed = cluster.deploy(str(path))
        (endpoint,) = deployed["deployments"]
        assert (endpoint["name"], endpoint["warnings"]) == ("my-model-inference", [])
        assert endpoint["url"] == f"{cluster.url}/endpoint/my-model-inference"
        with cluster.http() as http:
            # The body is a JSON object of the function's arguments by name: its one parameter, input_data.
            reply = http.post(endpoint["url"], json={"input_data": {"values": [1, 2, 3]}}, timeout=180)
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"prediction": {"sum": 6, "gpu": "GPU-a10g-0"}}  # on the A10G worker
            # The input itself as the body: its keys are taken for arguments, and refused.
            unwrapped = http.post(endpoint["url"], json={"values": [1, 2, 3]})
            assert unwrapped.status_code == 422, unwrapped.text
            assert unwrapped.json()["error"]["message"] == (
                "got an unexpected keyword argument 'values'; the body holds the arguments by name: "
                'send {"input_data": ...}'
            )
        with cluster.deployed_app(path, [], "guide_sample_1") as module:  # from Python, as the guide's users call it
            answer = module.my_model_inference.remote({"values": [4, 5]})
            assert answer == {"prediction": {"sum": 9, "gpu": "GPU-a10g-0"}}


# -- sample 6: a file that imports torch, which this machine lacks ---------------------------------------


@lacks_torch
def test_sample_6_as_written_is_refused_saying_what_to_do(cluster: Server, tmp_path: Path) -> None:
    path = _write(tmp_path / "llm", "llm.py", SAMPLE_6)
    for target in (str(path), f"{path}:llm_inference"):
        done = cluster.cli("deploy", target, check=False)
        assert done.returncode != 0, done.stdout
        said = _one_line(done)
        assert "importing llm.py failed: ModuleNotFoundError: No module named 'transformers'" in said, said
        assert "Cove imports llm.py on this machine to find its functions" in said
        assert "'transformers' is not installed here" in said
        assert "install it here: pip install transformers" in said
        assert "import transformers where only the container runs it: inside the function that uses it" in said
        assert "docs/packages.md" in said
    as_json = cluster.cli("deploy", str(path), "--json", check=False)
    assert as_json.returncode != 0 and "pip install transformers" in json.loads(as_json.stdout)["error"]
    assert not [d for d in cluster.cli_json("deployment", "list") if d["name"] == "llm-inference"]


@pytest.mark.unit
def test_the_missing_package_is_named_as_pip_installs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("vision", "broken"):  # import_target's modules, named after the files: gone after the test
        monkeypatch.setitem(sys.modules, name, None)
    path = _write(tmp_path / "vision", "vision.py", "import cv2.dnn\n")
    with pytest.raises(ConfigError) as caught:
        import_target(parse_target(str(path)))
    message = str(caught.value)
    assert "No module named 'cv2'" in message and "'cv2' is not installed here" in message
    assert "pip install opencv-python" in message and "import cv2 where only the container runs it" in message
    # Other import failures keep their one line.
    broken = _write(tmp_path / "broken", "broken.py", "raise ImportError('cannot import name x')\n")
    with pytest.raises(ConfigError, match=r"^importing broken.py failed: ImportError: cannot import name x$"):
        import_target(parse_target(str(broken)))


def _docs_sample(marker: str) -> str:
    """The block of ``docs/packages.md`` that holds ``marker``, adapted where this machine cannot follow it:
    the image's ``system_packages=["git"]`` needs a Debian mirror, which the tests do not reach."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "packages.md").read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    listed = '["transformers", "torch", "accelerate"],\n        system_packages=["git"]\n'
    assert listed in block, block
    return str(block.replace(listed, '["transformers", "torch", "accelerate"]\n'))


@lacks_torch
def test_sample_6_as_the_docs_write_it_deploys_and_answers(cluster: Server, tmp_path: Path) -> None:
    function_form = _write(tmp_path / "llm-function", "llm.py", _docs_sample("def llm_inference"))
    class_form = _write(tmp_path / "llm-class", "llm.py", _docs_sample("class LLM"))
    with gpu_worker(cluster, "a100-node", A100, "96Gi"):
        # Deployed from this machine, which has neither transformers nor torch: only the containers import them.
        deployed = {d["name"]: d for f in (function_form, class_form) for d in cluster.deploy(str(f))["deployments"]}
        assert set(deployed) == {"llm-inference", "llm-generate"}
        assert all(d["warnings"] == [] for d in deployed.values())
        with cluster.http() as http:
            for name in deployed:
                for prompt, tokens in (("Hi. ", 6), ("abc", 4), ("Hello", 5)):
                    reply = http.post(f"/endpoint/{name}", json={"prompt": prompt, "max_tokens": tokens}, timeout=180)
                    assert reply.status_code == 200, reply.text
                    assert reply.json() == {"response": prompt + (prompt * tokens)[:tokens], "tokens_generated": tokens}
            default = http.post("/endpoint/llm-generate", json={"prompt": "x"})
            assert default.json() == {"response": "x" * 101, "tokens_generated": 100}
        # The class loaded its model once in its container, however many calls it served.
        logs = cluster.cli("logs", "llm-generate").stdout
        assert logs.count("loading meta-llama/Llama-2-7b-chat-hf as float16 (device_map=auto)") == 1, logs
        with cluster.deployed_app(class_form, [], "guide_llm_class") as module:
            answer: dict[str, Any] = module.LLM().generate.remote("Hello", max_tokens=3)
            assert answer == {"response": "HelloHel", "tokens_generated": 3}
