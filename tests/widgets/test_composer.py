"""Composer, kernel side: byte-exact messages from the form, each malformation located where
expected, inline form errors, and Send delivering the raw bytes to a live peer over a pipe."""

from __future__ import annotations

import asyncio

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.trace import IN
from gotalk_lab.widgets.composer import Composer, malform, malformations_for, parse_escaped, parse_request_id

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: One form per message type, and the message it must build.
FORMS = [
    (dict(type="r", request_id=b"0001", name="echo", payload="hello"), gl.SingleRequest(b"0001", "echo", b"hello")),
    (dict(type="s", request_id=b"0002", name="upper-stream", payload="a"), gl.StreamRequest(b"0002", "upper-stream", b"a")),
    (dict(type="p", request_id=b"0002", payload=""), gl.StreamRequestPart(b"0002", b"")),
    (dict(type="R", request_id=b"\x01\x00\x00\x00", payload=b"\x00\xff"), gl.SingleResult(b"\x01\x00\x00\x00", b"\x00\xff")),
    (dict(type="S", request_id=b"0003", payload="PART"), gl.StreamResult(b"0003", b"PART")),
    (dict(type="E", request_id=b"0004", payload="boom"), gl.ErrorResult(b"0004", b"boom")),
    (dict(type="e", request_id=b"0005", wait=500, payload="request rate limit"), gl.RetryResult(b"0005", 500, b"request rate limit")),
    (dict(type="n", name="hello", payload={"to": "Ada"}), gl.Notification("hello", b'{"to": "Ada"}')),
    (dict(type="h", load=0x8000, time=1_700_000_000), gl.Heartbeat(0x8000, 1_700_000_000)),
    (dict(type="f", code=3), gl.ProtocolError(3)),
    (dict(type="01", version=1), gl.ProtocolVersion(1)),
]


def error_of(composer: Composer) -> tuple[int, str] | None:
    error = composer.frame_view.annotation["error"]
    return None if error is None else (error["offset"], error["field"])


@pytest.mark.parametrize("form, message", FORMS, ids=[form["type"] for form, _ in FORMS])
def test_every_type_is_built_byte_exact(form, message):
    composer = Composer(**form)
    assert composer.message == message
    assert composer.value == gl.encode(message)
    assert composer.error is None
    assert composer.frame_view.data == composer.value
    assert error_of(composer) is None
    assert len(composer.frame_view.annotation["messages"]) == 1


def test_the_default_form_is_the_echo_request():
    composer = Composer()
    assert composer.value == b"r0001004echo00000005hello"
    assert composer.frame_view.title == "SingleRequest"


def test_only_the_inputs_of_the_chosen_type_are_shown():
    composer = Composer(type="h")
    shown = {name for name, row in composer._rows.items() if row.layout.display != "none"}
    assert shown == {"load", "time"}
    composer.set(type="e")
    shown = {name for name, row in composer._rows.items() if row.layout.display != "none"}
    assert shown == {"request_id", "wait", "payload"}


@pytest.mark.parametrize(
    "malformation, drop, expected_bytes, expected_error",
    [
        ("size+1", 1, b"r0001004echo00000006hello", (25, "payload")),
        ("size-1", 1, b"r0001004echo00000004hello", (24, "type")),
        ("bad-hex", 1, b"r0001004echo0000000zhello", (19, "payload_size")),
        ("unknown-type", 1, b"x0001004echo00000005hello", (0, "type")),
        ("truncated", 3, b"r0001004echo00000005he", (22, "payload")),
        ("truncated", 13, b"r0001004echo", (12, "payload_size")),
    ],
)
def test_each_malformation_gives_the_expected_located_error(malformation, drop, expected_bytes, expected_error):
    composer = Composer().set(malformation=malformation, drop=drop)
    assert composer.value == expected_bytes
    assert composer.message is None
    assert error_of(composer) == expected_error
    assert "malformed" in composer.frame_view.title


def test_malformations_of_types_without_a_payload():
    heartbeat = Composer(type="h", load=1, time=2)
    assert heartbeat.set(malformation="bad-hex").value == b"h000z00000002"
    assert error_of(heartbeat) == (4, "load")
    version = Composer(type="01")
    assert version.set(malformation="bad-hex").value == b"0z"
    assert error_of(version) == (1, "version")
    assert Composer(type="01", version=2).frame_view.annotation["error"]["code"] == 1  # version mismatch
    assert "size+1" not in malformations_for("h") and "unknown-type" not in malformations_for("01")
    with pytest.raises(ValueError, match="does not apply to type 'f'"):
        Composer(type="f").set(malformation="size-1")


def test_an_empty_payload_size_minus_one_wraps_and_is_refused_by_the_limit():
    composer = Composer(type="p", payload="", malformation="size-1")
    assert composer.value == b"p0001ffffffff"
    assert error_of(composer) == (5, "payload_size")


def test_a_type_without_the_chosen_malformation_falls_back_to_none():
    composer = Composer(malformation="size+1")
    composer.set(type="f", code=2)
    assert composer.malformation_input.value == "none"
    assert composer.value == b"f00000002" and composer.message == gl.ProtocolError(2)


