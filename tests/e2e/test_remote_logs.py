"""``.remote`` shows the caller what the function printed during that call, and only that call."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest
from conftest import APPS, Server

CHATTY = APPS / "chatty" / "app.py"
DEPLOYED = ("chatty", "chatty_quiet", "chatty_fails", "chatty_slow", "chatty_long", "chatty_long_fails")


@pytest.fixture(scope="module")
def chatty(server: Server) -> Iterator[ModuleType]:
    with server.deployed_app(CHATTY, DEPLOYED, "chatty_app") as module:
        yield module


def test_prints_reach_the_callers_stderr(chatty: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert chatty.chatty.remote("alpha", lines=2) == "alpha"
    err = capsys.readouterr().err
    assert "alpha line 0\n" in err and "alpha line 1\n" in err
    assert "alpha to stderr\n" in err

    assert chatty.chatty.remote("beta") == "beta"
    err = capsys.readouterr().err
    assert "beta line 0" in err
    assert "alpha" not in err  # the same warm container: the earlier call's lines are not sent again


def test_a_quiet_call_prints_nothing(chatty: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert chatty.chatty_quiet.remote(1) == 2
    assert capsys.readouterr().err == ""


def test_output_before_a_failure_is_shown(chatty: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="gamma"):
        chatty.chatty_fails.remote("gamma")
    assert "gamma before failing" in capsys.readouterr().err


def test_map_shows_each_inputs_output(chatty: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert list(chatty.chatty.map(["m0", "m1", "m2"])) == ["m0", "m1", "m2"]
    err = capsys.readouterr().err
    for tag in ("m0", "m1", "m2"):
        assert err.count(f"{tag} line 0\n") == 1


def test_overlapping_calls_in_one_container_keep_their_own_output(
    chatty: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    chatty.chatty_slow.remote("warm")
    capsys.readouterr()
    # Two calls run at once in one container (concurrent_requests=4), printing in turns.
    calls = [chatty.chatty_slow.spawn(tag) for tag in ("left", "right")]
    results: dict[str, str] = {}
    threads = [threading.Thread(target=lambda c=c: results.setdefault(c.object_id, c.get(timeout=60))) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    capsys.readouterr()
    infos = [call.info() for call in calls]
    assert infos[0]["container_id"] == infos[1]["container_id"]
    left_start, right_start = infos[0]["started_at"], infos[1]["started_at"]
    assert abs(left_start - right_start) < 0.4  # they did overlap

    for call, tag, other in ((calls[0], "left", "right"), (calls[1], "right", "left")):
        assert call.get(timeout=10) == tag
        err = capsys.readouterr().err
        assert err.count(f"{tag} step ") == 5
        assert other not in err


class _TimedStderr:
    """Stands in for ``sys.stderr``: keeps each write with the moment it was made."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(text for _, text in self.writes)

    def first(self, needle: str) -> float:
        return next(at for at, text in self.writes if needle in text)


def test_a_long_call_shows_its_output_while_it_runs(chatty: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    chatty.chatty_long.remote("warmup", steps=0)  # a warm container: the timing below is the call's own
    err = _TimedStderr()
    monkeypatch.setattr(sys, "stderr", err)
    started = time.monotonic()
    assert chatty.chatty_long.remote("live", steps=6, pause=0.4) == "live"
    returned = time.monotonic()
    out = err.text()
    for i in range(6):
        assert out.count(f"live step {i}\n") == 1, out  # each line once: live, never again with the result
    assert out.count("live done\n") == 1
    # The first line was on the caller's stderr well before the call (about 2.4 s) returned.
    assert err.first("live step 0") - started < 1.5
    assert returned - err.first("live step 1") > 1.0


def test_a_long_failing_call_shows_each_line_once(chatty: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    err = _TimedStderr()
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(RuntimeError, match="omega gave up"):
        chatty.chatty_long_fails.remote("omega")
    out = err.text()
    for i in range(4):
        assert out.count(f"omega step {i}\n") == 1, out


def test_a_spawned_long_call_returns_its_whole_output(chatty: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    call = chatty.chatty_long.spawn("later", steps=4, pause=0.3)
    assert call.get(timeout=60) == "later"
    err = capsys.readouterr().err
    for i in range(4):  # posted live while nobody followed: it comes back with the outcome
        assert err.count(f"later step {i}\n") == 1, err
    assert err.count("later done\n") == 1


def test_only_the_calls_container_posts_its_output(chatty: ModuleType, server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    call = chatty.chatty_long.spawn("guarded", steps=8, pause=0.4)
    deadline = time.monotonic() + 30
    while call.info()["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"{server.url}/api/v1/calls/{call.object_id}/output"
    forged = httpx.post(url, content=b"not from the container", headers=headers)
    assert forged.status_code == 403, forged.text
    assert "container running" in forged.json()["error"]["message"]
    assert httpx.post(f"{server.url}/api/v1/calls/nope/output", content=b"x", headers=headers).status_code == 404
    read = httpx.get(url, params={"after": 0, "wait": 5}, headers=headers).json()
    assert "guarded step 0" in read["text"] and "not from the container" not in read["text"]
    assert read["next"] == len(read["text"]) and not read["finished"]
    assert call.get(timeout=60) == "guarded"
    done = httpx.get(url, params={"after": read["next"]}, headers=headers).json()
    assert done["finished"] and done["state"] == "COMPLETE"
    late = httpx.post(url, content=b"too late", headers=headers)
    assert late.status_code == 409
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
