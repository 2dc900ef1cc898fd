"""FrameView and FieldTable, kernel side: what the synced traitlets hold for known bytes,
how selection and annotation follow between linked widgets, and the static HTML fallback."""

from __future__ import annotations

from ipywidgets.widgets.widget_link import Link
import pytest

import gotalk_lab as gl
from gotalk_lab.annotate import annotate, annotate_stream
from gotalk_lab.decoder import decode_all
from gotalk_lab.html import FIELD_COLOURS
from gotalk_lab.trace import IN, OUT, Trace
from gotalk_lab.widgets.frames import (
    MAX_SHOWN_BYTES,
    FieldTable,
    FrameView,
    annotation_json,
    fields_of,
    link,
    starts_with_version,
)

ECHO = b"r0001004echo00000005hello"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def spans(view: FrameView) -> list[tuple[str, int, int]]:
    return [(field["name"], field["start"], field["end"]) for field in view.fields]


def bundle_data(bundle) -> dict:
    """The data part of a mime bundle (anywidget returns (data, metadata))."""
    return bundle[0] if isinstance(bundle, tuple) else bundle


# -- what FrameView holds --------------------------------------------------------


def test_single_request_has_six_coloured_fields_with_exact_spans():
    view = FrameView(ECHO)
    assert view.data == ECHO
    assert spans(view) == [
        ("type", 0, 1),
        ("request_id", 1, 5),
        ("name_size", 5, 8),
        ("operation", 8, 12),
        ("payload_size", 12, 20),
        ("payload", 20, 25),
    ]
    assert [field["colour"] for field in view.fields] == [FIELD_COLOURS[name] for name, _, _ in spans(view)]
    assert [field["index"] for field in view.fields] == list(range(6))
    assert [field["value"] for field in view.fields] == ["r", "0001", "4", "echo", "5", "hello"]
    assert view.fields[4]["raw"] == b"00000005".hex()
    assert view.fields[4]["meaning"] == "payload size: 0x00000005 = 5 bytes follow"
    annotation = view.annotation
    assert (annotation["size"], annotation["shown"], annotation["field_count"]) == (25, 25, 6)
    assert annotation["error"] is None and annotation["truncated"] is None and annotation["unfinished"] is None
    message = annotation["messages"][0]
    assert (message["kind"], message["type"], message["start"], message["end"]) == ("SingleRequest", "r", 0, 25)
    assert message["payload"] == {"hint": "text", "size": 5, "format": "text", "text": "hello", "cut": False}
    assert view.selected == -1 and view.selected_field is None


def test_a_message_value_shows_its_encoding():
    message = gl.SingleRequest(b"0001", "echo", b"hello")
    view = FrameView(message)
    assert view.value is message
    assert view.data == ECHO
    assert view.title == "SingleRequest"
    assert spans(view) == spans(FrameView(ECHO))


def test_a_go_binary_request_id_is_shown_escaped_with_the_counter_hint():
    view = FrameView(gl.SingleResult(b"\x01\x00\x00\x00", b'{"greeting":"Hello Ada"}'))
    request_id = view.fields[1]
    assert request_id["name"] == "request_id"
    assert request_id["value"] == "\\x01\\x00\\x00\\x00"
    assert request_id["raw"] == "01000000"
    assert "little-endian counter: 1" in request_id["meaning"]
    payload = view.annotation["messages"][0]["payload"]
    assert payload["format"] == "json"
    assert payload["text"] == '{\n  "greeting": "Hello Ada"\n}'


def test_binary_payload_preview_is_hex():
    view = FrameView(gl.SingleResult(b"0001", bytes(range(20))))
    payload = view.annotation["messages"][0]["payload"]
    assert payload["format"] == "hex"
    assert payload["text"].splitlines() == [bytes(range(16)).hex(" "), bytes(range(16, 20)).hex(" ")]
    assert view.fields[-1]["value"].startswith("\\x00\\x01\\x02")


def test_a_trace_event_is_shown_with_its_direction_in_the_title():
    trace = Trace()
    header = gl.encode_header(gl.Heartbeat(load=0x10, time=1_700_000_000))
    trace.record(IN, header, gl.Heartbeat(load=0x10, time=1_700_000_000), at=0.5)
    trace.record(OUT, b"01", gl.ProtocolVersion(), at=0.25)
    view = FrameView(trace[0])
    assert view.data == header
    assert [name for name, _, _ in spans(view)] == ["type", "load", "time"]
    assert view.title == "#0 ← in at 500.000 ms: Heartbeat"
    view.show(trace[1])
    assert spans(view) == [("version", 0, 2)]
    assert view.title.startswith("#1 → out")


