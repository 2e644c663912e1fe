"""Request ids: which id a request gets, and how a container's lines carry it without mixing requests."""

from __future__ import annotations

import threading

from cove._wire.log_lines import split
from cove.gateway._request_ids import request_id_of
from cove.runner import _request_ids as runner_ids

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_client_id_wins_then_the_trace_id_then_a_new_one() -> None:
    assert request_id_of([(b"x-request-id", b"abc-1"), (b"traceparent", TRACEPARENT)]) == (b"abc-1", True)
    assert request_id_of([(b"traceparent", TRACEPARENT)]) == (b"4bf92f3577b34da6a3ce929d0e0e4736", False)
    made, sent = request_id_of([])
    assert not sent and len(made) == 32 and made != request_id_of([])[0]
    # Ids that cannot go safely into a header or a log line are replaced; so is a malformed traceparent.
    assert request_id_of([(b"x-request-id", b"bad id\r\n")])[1] is False
    assert request_id_of([(b"x-request-id", b"x" * 129)])[1] is False
    assert len(request_id_of([(b"traceparent", b"00-zz-00f067aa0ba902b7-01")])[0]) == 32


def test_lines_are_tagged_whole_and_split_back() -> None:
    stream = object()
    assert runner_ids.tag(stream, "half", "r1") == ""  # held until its newline
    assert runner_ids.tag(stream, " line\nnext", "r1") == "\x1er1\x1fhalf line\n"
    assert runner_ids.unended("r1") == [(stream, "\x1er1\x1fnext\n")]
    assert split("\x1er1\x1fhalf line") == ("r1", "half line")
    assert split("plain") == (None, "plain")


def test_threads_keep_their_own_request_id() -> None:
    seen: dict[str, str | None] = {}
    barrier = threading.Barrier(2)

    def serve(rid: str) -> None:
        token = runner_ids.REQUEST_ID.set(rid)
        barrier.wait()  # both set before either reads
        seen[rid] = runner_ids.REQUEST_ID.get()
        runner_ids.REQUEST_ID.reset(token)

    threads = [threading.Thread(target=serve, args=(rid,)) for rid in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": "a", "b": "b"} and runner_ids.REQUEST_ID.get() is None
