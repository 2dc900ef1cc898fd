"""Tests for gotalk_lab.annotate: every byte explained exactly once, with exact raw bytes,
meanings that carry the decoded numbers, and errors located with what came before kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conformance import CONFORMANCE_DIR
from hypothesis import given
from hypothesis import strategies as st

from gotalk_lab import wire
from gotalk_lab.annotate import (
    VERSION_TYPE,
    Annotation,
    annotate,
    annotate_frame,
    annotate_stream,
    payload_hint,
    show_bytes,
    to_dict,
)
from gotalk_lab.errors import ProtocolViolation


def _conformance_dir() -> Path:
    return CONFORMANCE_DIR


def _streams() -> list[tuple[str, bytes]]:
    """Each transcript's bytes per direction, as one side wrote them."""
    streams = []
    for path in sorted(_conformance_dir().glob("*.json")):
        events = json.loads(path.read_text())["events"]
        for direction in ("send", "recv"):
            data = b"".join(bytes.fromhex(e["hex"]) for e in events if e["dir"] == direction)
            streams.append((f"{path.stem}:{direction}", data))
    return streams


STREAMS = _streams()
assert STREAMS, f"no conformance transcripts found in {_conformance_dir()}"
STREAM_BYTES = dict(STREAMS)
#: The streams that are invalid on purpose: where, and in which field, reading must stop.
BAD_STREAMS = {
    "10-protocol-error-unknown-type:send": (2, "type"),
    "11-bad-size-digits:send": (18, "payload_size"),
    "12-version-mismatch:send": (0, "version"),
}


def _assert_exact_cover(annotation: Annotation, data: bytes) -> None:
    """Messages, their fields and the unfinished fields tile the input with no gap or overlap."""
    position = 0
    for message in annotation.messages:
        assert message.offset == position
        assert message.raw == data[message.offset : message.end]
        for field in message.fields:
            assert field.start == position, (message.summary, field.name)
            assert field.raw == data[field.start : field.end]
            position = field.end
        assert position == message.end
    assert annotation.trailing_offset == position
    assert annotation.trailing == data[position:]
    for field in annotation.unfinished:
        assert field.start == position
        assert field.raw == data[field.start : field.end]
        position = field.end


@pytest.mark.parametrize("name", [name for name, _ in STREAMS])
def test_fields_cover_every_byte_once_for_every_transcript(name):
    data = STREAM_BYTES[name]
    annotation = annotate_stream(data)
    _assert_exact_cover(annotation, data)
    if name in BAD_STREAMS:
        assert annotation.error is not None
    else:
        assert annotation.error is None
        assert annotation.trailing == b""
        assert annotation.size == len(data)
        assert sum(message.length for message in annotation.messages) == len(data)


@pytest.mark.parametrize("name", sorted(BAD_STREAMS))
def test_bad_transcripts_are_located_and_keep_what_came_before(name):
    offset, field = BAD_STREAMS[name]
    data = STREAM_BYTES[name]
    annotation = annotate_stream(data)
    assert (annotation.error.offset, annotation.error.field) == (offset, field)
    assert annotation.trailing_offset + len(annotation.trailing) == len(data)
    if offset > 0:  # the version preamble before the bad message is still explained
        assert [m.kind for m in annotation.messages] == ["ProtocolVersion"]
    else:
        assert annotation.messages == []
    if annotation.unfinished:
        assert annotation.unfinished[-1].end == offset


def test_bad_size_digit_keeps_the_valid_part_of_the_header():
    annotation = annotate_stream(STREAM_BYTES["11-bad-size-digits:send"])
    assert [f.name for f in annotation.unfinished] == ["type", "request_id", "name_size", "operation", "payload_size"]
    cut = annotation.unfinished[-1]
    assert cut.cut_short and cut.raw == b"0000"
    assert "4 of 8" in cut.meaning
    assert annotation.error.describe() == "byte 18: payload_size: expected 8 hex digits, found 'z' at digit 5"


def test_every_cut_of_a_conversation_is_located_at_the_end_of_input():
    data = STREAM_BYTES["02-single-requests:send"]
    boundaries = {m.end for m in annotate_stream(data).messages}
    for cut in range(len(data)):
        annotation = annotate_stream(data[:cut])
        _assert_exact_cover(annotation, data[:cut])
        if cut in boundaries:
            assert annotation.error is None, cut
            continue
        assert annotation.error.offset == cut, cut
        assert annotation.error.found == "end of input", cut
        assert all(message.end <= cut for message in annotation.messages)


