"""What the Timeline sends to the browser for real conversations: rows, exchange bars,
batching, pause, history chunks and the static fallback (kernel side, no browser)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

import gotalk_lab as gl
from gotalk_lab.trace import IN, OUT, Trace
from gotalk_lab.widgets.frames import FrameView
from gotalk_lab.widgets.timeline import (
    CHUNK_EVENTS,
    EXCHANGE_FIELDS,
    ROW_FIELDS,
    SYNC_BATCH,
    Timeline,
    frame_label,
    payload_preview,
)
from gotalk_lab.wire import SingleRequest, SingleResult, encode_header


def capture(timeline: Timeline) -> list[dict]:
    """Every custom message the widget sends, instead of sending it."""
    sent: list[dict] = []
    timeline.send = lambda content, buffers=None: sent.append(content)
    return sent


def appended(sent: list[dict]) -> list[dict]:
    """The rows of every "append" message, in order, as dicts keyed by ``ROW_FIELDS``."""
    return [dict(zip(ROW_FIELDS, row)) for message in sent if message["kind"] == "append" for row in message["events"]]


def latest_exchanges(sent: list[dict]) -> dict[int, dict]:
    """Exchange id -> its last state sent (later messages replace earlier states)."""
    records: dict[int, dict] = {}
    for message in sent:
        for values in message["exchanges"]:
            record = dict(zip(EXCHANGE_FIELDS, values))
            records[record["x"]] = record
    return records


def record_pairs(trace: Trace, count: int) -> None:
    """``count`` echo request/result pairs recorded by hand, as a peer would."""
    for number in range(count):
        request_id = number.to_bytes(4, "big")
        request = SingleRequest(request_id, "echo", b"x")
        trace.record(OUT, encode_header(request), request)
        result = SingleResult(request_id, b"x")
        trace.record(IN, encode_header(result), result)


async def everyday_conversation(a: gl.Peer) -> None:
    """echo, three overlapping sleeps, an error, a stream and a notification answered by one."""
    answered = asyncio.Event()
    a.on_notification("hello-back", lambda payload: answered.set())
    await a.request_bytes("echo", b"hello")
    await asyncio.gather(*(a.request("sleep", {"ms": ms}) for ms in (30, 10, 20)))
    with pytest.raises(gl.RequestError):
        await a.request_bytes("fail", b"x")
    async with a.stream_request("upper-stream") as stream:
        await stream.send(b"ab")
        await stream.send(b"cd")
        await stream.end()
        assert [part async for part in stream] == [b"AB", b"CD"]
    await a.notify("hello", "hi")
    await answered.wait()


async def test_appends_describe_every_frame_and_exchange():
    a, b = await gl.pipe(None, gl.demo.handlers())
    timeline = Timeline(a.trace, batch_interval=0.02)
    sent = capture(timeline)
    await everyday_conversation(a)
    timeline.flush()

    rows = appended(sent)
    new_frames = [event for event in a.trace.events if event.index > 1]  # 0 and 1: the versions, history
    assert [row["i"] for row in rows] == [event.index for event in new_frames]
    assert [row["y"] for row in rows] == ["r", "R", "r", "r", "r", "R", "R", "R", "r", "E", "s", "p", "p", "S", "S", "S", "n", "n"]
    assert rows[0]["s"] == '"hello"' and rows[0]["d"] == "out" and rows[1]["d"] == "in"
    assert frame_label(a.trace.events[2]) == '0000 echo "hello"'
    exchanges = latest_exchanges(sent)
    assert (exchanges[rows[0]["x"]]["id"], exchanges[rows[0]["x"]]["op"]) == ("0000", "echo")
    assert rows[0]["id"] is None and rows[0]["op"] is None  # the browser takes them from the exchange

    sleeps = [record for record in exchanges.values() if record["op"] == "sleep"]
    assert sorted(record["c"] for record in sleeps) == [0, 1, 2]  # side by side
    for first in sleeps:
        for second in sleeps:
            assert first["a"] < second["z"] and second["a"] < first["z"]  # open at the same time
    assert all(record["o"] in ("result", "error") and record["lat"] > 0 for record in exchanges.values())
    assert {record["op"]: record["o"] for record in exchanges.values()}["fail"] == "error"

    (stream,) = [record for record in exchanges.values() if record["k"] == "stream"]
    members = [row for row in rows if row["x"] == stream["x"]]
    assert [row["y"] for row in members] == ["s", "p", "p", "S", "S", "S"]
    assert members[-1]["i"] == stream["z"]  # one bar from the s to the empty S
    assert members[2]["s"] == "(end of stream)" and stream["id"] == "0005"

    notifications = [row for row in rows if row["y"] == "n"]
    assert [(row["op"], row["x"], row["d"]) for row in notifications] == [("hello", None, "out"), ("hello-back", None, "in")]
    assert timeline.frame_count == len(a.trace.events)
    await a.close()


async def test_a_retry_shows_its_wait_and_the_exchange_counts_it():
    a, b = await gl.pipe(None, gl.demo.handlers(), max_requests=1)
    timeline = Timeline(a.trace, batch_interval=0.02)
    sent = capture(timeline)
    await asyncio.gather(a.request("sleep", {"ms": 20}), a.request("sleep", {"ms": 1}))
    timeline.flush()

    rows = appended(sent)
    (retry,) = [row for row in rows if row["y"] == "e"]
    assert retry["w"] == 100 and retry["s"] == 'wait 100 ms "request rate limit"'
    record = latest_exchanges(sent)[retry["x"]]
    assert (record["o"], record["r"], record["w"]) == ("result", 1, 100)
    assert record["lat"] is not None and record["z"] > retry["i"]
    assert [row["y"] for row in rows if row["x"] == retry["x"]] == ["r", "e", "r", "R"]
    await a.close()


async def test_go_binary_request_ids_are_shown_escaped():
    a, b = await gl.pipe(None, gl.demo.handlers(), request_ids="binary")
    timeline = Timeline(a.trace)
    sent = capture(timeline)
    await a.request_bytes("echo", b"\x00\xff")
    timeline.flush()
    request, result = appended(sent)
    assert latest_exchanges(sent)[request["x"]]["id"] == "\\x00\\x00\\x00\\x00"
    assert frame_label(a.trace.events[request["i"]]) == '\\x00\\x00\\x00\\x00 echo "\\x00\\xff"'
    assert request["s"] == '"\\x00\\xff"'
    await a.close()


async def test_a_burst_is_sent_in_few_batches_each_frame_exactly_once():
    a, b = await gl.pipe(None, gl.demo.handlers())
    interval = 0.02
    timeline = Timeline(a.trace, batch_interval=interval)
    sent = capture(timeline)
    started = time.monotonic()
    for number in range(500):  # 1 000 frames
        await a.request_bytes("echo", str(number))
    last_index = a.trace.events[-1].index
    while timeline.frame_count <= last_index:  # until the scheduled flush has sent the last frame
        await asyncio.sleep(interval / 2)
    duration = time.monotonic() - started

    appends = [message for message in sent if message["kind"] == "append"]
    assert len(appends) <= math.ceil(duration / interval) + 2
    assert len(appends) < 100  # and far fewer than frames
    assert [row["i"] for row in appended(sent)] == list(range(2, last_index + 1))
    assert [message["seq"] for message in appends] == list(range(1, len(appends) + 1))
    await a.close()


def test_without_an_event_loop_frames_go_out_in_small_batches():
    trace = Trace()
    timeline = Timeline(trace, batch_interval=60)  # only the batch size can trigger a flush here
    sent = capture(timeline)
    record_pairs(trace, 500)
    timeline.flush()
    appends = [message for message in sent if message["kind"] == "append"]
    assert [row["i"] for row in appended(sent)] == list(range(1000))
    assert len(appends) <= math.ceil(1000 / SYNC_BATCH) + 2
    timeline.close()


def test_frames_a_peer_only_notes_reach_the_view_in_batches_without_a_loop_too():
    trace = Trace()
    timeline = Timeline(trace, batch_interval=60)
    sent = capture(timeline)
    for number in range(500):  # as a peer notes them (``add``, queued): the timeline only watches
        request = SingleRequest(number.to_bytes(4, "big"), "echo", b"x")
        trace.add(OUT, encode_header(request), request)
        result = SingleResult(number.to_bytes(4, "big"), b"x")
        trace.add(IN, encode_header(result), result)
    assert len(appended(sent)) >= 1000 - SYNC_BATCH  # a flush every SYNC_BATCH frames, unasked
    timeline.flush()
    rows = appended(sent)
    assert [row["i"] for row in rows] == list(range(1000))
    assert all(row["x"] == row["i"] - row["i"] % 2 for row in rows)  # each pair one exchange
    assert len([message for message in sent if message["kind"] == "append"]) <= math.ceil(1000 / SYNC_BATCH) + 2
    timeline.close()


async def test_pause_holds_new_frames_and_resume_sends_them():
    a, b = await gl.pipe(None, gl.demo.handlers())
    timeline = Timeline(a.trace, batch_interval=0.02)
    sent = capture(timeline)
    await a.request_bytes("echo", b"before")
    timeline.flush()
    shown = len(appended(sent))
    timeline.paused = True
    await everyday_conversation(a)
    timeline.flush()
    assert len(appended(sent)) == shown  # nothing new reached the browser
    held = len(a.trace.events) - 2 - shown
    assert timeline.held == held and timeline.frame_count == len(a.trace.events)

    timeline.paused = False
    rows = appended(sent)
    assert [row["i"] for row in rows] == [event.index for event in a.trace.events][2:]
    assert timeline.held == 0
    await a.close()


def test_sync_answers_with_the_whole_history_in_chunks():
    trace = Trace()
    record_pairs(trace, 2300)  # 4 600 frames, before the widget exists
    timeline = Timeline(trace)
    sent = capture(timeline)
    timeline._handle_custom_msg({"kind": "sync", "token": "view-1"}, [])  # what the browser sends

    parts = -(-len(trace.events) // CHUNK_EVENTS)
    assert [message["kind"] for message in sent] == ["history"] * parts
    assert [(message["token"], message["part"], message["parts"]) for message in sent] == [
        ("view-1", part, parts) for part in range(parts)
    ]
    assert [row[0] for message in sent for row in message["events"]] == list(range(len(trace.events)))
    records = [dict(zip(EXCHANGE_FIELDS, values)) for message in sent for values in message["exchanges"]]
    assert [record["x"] for record in records] == sorted(trace.exchanges)
    assert all(record["c"] == 0 and record["o"] == "result" for record in records)  # one at a time: one column
    timeline.close()


def test_history_leaves_out_frames_held_by_a_pause():
    trace = Trace()
    timeline = Timeline(trace, batch_interval=60)
    record_pairs(trace, 2)
    timeline.flush()
    timeline.paused = True
    record_pairs(trace, 3)
    timeline.flush()
    sent = capture(timeline)
    assert timeline.send_history("t") == 1
    (history,) = sent
    assert [row[0] for row in history["events"]] == [0, 1, 2, 3]
    assert timeline.held == 6
    timeline.close()


def test_exchanges_reuse_the_lowest_free_column():
    trace = Trace()
    timeline = Timeline(trace)
    ids = [bytes([65 + n]) * 4 for n in range(4)]

    def request(request_id):
        message = SingleRequest(request_id, "sleep", b"")
        trace.record(OUT, encode_header(message), message)

    def result(request_id):
        message = SingleResult(request_id, b"")
        trace.record(IN, encode_header(message), message)

    request(ids[0]), request(ids[1]), request(ids[2])
    result(ids[1])  # frees column 1
    request(ids[3])
    timeline.flush()
    by_request = {record_id: trace.exchanges[index] for index, record_id in ((0, ids[0]), (1, ids[1]), (2, ids[2]), (4, ids[3]))}
    columns = timeline.exchange_columns
    assert [columns[exchange.id] for exchange in by_request.values()] == [0, 1, 2, 1]
    timeline.close()


async def test_exchanges_left_open_by_a_closed_connection_are_reported_closed():
    a, b = await gl.pipe(None, gl.demo.handlers())
    timeline = Timeline(a.trace)
    sent = capture(timeline)
    waiting = asyncio.ensure_future(a.request("sleep", {"ms": 5000}))
    await asyncio.sleep(0)
    timeline.flush()
    await a.close()
    with pytest.raises(gl.ConnectionClosed):
        await waiting
    timeline.flush()
    (record,) = latest_exchanges(sent).values()
    assert record["o"] == "closed" and record["z"] is None and record["lat"] is not None


async def test_a_timeline_made_after_the_close_knows_what_was_never_answered():
    a, b = await gl.pipe(None, gl.demo.handlers())
    waiting = asyncio.ensure_future(a.request("sleep", {"ms": 5000}))
    await asyncio.sleep(0)
    await a.close()
    with pytest.raises(gl.ConnectionClosed):
        await waiting
    timeline = Timeline(a.trace)
    sent = capture(timeline)
    timeline.send_history()
    (record,) = latest_exchanges(sent).values()
    assert (record["op"], record["o"], record["z"]) == ("sleep", "closed", None)


def test_dropped_frames_are_counted_and_forgotten():
    trace = Trace(cap=50)
    timeline = Timeline(trace, batch_interval=60)
    sent = capture(timeline)
    record_pairs(trace, 60)
    timeline.flush()
    assert timeline.dropped == 70 and timeline.cap == 50
    assert sent[-1]["dropped"] == 70
    assert len(timeline.exchange_columns) <= 26  # records of exchanges wholly dropped are let go
    timeline.close()


def test_clicking_a_frame_shows_it_in_the_frame_view():
    trace = Trace()
    record_pairs(trace, 3)
    view = FrameView()
    timeline = Timeline(trace, frame_view=view)
    timeline.selected = 3
    assert view.value is trace.events[3]
    assert view.annotation["messages"][0]["type"] == "R"
    timeline.close()


def test_labels_preview_payloads_briefly():
    assert payload_preview(b"hello") == '"hello"'
    assert payload_preview(b'{"ms": 30}') == '{"ms": 30}'
    assert payload_preview(b"\x00\xffab") == '"\\x00\\xffab"'
    assert payload_preview("é".encode() * 100).endswith('é…"')
    assert payload_preview(b"") == ""


def test_the_mime_bundle_has_a_static_html_fallback():
    trace = Trace()
    record_pairs(trace, 1)
    data, _metadata = Timeline(trace)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "gl-trace" in data["text/html"] and "echo" in data["text/html"]


def test_a_peer_without_a_trace_is_refused():
    with pytest.raises(ValueError, match="trace=False"):
        Timeline(None)


def test_a_standalone_timeline_shows_the_clicked_frame_in_its_own_detail_panel():
    # Before, a click only highlighted the arrow: nothing showed the frame's bytes.
    trace = Trace()
    record_pairs(trace, 3)
    timeline = Timeline(trace)
    assert timeline.detail is True and timeline.detail_view is None  # made on the first click
    timeline.selected = 3  # what a click on the arrow sets
    assert timeline.detail_view.value is trace.events[3]
    assert timeline.detail_view.data == trace.events[3].raw
    assert [field["name"] for field in timeline.detail_table.fields] == ["type", "request_id", "payload_size", "payload"]
    first_view = timeline.detail_view
    timeline.selected = 0
    assert timeline.detail_view is first_view and first_view.data == trace.events[0].raw
    state = timeline.get_state()
    assert state["detail_view"] == "IPY_MODEL_" + first_view.model_id  # what the browser embeds
    timeline.close()


def test_a_timeline_with_a_frame_view_elsewhere_has_no_panel_of_its_own():
    trace = Trace()
    record_pairs(trace, 1)
    timeline = Timeline(trace, frame_view=FrameView())
    timeline.selected = 1
    assert timeline.detail is False and timeline.detail_view is None
    timeline.close()


def test_lanes_take_the_names_of_the_traces_sides():
    assert Timeline(Trace()).lanes == ["this side", "other side"]
    assert Timeline(Trace(sides=("client", "upstream"))).lanes == ["client", "upstream"]
    assert Timeline(Trace(sides=("client", "upstream")), lanes=("x", "y")).lanes == ["x", "y"]


async def test_unframed_bytes_get_a_row_between_the_frames_and_a_click_shows_them():
    from gotalk_lab.widgets.composer import Composer
    from gotalk_lab.widgets.timeline import UNFRAMED_ROW_FIELDS

    a, b = await gl.pipe(handlers_b=gl.demo.handlers())
    early = Timeline(a.trace)  # made before the send: hears it live
    sent = capture(early)
    composer = Composer(peer=a, malformation="bad-hex")  # r0001004echo0000000zhello
    await composer.send_to_peer()
    await a.wait_closed()
    early.flush()
    rows = [row for message in sent if message["kind"] == "append" for row in message["events"]]
    unframed = [dict(zip(UNFRAMED_ROW_FIELDS, row)) for row in rows if row[3] == "?"]
    assert len(unframed) == 1
    row = unframed[0]
    assert row["i"] == 1.5 and row["d"] == "out" and row["n"] == 25 and row["r"] == 0
    assert "payload_size" in row["why"]
    answer = next(event for event in a.trace if isinstance(event.message, gl.ProtocolError))
    assert answer.index > row["i"]  # the other side's f comes after what provoked it

    late = Timeline(a.trace)  # made after: the history has the row in its place
    history = capture(late)
    late.send_history("t")
    indices = [values[0] for values in history[0]["events"]]
    assert indices == sorted(indices) and 1.5 in indices
    late.selected = -2  # the row of note 0, as the browser sets it
    assert late.selected_item.data == b"r0001004echo0000000zhello"
    assert late.detail_view.data == b"r0001004echo0000000zhello"
    assert late.detail_view.annotation["error"]["field"] == "payload_size"
    assert "no frame" in late.detail_view.title
    early.close()
    late.close()


def test_a_timeline_says_what_its_trace_keeps_once_it_drops_and_a_cut_frame_says_so():
    trace = Trace(max_bytes=20_000, payload_limit=1000)
    timeline = Timeline(trace)
    for number in range(20):
        request = gl.SingleRequest(b"%04d" % number, "echo", b"p" * 3000)
        trace.record(OUT, gl.wire.encode_header(request), request)
    timeline.flush()
    assert trace.dropped > 0 and timeline.dropped == trace.dropped
    assert timeline.bounds == (
        f"showing the last {len(trace.events)} frames, {trace.kept_bytes / 1e3:.1f} kB "
        "(the trace keeps 100,000 frames and 20.0 kB; payloads over 1,000 bytes keep their start)"
    )
    view = FrameView()
    view.show(trace.events[-1])
    assert view.title.endswith("(payload 3,000 bytes, first 1,000 kept)")


def test_an_arrows_tooltip_says_what_a_click_does():
    trace = Trace()
    assert Timeline(trace).click_hint == "click to show its bytes"  # in its own detail panel
    assert Timeline(trace, frame_view=FrameView()).click_hint == "click to show its bytes"  # in that view
    bare = Timeline(trace, detail=False)  # no view anywhere: a click only selects
    assert bare.click_hint == bare.click_hint_unframed == "click to select it"
