"""Tests for gotalk_lab.html: self-contained, escaped static views of messages, streams and traces."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from conformance import CONFORMANCE_DIR
from gotalk_lab import wire
from gotalk_lab.annotate import annotate, annotate_stream
from gotalk_lab.html import FIELD_COLOURS, message_html, stream_html, trace_html
from gotalk_lab.trace import IN, OUT, Trace


def _conformance_dir() -> Path:
    return CONFORMANCE_DIR


def _sent_bytes(stem: str) -> bytes:
    events = json.loads((_conformance_dir() / f"{stem}.json").read_text())["events"]
    return b"".join(bytes.fromhex(e["hex"]) for e in events if e["dir"] == "send")


class _Elements(HTMLParser):
    """Every start tag with its attributes, and whether a <script> ever appeared."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def with_attribute(self, name: str) -> list[dict]:
        return [attrs for _, attrs in self.tags if name in attrs]


HOSTILE = "<script>alert('x')</script>&\"'"


def test_hostile_payload_and_names_are_escaped():
    message = wire.SingleRequest(b"<a>\"", HOSTILE, HOSTILE.encode())
    html = message_html(message)
    elements = _Elements(html)
    assert "script" not in [tag for tag, _ in elements.tags]
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    # The title attributes carry the values too, and must not break out of the attribute.
    titles = [attrs["title"] for attrs in elements.with_attribute("title")]
    assert any(HOSTILE in title for title in titles)


def test_hostile_json_payload_is_escaped_when_pretty_printed():
    payload = json.dumps({"x": "</pre><script>alert(1)</script>"}).encode()
    html = message_html(wire.SingleResult(b"0001", payload))
    assert "<script" not in html
    assert 'class="gl-json"' in html


def test_one_span_per_field_in_order_each_with_its_meaning():
    annotated = annotate(b"r0001004echo00000005hello")
    elements = _Elements(message_html(annotated))
    spans = elements.with_attribute("data-field")
    assert [span["data-field"] for span in spans] == [f.name for f in annotated.fields]
    for span, field in zip(spans, annotated.fields):
        assert field.meaning in span["title"]
        assert f"[{field.start}:{field.end}]" in span["title"]
        assert FIELD_COLOURS[field.name] in span["style"]


def test_bytes_are_shown_as_hex_and_ascii():
    html = message_html(wire.SingleResult(b"\x01\x00\x00\x00", b"hi"))
    assert "01 00 00 00" in html  # the Go-style ID, byte by byte
    assert "68 69" in html and "h  i" in html


def test_message_accepts_a_value_its_bytes_or_an_annotation():
    message = wire.ErrorResult(b"0001", b"boom")
    assert message_html(message) == message_html(wire.encode(message)) == message_html(annotate(message))


def test_registered_formatters_show_messages_and_traces_as_html():
    from IPython.core.formatters import DisplayFormatter

    class Shell:  # what register_formatters needs of an IPython shell
        display_formatter = DisplayFormatter()

    from gotalk_lab.html import register_formatters, trace_html
    from gotalk_lab.trace import Trace

    shell = Shell()
    assert register_formatters(shell)
    html = shell.display_formatter.formatters["text/html"]
    message = wire.ErrorResult(b"0001", b"boom")
    assert html(message) == message_html(message)
    trace = Trace()
    assert html(trace) == trace_html(trace)


def test_json_payload_is_pretty_printed():
    html = message_html(wire.SingleResult(b"0001", b'{"greeting":"Hello Rasmus"}'))
    assert "{\n  &quot;greeting&quot;: &quot;Hello Rasmus&quot;\n}" in html


def test_long_payload_is_cut_and_says_how_much():
    html = message_html(wire.SingleResult(b"0001", bytes(range(256)) * 40))
    assert "bytes not shown" in html
    assert len(html) < 60_000