def test_truncated_payload_is_located_at_the_end_and_keeps_the_header():
    annotation = annotate_stream(b"01R000100000005hel")
    error = annotation.error
    assert (error.offset, error.field, error.found) == (18, "payload", "end of input")
    assert [f.name for f in annotation.unfinished] == ["type", "request_id", "payload_size", "payload"]
    cut = annotation.unfinished[-1]
    assert cut.cut_short and cut.raw == b"hel" and "3 of 5 bytes" in cut.meaning


def test_empty_input_misses_the_version_unless_told_there_is_none():
    assert annotate_stream(b"").error.field == "version"
    assert annotate_stream(b"", expect_version=False).error is None


def test_meanings_carry_the_decoded_numbers():
    assert annotate(b"R0001000000190123456789012345678901234").field("payload_size").meaning == (
        "payload size: 0x00000019 = 25 bytes follow"
    )
    heartbeat = annotate(b"h7fff54d7de9a")
    assert "0x7fff = 32767" in heartbeat.field("load").meaning
    assert "50.0 %" in heartbeat.field("load").meaning
    assert "1423433370" in heartbeat.field("time").meaning
    assert "2015-02-08T22:09:30Z" in heartbeat.field("time").meaning
    retry = annotate(b"e00020000006400000012request rate limit")
    assert "100 ms" in retry.field("wait").meaning
    assert retry.field("wait").value == 100
    for code, words in [(0, "abnormal"), (1, "unsupported protocol"), (2, "invalid message"), (3, "timeout")]:
        meaning = annotate(wire.ProtocolError(code)).field("code").meaning
        assert f"= {code}: {words}" in meaning


def test_type_meaning_names_the_message_and_its_purpose():
    meaning = annotate(b"r0001004echo00000005hello").field("type").meaning
    assert meaning == "type 'r': SingleRequest — ask the other side to run an operation once"


def test_request_ids_are_opaque_with_a_go_counter_hint_only_when_it_fits():
    printable = annotate(b"R000100000000").field("request_id")
    assert printable.value == b"0001"
    assert printable.meaning == "request ID: 4 opaque bytes '0001' — matched, never interpreted"
    go_style = annotate(b"R\x01\x00\x00\x0000000000").field("request_id")
    assert go_style.value == b"\x01\x00\x00\x00"
    assert "'\\x01\\x00\\x00\\x00'" in go_style.meaning
    assert "little-endian counter: 1)" in go_style.meaning
    assert "counter" not in annotate(b"R\xff\xff\xff\xff00000000").field("request_id").meaning


@pytest.mark.parametrize(
    "payload, hint",
    [
        (b"", "empty"),
        (b'{"name":"Rasmus"}', "json"),
        (b'"hi"', "json"),
        (b"hello world", "text"),
        ("grüße\n".encode(), "text"),
        (b"hello \x00\xff world", "binary"),
        (b"\x01\x02", "binary"),
    ],
)
def test_payload_hints(payload, hint):
    assert payload_hint(payload) == hint
    field = annotate(wire.SingleResult(b"0001", payload)).field("payload")
    assert field.hint == hint
    assert field.value == payload


def test_empty_stream_parts_are_explained_as_the_end_of_the_stream():
    assert annotate(b"p000100000000").field("payload").meaning == "empty part: ends the stream request"
    assert annotate(b"S000100000000").summary == "S 0001 (empty: end of stream)"


def test_uppercase_hex_keeps_its_raw_bytes():
    data = b"r0001004echo0000000Ahelloworld"
    annotated = annotate(data)
    size = annotated.field("payload_size")
    assert size.raw == b"0000000A"
    assert size.value == 10
    assert "0x0000000A = 10" in size.meaning
    assert annotated.raw == data
    assert b"".join(f.raw for f in annotated.fields) == data


def test_summary_lines():
    assert annotate(b"r0001004echo00000005hello").summary == 'r 0001 echo "hello" (5 bytes, text)'
    assert annotate(b"R\x00\x00\x00\x0000000002ok").summary == 'R \\x00\\x00\\x00\\x00 "ok" (2 bytes, text)'
    assert annotate(b"n005hello00000004\"hi\"").summary == 'n hello "hi" (4 bytes, json)'
    assert annotate(b"f00000002").summary == "f code 2: invalid message"
    assert annotate(b"01").summary == "01 protocol version 1"


def test_long_payloads_are_cut_in_the_summary_only():
    payload = b"x" * 1000
    annotated = annotate(wire.SingleResult(b"0001", payload))
    assert len(annotated.summary) < 80
    assert "(1000 bytes, text)" in annotated.summary
    assert annotated.field("payload").raw == payload


