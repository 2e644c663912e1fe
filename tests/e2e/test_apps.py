"""Apps: ``cove deploy FILE.py`` deploys a file's functions together, and a name belongs to one app.

The guide's sample 7 (an endpoint that maps another function of its file) is
deployed as one app and called over HTTP: the endpoint's container finds its
sibling by name. A name whose live version belongs to another app is refused
with 409 naming that app and where it came from, unless ``--replace`` moves
it. The store's side (ownership, ephemeral apps, heartbeats) runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import Server
from unit.test_store_backends import run

from cove.exceptions import Conflict
from cove.store import (
    AppConflict,
    Principal,
    Store,
    create_app,
    find_app,
    heartbeat_app,
    list_apps,
    stale_ephemeral_apps,
    stop_app,
)

# Sample 7 of the guide as a user's file. Adapted where this machine cannot follow it: no GPU and no package
# index here, so the images install nothing and the endpoint asks for no "T4" and for 1 GiB instead of 16;
# `cv2`, `np` and the undefined helpers are small stand-ins (an image is a list of pixel values).
SAMPLE_7 = """
from cove import function, endpoint, Image
from typing import List


class np:  # stand-in for numpy: an ndarray is a list of pixel values that divides like one
    class ndarray(list):
        def __truediv__(self, value):
            return np.ndarray(v / value for v in self)


