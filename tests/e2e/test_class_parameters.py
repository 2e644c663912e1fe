"""Constructor parameters of a class: each set of values runs in containers of its own, loaded with those values."""

from __future__ import annotations

import json

import pytest
from conftest import APPS, Server

from cove._wire.parameters import HEADER, ParameterError

APP = APPS / "params" / "app.py"
pytestmark = pytest.mark.timeout(240)


def test_two_parameter_sets_run_in_their_own_containers(server: Server) -> None:
    with server.deployed_app(APP, ["Model.describe"], "params_app") as app:
        large = app.Model(size="large").describe.remote(2)
        small = app.Model().describe.remote(2)  # the defaults
        assert (large["loaded"], large["x"]) == ("largex1", 2)
        assert (small["loaded"], small["x"]) == ("smallx1", 2)
        assert large["container"] != small["container"]
        assert app.Model.describe.remote(5)["container"] == small["container"]  # no values: the defaults' pool
        assert app.Model(size="small", scale=1).describe.remote(1)["container"] == small["container"]

        tripled = app.Model(size="large", scale=3)
        outputs = list(tripled.describe.map([1, 2, 3]))
        assert [o["x"] for o in outputs] == [3, 6, 9]
        assert {o["loaded"] for o in outputs} == {"largex3"}
        assert not {o["container"] for o in outputs} & {large["container"], small["container"]}
        spawned = app.Model(size="large").describe.spawn(4).get(timeout=60)
        assert (spawned["loaded"], spawned["container"]) == ("largex1", large["container"])

    served = {c["id"]: c.get("parameters") for c in server.containers("model-describe")}
    assert served[large["container"]] == {"scale": 1, "size": "large"}
    assert served[small["container"]] == {"scale": 1, "size": "small"}
    [listed] = [d for d in server.cli_json("deployment", "list") if d["name"] == "model-describe"]
    assert {"scale": 3, "size": "large"} in listed["parameter_sets"]


def test_an_endpoint_takes_its_parameters_in_a_header(server: Server) -> None:
    with server.deployed_app(APP, ["Salutation.greet"], "params_endpoint_app") as app:
        assert app.Salutation(greeting="hey").greet.remote(name="ann")["text"] == "HEY, ann"
        with pytest.raises(ParameterError, match="'greeting'"):
            app.Salutation()  # no default, and nothing was sent
    with server.http() as http:
        hello = http.post(
            "/endpoint/salutation-greet", json={"name": "bo"}, headers={HEADER: json.dumps({"greeting": "hi"})}
        )
        assert hello.status_code == 200, hello.text
        assert hello.json()["text"] == "HI, bo"
        missing = http.post("/endpoint/salutation-greet", json={"name": "bo"})
        assert missing.status_code == 422 and "greeting" in missing.json()["error"]["message"]
        wrong = http.post("/endpoint/salutation-greet", json={"name": "bo"}, headers={HEADER: '{"greeting": 7}'})
        assert wrong.status_code == 422 and "must be a str" in wrong.json()["error"]["message"]
        unknown = http.post("/endpoint/salutation-greet", json={"name": "bo"}, headers={HEADER: '{"tone": "x"}'})
        assert unknown.status_code == 422 and "'tone'" in unknown.json()["error"]["message"]
