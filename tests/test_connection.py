"""The sans-IO Connection: states and transitions as data, tables, refusals, trickled input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gotalk_lab as gl
from gotalk_lab.connection import (
    OPEN_OUTCOMES,
    REQUEST_TRANSITIONS,
    TRANSITIONS,
    Answer,
    Connection,
    ConnectionState,
    RequestState,
    answer_outcome,
)

CONFORMANCE = Path(__file__).resolve().parent / "data" / "conformance"


def opened(**options) -> Connection:
    connection = Connection(**options)
    connection.start()
    connection.receive_data(b"01")
    assert connection.next_event() == gl.ProtocolVersion(1)
    return connection


def drain(connection: Connection) -> list:
    events = []
    while (event := connection.next_event()) is not None:
        events.append(event)
    return events


def test_every_state_has_its_transitions_and_closed_is_final():
    assert set(TRANSITIONS) == set(ConnectionState)
    assert set(REQUEST_TRANSITIONS) == set(RequestState)
    assert TRANSITIONS[ConnectionState.CLOSED] == REQUEST_TRANSITIONS[RequestState.DONE] == frozenset()


def test_the_connection_imports_no_io():
    import gotalk_lab.connection as module

    source = Path(module.__file__).read_text()
    for name in ("asyncio", "socket", "threading", "websockets", "IPython", "ipywidgets"):
        assert f"import {name}" not in source


@pytest.mark.parametrize("path", sorted(CONFORMANCE.glob("*.json")), ids=lambda p: p.stem)
def test_go_transcripts_give_the_same_events_whole_and_one_byte_at_a_time(path):
    """What the Go peer wrote, fed to a connection whole and trickled, reads the same."""
    received = b"".join(bytes.fromhex(e["hex"]) for e in json.loads(path.read_text())["events"] if e["dir"] == "recv")

    def read(chunks) -> tuple[list, str | None]:
        connection = Connection(request_ids="text")
        # The transcripts answer requests the connecting side made: enter them in the table.
        for _ in range(0x40):
            connection.request("op")
        events, failure = [], None
        for chunk in chunks:
            connection.receive_data(chunk)
            try:
                events += drain(connection)
            except gl.RemoteProtocolError as error:
                failure = str(error)
                break
        return [e.message if isinstance(e, Answer) else e for e in events], failure

    whole = read([received])
    assert read([received[i : i + 1] for i in range(len(received))]) == whole


def test_a_reused_request_id_is_refused_with_code_2():
    connection = opened()
    connection.receive_data(b"r0001004echo00000000")
    request = connection.next_event()
    connection.accept_request(request.request_id)
    connection.receive_data(b"r0001004echo00000000")
    with pytest.raises(gl.RemoteProtocolError) as refused:
        connection.next_event()
    assert refused.value.code == 2 and refused.value.received == request
    assert connection.state is ConnectionState.CLOSED
    assert gl.encode(connection.close("reused ID", refused.value.code)) == b"f00000002"
    assert connection.close("again", 2) is None  # an f is handed out once


def test_retry_then_resend_then_result():
    connection = opened(max_retries=1)
    message = connection.request("sleep", b"{}")
    connection.receive_data(b"e%s%08x%08x" % (message.request_id, 250, 0))
    retry = connection.next_event()
    assert not retry.final and retry.request.state is RequestState.RETRY_WAIT
    assert connection.resend(message.request_id) == [message]
    connection.receive_data(b"e%s%08x%08x" % (message.request_id, 0, 0))
    exhausted = connection.next_event()
    assert exhausted.final and exhausted.exhausted and connection.requests == {}


def test_a_streaming_answer_to_a_single_request_is_kept_until_its_end():
    connection = opened()
    request_id = connection.request("parts").request_id
    connection.receive_data(b"S%s00000001aS%s00000001bS%s00000000" % (request_id, request_id, request_id))
    first, second, end = drain(connection)
    assert not first.final and first.request.state is RequestState.DONE  # (the same entry, now over)
    assert end.final and end.request.parts == [b"a", b"b"]


def test_an_empty_first_stream_part_is_the_whole_stream():
    connection = opened()
    stream = connection.open_stream("upper-stream")
    assert gl.encode(connection.stream_part(stream.request_id, b"")) == b"s0000" + b"00cupper-stream00000000"
    assert connection.end_stream(stream.request_id) is None  # no "p" may follow it


def test_an_empty_later_part_and_calls_after_close_are_refused():
    connection = opened()
    stream = connection.open_stream("upper-stream")
    connection.stream_part(stream.request_id, b"a")
    with pytest.raises(gl.LocalProtocolError):
        connection.stream_part(stream.request_id, b"")
    connection.close("done")
    with pytest.raises(gl.ConnectionClosed):
        connection.request("echo")


def test_parts_of_a_refused_stream_are_dropped_until_its_end():
    connection = opened()
    connection.receive_data(b"s0007004nope00000001x")
    connection.refuse_stream(connection.next_event().request_id)
    connection.receive_data(b"p000700000001yp000700000000")
    assert len(drain(connection)) == 2 and b"0007" not in connection.refused_streams
    connection.receive_data(b"p000700000001z")  # now it is a part of no stream at all
    with pytest.raises(gl.RemoteProtocolError):
        drain(connection)


def test_answer_outcomes():
    assert answer_outcome(gl.RetryResult(b"0000", 1)) == "retrying"
    assert answer_outcome(gl.StreamResult(b"0000", b"x")) == "stream"
    assert answer_outcome(gl.StreamResult(b"0000")) == answer_outcome(gl.SingleResult(b"0000")) == "result"
    assert answer_outcome(gl.ErrorResult(b"0000")) == "error"
    assert {"retrying", "stream"} < OPEN_OUTCOMES


def test_the_connection_view_shows_state_and_table():
    from gotalk_lab.widgets.connection_view import ConnectionView, connection_summary

    connection = opened()
    connection.open_stream("upper-stream")
    summary = connection_summary(connection)
    assert summary["state"] == "open" and summary["may_become"] == ["closed"]
    assert summary["requests"][0]["state"] == "unsent" and summary["requests"][0]["ended"] is False
    view = ConnectionView(connection)
    assert "upper-stream" in view.value
    connection.close("done")
    assert "closed" in view.update().value
    data = view._repr_mimebundle_()
    assert "done" in (data[0] if isinstance(data, tuple) else data)["text/html"]