def test_malform_refuses_what_does_not_apply():
    with pytest.raises(ValueError, match="no payload size"):
        malform(b"f00000002", "size+1")
    with pytest.raises(ValueError, match="no type byte"):
        malform(b"01", "unknown-type")
    with pytest.raises(ValueError, match="at least 1"):
        malform(b"f00000002", "truncated", drop=0)


def test_request_id_as_text_with_escapes_or_as_hex():
    assert parse_request_id("\\x01\\x00\\x00\\x00") == b"\x01\x00\x00\x00"
    assert parse_request_id("01 00 00 00", "hex") == b"\x01\x00\x00\x00"
    assert parse_request_id("a\\x5cbc") == b"a\\bc" and parse_escaped("\\\\") == b"\\"
    composer = Composer(request_id="01000000", request_id_format="hex")
    assert composer.value == b"r\x01\x00\x00\x00004echo00000005hello"
    assert composer.message.request_id == b"\x01\x00\x00\x00"
    # bytes given to set() come back as the escaped text the form shows
    assert Composer(request_id=b"\x01\x00\x00\x00").request_id_input.value == "\\x01\\x00\\x00\\x00"


@pytest.mark.parametrize(
    "request_id, format, complaint",
    [
        ("001", "text", "request ID must be exactly 4 bytes; '001' is 3"),
        ("00001", "text", "request ID must be exactly 4 bytes; '00001' is 5"),
        ("é123", "text", "request ID must be exactly 4 bytes; '\\xc3\\xa9123' is 5"),
        ("0001\\", "text", "a lone '\\' at character 5"),
        ("010000", "hex", "request ID must be exactly 4 bytes; '01 00 00' is 3"),
        ("0100000g", "hex", "'g' (hex digit 8) is not a hex digit"),
    ],
)
def test_a_bad_request_id_is_an_inline_error_and_no_bytes(request_id, format, complaint):
    composer = Composer(request_id=request_id, request_id_format=format)
    assert composer.value is None and composer.message is None
    assert complaint in composer.error
    assert complaint.replace("'", "&#x27;") in composer.form_error.value
    assert composer.frame_view.data == b""
    composer.set(request_id="0001", request_id_format="text")
    assert composer.error is None and composer.form_error.value == ""
    assert composer.value == b"r0001004echo00000005hello"


def test_payload_as_json_is_checked_and_as_hex_is_decoded():
    composer = Composer(payload='{"name": "Ada"', payload_format="json")
    assert composer.value is None
    assert composer.error == "payload is not JSON: Expecting ',' delimiter at line 1, column 15"
    composer.set(payload='{"name": "Ada"}', payload_format="json")
    assert composer.value == b'r0001004echo0000000f{"name": "Ada"}'
    composer.set(payload="00 ff 10", payload_format="hex")
    assert composer.message.payload == b"\x00\xff\x10"
    composer.set(payload="0f f", payload_format="hex")
    assert "3 hex digits" in composer.error
    composer.set(payload=b"\x00\xff")
    assert composer.payload_format.value == "hex" and composer.message.payload == b"\x00\xff"


def test_set_refuses_unknown_names_and_types():
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        Composer().set(colour="red")
    with pytest.raises(ValueError, match="type must be one of"):
        Composer().set(type="q")


def test_send_needs_a_peer():
    composer = Composer()
    assert composer.send_button.disabled
    assert composer.status.startswith("no connection")
    with pytest.raises(RuntimeError, match="no peer"):
        composer.send_to_peer()


def test_mime_bundle_keeps_the_widget_view_and_adds_static_html():
    composer = Composer(malformation="bad-hex")
    bundle = composer._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == composer.model_id
    assert 'class="gl-view"' in bundle["text/html"] and "byte 19: payload_size" in bundle["text/html"]


# -- sending to a live peer ------------------------------------------------------


async def test_send_delivers_an_unknown_type_and_the_other_side_answers_f2_and_closes():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    composer = Composer(peer=a, malformation="unknown-type")
    assert not composer.send_button.disabled
    assert await composer.send_to_peer() is True
    status = await composer.wait_closed()
    assert status.startswith("sent 25 bytes to a; connection closed: ")
    assert a.close_reason == "the other side reported a protocol error: f00000002 (invalid)"
    received = [event.message for event in a.trace if event.direction == IN]
    assert received == [gl.ProtocolVersion(1), gl.ProtocolError(2)]
    assert b.close_reason.startswith("invalid input from the other side: byte 2: type")


async def test_send_delivers_a_valid_notification_and_the_demo_answers_it():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    answered = asyncio.Event()
    a.trace.subscribe(lambda event: event.direction == IN and isinstance(event.message, gl.Notification) and answered.set())
    composer = Composer(peer=a, type="n", name="hello", payload="hi")
    await composer.send_to_peer()
    await answered.wait()
    assert composer.status == "sent 19 bytes to a"
    assert a.trace[-1].message == gl.Notification("hello-back", b"hi")
    assert [event.message for event in b.trace if event.direction == IN][-1] == gl.Notification("hello", b"hi")
    await a.close()


async def test_send_on_a_closed_connection_says_so():
    a, b = await gl.pipe()
    await a.close()
    composer = Composer(peer=a)
    assert await composer.send_to_peer() is False
    assert composer.status == "connection closed: closed by this side"