def test_a_conformance_stream_is_read_as_a_conversation_covering_every_byte(transcript_named):
    stream = transcript_named("15-go-client-session").stream("recv")
    view = FrameView(stream)
    annotation = view.annotation
    assert annotation["expect_version"] is True
    assert annotation["error"] is None
    assert len(annotation["messages"]) == len(decode_all(stream))
    assert annotation["messages"][0]["type"] == "v"
    # The fields tile the bytes: each starts where the one before ended, up to the end.
    edges = [(field["start"], field["end"]) for field in view.fields]
    assert edges[0][0] == 0 and edges[-1][1] == len(stream)
    assert all(previous[1] == current[0] for previous, current in zip(edges, edges[1:]))
    assert view.data == stream[:MAX_SHOWN_BYTES]


def test_a_malformed_stream_keeps_what_came_before_and_locates_the_bad_byte(transcript_named):
    stream = transcript_named("11-bad-size-digits").stream("send")
    assert stream == b"01r0001004echo0000zzzz"
    view = FrameView(stream)
    annotation = view.annotation
    assert [message["kind"] for message in annotation["messages"]] == ["ProtocolVersion"]
    error = annotation["error"]
    assert (error["offset"], error["field"], error["code"], error["at_end"]) == (18, "payload_size", 2, False)
    assert error["message"] == "byte 18: payload_size: expected 8 hex digits, found 'z' at digit 5"
    unfinished = annotation["unfinished"]
    assert (unfinished["start"], unfinished["end"]) == (2, 22)
    assert [(f["name"], f["start"], f["end"], f["cut_short"]) for f in unfinished["fields"]] == [
        ("type", 2, 3, False),
        ("request_id", 3, 7, False),
        ("name_size", 7, 10, False),
        ("operation", 10, 14, False),
        ("payload_size", 14, 18, True),
    ]
    assert [field["message"] for field in unfinished["fields"]] == [None] * 5
    # "selected" counts the unfinished fields after the message's.
    assert [field["index"] for field in view.fields] == list(range(6))
    assert annotation["field_count"] == 6


def test_a_message_cut_short_is_located_at_the_end_of_input():
    view = FrameView(ECHO[:-2])
    error = view.annotation["error"]
    assert (error["offset"], error["field"], error["at_end"]) == (23, "payload", True)
    assert view.annotation["unfinished"]["fields"][-1]["name"] == "payload"


def test_a_size_beyond_the_bytes_reads_as_input_ending_early_not_as_over_a_limit():
    view = FrameView(b"R0001000000ffab")
    assert view.annotation["error"]["found"] == "end of input"


def test_version_is_guessed_from_the_first_byte_unless_told():
    assert starts_with_version(b"01r") and starts_with_version(b"02")
    assert not starts_with_version(b"f00000002") and not starts_with_version(b"e") and not starts_with_version(b"")
    assert FrameView(b"f00000002").annotation["messages"][0]["kind"] == "ProtocolError"
    assert FrameView(b"01").annotation["messages"][0]["kind"] == "ProtocolVersion"
    mismatch = FrameView(b"02").annotation["error"]
    assert (mismatch["field"], mismatch["code"]) == ("version", 1)
    told = FrameView(b"r0001004echo00000005hello", expect_version=True).annotation["error"]
    assert (told["offset"], told["field"]) == (0, "version")


