"""Expert Info in the lab: badges in the Timeline's model as frames arrive, and the FindingsTable's rows."""

from __future__ import annotations

import asyncio

import gotalk_lab as gl
from gotalk_lab.trace import IN, OUT, Trace
from gotalk_lab.widgets import FindingsTable, Timeline
from gotalk_lab.widgets import timeline as timeline_module
from gotalk_lab.wire import ProtocolError, SingleRequest, SingleResult, encode_header


def record(trace: Trace, direction: str, message) -> None:
    trace.record(direction, encode_header(message), message)


def test_markers_appear_after_frames_arrive(monkeypatch):
    monkeypatch.setattr(timeline_module, "FINDINGS_INTERVAL", 0.0)
    trace = Trace()
    timeline = Timeline(trace, batch_interval=0.0)
    timeline.send = lambda content, buffers=None: None
    record(trace, OUT, SingleRequest(b"0001", "echo", b"x"))
    record(trace, IN, SingleResult(b"0001", b"x"))
    timeline.flush()
    assert timeline.markers == {} and timeline.findings == []
    record(trace, IN, SingleResult(b"0009", b"?"))  # answers nothing
    record(trace, IN, ProtocolError(2))
    timeline.flush()
    assert set(timeline.markers) == {"2", "3"}
    assert timeline.markers["2"]["severity"] == "error" and timeline.markers["2"]["symbol"] == "✖"
    assert "matches no request" in timeline.markers["2"]["text"][0]


def test_recomputing_is_throttled_and_a_later_flush_catches_up(monkeypatch):
    monkeypatch.setattr(timeline_module, "FINDINGS_INTERVAL", 3600.0)
    trace = Trace()
    timeline = Timeline(trace, batch_interval=0.0)
    timeline.send = lambda content, buffers=None: None
    record(trace, IN, ProtocolError(2))
    timeline.flush()
    assert timeline.markers == {}  # within the interval: not yet (no event loop to wait on)
    timeline.update_findings()
    assert set(timeline.markers) == {"0"}


def test_without_findings_the_timeline_has_no_markers():
    trace = Trace()
    record(trace, IN, ProtocolError(2))
    assert Timeline(trace, findings=False).markers == {}
    assert set(Timeline(trace).markers) == {"0"}  # history is judged at creation


def test_findings_table_rows_follow_the_timeline_and_select_frames(monkeypatch):
    monkeypatch.setattr(timeline_module, "FINDINGS_INTERVAL", 0.0)
    trace = Trace()
    timeline = Timeline(trace, batch_interval=0.0)
    timeline.send = lambda content, buffers=None: None
    table = FindingsTable(timeline)
    assert table.rows == [] and "No findings" in table.value
    record(trace, OUT, SingleRequest(b"0001", "a", b""))
    record(trace, OUT, SingleRequest(b"0001", "b", b""))
    timeline.flush()
    assert [(severity, rule, frames) for severity, rule, frames, _ in table.rows] == [("error", "request-id-reused", (0, 1))]
    assert "request-id-reused" in table.value and "request-id-reused" in table._repr_html_()
    table.select(0)
    assert timeline.selected == 0
    table.close()


def test_findings_table_of_a_trace_or_a_list():
    trace = Trace()
    record(trace, IN, ProtocolError(3))
    assert [row[1] for row in FindingsTable(trace).rows] == ["protocol-error"]
    assert FindingsTable(gl.findings(trace)).rows == FindingsTable(trace).rows


async def test_a_live_conversation_with_the_demo_peer_has_no_markers():
    a, b = await gl.pipe(None, gl.demo.handlers())
    timeline = Timeline(a.trace, batch_interval=0.01)
    timeline.send = lambda content, buffers=None: None
    await a.request_bytes("echo", b"hello")
    await asyncio.sleep(0.05)
    timeline.flush()
    timeline.update_findings()
    assert timeline.markers == {} and len(a.trace) >= 4
    await a.close()
    await b.close()
