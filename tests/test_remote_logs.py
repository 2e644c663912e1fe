"""``.remote`` shows the caller what the function printed during that call, and only that call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import ModuleType

import pytest
from conftest import APPS, Server

CHATTY = APPS / "chatty" / "app.py"
DEPLOYED = ("chatty", "chatty_quiet", "chatty_fails", "chatty_slow")


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