def test_a_long_stream_is_cut_to_the_shown_bytes_and_summarised():
    heartbeat = gl.encode(gl.Heartbeat(load=1, time=2))  # 13 bytes
    stream = b"01" + heartbeat * 400
    view = FrameView(stream)
    assert len(view.data) == MAX_SHOWN_BYTES
    annotation = view.annotation
    shown_messages = 1 + -(-(MAX_SHOWN_BYTES - 2) // 13)  # the version, then every heartbeat starting in view
    assert len(annotation["messages"]) == shown_messages
    assert annotation["truncated"] == {"shown": MAX_SHOWN_BYTES, "total": len(stream), "hidden_messages": 401 - shown_messages}
    assert all(field["start"] < MAX_SHOWN_BYTES for field in view.fields)
    assert annotation["field_count"] == len(view.fields)


def test_an_annotated_message_keeps_its_absolute_offsets():
    annotated = annotate(ECHO, offset=100)
    view = FrameView(annotated)
    assert view.annotation["base"] == 100
    assert spans(view)[0] == ("type", 100, 101) and spans(view)[-1] == ("payload", 120, 125)
    assert view.data == ECHO


def test_an_annotation_shows_the_stream_it_explains():
    annotation = annotate_stream(b"01" + ECHO + b"x")
    view = FrameView(annotation)
    assert view.data == b"01" + ECHO + b"x"
    assert view.annotation["error"]["offset"] == 27
    assert view.explained is annotation


def test_nothing_shown_and_unsupported_values():
    view = FrameView()
    assert view.data == b"" and view.annotation["messages"] == [] and view.title == "no bytes"
    with pytest.raises(TypeError, match="not int"):
        view.show(42)


def test_show_replaces_everything_and_clears_the_selection():
    view = FrameView(ECHO)
    view.selected = 3
    assert view.selected_field["name"] == "operation"
    returned = view.show(b"f00000002", title="a protocol error")
    assert returned is view
    assert view.selected == -1
    assert view.data == b"f00000002" and view.title == "a protocol error"
    assert [name for name, _, _ in spans(view)] == ["type", "code"]
    view.value = ECHO
    assert view.data == ECHO and view.value == ECHO


def test_annotation_json_cut_leaves_out_fields_past_the_shown_bytes():
    annotation = annotation_json(annotate_stream(ECHO, expect_version=False), shown=10)
    assert [field["name"] for field in fields_of(annotation)] == ["type", "request_id", "name_size", "operation"]
    assert annotation["truncated"] == {"shown": 10, "total": 25, "hidden_messages": 0}


# -- FieldTable and linking ------------------------------------------------------


def test_a_linked_table_follows_the_view_and_shares_its_selection():
    view = FrameView(ECHO, title="echo")
    table = FieldTable(view)
    assert table.annotation == view.annotation and table.title == "echo"
    view.selected = 4
    assert table.selected == 4
    table.selected = 1
    assert view.selected == 1 and view.selected_field["name"] == "request_id"
    view.show(b"f00000002")
    assert table.annotation == view.annotation
    assert [field["name"] for field in table.fields] == ["type", "code"]
    assert table.selected == view.selected == -1


def test_link_also_links_selection_in_the_browser_and_can_be_undone():
    view, table = FrameView(ECHO), FieldTable()
    links = link(view, table)
    browser = links.selected_browser
    assert isinstance(browser, Link)
    assert browser.source == (view, "selected") and browser.target == (table, "selected")
    assert table.annotation == view.annotation  # copied at once, not only on the next show
    links.unlink()
    view.selected = 2
    view.show(b"f00000002")
    assert table.selected == -1
    assert [field["name"] for field in table.fields][-1] == "payload"  # still the echo request


def test_a_standalone_table_explains_a_value():
    table = FieldTable(value=ECHO)
    assert [field["name"] for field in table.fields][-1] == "payload"
    assert table.title == "25 bytes"


# -- static fallback ---------------------------------------------------------------


def test_mime_bundles_keep_the_widget_view_and_add_static_html():
    view = FrameView(ECHO)
    data = bundle_data(view._repr_mimebundle_())
    assert data[WIDGET_VIEW]["model_id"] == view.model_id
    assert 'class="gl-view"' in data["text/html"] and 'data-field="payload_size"' in data["text/html"]
    table = FieldTable(view)
    table_html = bundle_data(table._repr_mimebundle_())["text/html"]
    assert "payload_size" in table_html and "payload size: 0x00000005 = 5 bytes follow" in table_html
    assert WIDGET_VIEW in bundle_data(table._repr_mimebundle_())


def test_static_html_of_a_bad_stream_shows_the_error_and_escapes_the_bytes():
    view = FrameView(b"01n005<b>!!00000000x")
    html = bundle_data(view._repr_mimebundle_())["text/html"]
    assert "<b>!!" not in html and "&lt;b&gt;!!" in html
    assert "byte 19: type" in html
    table_html = FieldTable(view).static_html()
    assert "&lt;b&gt;!!" in table_html and "✖ byte 19: type" in table_html