class cv2:  # stand-in for OpenCV: resize to width x height pixels, repeating the image's own
    @staticmethod
    def resize(image, size):
        count = size[0] * size[1]
        return np.ndarray((image * (count // len(image) + 1))[:count])


def download_image(image_url):
    return np.ndarray(float(ord(c)) for c in image_url)


class Prediction:
    def __init__(self, class_name, confidence):
        self.class_name = class_name
        self.confidence = confidence


class Model:
    def predict(self, image):
        mean = sum(image) / len(image)
        return Prediction("bright" if mean > 0.4 else "dark", mean)


def load_classification_model():
    return Model()


@function(
    image=Image(),
    cpu=2,
    memory="4Gi"
)
def preprocess_image(image_url: str) -> np.ndarray:
    # download and preprocess the image
    image = download_image(image_url)
    processed = cv2.resize(image, (224, 224))
    normalized = processed / 255.0
    return normalized

@endpoint(
    image=Image(),
    memory="1Gi"
)
def batch_image_classification(image_urls: List[str]) -> List[dict]:
    # preprocess the images in parallel
    processed_images = preprocess_image.map(image_urls)

    # load the classification model
    model = load_classification_model()

    # batch inference
    results = []
    for image in processed_images:
        prediction = model.predict(image)
        results.append({
            "class": prediction.class_name,
            "confidence": float(prediction.confidence)
        })

    return results
"""

URLS = ["https://images.example/cat.png", "https://images.example/~~~~.png", "http://a/0"]


def expected_classes(urls: list[str]) -> list[dict[str, Any]]:
    """What sample 7's stand-ins answer for ``urls``, worked out here."""
    out = []
    for url in urls:
        pixels = [float(ord(c)) for c in url]
        count = 224 * 224
        mean = sum(v / 255.0 for v in (pixels * (count // len(pixels) + 1))[:count]) / count
        out.append({"class": "bright" if mean > 0.4 else "dark", "confidence": mean})
    return out


def assert_classified(answer: list[dict[str, Any]], urls: list[str]) -> None:
    expected = expected_classes(urls)
    assert [a["class"] for a in answer] == [e["class"] for e in expected]
    assert [a["confidence"] for a in answer] == pytest.approx([e["confidence"] for e in expected])


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _live(server: Server) -> dict[str, dict[str, Any]]:
    """Each name's live (newest active) version."""
    newest: dict[str, dict[str, Any]] = {}
    for row in server.cli_json("deployment", "list"):
        if row["name"] not in newest or row["version"] > newest[row["name"]]["version"]:
            newest[row["name"]] = row
    return newest


def _apps(server: Server) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in server.cli_json("app", "list", "--all")}


def test_sample_7_deploys_as_one_app_whose_endpoint_maps_its_sibling(server: Server, tmp_path: Path) -> None:
    pipeline = _write(tmp_path / "vision", "pipeline.py", SAMPLE_7)
    deployed = server.deploy(str(pipeline))  # no :FUNC: every function of the file
    assert deployed["apps"] == ["vision"] and deployed["source"] == str(pipeline)
    names = {d["name"]: d for d in deployed["deployments"]}
    assert set(names) == {"preprocess-image", "batch-image-classification"}
    assert {d["app"] for d in deployed["deployments"]} == {"vision"}

    with server.http() as http:
        reply = http.post("/endpoint/batch-image-classification", json={"image_urls": URLS}, timeout=180)
    assert reply.status_code == 200, reply.text
    assert_classified(reply.json(), URLS)  # the endpoint's container called preprocess-image by its name

    app = _apps(server)["vision"]
    assert app["deployments"] == ["batch-image-classification", "preprocess-image"]
    assert app["source"] == str(pipeline) and not app["ephemeral"]

    again = server.deploy(str(pipeline))  # nothing changed: nothing new
    assert [d["created"] for d in again["deployments"]] == [False, False]

    stopped = server.cli_json("app", "stop", "vision")
    assert sorted(v.rsplit("/", 1)[0] for v in stopped["stopped"]) == ["batch-image-classification", "preprocess-image"]
    live = _live(server)
    assert "preprocess-image" not in live and "batch-image-classification" not in live


ONE = """
from cove import function

@function
def owned_name(x: int) -> str:
    return "{who}"
"""


def test_a_name_of_another_app_is_refused_unless_replaced(server: Server, tmp_path: Path) -> None:
    first = _write(tmp_path / "team-a", "jobs.py", ONE.format(who="a"))
    second = _write(tmp_path / "team-b", "jobs.py", ONE.format(who="b"))
    v1 = server.deploy(f"{first}:owned_name")

    refused = server.cli("deploy", f"{second}:owned_name", "--json", check=False)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert f"deployment 'owned-name' belongs to app 'team-a' (from {first})" in message, message
    assert "rename it with name=..., or move it with --replace (409)" in message
    assert _live(server)["owned-name"]["version"] == v1["version"]  # untouched
    whole_file = server.cli("deploy", str(second), "--json", check=False)  # an app deploy is refused alike
    assert whole_file.returncode != 0 and "belongs to app 'team-a'" in whole_file.stdout + whole_file.stderr

    moved = server.deploy(f"{second}:owned_name", "--replace")
    assert moved["version"] == v1["version"] + 1 and moved["created"]
    apps = _apps(server)
    assert "owned-name" in apps["team-b"]["deployments"] and "owned-name" not in apps["team-a"]["deployments"]
    back = server.cli("deploy", f"{first}:owned_name", "--json", check=False)
    assert back.returncode != 0 and "belongs to app 'team-b'" in back.stdout + back.stderr

    # A rollback takes the version back to the app it was deployed in, whoever holds the name now.
    rolled = server.cli_json("deployment", "rollback", "owned-name")
    assert rolled["source_version"] == v1["version"]
    assert "owned-name" in _apps(server)["team-a"]["deployments"]
    with server.http() as http:
        assert http.delete("/api/v1/deployments/owned-name").status_code == 200


NAMED = """
import cove

app = cove.App("{app}")

@app.function
def {fn}(x: int) -> int:
    return x + 1

@cove.function(app="{app}")
def {fn}_too(x: int) -> int:
    return x + 2
"""


def test_an_app_named_in_code_owns_its_names_wherever_its_file_is(server: Server, tmp_path: Path) -> None:
    text = NAMED.format(app="named-demo", fn="named_inc")
    here = _write(tmp_path / "checkout-1", "demo.py", text)
    there = _write(tmp_path / "checkout-2", "demo.py", text.replace("x + 1", "x + 10"))
    deployed = server.deploy(str(here))
    assert deployed["apps"] == ["named-demo"]
    updated = server.deploy(str(there))  # the same app from another folder: a new version, no conflict
    assert [d["version"] for d in updated["deployments"]] == [2, 2]  # the folder's code changed for both
    app = _apps(server)["named-demo"]
    assert app["deployments"] == ["named-inc", "named-inc-too"] and app["source"] == str(there)
    server.cli_json("app", "stop", "named-demo")


def test_deploy_with_a_name_needs_one_function(server: Server, tmp_path: Path) -> None:
    path = _write(tmp_path / "solo", "solo.py", ONE.format(who="x"))
    done = server.cli("deploy", str(path), "--name", "renamed", "--json", check=False)
    assert done.returncode != 0 and "FILE.py:FUNCTION" in done.stdout


# -- the store, on SQLite and PostgreSQL ----------------------------------------------------------------------


async def _deploy(store: Store, who: Principal, app: str, **extra: Any) -> Any:
    return await store.create_deployment(
        who, name="shared", app=app, kind="function", module="m", function="f", image_id="img",
        code_hash="c" * 64, config={"app": app}, **extra,
    )  # fmt: skip


def test_names_belong_to_apps_and_ephemeral_apps_end_on_both_backends(store_url: str) -> None:
    async def body(store: Store, who: Principal, _dep_id: str) -> None:
        first, created = await _deploy(store, who, "a", source="/src/a/app.py")
        assert created and first.version == 1
        with pytest.raises(AppConflict, match=r"belongs to app 'a' \(from /src/a/app.py\)"):
            await _deploy(store, who, "b")
        moved, created = await _deploy(store, who, "b", replace=True)
        assert created and moved.version == 2 and moved.app_id != first.app_id
        same, created = await _deploy(store, who, "b")  # unchanged: no new version
        assert not created and same.id == moved.id

        run = await create_app(store, who, "a--1a2b3c", ephemeral=True, source="/src/a/app.py")
        with pytest.raises(Conflict):
            await create_app(store, who, "a--1a2b3c", ephemeral=True, source=None)
        assert (await find_app(store, who.workspace_id, run.id)) is not None
        assert (await find_app(store, who.workspace_id, "a--1a2b3c")) is not None
        eph, _ = await _named(store, who, "shared--1a2b3c", run.name)
        assert eph.ephemeral and eph.app_names is None  # a deployment of an ephemeral app is ephemeral
        names = {"shared": "shared--1a2b3c"}
        mapped, created = await _named(store, who, "shared--1a2b3c", run.name, app_names=names)
        assert created and mapped.app_names == names  # the names its containers call siblings by: a new version
        again, created = await _named(store, who, "shared--1a2b3c", run.name, app_names=names)
        assert not created and again.id == mapped.id
        beat = await heartbeat_app(store, who.workspace_id, run.id)
        assert beat is not None
        assert [a.id for a in await stale_ephemeral_apps(store, beat - 1)] == []
        assert [a.id for a in await stale_ephemeral_apps(store, beat + 1)] == [run.id]

        stopped = await stop_app(store, who, run, "its client went away")
        assert sorted((d.name, d.version) for d in stopped) == [("shared--1a2b3c", 1), ("shared--1a2b3c", 2)]
        assert (await store.get_deployment(who.workspace_id, "shared")).id == moved.id  # other apps untouched
        assert await heartbeat_app(store, who.workspace_id, run.id) is None  # it has ended
        assert run.id not in {a.id for a in await list_apps(store, who.workspace_id)}
        assert run.id in {a.id for a in await list_apps(store, who.workspace_id, include_stopped=True)}
        with pytest.raises(Conflict, match="has ended"):
            await _named(store, who, "late", run.name)

    run(store_url, body)


async def _named(store: Store, who: Principal, name: str, app: str, **extra: Any) -> Any:
    return await store.create_deployment(
        who, name=name, app=app, kind="function", module="m", function="f", image_id="img",
        code_hash="c" * 64, config={}, **extra,
    )  # fmt: skip


def test_an_app_row_is_made_once_when_two_deploys_race(store_url: str) -> None:
    async def body(store: Store, who: Principal, _dep_id: str) -> None:
        made = await asyncio.gather(*(_named(store, who, f"race-{n}", "racing") for n in range(4)))
        assert len({row.app_id for row, _ in made}) == 1

    run(store_url, body)
