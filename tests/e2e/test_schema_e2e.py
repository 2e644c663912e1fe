"""inputs=Schema: bodies validated at the gateway (422 naming the field), handlers get an instance."""

from __future__ import annotations

import base64

import pytest
from conftest import APPS, Server

from cove import ConfigError, endpoint, schema


def test_schema_validation_and_instances(server: Server) -> None:
    server.deploy(f"{APPS / 'typed' / 'app.py'}:typed")
    server.deploy(f"{APPS / 'typed' / 'app.py'}:typed_queue")
    with server.http() as http:
        ok = http.post(
            "/endpoint/typed",
            json={
                "text": "hi",
                "count": 2,
                "loud": True,
                "extra": {"a": [1]},
                "attachment": {"name": "a.bin", "data": base64.b64encode(b"xyz").decode()},
            },
        )
        assert ok.status_code == 200, ok.text
        assert ok.json() == {
            "text": "HIHI",
            "temperature": 0.7,
            "extra": {"a": [1]},
            "attachment_bytes": 3,
            "kind": "Prompt",
            "has_context": True,
        }
        cases = {
            "field 'text' is required": {},
            "field 'text' must be a string": {"text": 5},
            "field 'text' is longer than 20": {"text": "x" * 21},
            "field 'temperature' must be at most 2": {"text": "a", "temperature": 3},
            "field 'count' must be an integer": {"text": "a", "count": 1.5},
            "field 'loud' must be true or false": {"text": "a", "loud": "yes"},
            "field 'bogus' is not part of the schema": {"text": "a", "bogus": 1},
            "field 'attachment' is larger than 64 bytes": {
                "text": "a",
                "attachment": {"name": "big", "data": base64.b64encode(b"x" * 65).decode()},
            },
        }
        for message, body in cases.items():
            bad = http.post("/endpoint/typed", json=body)
            assert bad.status_code == 422 and message in bad.json()["error"]["message"], (message, bad.text)
        put = http.post("/taskqueue/typed-queue", json={"count": 3})
        assert put.status_code == 422 and "field 'text' is required" in put.json()["error"]["message"]
        accepted = http.post("/taskqueue/typed-queue", json={"text": "queued"})
        assert accepted.status_code == 202


@pytest.mark.unit
def test_inputs_must_be_a_schema() -> None:
    with pytest.raises(ConfigError, match="Schema subclass"):
        endpoint(inputs=dict)(lambda: None)  # type: ignore[arg-type]

    class Empty(schema.Schema):
        pass

    assert Empty.describe() == {}