def test_offset_shifts_every_field():
    annotated = annotate(b"R000100000002ok", offset=100)
    assert (annotated.offset, annotated.end) == (100, 115)
    assert [(f.start, f.end) for f in annotated.fields] == [(100, 101), (101, 105), (105, 113), (113, 115)]


def test_annotate_bytes_wants_exactly_one_whole_message():
    with pytest.raises(ProtocolViolation) as two:
        annotate(b"f00000002f00000003")
    assert two.value.offset == 9
    with pytest.raises(ProtocolViolation) as nothing:
        annotate(b"")
    assert nothing.value.found == "0 messages"
    with pytest.raises(ProtocolViolation) as cut:
        annotate(b"R00010000000")
    assert cut.value.field == "payload_size"


def test_annotate_frame_uses_the_header_as_read():
    header = b"R00010000000A"
    message = wire.SingleResult(b"0001", b"0123456789")
    annotated = annotate_frame(header, message, offset=7)
    assert annotated.raw == header + b"0123456789"
    assert annotated.field("payload_size").raw == b"0000000A"
    assert annotated.offset == 7


def test_to_dict_shape_for_a_request():
    entry = to_dict(annotate(b"r0001004echo00000005hello", offset=2))
    assert {k: entry[k] for k in ("type", "kind", "offset", "length", "id", "name", "payload", "hint", "text")} == {
        "type": "r",
        "kind": "SingleRequest",
        "offset": 2,
        "length": 25,
        "id": "30303031",
        "name": "echo",
        "payload": b"hello".hex(),
        "hint": "text",
        "text": "hello",
    }
    assert [(f["name"], f["start"], f["end"], f["value"]) for f in entry["fields"]] == [
        ("type", 2, 3, "r"),
        ("request_id", 3, 7, "30303031"),
        ("name_size", 7, 10, 4),
        ("operation", 10, 14, "echo"),
        ("payload_size", 14, 22, 5),
        ("payload", 22, 27, b"hello".hex()),
    ]
    assert json.loads(json.dumps(entry)) == entry


def test_to_dict_version_preamble_rule():
    entry = to_dict(annotate(b"01"))
    assert entry["type"] == VERSION_TYPE == "v"
    assert (entry["kind"], entry["version"], entry["offset"], entry["length"]) == ("ProtocolVersion", 1, 0, 2)
    assert entry["fields"] == [
        {"name": "version", "start": 0, "end": 2, "value": 1, "raw": "3031", "meaning": entry["fields"][0]["meaning"]}
    ]


def test_to_dict_keys_per_type():
    assert {"wait", "id", "payload"} <= set(to_dict(annotate(b"e00020000006400000000")))
    assert {"load", "time"} <= set(to_dict(annotate(b"h000254d7de9a")))
    assert to_dict(annotate(b"f00000003"))["code"] == 3
    notification = to_dict(annotate(b"n005hello00000000"))
    assert notification["name"] == "hello" and "id" not in notification


def test_show_bytes_escapes_what_is_not_printable():
    assert show_bytes(b"ab \x00\xff\\") == "ab \\x00\\xff\\x5c"


_ids = st.binary(min_size=4, max_size=4)
_names = st.text(max_size=20).filter(lambda name: len(name.encode()) <= 0xFFF)
_payloads = st.binary(max_size=64)
_messages = st.one_of(
    st.builds(wire.SingleRequest, _ids, _names, _payloads),
    st.builds(wire.StreamRequest, _ids, _names, _payloads),
    st.builds(wire.StreamRequestPart, _ids, _payloads),
    st.builds(wire.SingleResult, _ids, _payloads),
    st.builds(wire.StreamResult, _ids, _payloads),
    st.builds(wire.ErrorResult, _ids, _payloads),
    st.builds(wire.RetryResult, _ids, st.integers(0, wire.MAX_UINT32), _payloads),
    st.builds(wire.Notification, _names, _payloads),
    st.builds(wire.Heartbeat, st.integers(0, wire.MAX_LOAD), st.integers(0, wire.MAX_UINT32)),
    st.builds(wire.ProtocolError, st.integers(0, wire.MAX_UINT32)),
)


@given(st.lists(_messages, max_size=6))
def test_any_conversation_is_tiled_exactly_and_matches_the_values(messages):
    data = wire.VERSION_BYTES + b"".join(wire.encode(m) for m in messages)
    annotation = annotate_stream(data)
    assert annotation.error is None
    _assert_exact_cover(annotation, data)
    assert [m.message for m in annotation.messages[1:]] == messages
    for annotated, message in zip(annotation.messages[1:], messages):
        assert annotate(message).fields == annotate(wire.encode(message)).fields
        assert json.loads(json.dumps(to_dict(annotated)))["length"] == len(wire.encode(message))