def test_styles_are_inline_and_every_class_is_prefixed():
    html = stream_html(_sent_bytes("02-single-requests"))
    assert html.count("<style>") == 1
    style = html[html.index("<style>") : html.index("</style>")]
    assert set(re.findall(r"\.([a-zA-Z][\w-]*)", style)) and all(
        name.startswith("gl-") for name in re.findall(r"\.([a-zA-Z][\w-]*)", style)
    )
    for _, attrs in _Elements(html).tags:
        for class_name in attrs.get("class", "").split():
            assert class_name.startswith("gl-"), class_name


def test_stream_shows_every_message():
    data = _sent_bytes("05-multiplexing")
    annotation = annotate_stream(data)
    html = stream_html(data)
    assert html == stream_html(annotation)
    assert html.count('class="gl-message"') == len(annotation.messages)
    for message in annotation.messages:
        assert f"[{message.offset}:{message.end}]" in html


def test_error_is_marked_at_its_byte_after_the_messages_before_it():
    html = stream_html(_sent_bytes("11-bad-size-digits"))
    assert "ProtocolVersion" in html
    assert html.count('class="gl-error-byte"') == 2  # the bad byte in the hex and the ASCII row
    assert "byte 18: payload_size: expected 8 hex digits, found &#x27;z&#x27; at digit 5" in html
    fields = [attrs["data-field"] for attrs in _Elements(html).with_attribute("data-field")]
    assert fields[-6:] == ["type", "request_id", "name_size", "operation", "payload_size", "unread"]


def test_version_mismatch_is_marked_at_byte_zero():
    html = stream_html(_sent_bytes("12-version-mismatch"))
    assert 'class="gl-error-byte">30<' in html
    assert "byte 0: version" in html


def test_end_of_input_is_marked():
    html = stream_html(b"01R000100000005hel")
    assert 'class="gl-eoi"' in html
    assert "byte 18: payload: expected " in html
    assert "cut short — 3 of 5 bytes" in html


def test_trace_table_lists_each_frame_with_its_bytes():
    trace = Trace()
    trace.record(OUT, b"r0001004echo00000003", wire.SingleRequest(b"0001", "echo", b"<b>"))
    trace.record(IN, b"R00010000000A", wire.SingleResult(b"0001", b"0123456789"))
    html = trace_html(trace)
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "→ out" in html and "← in" in html
    assert "0x0000000A = 10" in html  # the header as it was read, not re-encoded
    assert "no frames yet" in trace_html(Trace())


# -- the field map ------------------------------------------------------------------------

def test_the_field_map_draws_every_type_with_the_decoders_widths():
    from pathlib import Path

    from gotalk_lab.decoder import LAYOUTS
    from gotalk_lab.html import FIELD_MAP_EXAMPLES, field_map

    rows = field_map().rows()
    assert {raw[:1] for raw, *_ in rows if raw != b"01"} == set(LAYOUTS)  # every type, once
    for raw, _kind, _note, fields in rows:
        if raw == b"01":
            assert [f.name for f in fields] == ["version"]
            continue
        fixed = [(name, size) for name, size, kind in LAYOUTS[raw[:1]] if size]
        assert [(f.name, len(f.raw)) for f in fields if (f.name, len(f.raw)) in fixed] == fixed, raw
    svg = field_map().svg()
    assert svg.count("<rect ") == 1 + sum(len(fields) for *_, fields in rows)
    assert "request ID" in svg and "8 hex" in svg and "4 raw" in svg and "name-size bytes" in svg
    assert len(FIELD_MAP_EXAMPLES) == 11
    page = Path(__file__).resolve().parents[1] / "docs" / "field-map.svg"
    assert page.read_text() == svg, "docs/field-map.svg is stale: write gl.field_map().svg() to it"


def test_the_field_map_reads_as_text_too():
    from gotalk_lab.html import field_map

    text = repr(field_map())
    assert "r 0001 004 echo 00000005 hello" in text
    assert "single request: type: 1, request ID: 4 raw, name size: 3 hex" in text
