"""The report in a notebook: the case list, the selected case's wire log, its frames as a trace."""

from __future__ import annotations

import asyncio

from check_servers import RawServer

from gotalk_lab.checker import check
from gotalk_lab.checker.frames import case_trace
from gotalk_lab.trace import IN, OUT
from gotalk_lab.wire import ProtocolVersion, SingleRequest, SingleResult


def checked(*defects, cases=None):
    async def main():
        async with RawServer(defects) as server:
            return await check(server.url, echo="echo", stream_echo="upper-stream", timeout=1.0, cases=cases)

    return asyncio.run(main())


def test_a_case_trace_holds_every_whole_message_in_order():
    report = checked(cases=["2.4", "4.2"])
    trace = case_trace(report["2.4"])  # the request went one byte per write: one message all the same
    kinds = [(event.direction, type(event.message)) for event in trace]
    assert kinds == [(OUT, ProtocolVersion), (IN, ProtocolVersion), (OUT, SingleRequest), (IN, SingleResult)]
    assert len(trace.exchanges) == 1 and next(iter(trace.exchanges.values())).outcome == "result"
    # Bytes that are not Gotalk (sent on purpose) stop that direction; what came before stays.
    malformed = case_trace(report["4.2"])
    assert [type(e.message).__name__ for e in malformed if e.direction == OUT] == ["ProtocolVersion"]
    assert [type(e.message).__name__ for e in malformed if e.direction == IN] == ["ProtocolVersion", "ProtocolError"]


def test_the_widget_opens_on_the_first_failure_and_follows_the_selection():
    from gotalk_lab.widgets.check_report import CheckReport, case_label

    report = checked("mangle_ids", cases=["2.1", "3.3", "4.1"])
    widget = CheckReport(report)
    assert isinstance(widget, CheckReport)
    try:
        assert widget.selected == "3.3"
        assert "3.3" in widget.detail.value and "fail" in widget.detail.value and "ID" in widget.detail.value
        assert widget.dashboard.timeline.frame_count == len(case_trace(report["3.3"]))
        widget.cases.value = "4.1"
        assert widget.selected == "4.1" and "unknown operation" in widget.detail.value
        assert [label for label, _ in widget.cases.options][0] == case_label(report["2.1"])
        bundle = widget._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        assert "case-3.3" in data["text/html"]  # static fallback: the table and its wire logs
    finally:
        widget.close()


def test_the_report_displays_as_a_table_linked_to_wire_logs():
    report = checked(cases=["2.1", "4.1"])
    page = report._repr_html_()
    assert page.count("<tr><td>") == 2 and 'href="#case-2.1"' in page and "id='case-2.1'" in page
    assert "R000100000010" in page
    assert report.to_dict()["counts"]["pass"] == 2 and '"target"' in report.to_json()
